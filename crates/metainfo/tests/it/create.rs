//! Torrents built by `create::Builder` equal libtorrent's, byte for byte.

use metainfo::create::{Builder, V2FileHasher};
use metainfo::{MetaVersion, Torrent};

use crate::{content, fixture, LAYOUTS, MODES};

/// The layouts of `make_fixtures.py`: piece length, files (path below the name, length), and
/// whether the torrent is single-file.
fn layout(name: &str) -> (u32, Vec<(&'static str, u64)>, bool) {
    match name {
        "multi" => (
            32768,
            vec![
                ("a.txt", 100),
                ("empty.bin", 0),
                ("exact.bin", 32768),
                ("big.bin", 3 * 32768 + 5000),
                ("sub/dir/deep.txt", 20000),
                ("sub/z.bin", 70000),
            ],
            false,
        ),
        "single" => (65536, vec![("single.bin", 100000)], true),
        "tiny" => (
            16384,
            vec![
                ("x.dat", 40000),
                ("y.dat", 16384),
                ("z.dat", 1),
                ("zz.empty", 0),
            ],
            false,
        ),
        "three_blocks" => (
            65536,
            vec![("d/three.bin", 40000), ("d/two.bin", 65537)],
            false,
        ),
        _ => unreachable!(),
    }
}

fn builder(name: &str, version: MetaVersion) -> Builder {
    let (piece_length, files, single) = layout(name);
    let b = if single {
        Builder::single_file(files[0].0, files[0].1).unwrap()
    } else {
        let files = files
            .iter()
            .map(|(p, l)| (p.split('/').map(String::from).collect(), *l))
            .collect();
        Builder::new(name, files).unwrap()
    };
    b.piece_length(piece_length).unwrap().meta_version(version)
}

/// Content of each real file in builder order.
fn file_data(name: &str, b: &Builder) -> Vec<Vec<u8>> {
    let single = layout(name).2;
    b.files()
        .iter()
        .filter(|f| !f.pad)
        .map(|f| {
            let path = f.path.join("/");
            let full = if single {
                path
            } else {
                format!("{name}/{path}")
            };
            content(&full, f.length)
        })
        .collect()
}

#[test]
fn builds_libtorrents_info_dict_and_piece_layers() {
    for name in LAYOUTS {
        for mode in MODES {
            let version = if mode == "v2" {
                MetaVersion::V2
            } else {
                MetaVersion::Hybrid
            };
            let b = builder(name, version);
            let data = file_data(name, &b);
            let mut hasher = b.torrent_hasher();
            // Odd chunk sizes cross file and block boundaries.
            let all: Vec<u8> = data.concat();
            all.chunks(7919).for_each(|c| hasher.update(c));
            let hashes = hasher.finish().unwrap();

            // Files hashed one by one (as parallel callers do) agree.
            let per_file: Vec<_> = data
                .iter()
                .map(|d| {
                    let mut h = V2FileHasher::new(b.piece_len());
                    h.update(d);
                    h.finish()
                })
                .collect();
            assert_eq!(per_file, hashes.files, "{name}.{mode}");

            let built = b.build_hashed(hashes).unwrap();
            let key = format!("{name}.{mode}");
            let theirs = Torrent::from_bytes(&fixture(&format!("{key}.torrent"))).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&built.info_bytes),
                String::from_utf8_lossy(&theirs.info_bytes),
                "{key}"
            );
            assert_eq!(built.info_bytes, theirs.info_bytes, "{key}");
            assert_eq!(built.piece_layers, theirs.piece_layers, "{key}");
            assert_eq!(built.info_hashes, theirs.info_hashes, "{key}");
            assert_eq!(
                built.to_bytes(),
                fixture(&format!("{key}.torrent")),
                "{key}"
            );
        }
    }
}

#[test]
fn hybrid_layout_and_mismatched_input_are_reported() {
    let b = builder("multi", MetaVersion::Hybrid);
    let order: Vec<String> = b.files().iter().map(|f| f.path.join("/")).collect();
    assert_eq!(
        order,
        [
            "a.txt",
            ".pad/32668",
            "big.bin",
            ".pad/27768",
            "empty.bin",
            "exact.bin",
            "sub/dir/deep.txt",
            ".pad/12768",
            "sub/z.bin",
            ".pad/28304"
        ]
    );
    assert_eq!((b.total_length(), b.piece_count()), (327680, 10));

    let mut short = b.torrent_hasher();
    short.update(&[0; 100]);
    assert_eq!(
        short.finish().unwrap_err(),
        metainfo::Error::HashedLengthMismatch {
            expected: 226_172,
            found: 100
        }
    );
    let err = b.clone().build(vec![[0; 20]; 10]).unwrap_err();
    assert!(
        matches!(err, metainfo::Error::FileHashesMismatch(_)),
        "{err}"
    );
    // v1 stays the default and keeps the caller's order.
    let v1 = Builder::new("d", vec![(vec!["b".into()], 1), (vec!["a".into()], 1)]).unwrap();
    assert_eq!(v1.version(), MetaVersion::V1);
    assert_eq!(v1.files()[0].path, ["b"]);
}
