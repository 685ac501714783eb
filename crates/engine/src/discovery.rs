//! Peer sources beyond a torrent's own tracker task: DHT lookups and announces (BEP 5), and the
//! one-shot lookups a magnet link needs before there is a torrent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::session::SessionShared;
use crate::torrent::Shared;

/// A DHT lookup runs again this often while a torrent has few peers…
const DHT_FAST_INTERVAL: Duration = Duration::from_secs(60);
/// …and this often once it has enough (BEP 5 peers expire after about 30 minutes; libtorrent
/// re-announces every 15).
const DHT_SLOW_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Connected peers above which the slow interval applies.
const ENOUGH_PEERS: usize = 10;
/// Re-announce interval to trackers while looking for metadata peers.
const METADATA_TRACKER_INTERVAL: Duration = Duration::from_secs(60);

/// Starts every source of peers for `info_hash` and sends what they find to `tx` until the
/// returned set is dropped or aborted: the given trackers (one tier each) and the DHT.
pub(crate) fn spawn_lookup(
    session: Arc<SessionShared>,
    info_hash: [u8; 20],
    tiers: Vec<Vec<String>>,
    tx: mpsc::UnboundedSender<SocketAddr>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for url in tiers.into_iter().flatten() {
        let (session, tx) = (session.clone(), tx.clone());
        set.spawn(async move {
            let client = tracker::Client::new(session.config.tracker.clone());
            let mut event = tracker::Event::Started;
            loop {
                let req = tracker::AnnounceRequest {
                    info_hash,
                    peer_id: session.peer_id,
                    port: session.listen_port,
                    uploaded: 0,
                    downloaded: 0,
                    // The size is unknown until the metadata arrives; anything but 0 says
                    // "leecher", so the tracker returns seeds.
                    left: 1,
                    event,
                    num_want: Some(100),
                    key: 0,
                    tracker_id: None,
                };
                match client.announce(&url, &req).await {
                    Ok(resp) => {
                        event = tracker::Event::None;
                        for p in resp.peers {
                            if tx.send(p).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::debug!(tracker = %url, "announce failed: {e}"),
                }
                tokio::time::sleep(METADATA_TRACKER_INTERVAL).await;
            }
        });
    }
    if let Some(dht) = session.dht.clone() {
        set.spawn(async move {
            loop {
                let mut lookup = dht.get_peers(info_hash);
                while let Some(batch) = lookup.next().await {
                    for p in batch {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
        });
    }
    set
}

/// Looks the torrent up in the DHT and announces it there (unless it is private), again every
/// [`DHT_FAST_INTERVAL`] while it has few peers and every [`DHT_SLOW_INTERVAL`] after.
/// A hybrid torrent is looked up and announced under both of its info-hashes.
pub(crate) async fn dht_announcer(shared: Arc<Shared>) {
    let Some(dht) = shared.session.dht.clone() else {
        return;
    };
    if shared.info.private {
        return;
    }
    let mut shutdown = shared.shutdown.subscribe();
    let hashes: Vec<[u8; 20]> = std::iter::once(shared.info_hash)
        .chain(shared.alt_info_hash)
        .collect();
    loop {
        for h in &hashes {
            let mut lookup = dht.get_peers(*h);
            let mut found = 0;
            while let Some(batch) = lookup.next().await {
                found += batch.len();
                shared.add_candidates(batch);
            }
            tracing::debug!(peers = found, "dht lookup done");
            let port = shared.session.listen_port;
            if let Err(e) = dht.announce_peer(*h, Some(port)).await {
                tracing::debug!("dht announce failed: {e}");
            }
        }
        let enough = shared.lock().peers.len() >= ENOUGH_PEERS;
        let wait = if enough {
            DHT_SLOW_INTERVAL
        } else {
            DHT_FAST_INTERVAL
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
