//! Fixture tests against torrents made by libtorrent 2.0.8 (see `tests/fixtures/make_fixtures.py`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use metainfo::{merkle, MetaVersion, Torrent};
use serde_json::Value;

mod create;

pub(crate) const MODES: [&str; 2] = ["hybrid", "v2"];
pub(crate) const LAYOUTS: [&str; 4] = ["multi", "single", "tiny", "three_blocks"];

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn layouts() -> Value {
    serde_json::from_slice(&fixture("layouts.json")).unwrap()
}

/// The synthetic content the fixture script wrote for the file at `path` (torrent name
/// included for multi-file torrents).
pub(crate) fn content(path: &str, len: u64) -> Vec<u8> {
    let seed: u64 = path.bytes().map(u64::from).sum();
    (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

/// The torrent's concatenated data, pad files as zeros.
pub(crate) fn torrent_data(t: &Torrent) -> Vec<u8> {
    let mut data = Vec::new();
    for (i, f) in t.info.files.iter().enumerate() {
        if f.pad {
            data.resize(data.len() + f.length as usize, 0);
        } else {
            let path = t.info.file_path(i).to_string_lossy().into_owned();
            data.extend(content(&path, f.length));
        }
    }
    data
}

#[test]
fn libtorrent_fixtures_parse_to_libtorrents_layout_and_hashes() {
    let layouts = layouts();
    for layout in LAYOUTS {
        for mode in MODES {
            let key = format!("{layout}.{mode}");
            let bytes = fixture(&format!("{key}.torrent"));
            let t = Torrent::from_bytes(&bytes).unwrap_or_else(|e| panic!("{key}: {e}"));
            let want = &layouts[&key];
            let version = if mode == "v2" {
                MetaVersion::V2
            } else {
                MetaVersion::Hybrid
            };
            assert_eq!(t.info.version, version, "{key}");

            // Hashes as libtorrent computes them.
            let v1 = t.info_hashes.v1.map(|h| h.to_hex());
            assert_eq!(v1.as_deref(), want["v1"].as_str(), "{key}");
            let v2 = t.info_hashes.v2.unwrap().to_hex();
            assert_eq!(Some(v2.as_str()), want["v2"].as_str(), "{key}");
            let wire = t.info_hash.to_hex();
            assert_eq!(wire, v1.unwrap_or_else(|| v2[..40].to_string()), "{key}");

            // The same files, pads and offsets as libtorrent's internal layout.
            let files: Vec<(String, u64, u64, bool)> = (0..t.info.files.len())
                .map(|i| {
                    let f = &t.info.files[i];
                    let path = t.info.file_path(i).to_string_lossy().into_owned();
                    (path, f.length, f.offset, f.pad)
                })
                .collect();
            let lt_files: Vec<(String, u64, u64, bool)> = want["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["path"].as_str().unwrap().to_string(),
                        f["size"].as_u64().unwrap(),
                        f["offset"].as_u64().unwrap(),
                        f["pad"].as_bool().unwrap(),
                    )
                })
                .collect();
            assert_eq!(files, lt_files, "{key}");
            assert_eq!(
                u64::from(t.info.num_pieces()),
                want["num_pieces"].as_u64().unwrap()
            );
            assert_eq!(t.info.total_length, want["total_size"].as_u64().unwrap());

            // Roots and piece layers recomputed from the data.
            let data = torrent_data(&t);
            for f in t.info.files.iter().filter(|f| !f.pad) {
                let file_data = &data[f.offset as usize..(f.offset + f.length) as usize];
                let leaves = merkle::leaf_hashes(file_data);
                if f.length == 0 {
                    assert_eq!(f.pieces_root, None);
                    continue;
                }
                assert_eq!(
                    f.pieces_root,
                    Some(merkle::root_from_leaves(&leaves)),
                    "{key}"
                );
                let layer = merkle::piece_layer(&leaves, t.info.piece_length);
                match t.piece_layers.get(&f.pieces_root.unwrap()) {
                    Some(stored) => assert_eq!(*stored, layer, "{key}"),
                    None => assert!(layer.is_empty(), "{key}: layer missing"),
                }
            }
            assert!(t.has_piece_layers());

            // Every piece checks out with v2 (and v1 for hybrids); a flipped byte fails.
            for p in 0..t.info.num_pieces() {
                let start = t.info.piece_offset(p) as usize;
                let piece = &data[start..start + t.info.piece_size(p) as usize];
                assert_eq!(t.verify_v2_piece(p, piece), Some(true), "{key} piece {p}");
                let real = t.info.v2_piece(p).unwrap().real_len as usize;
                let mut bad = piece.to_vec();
                bad[real - 1] ^= 1;
                assert_eq!(t.verify_v2_piece(p, &bad), Some(false), "{key} piece {p}");
                if let Some(sha1) = t.info.piece_hash(p) {
                    assert_eq!(
                        metainfo::create::hash_piece(piece),
                        *sha1,
                        "{key} piece {p}"
                    );
                }
            }

            // Written back byte for byte (libtorrent writes canonical bencode).
            assert_eq!(t.to_bytes(), bytes, "{key}");
            // A magnet fetch gives the same torrent minus the piece layers.
            let bare = Torrent::from_info_bytes(t.info_bytes.clone()).unwrap();
            assert_eq!((bare.info_hashes, &bare.info), (t.info_hashes, &t.info));
            assert!(bare.piece_layers.is_empty());
            assert_eq!(bare.has_piece_layers(), t.piece_layers.is_empty());
        }
    }
}

#[test]
fn corrupt_piece_layers_are_rejected() {
    let bytes = fixture("multi.v2.torrent");
    let t = Torrent::from_bytes(&bytes).unwrap();
    let (root, layer) = t.piece_layers.iter().next().unwrap();
    let layer_bytes = layer.as_flattened();
    let at = bytes
        .windows(layer_bytes.len())
        .position(|w| w == layer_bytes)
        .unwrap();
    let mut bad = bytes.clone();
    bad[at + 5] ^= 1;
    let err = Torrent::from_bytes(&bad).unwrap_err();
    assert!(
        matches!(
            err,
            metainfo::Error::BadPieceLayer {
                why: "its hashes do not lead to the pieces root",
                ..
            }
        ),
        "{err}"
    );

    // set_piece_layer checks too, and fills in what a magnet fetch lacks.
    let mut bare = Torrent::from_info_bytes(t.info_bytes.clone()).unwrap();
    let mut wrong = layer.clone();
    wrong.pop();
    assert!(bare.set_piece_layer(*root, wrong).is_err());
    assert_eq!(
        bare.verify_v2_piece(1, &[0; 32768]),
        None,
        "layer not known yet"
    );
    for (root, layer) in &t.piece_layers {
        bare.set_piece_layer(*root, layer.clone()).unwrap();
    }
    assert!(bare.has_piece_layers());
    assert_eq!(bare.piece_layers, t.piece_layers);
}

/// Every single-byte mutation of small v2 and hybrid torrents either fails cleanly or yields a
/// torrent whose invariants hold (a deterministic stand-in for the fuzz target).
#[test]
fn mutated_v2_and_hybrid_torrents_never_panic() {
    for name in [
        "tiny.v2.torrent",
        "tiny.hybrid.torrent",
        "three_blocks.v2.torrent",
    ] {
        let file = fixture(name);
        let mut accepted = 0;
        for i in 0..file.len() {
            for byte in [
                b'0', b'1', b'9', b'e', b'd', b'l', b'i', b':', b'.', b'/', 0, 0xff,
            ] {
                let mut m = file.clone();
                m[i] = byte;
                let Ok(t) = Torrent::from_bytes(&m) else {
                    continue;
                };
                accepted += 1;
                let info = &t.info;
                let piece_length = u64::from(info.piece_length);
                let mut end = 0;
                for f in &info.files {
                    assert_eq!(f.offset, end);
                    end += f.length;
                    if info.version.has_v2() && !f.pad && f.length > 0 {
                        assert_eq!(f.offset % piece_length, 0, "{name} byte {i}");
                    }
                }
                assert_eq!(end, info.total_length);
                for p in 0..info.num_pieces() {
                    let _ = t.verify_v2_piece(p, &[]);
                }
                assert_eq!(Torrent::from_bytes(&t.to_bytes()).unwrap(), t);
            }
        }
        assert!(accepted > 20, "{name}: only {accepted} mutations parsed");
    }
}

/// Mutated magnet links parse cleanly or not at all, and what parses prints back to itself.
#[test]
fn mutated_magnets_round_trip() {
    let link = "magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac\
        &xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb\
        &dn=a+b%20c&tr=udp%3A%2F%2Ft%3A1&ws=http://w/&x.pe=1.2.3.4:5&x.pe=[::1]:6&x.pe=h:7";
    let mut accepted = 0;
    for i in 0..link.len() {
        for c in ["%", "&", "=", "+", ":", "[", "]", ".", "0", "é", ""] {
            let mut m = link.as_bytes().to_vec();
            m.splice(i..i + 1, c.bytes());
            let Ok(s) = String::from_utf8(m) else {
                continue;
            };
            if let Ok(magnet) = metainfo::Magnet::parse(&s) {
                accepted += 1;
                assert_eq!(
                    metainfo::Magnet::parse(&magnet.to_string()),
                    Ok(magnet),
                    "{s}"
                );
            }
        }
    }
    assert!(accepted > 100, "only {accepted} parsed");
}
