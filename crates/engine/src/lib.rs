//! The BitTorrent session: torrents, peer connections, piece picking, choking, disk I/O and resume data.
//!
//! # Layout
//! - [`Session`] owns the listening sockets (TCP, and uTP on the same port number), the peer id, the
//!   global limits, the DHT node and local service discovery ([`lsd`]); it routes incoming
//!   connections to torrents by info-hash (a hybrid answers to both of its hashes).
//!   [`Session::fetch_metadata`] turns a magnet link into a torrent (BEP 9, plus BEP 52 piece layers
//!   for v2-only links).
//! - A torrent ([`TorrentHandle`]) runs a housekeeping task (rechoke, rates, resume records, dialing),
//!   tracker and DHT tasks, one task per web seed (BEP 19), and one task pair per peer connection (a
//!   reader that drives the protocol, PEX and BEP 52 hash requests, and a writer that sends control
//!   messages and serves blocks from disk).
//! - The synchronous cores hold the policy and most unit tests: [`picker`] (rarest-first, endgame,
//!   parole after hash failures), [`choker`] (tit-for-tat, optimistic unchoke), [`resume`] and
//!   [`ratelimit`].
//! - [`ext`]: hooks for a BEP 10 extension that takes part in choking and serving (Speed).
//! - [`storage`] does positional reads and writes across the torrent's files (pad files are never
//!   on disk) and checks pieces against SHA-1 (v1), the BEP 52 Merkle piece layers (v2) or both
//!   (hybrid); pieces are hashed and written on blocking threads, never on the network tasks.
//!
//! See `STATE.md` beside this file for the shared state and its locking rules.
//!
//! ```no_run
//! # async fn run() -> Result<(), engine::Error> {
//! let torrent = metainfo::Torrent::from_bytes(&std::fs::read("file.torrent").unwrap()).unwrap();
//! let session = engine::Session::start(engine::Config::default()).await?;
//! let handle = session.add_torrent(engine::AddTorrent::new(torrent, "downloads".into())).await?;
//! handle.wait_complete().await?;
//! # Ok(()) }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod choker;
pub mod create;
mod discovery;
pub mod ext;
pub mod lsd;
mod magnet;
mod peer;
pub mod picker;
pub mod ratelimit;
pub mod resume;
mod session;
pub mod storage;
pub mod testkit;
mod torrent;
mod transport;
mod webseed;

pub use magnet::MetadataFetched;
pub use session::{AddTorrent, Config, Session};
pub use torrent::{PeerInfo, State, Stats, TorrentHandle};
pub use transport::Transport;

/// What can go wrong in the session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening port could not be bound.
    #[error("cannot listen on {addr}: {source}. Choose a different port with `--listen-port`")]
    Listen {
        /// The address tried.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the torrent's files failed.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// The torrent is already in the session.
    #[error("torrent {0} is already added")]
    Duplicate(String),
    /// Seeding was asked for but the data on disk is incomplete.
    #[error("the data in {dir} has {have} of {total} pieces; check the path or download it first")]
    IncompleteData {
        /// The directory checked.
        dir: String,
        /// Pieces found.
        have: u32,
        /// Pieces in the torrent.
        total: u32,
    },
    /// The DHT node could not start.
    #[error(transparent)]
    Dht(#[from] dht::Error),
    /// A magnet link could not be turned into a torrent.
    #[error("magnet link: {0}")]
    Magnet(String),
    /// The torrent stopped because of an error.
    #[error("torrent stopped: {0}")]
    Stopped(String),
}
