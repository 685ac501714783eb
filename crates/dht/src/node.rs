//! The running node: a handle to `mainline`'s actor thread plus the routing-table saver thread.

use std::collections::HashSet;
use std::future::Future;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use futures_core::Stream;
use mainline::async_dht::{AsyncDht, GetStream};
use mainline::{Id, RequestFilter, RequestSpecific, ServerSettings};
use rand::seq::SliceRandom;
use tracing::{debug, info, warn};

use crate::bep44::{check_value, MutableItem, PublicKey};
use crate::{table, Config, Error};

/// At most this many saved nodes join the bootstrap list. `mainline` contacts every bootstrap node
/// whenever its routing table offers fewer close nodes than that list is long, so the list is kept
/// near one bucket (20) in size.
const MAX_BOOTSTRAP_FROM_TABLE: usize = 16;

/// A running Mainline DHT node.
///
/// Dropping it saves the routing table (when configured) and stops the node; [`Dht::shutdown`]
/// does the same and reports a failed save.
#[derive(Debug)]
pub struct Dht {
    dht: AsyncDht,
    local_addr: SocketAddrV4,
    read_only: bool,
    table_path: Option<PathBuf>,
    saver: Option<Saver>,
}

#[derive(Debug)]
struct Saver {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Result<usize, Error>>,
}

/// What a node knows about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Our 160-bit node id.
    pub id: [u8; 20],
    /// The bound UDP address.
    pub local_addr: SocketAddr,
    /// Our address as other nodes see it, once they have told us.
    pub public_addr: Option<SocketAddr>,
    /// Whether the node answers queries. A read-only node never does; a normal one always does.
    pub serving: bool,
    /// Nodes in the routing table seen in the last 15 minutes.
    pub good_nodes: usize,
}

impl Dht {
    /// Binds the UDP socket and starts the node. Bootstraps in the background; does not wait.
    ///
    /// Host names in [`Config::bootstrap`] are resolved here (blocking); names that do not resolve
    /// are logged and skipped. A missing or unreadable routing table file is logged and ignored.
    pub fn start(config: Config) -> Result<Dht, Error> {
        let mut bootstrap = resolve(&config.bootstrap);
        if let Some(path) = &config.routing_table_path {
            for node in saved_bootstrap(path) {
                if !bootstrap.contains(&node) {
                    bootstrap.push(node);
                }
            }
        }

        let mut mainline_config = mainline::Config {
            bootstrap: Some(bootstrap),
            port: config.port,
            bind_address: Some(config.bind_address),
            server_mode: !config.read_only,
            ..Default::default()
        };
        if config.read_only {
            // `mainline`'s client mode may promote itself to server mode once it sees it is
            // reachable; this filter keeps a read-only node silent even then.
            mainline_config.server_settings = ServerSettings {
                filter: Box::new(AnswerNothing),
                ..Default::default()
            };
        }

        let bind = SocketAddrV4::new(config.bind_address, config.port.unwrap_or(6881));
        let dht = mainline::Dht::new(mainline_config)
            .map_err(|e| Error::from_bind(bind, e))?
            .as_async();
        let local_addr = block_on(dht.info()).local_addr();
        info!(%local_addr, read_only = config.read_only, "dht listening");

        let saver = match &config.routing_table_path {
            Some(path) => Some(spawn_saver(
                dht.clone(),
                path.clone(),
                config.save_interval,
            )?),
            None => None,
        };
        Ok(Dht {
            dht,
            local_addr,
            read_only: config.read_only,
            table_path: config.routing_table_path,
            saver,
        })
    }

    /// The bound UDP address (the DHT port, not the BitTorrent listen port).
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.local_addr)
    }

    /// Whether this node runs in read-only (client) mode.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Our id, addresses and routing-table size.
    pub async fn info(&self) -> NodeInfo {
        let info = self.dht.info().await;
        let good_nodes = self.dht.to_bootstrap().await.len();
        NodeInfo {
            id: *info.id().as_bytes(),
            local_addr: SocketAddr::V4(info.local_addr()),
            public_addr: info.public_address().map(SocketAddr::V4),
            serving: !self.read_only,
            good_nodes,
        }
    }

    /// Looks up our own id (a few seconds); true if any node answered, so the node is usable.
    pub async fn bootstrapped(&self) -> bool {
        self.dht.bootstrapped().await
    }

    /// Addresses of the good nodes in the routing table (seen in the last 15 minutes).
    pub async fn routing_table(&self) -> Vec<SocketAddr> {
        parse_nodes(self.dht.to_bootstrap().await)
            .into_iter()
            .map(SocketAddr::V4)
            .collect()
    }

    /// Starts a `get_peers` lookup for `info_hash`. The stream yields new peer addresses as nodes
    /// answer (each address once per lookup) and ends when the lookup is done, after a few
    /// seconds. Start a new lookup to search again.
    pub fn get_peers(&self, info_hash: [u8; 20]) -> PeerStream {
        PeerStream {
            inner: self.dht.get_peers(Id::from(info_hash)),
            seen: HashSet::new(),
        }
    }

    /// Announces that we have `info_hash` to the nodes closest to it.
    ///
    /// `port` is our BitTorrent listen port; `None` asks nodes to use the UDP source port of the
    /// announce itself (`implied_port`), which is the DHT port.
    pub async fn announce_peer(&self, info_hash: [u8; 20], port: Option<u16>) -> Result<(), Error> {
        self.dht
            .announce_peer(Id::from(info_hash), port)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }

    /// Stores an immutable BEP 44 value; returns its address ([`crate::immutable_target`]).
    pub async fn put_immutable(&self, value: &[u8]) -> Result<[u8; 20], Error> {
        check_value(value)?;
        let target = self.dht.put_immutable(value).await?;
        Ok(*target.as_bytes())
    }

    /// Fetches an immutable BEP 44 value. The answer is checked against `target`.
    pub async fn get_immutable(&self, target: [u8; 20]) -> Option<Vec<u8>> {
        self.dht
            .get_immutable(Id::from(target))
            .await
            .map(|v| v.into_vec())
    }

    /// Stores a signed mutable BEP 44 item. Set `cas` to the sequence number of the item it
    /// replaces (as last read) so a concurrent writer's update is not lost silently.
    pub async fn put_mutable(&self, item: &MutableItem, cas: Option<i64>) -> Result<(), Error> {
        self.dht
            .put_mutable(item.0.clone(), cas)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }

    /// Fetches the mutable item with the highest sequence number for `key` and `salt`. Every
    /// answer's signature is verified.
    pub async fn get_mutable(&self, key: &PublicKey, salt: Option<&[u8]>) -> Option<MutableItem> {
        self.dht
            .get_mutable_most_recent(&key.0, salt)
            .await
            .map(MutableItem)
    }

    /// Writes the routing table to [`Config::routing_table_path`] now and returns how many nodes
    /// were written. Blocks briefly. An empty table is not written, so a node that never got
    /// online keeps the previous file. Without a path, does nothing and returns 0.
    pub fn save_routing_table(&self) -> Result<usize, Error> {
        match &self.table_path {
            Some(path) => save(&self.dht, path),
            None => Ok(0),
        }
    }

    /// Saves the routing table (when configured) and stops the node.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop_saver().map(|_| ())
    }

    fn stop_saver(&mut self) -> Result<usize, Error> {
        let Some(saver) = self.saver.take() else {
            return Ok(0);
        };
        let _ = saver.stop.send(());
        match saver.thread.join() {
            Ok(result) => result,
            Err(_) => {
                warn!("the dht routing table saver thread panicked");
                Ok(0)
            }
        }
    }
}

impl Drop for Dht {
    fn drop(&mut self) {
        if let Err(e) = self.stop_saver() {
            warn!("{e}");
        }
    }
}

/// New peers from one `get_peers` lookup; see [`Dht::get_peers`].
///
/// Implements [`Stream`]; [`PeerStream::next`] is the same without a stream library.
pub struct PeerStream {
    inner: GetStream<Vec<SocketAddrV4>>,
    seen: HashSet<SocketAddrV4>,
}

impl PeerStream {
    /// The next batch of peers not yielded before, or `None` when the lookup is done.
    pub async fn next(&mut self) -> Option<Vec<SocketAddr>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for PeerStream {
    type Item = Vec<SocketAddr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(batch)) => {
                    let fresh: Vec<SocketAddr> = batch
                        .into_iter()
                        .filter(|a| a.port() != 0 && this.seen.insert(*a))
                        .map(SocketAddr::V4)
                        .collect();
                    if !fresh.is_empty() {
                        return Poll::Ready(Some(fresh));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl std::fmt::Debug for PeerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStream")
            .field("seen", &self.seen.len())
            .finish()
    }
}

/// The request filter of a read-only node: drops every incoming query unanswered.
#[derive(Debug, Clone)]
struct AnswerNothing;

impl RequestFilter for AnswerNothing {
    fn allow_request(&self, _request: &RequestSpecific, _from: SocketAddrV4) -> bool {
        false
    }
}

fn resolve(hosts: &[String]) -> Vec<SocketAddrV4> {
    let mut out = Vec::new();
    for host in hosts {
        match host.to_socket_addrs() {
            Ok(addrs) => {
                let before = out.len();
                for addr in addrs {
                    if let SocketAddr::V4(v4) = addr {
                        if !out.contains(&v4) {
                            out.push(v4);
                        }
                    }
                }
                if out.len() == before {
                    warn!(%host, "dht bootstrap node has no ipv4 address; skipping it");
                }
            }
            Err(e) => warn!(%host, "cannot resolve dht bootstrap node, skipping it: {e}"),
        }
    }
    out
}

/// Up to [`MAX_BOOTSTRAP_FROM_TABLE`] random nodes from the saved table; empty (and logged) when
/// the file is missing or unusable.
fn saved_bootstrap(path: &Path) -> Vec<SocketAddrV4> {
    match table::load(path) {
        Ok(mut nodes) => {
            info!(path = %path.display(), nodes = nodes.len(), "loaded the saved dht routing table");
            nodes.shuffle(&mut rand::thread_rng());
            nodes.truncate(MAX_BOOTSTRAP_FROM_TABLE);
            nodes
        }
        Err(table::LoadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            info!(path = %path.display(), "no saved dht routing table yet; using the bootstrap nodes");
            Vec::new()
        }
        Err(e) => {
            warn!(
                path = %path.display(),
                "ignoring the saved dht routing table because {e}; using the bootstrap nodes"
            );
            Vec::new()
        }
    }
}

fn parse_nodes(nodes: Vec<String>) -> Vec<SocketAddrV4> {
    nodes.iter().filter_map(|s| s.parse().ok()).collect()
}

fn save(dht: &AsyncDht, path: &Path) -> Result<usize, Error> {
    let nodes = parse_nodes(block_on(dht.to_bootstrap()));
    if nodes.is_empty() {
        debug!(path = %path.display(), "dht routing table is empty; keeping the saved one");
        return Ok(0);
    }
    table::save(path, &nodes).map_err(|source| Error::SaveTable {
        path: path.to_owned(),
        source,
    })?;
    debug!(path = %path.display(), nodes = nodes.len(), "saved the dht routing table");
    Ok(nodes.len().min(table::MAX_NODES))
}

fn spawn_saver(dht: AsyncDht, path: PathBuf, interval: Duration) -> Result<Saver, Error> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = thread::Builder::new()
        .name("dht-table-saver".into())
        .spawn(move || loop {
            match stopped.recv_timeout(interval) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = save(&dht, &path) {
                        warn!("{e}");
                    }
                }
                // Stop requested or the handle is gone: one last save.
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return save(&dht, &path),
            }
        })
        .map_err(|source| Error::Start {
            addr: SocketAddrV4::new([0, 0, 0, 0].into(), 0),
            source,
        })?;
    Ok(Saver { stop, thread })
}

/// Runs a future to completion on this thread. Used only for quick round trips to the actor
/// thread (it answers within one 50 ms socket poll), so no runtime is needed.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => thread::park(),
        }
    }
}
