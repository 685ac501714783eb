//! Transfers between two engines, restarts and resume records.

use std::time::Duration;

use std::net::SocketAddr;

use engine::{AddTorrent, Config, Session};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_transfer_between_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (data(300_000, 1), data(5, 2), data(1_000_000, 3));
    let files: [(&str, &[u8]); 4] = [
        ("a.bin", &a),
        ("sub/b.txt", &b),
        ("sub/empty", &[]),
        ("z/c.bin", &c),
    ];
    let torrent = make_torrent(&tmp.path().join("src"), "set", &files, 32 * 1024);
    let (_s, _h, addr) = seeder(&torrent, &tmp.path().join("src"), &tmp.path().join("d1")).await;

    let (_leech, h) = leecher(
        &torrent,
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
    assert_eq!(st.pieces_downloaded, torrent.info.num_pieces());
    assert_eq!(st.pieces_resumed, 0);
    assert_eq!(st.hash_failures, 0);
    assert_eq!(st.bytes_left, 0);
    same_files(&tmp.path().join("src"), &tmp.path().join("dl"), &torrent);
    assert_eq!(
        std::fs::metadata(tmp.path().join("dl/set/sub/empty"))
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_without_refetching_verified_pieces() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(2_000_000, 9);
    let torrent = make_torrent(
        &tmp.path().join("src"),
        "one.bin",
        &[("x", &payload)],
        16 * 1024,
    );
    let (_s, _h, addr) = seeder(&torrent, &tmp.path().join("src"), &tmp.path().join("d1")).await;
    let total = torrent.info.num_pieces();

    // First run: a slow download stopped part way.
    let leech = Session::start(config(&tmp.path().join("d2")))
        .await
        .unwrap();
    let mut add = AddTorrent::new(torrent.clone(), tmp.path().join("dl"));
    add.peers = vec![addr];
    add.download_rate_limit = 1_000_000;
    let h = leech.add_torrent(add.clone()).await.unwrap();
    assert!(
        eventually(Duration::from_secs(30), || h.stats().pieces_have
            >= total / 4)
        .await
    );
    leech.shutdown().await;
    let had = h.stats().pieces_have;
    assert!(had < total, "stopped before completion");

    // Second run: the resume record vouches for what was verified; only the rest is fetched.
    let leech = Session::start(config(&tmp.path().join("d2")))
        .await
        .unwrap();
    add.download_rate_limit = 0;
    let h = leech.add_torrent(add).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), h.wait_complete())
        .await
        .unwrap()
        .unwrap();
    let st = h.stats();
    assert_eq!(st.pieces_resumed, had);
    assert_eq!(st.pieces_downloaded, total - had);
    same_files(&tmp.path().join("src"), &tmp.path().join("dl"), &torrent);

    // Third run: complete on disk, nothing to fetch.
    leech.shutdown().await;
    let leech = Session::start(config(&tmp.path().join("d2")))
        .await
        .unwrap();
    let h = leech
        .add_torrent(AddTorrent::new(torrent.clone(), tmp.path().join("dl")))
        .await
        .unwrap();
    let st = h.stats();
    assert_eq!((st.pieces_resumed, st.pieces_downloaded), (total, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_without_resume_record_is_found_by_checking() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(700_000, 4);
    let torrent = make_torrent(
        &tmp.path().join("src"),
        "f.bin",
        &[("f", &payload)],
        64 * 1024,
    );
    let s = Session::start(config(&tmp.path().join("fresh")))
        .await
        .unwrap();
    let h = s
        .add_torrent(AddTorrent::new(torrent.clone(), tmp.path().join("src")))
        .await
        .unwrap();
    let st = h.stats();
    assert_eq!(st.pieces_resumed, torrent.info.num_pieces());
    h.wait_complete().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_incomplete_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(200_000, 5);
    let torrent = make_torrent(
        &tmp.path().join("src"),
        "f.bin",
        &[("f", &payload)],
        16 * 1024,
    );
    let path = tmp.path().join("src/f.bin/f");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let s = Session::start(config(&tmp.path().join("d"))).await.unwrap();
    let mut add = AddTorrent::new(torrent.clone(), tmp.path().join("src"));
    add.seed_only = true;
    let err = s.add_torrent(add).await.err().unwrap().to_string();
    assert_eq!(
        err,
        format!(
            "the data in {} has 12 of 13 pieces; check the path or download it first",
            tmp.path().join("src").display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_peer_is_dialled_again() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(300_000, 21);
    let torrent = make_torrent(
        &tmp.path().join("src"),
        "f.bin",
        &[("f", &payload)],
        16 * 1024,
    );

    // Something that accepts and hangs up at once sits on the port first.
    let rude = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = rude.local_addr().unwrap();
    let (_leech, h) = leecher(
        &torrent,
        &tmp.path().join("dl"),
        &tmp.path().join("d"),
        vec![addr],
    )
    .await;
    let (conn, _) = tokio::time::timeout(Duration::from_secs(10), rude.accept())
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    drop(rude);

    // Then a real seeder takes the port; the leecher comes back on its own.
    let mut cfg = config(&tmp.path().join("d1"));
    cfg.listen = addr;
    let seeder = Session::start(cfg).await.unwrap();
    let mut add = AddTorrent::new(torrent.clone(), tmp.path().join("src"));
    add.seed_only = true;
    seeder.add_torrent(add).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), h.wait_complete())
        .await
        .unwrap()
        .unwrap();
    same_files(&tmp.path().join("src"), &tmp.path().join("dl"), &torrent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_with_utp_transfer_over_utp() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(3_000_000, 31);
    let torrent = make_torrent(
        &tmp.path().join("src"),
        "u",
        &[("u.bin", &payload)],
        64 * 1024,
    );
    let utp = |d: &str| Config {
        utp: true,
        ..config(&tmp.path().join(d))
    };
    let seed = Session::start(utp("d1")).await.unwrap();
    let mut add = AddTorrent::new(torrent.clone(), tmp.path().join("src"));
    add.seed_only = true;
    let _sh = seed.add_torrent(add).await.unwrap();
    let leech = Session::start(utp("d2")).await.unwrap();
    let mut add = AddTorrent::new(torrent.clone(), tmp.path().join("dl"));
    add.peers = vec![SocketAddr::from(([127, 0, 0, 1], seed.listen_port()))];
    // Slow enough that the connection is still up when it is looked at.
    add.download_rate_limit = 1_000_000;
    let h = leech.add_torrent(add).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), || h.stats().peers_utp == 1).await,
        "the seeder was not reached over uTP"
    );
    tokio::time::timeout(Duration::from_secs(60), h.wait_complete())
        .await
        .unwrap()
        .unwrap();
    same_files(&tmp.path().join("src"), &tmp.path().join("dl"), &torrent);
}
