//! The session: listener, peer id, global limits, torrents by info-hash.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metainfo::Torrent;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::ratelimit::RateLimiter;
use crate::torrent::{self, TorrentHandle};
use crate::transport::PeerStream;
use crate::Error;

/// Our client prefix in Azureus-style peer ids: `-BY` + version.
pub(crate) const PEER_ID_PREFIX: &[u8; 8] = b"-BY0100-";
/// Client name and version sent in the BEP 10 handshake.
pub(crate) const CLIENT_VERSION: &str = concat!("btt ", env!("CARGO_PKG_VERSION"));

/// Session settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to accept peers on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where resume records live (`<data_dir>/resume`).
    pub data_dir: PathBuf,
    /// Connections across all torrents.
    pub max_connections: usize,
    /// Connections per torrent.
    pub max_connections_per_torrent: usize,
    /// Peers unchoked per torrent by tit-for-tat (plus one optimistic).
    pub upload_slots: usize,
    /// Global download limit in bytes per second (0 = unlimited).
    pub download_rate_limit: u64,
    /// Global upload limit in bytes per second (0 = unlimited).
    pub upload_rate_limit: u64,
    /// Tracker client settings.
    pub tracker: tracker::Config,
    /// Local Service Discovery (BEP 14): multicast our torrents on the local network and dial
    /// peers that announce theirs. Off by default for library users (it sends multicast on every
    /// interface); the CLI turns it on.
    pub lsd: bool,
    /// Peer exchange (BEP 11) with peers that support it, for torrents that are not private.
    pub pex: bool,
    /// uTP (BEP 29) on the listen port: accept uTP peers, and try uTP before TCP when dialling.
    pub utp: bool,
    /// The Mainline DHT (BEP 5): find peers for torrents that are not private and announce them.
    /// `None` (the default for library users) leaves it off; the CLI turns it on with the public
    /// bootstrap routers.
    pub dht: Option<dht::Config>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 6881),
            data_dir: PathBuf::from(".btt"),
            max_connections: 200,
            max_connections_per_torrent: 50,
            upload_slots: 8,
            download_rate_limit: 0,
            upload_rate_limit: 0,
            // BEP 15's eight retries take about two hours; give up on a silent UDP tracker after
            // about four minutes and try the next one instead.
            tracker: tracker::Config {
                udp_max_retries: 3,
                ..tracker::Config::default()
            },
            lsd: false,
            pex: true,
            utp: true,
            dht: None,
        }
    }
}

/// A torrent to add.
#[derive(Debug, Clone)]
pub struct AddTorrent {
    /// The metainfo.
    pub torrent: Torrent,
    /// Directory the torrent's files live in.
    pub dir: PathBuf,
    /// Only seed: the data must already be complete; nothing is created on disk.
    pub seed_only: bool,
    /// Peers to dial besides those from trackers.
    pub peers: Vec<SocketAddr>,
    /// Per-torrent download limit in bytes per second (0 = unlimited).
    pub download_rate_limit: u64,
    /// Per-torrent upload limit in bytes per second (0 = unlimited).
    pub upload_rate_limit: u64,
    /// Web seeds (BEP 19): HTTP URLs serving the torrent's files.
    pub web_seeds: Vec<String>,
    /// A BEP 10 extension that takes part in choking and serving (the Speed market).
    pub extension: Option<std::sync::Arc<dyn crate::ext::Extension>>,
}

impl AddTorrent {
    /// Download (or seed, once complete) `torrent` into `dir`.
    pub fn new(torrent: Torrent, dir: PathBuf) -> Self {
        Self {
            torrent,
            dir,
            seed_only: false,
            peers: Vec::new(),
            download_rate_limit: 0,
            upload_rate_limit: 0,
            web_seeds: Vec::new(),
            extension: None,
        }
    }
}

/// State shared by every torrent of a session.
pub(crate) struct SessionShared {
    pub(crate) config: Config,
    pub(crate) peer_id: [u8; 20],
    pub(crate) listen_port: u16,
    pub(crate) download_limit: RateLimiter,
    pub(crate) upload_limit: RateLimiter,
    pub(crate) connections: std::sync::atomic::AtomicUsize,
    pub(crate) dht: Option<Arc<dht::Dht>>,
    pub(crate) utp: Option<crate::transport::UtpEndpoint>,
    /// Wakes local service discovery to announce a torrent just added.
    pub(crate) lsd_wake: tokio::sync::Notify,
    torrents: Mutex<HashMap<[u8; 20], TorrentHandle>>,
}

impl SessionShared {
    fn torrents(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 20], TorrentHandle>> {
        self.torrents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Info-hashes of the torrents that may be announced outside their trackers (not private).
    pub(crate) fn public_info_hashes(&self) -> Vec<[u8; 20]> {
        self.torrents()
            .iter()
            .filter(|(_, t)| !t.is_private())
            .map(|(h, _)| *h)
            .collect()
    }

    /// The torrent with `info_hash` unless it is private.
    pub(crate) fn public_torrent(&self, info_hash: &[u8; 20]) -> Option<TorrentHandle> {
        self.torrents()
            .get(info_hash)
            .filter(|t| !t.is_private())
            .cloned()
    }

    /// Takes a connection slot if the global limit allows.
    pub(crate) fn try_connection(&self) -> bool {
        use std::sync::atomic::Ordering::AcqRel;
        self.connections
            .fetch_update(AcqRel, std::sync::atomic::Ordering::Acquire, |n| {
                (n < self.config.max_connections).then_some(n + 1)
            })
            .is_ok()
    }

    /// Returns a connection slot.
    pub(crate) fn release_connection(&self) {
        self.connections
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A running BitTorrent session.
#[derive(Clone)]
pub struct Session {
    shared: Arc<SessionShared>,
}

fn random_peer_id() -> [u8; 20] {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(PEER_ID_PREFIX);
    let mut rng = rand::thread_rng();
    for b in &mut id[8..] {
        *b = ALPHABET[rng.gen_range(0..ALPHABET.len())];
    }
    id
}

impl Session {
    /// Binds the listener and starts accepting peers.
    pub async fn start(config: Config) -> Result<Self, Error> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?;
        let listen_port = listener
            .local_addr()
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?
            .port();
        let utp = if config.utp {
            let addr = SocketAddr::new(config.listen.ip(), listen_port);
            match crate::transport::UtpEndpoint::bind(addr).await {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::warn!("uTP is off: cannot bind udp {addr}: {e}");
                    None
                }
            }
        } else {
            None
        };
        let dht = match &config.dht {
            Some(c) => Some(Arc::new(dht::Dht::start(c.clone())?)),
            None => None,
        };
        let shared = Arc::new(SessionShared {
            dht,
            utp,
            lsd_wake: tokio::sync::Notify::new(),
            peer_id: random_peer_id(),
            listen_port,
            download_limit: RateLimiter::new(config.download_rate_limit),
            upload_limit: RateLimiter::new(config.upload_rate_limit),
            connections: Default::default(),
            torrents: Mutex::new(HashMap::new()),
            config,
        });
        tokio::spawn(accept_loop(listener, shared.clone()));
        if shared.utp.is_some() {
            tokio::spawn(utp_accept_loop(shared.clone()));
        }
        if shared.config.lsd {
            tokio::spawn(crate::lsd::run(shared.clone()));
        }
        Ok(Self { shared })
    }

    /// The port peers can reach us on.
    pub fn listen_port(&self) -> u16 {
        self.shared.listen_port
    }

    /// The configuration the session started with (limits may have changed since; see
    /// [`Session::rate_limits`]).
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The global (download, upload) limits in bytes per second, 0 = none.
    pub fn rate_limits(&self) -> (u64, u64) {
        (
            self.shared.download_limit.rate(),
            self.shared.upload_limit.rate(),
        )
    }

    /// Changes the global limits at once for every torrent (bytes per second, 0 = none).
    pub fn set_rate_limits(&self, download_bytes_per_s: u64, upload_bytes_per_s: u64) {
        self.shared.download_limit.set_rate(download_bytes_per_s);
        self.shared.upload_limit.set_rate(upload_bytes_per_s);
    }

    /// Our peer id.
    pub fn peer_id(&self) -> [u8; 20] {
        self.shared.peer_id
    }

    /// The DHT node's UDP address, when the DHT is on.
    pub fn dht_addr(&self) -> Option<SocketAddr> {
        self.shared.dht.as_ref().map(|d| d.local_addr())
    }

    /// Finds peers for a magnet link (its `x.pe` peers, `extra_peers`, its trackers and the DHT)
    /// and fetches the info dictionary from them (BEP 9). Runs until a peer delivers metadata that
    /// matches the link's info-hash; put a timeout around it to give up earlier.
    pub async fn fetch_metadata(
        &self,
        magnet: &metainfo::Magnet,
        extra_peers: Vec<SocketAddr>,
    ) -> Result<crate::MetadataFetched, Error> {
        crate::magnet::fetch(self.shared.clone(), magnet, extra_peers).await
    }

    /// Adds a torrent: checks existing data, then starts trackers and peers.
    pub async fn add_torrent(&self, add: AddTorrent) -> Result<TorrentHandle, Error> {
        let hash = add.torrent.info_hash.0;
        if self
            .shared
            .torrents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&hash)
        {
            return Err(Error::Duplicate(add.torrent.info_hash.to_hex()));
        }
        let handle = torrent::start(self.shared.clone(), add).await?;
        let mut torrents = self.shared.torrents();
        torrents.insert(hash, handle.clone());
        // A hybrid torrent answers to its truncated v2 hash too (BEP 52).
        if let Some(alt) = handle.alt_info_hash() {
            torrents.insert(alt, handle.clone());
        }
        drop(torrents);
        self.shared.lsd_wake.notify_one();
        Ok(handle)
    }

    /// Stops a torrent (announcing `stopped` and writing its resume record) and takes it out of
    /// the session, so it can be added again later. Returns `None` when it is not in the session.
    pub async fn remove_torrent(&self, info_hash: &[u8; 20]) -> Option<TorrentHandle> {
        let handle = {
            let mut torrents = self.shared.torrents();
            let handle = torrents.remove(info_hash)?;
            torrents.remove(&handle.info_hash());
            if let Some(alt) = handle.alt_info_hash() {
                torrents.remove(&alt);
            }
            handle
        };
        handle.stop().await;
        Some(handle)
    }

    /// Stops every torrent (announcing `stopped` and writing resume records).
    pub async fn shutdown(&self) {
        let torrents: Vec<TorrentHandle> = self
            .shared
            .torrents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, t)| t)
            .collect();
        for t in torrents {
            t.stop().await;
        }
        if let Some(utp) = &self.shared.utp {
            utp.close();
        }
        if let Some(dht) = &self.shared.dht {
            let dht = dht.clone();
            let _ = tokio::task::spawn_blocking(move || dht.save_routing_table()).await;
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<SessionShared>) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = accept_one(PeerStream::tcp(stream), addr, &shared).await {
                tracing::debug!(%addr, "incoming connection dropped: {e}");
            }
        });
    }
}

async fn utp_accept_loop(shared: Arc<SessionShared>) {
    let Some(utp) = shared.utp.as_ref() else {
        return;
    };
    while let Some((stream, addr)) = utp.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = accept_one(stream, addr, &shared).await {
                tracing::debug!(%addr, "incoming utp connection dropped: {e}");
            }
        });
    }
}

async fn accept_one(
    mut stream: PeerStream,
    addr: SocketAddr,
    shared: &Arc<SessionShared>,
) -> std::io::Result<()> {
    let mut buf = [0u8; wire::HANDSHAKE_LEN];
    tokio::time::timeout(Duration::from_secs(30), stream.rd.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timeout"))??;
    let hs = wire::Handshake::decode(&buf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let torrent = shared
        .torrents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&hs.info_hash)
        .cloned();
    let Some(torrent) = torrent else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "unknown info-hash",
        ));
    };
    let ours = wire::Handshake::new(hs.info_hash, shared.peer_id);
    stream.wr.write_all(&ours.encode()).await?;
    torrent.incoming(stream, addr, hs);
    Ok(())
}
