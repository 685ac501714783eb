//! Engine integration tests: real sessions on 127.0.0.1 sockets.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod corrupt;
mod transfer;
mod v2;

pub use std::path::Path;
use std::time::Duration;

use metainfo::Torrent;

pub use engine::testkit::{config, data, leecher, make_torrent, seeder};

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
