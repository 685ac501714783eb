//! BitTorrent v2 and hybrid torrents between engines: transfers over the Merkle-verified piece
//! path, pad files, and a corrupt 16 KiB block pinned on its sender.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use engine::create::{create_torrent, CreateOptions};
use metainfo::{MetaVersion, Torrent};

use crate::corrupt::corrupt_seeder;
use crate::*;

/// Writes `files` below `dir/name` (or one file at `dir/name` when its path is `name`) and makes a
/// v2 or hybrid torrent of them.
fn make(dir: &Path, name: &str, files: &[(&str, &[u8])], piece: u32, v: MetaVersion) -> Torrent {
    for (p, d) in files {
        let path = if *p == name {
            dir.join(name)
        } else {
            dir.join(name).join(p)
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, d).unwrap();
    }
    let opts = CreateOptions {
        piece_length: Some(piece),
        version: v,
        ..CreateOptions::default()
    };
    let t = create_torrent(&dir.join(name), &opts).unwrap();
    // What a downloader sees: the torrent as read back from its file.
    Torrent::from_bytes(&t.to_bytes()).unwrap()
}

/// The torrent's whole byte space (files and pad files, which are zeros) in piece order.
fn layout_bytes(dir: &Path, t: &Torrent) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in t.info.files.iter().enumerate() {
        if f.pad {
            out.resize(out.len() + f.length as usize, 0);
        } else {
            out.extend(std::fs::read(dir.join(t.info.file_path(i))).unwrap());
        }
    }
    out
}

async fn transfer(version: MetaVersion) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (data(300_000, 21), data(5_000, 22), data(16_384 * 9 + 1, 23));
    let t = make(
        &tmp.path().join("src"),
        "tree",
        &[
            ("a.bin", &a),
            ("sub/b.bin", &b),
            ("sub/c.bin", &c),
            ("empty", &[]),
        ],
        64 * 1024,
        version,
    );
    assert_eq!(t.info.version, version);
    assert!(
        t.info.files.iter().any(|f| f.pad),
        "files are piece-aligned with padding"
    );
    let (_s, _sh, addr) = seeder(&t, &tmp.path().join("src"), &tmp.path().join("d1")).await;
    let (_l, h) = leecher(
        &t,
        &tmp.path().join("dl"),
        &tmp.path().join("d2"),
        vec![addr],
    )
    .await;
    tokio::time::timeout(Duration::from_secs(60), h.wait_complete())
        .await
        .unwrap()
        .unwrap();
    let st = h.stats();
    assert_eq!(st.hash_failures, 0);
    assert_eq!(st.pieces_have, t.info.num_pieces());
    for (i, f) in t.info.files.iter().enumerate() {
        let path = tmp.path().join("dl").join(t.info.file_path(i));
        if f.pad {
            assert!(
                !path.exists(),
                "pad file {} written to disk",
                path.display()
            );
        } else {
            let want = std::fs::read(tmp.path().join("src").join(t.info.file_path(i))).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), want, "{}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_torrent_transfers_with_merkle_checks() {
    transfer(MetaVersion::V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_torrent_transfers_with_both_checks() {
    transfer(MetaVersion::Hybrid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_v2_block_is_pinned_on_its_sender() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(1_000_000, 24);
    let piece = 64 * 1024;
    let t = make(
        &tmp.path().join("src"),
        "f",
        &[("f", &payload)],
        piece,
        MetaVersion::V2,
    );
    assert!(t.info.single_file);
    let space = Arc::new(layout_bytes(&tmp.path().join("src"), &t));
    // The second 16 KiB block of every piece is corrupt.
    let (bad, bad_counters) =
        corrupt_seeder(t.info_hash.0, space, piece, |_, begin| begin == 16384).await;
    let (_leech, h) = leecher(&t, &tmp.path().join("dl"), &tmp.path().join("d"), vec![bad]).await;
    assert!(
        eventually(Duration::from_secs(30), || !h
            .stats()
            .banned_peers
            .is_empty())
        .await,
        "corrupt peer not banned"
    );
    let st = h.stats();
    assert_eq!(st.banned_peers, vec![format!("{bad} -XX0001-")]);
    assert_eq!(
        st.pieces_have, 0,
        "no piece with a corrupt block was accepted"
    );

    let (_s, _sh, good) = seeder(&t, &tmp.path().join("src"), &tmp.path().join("d1")).await;
    h.add_peer(good);
    h.add_peer(bad);
    tokio::time::timeout(Duration::from_secs(60), h.wait_complete())
        .await
        .unwrap()
        .unwrap();
    same_files(&tmp.path().join("src"), &tmp.path().join("dl"), &t);
    assert_eq!(h.stats().banned_peers, vec![format!("{bad} -XX0001-")]);
    assert_eq!(
        bad_counters.connections.load(SeqCst),
        1,
        "never dialled again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_v2_peer_among_honest_ones_is_the_only_one_banned() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(4_000_000, 25);
    let piece = 256 * 1024;
    let t = make(
        &tmp.path().join("src"),
        "f",
        &[("f", &payload)],
        piece,
        MetaVersion::V2,
    );
    assert!(t.info.single_file);
    let space = Arc::new(layout_bytes(&tmp.path().join("src"), &t));
    let (bad, bad_counters) = corrupt_seeder(t.info_hash.0, space, piece, |_, begin| {
        begin % 65536 == 16384
    })
    .await;
    let (_s, _sh, good) = seeder(&t, &tmp.path().join("src"), &tmp.path().join("d1")).await;
    let (_leech, h) = leecher(
        &t,
        &tmp.path().join("dl"),
        &tmp.path().join("d"),
        vec![bad, good],
    )
    .await;
    tokio::time::timeout(Duration::from_secs(60), h.wait_complete())
        .await
        .unwrap()
        .unwrap();
    same_files(&tmp.path().join("src"), &tmp.path().join("dl"), &t);
    let st = h.stats();
    assert!(
        bad_counters.blocks_served.load(SeqCst) > 0,
        "the corrupt peer took part"
    );
    if st.hash_failures > 0 {
        assert_eq!(st.banned_peers, vec![format!("{bad} -XX0001-")]);
    } else {
        assert!(st.banned_peers.is_empty());
    }
}
