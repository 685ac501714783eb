//! Building blocks for tests of the engine and of crates built on it: deterministic data, a
//! torrent of files written to disk, and loopback sessions that seed or download.
//!
//! Everything here panics on failure: it is for tests, where a panic is the failure report.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;

use metainfo::create::Builder;
use metainfo::Torrent;
use rand::{Rng, SeedableRng};

use crate::{AddTorrent, Config, Session, TorrentHandle};

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// Writes `files` below `dir/name` and returns a v1 torrent for them.
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

/// A session on 127.0.0.1 over TCP only, with no DHT or LSD.
pub fn config(data_dir: &Path) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.to_owned(),
        utp: false,
        ..Config::default()
    }
}

/// A session seeding `torrent` from `dir`; returns it, the torrent and the address to dial.
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

/// A session downloading `torrent` into `out`, dialling `peers`.
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
