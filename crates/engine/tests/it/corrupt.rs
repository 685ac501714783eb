//! A hostile seeder that serves corrupt blocks: it must be identified and banned, and the download
//! must still complete with correct data from an honest peer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wire::{FrameDecoder, Handshake, Message};

use crate::*;

const CORRUPT_ID: &[u8; 20] = b"-XX0001-corruptpeer!";

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicUsize,
    pub(crate) blocks_served: AtomicUsize,
}

/// Serves every block of `payload`, flipping a byte in those `corrupt(index, begin)` selects.
pub(crate) async fn corrupt_seeder(
    info_hash: [u8; 20],
    payload: Arc<Vec<u8>>,
    piece_length: u32,
    corrupt: fn(u32, u32) -> bool,
) -> (SocketAddr, Arc<Counters>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            c.connections.fetch_add(1, SeqCst);
            let (payload, c) = (payload.clone(), c.clone());
            tokio::spawn(async move {
                let mut hs = [0u8; 68];
                if s.read_exact(&mut hs).await.is_err() {
                    return;
                }
                s.write_all(&Handshake::new(info_hash, *CORRUPT_ID).encode())
                    .await
                    .unwrap();
                let mut out = Vec::new();
                Message::HaveAll.encode(&mut out);
                Message::Unchoke.encode(&mut out);
                s.write_all(&out).await.unwrap();
                let mut dec = FrameDecoder::new(1 << 20);
                loop {
                    let n = match s.read(dec.spare()).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    dec.advance(n);
                    let mut out = Vec::new();
                    while let Ok(Some(m)) = dec.next() {
                        if let Message::Request(b) = m {
                            let start = b.index as usize * piece_length as usize + b.begin as usize;
                            let mut block = payload[start..start + b.length as usize].to_vec();
                            if corrupt(b.index, b.begin) {
                                block[7] ^= 0x55;
                            }
                            Message::Piece {
                                index: b.index,
                                begin: b.begin,
                                data: &block,
                            }
                            .encode(&mut out);
                            c.blocks_served.fetch_add(1, SeqCst);
                        }
                    }
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sole_sender_of_a_bad_piece_is_banned_then_honest_peer_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = Arc::new(data(1_000_000, 11));
    let torrent = make_torrent(&tmp.path().join("src"), "f", &[("f", &payload)], 64 * 1024);
    let (bad, bad_counters) = corrupt_seeder(
        torrent.info_hash.0,
        payload.clone(),
        64 * 1024,
        |_, begin| begin == 16384,
    )
    .await;

    let (_leech, h) = leecher(
        &torrent,
        &tmp.path().join("dl"),
        &tmp.path().join("d"),
        vec![bad],
    )
    .await;
    assert!(
        eventually(Duration::from_secs(30), || !h
            .stats()
            .banned_peers
            .is_empty())
        .await,
        "peer not banned"
    );
    let st = h.stats();
    assert_eq!(st.banned_peers, vec![format!("{bad} -XX0001-")]);
    assert!(st.hash_failures >= 1);
    assert_eq!(st.pieces_have, 0, "nothing corrupt was accepted");
    assert!(
        eventually(Duration::from_secs(10), || h.stats().peers == 0).await,
        "banned peer still connected"
    );

    // An honest seeder arrives; the banned address is never dialled again.
    let (_s, _sh, good) = seeder(&torrent, &tmp.path().join("src"), &tmp.path().join("d1")).await;
    h.add_peer(good);
    h.add_peer(bad);
    tokio::time::timeout(Duration::from_secs(60), h.wait_complete())
        .await
        .unwrap()
        .unwrap();
    same_files(&tmp.path().join("src"), &tmp.path().join("dl"), &torrent);
    assert_eq!(bad_counters.connections.load(SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_peer_among_honest_ones_is_pinned_by_its_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = Arc::new(data(4_000_000, 12));
    let torrent = make_torrent(&tmp.path().join("src"), "f", &[("f", &payload)], 256 * 1024);
    // Corrupts one block in four, so most bad pieces mix its blocks with the honest peer's.
    let (bad, bad_counters) = corrupt_seeder(
        torrent.info_hash.0,
        payload.clone(),
        256 * 1024,
        |_, begin| begin % 65536 == 16384,
    )
    .await;
    let (_s, _sh, good) = seeder(&torrent, &tmp.path().join("src"), &tmp.path().join("d1")).await;

    let (_leech, h) = leecher(
        &torrent,
        &tmp.path().join("dl"),
        &tmp.path().join("d"),
        vec![bad, good],
    )
    .await;
    tokio::time::timeout(Duration::from_secs(60), h.wait_complete())
        .await
        .unwrap()
        .unwrap();
    same_files(&tmp.path().join("src"), &tmp.path().join("dl"), &torrent);
    let st = h.stats();
    assert!(
        bad_counters.blocks_served.load(SeqCst) > 0,
        "the corrupt peer took part"
    );
    if st.hash_failures > 0 {
        assert_eq!(
            st.banned_peers,
            vec![format!("{bad} -XX0001-")],
            "only the corrupt peer is banned"
        );
    } else {
        // The honest peer delivered every corruptible block first; nothing to blame.
        assert!(st.banned_peers.is_empty());
    }
}
