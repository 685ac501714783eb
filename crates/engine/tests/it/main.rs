//! Engine integration tests: real sessions on 127.0.0.1 sockets.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod corrupt;
mod transfer;
mod v2;

use std::net::SocketAddr;
pub use std::path::Path;
use std::time::Duration;

use engine::{AddTorrent, Config, Session, TorrentHandle};
use metainfo::create::Builder;
use metainfo::Torrent;
use rand::{Rng, SeedableRng};

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// Writes `files` below `dir/name` and returns a torrent for them.
pub fn make_torrent(dir: &Path, name: &str, files: &[(&str, &[u8])], piece_length: u32) -> Torrent {
    let specs: Vec<(Vec<String>, u64)> = files
        .iter()
        .map(|(p, d)| (p.split('/').map(String::from).collect(), d.len() as u64))
        .collect();
    let mut hasher = metainfo::create::PieceHasher::new(piece_length);
    for (p, d) in files {
        let path = dir.join(name).join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, d).unwrap();
        hasher.update(d);
    }
    Builder::new(name, specs)
        .unwrap()
        .piece_length(piece_length)
        .unwrap()
        .build(hasher.finish())
        .unwrap()
}

/// A session on 127.0.0.1 over TCP only (the fake peers in these tests speak TCP; uTP has its
/// own tests).
pub fn config(data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        utp: false,
        ..Config::default()
    }
}

pub async fn seeder(
    torrent: &Torrent,
    dir: &Path,
    data_dir: &Path,
) -> (Session, TorrentHandle, SocketAddr) {
    let s = Session::start(config(data_dir)).await.unwrap();
    let mut add = AddTorrent::new(torrent.clone(), dir.to_owned());
    add.seed_only = true;
    let h = s.add_torrent(add).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], s.listen_port()));
    (s, h, addr)
}

/// Starts a session that downloads `torrent` into `out`, dialling `peers`.
pub async fn leecher(
    torrent: &Torrent,
    out: &Path,
    data_dir: &Path,
    peers: Vec<SocketAddr>,
) -> (Session, TorrentHandle) {
    let s = Session::start(config(data_dir)).await.unwrap();
    let mut add = AddTorrent::new(torrent.clone(), out.to_owned());
    add.peers = peers;
    let h = s.add_torrent(add).await.unwrap();
    (s, h)
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

pub fn same_files(a: &Path, b: &Path, torrent: &Torrent) {
    for i in (0..torrent.info.files.len()).filter(|&i| !torrent.info.files[i].pad) {
        let rel = torrent.info.file_path(i);
        let (x, y) = (
            std::fs::read(a.join(&rel)).unwrap(),
            std::fs::read(b.join(&rel)).unwrap(),
        );
        assert!(x == y, "{} differs", rel.display());
    }
}
