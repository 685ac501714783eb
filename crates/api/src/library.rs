//! The torrent library: every torrent the node knows, whether running or not, persisted so that
//! the list, ids and start/stop choices survive restarts and `kill -9`.
//!
//! Each torrent has one actor task that owns its engine handle and reconciles what the user asked
//! for ([`Desired`]) with what runs: it fetches metadata for magnet links, adds the torrent to the
//! engine session, takes it out on stop, and deletes data on removal. Requests set the desired
//! state and wait until the actor has applied it, so a request never races another one on the
//! same torrent and the answer shows the state after the change.
//!
//! On disk (in the library directory): `library.json` (the list, written atomically on every
//! change) and `<info-hash>.torrent` for each torrent whose metadata is known. Download progress
//! lives in the engine's resume records.
//!
//! With a [`NodeMarket`] (the Speed market, off by default) every torrent that starts gets its
//! [`SpeedTorrent`] extension: it sells on the node's terms and buys within the torrent's own
//! budget. What a torrent earned and spent is kept in `library.json` across runs, and a restart
//! only spends what is left of the budget.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use engine::{AddTorrent, Session, State, TorrentHandle};
use market::SpeedTorrent;
use metainfo::{InfoHash, Magnet, Torrent};
use serde::{Deserialize, Serialize};
use speed::{Amount, BidderConfig};
use tokio::sync::{broadcast, watch};

use crate::node_market::NodeMarket;

use crate::views::{self, FileView, PeerView, PiecesView, StatsView, TorrentView, TrackerView};

/// How long a request waits for a torrent's actor to apply a change before answering anyway.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often views are refreshed for events and completion times.
const TICK: Duration = Duration::from_secs(1);
/// Largest .torrent accepted from a URL.
pub const MAX_TORRENT_BYTES: usize = 16 * 1024 * 1024;
/// First wait before asking peers for a magnet link's metadata again.
const METADATA_RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest wait between metadata attempts.
const METADATA_RETRY_MAX: Duration = Duration::from_secs(120);
/// Events buffered per subscriber before a slow one starts missing them.
const EVENT_BUFFER: usize = 256;

/// A torrent's number in this node: stable across restarts, never reused (Transmission's `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TorrentId(pub u32);

impl std::fmt::Display for TorrentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a new torrent comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The bytes of a .torrent file.
    Torrent(Vec<u8>),
    /// A magnet link; the info dictionary is fetched from peers (BEP 9).
    Magnet(String),
}

/// Options for a new torrent.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// Where the files go (default: the library's download directory).
    pub download_dir: Option<PathBuf>,
    /// Add without starting.
    pub paused: bool,
    /// Peers to dial besides those from trackers, DHT and PEX.
    pub peers: Vec<SocketAddr>,
    /// Most to spend buying bandwidth for this torrent over all its runs, wei (zero: never
    /// buys). Needs the node's market.
    pub budget: Amount,
    /// Highest price ever bid, wei per byte (default: no limit but the budget).
    pub max_price: Option<u64>,
}

/// What the user asked a torrent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    /// Fetch metadata if needed, then download or seed.
    Running,
    /// Not in the engine session.
    Stopped,
    /// Gone from the library; delete downloaded data too when `delete_data`.
    Removed {
        /// Delete the torrent's files from disk.
        delete_data: bool,
    },
}

/// Something that changed, for live views (server-sent events).
#[derive(Debug, Clone)]
pub enum Event {
    /// Once per tick: every torrent and the totals.
    Tick(Arc<(Vec<TorrentView>, StatsView)>),
    /// A torrent was added.
    Added(TorrentView),
    /// A torrent was removed.
    Removed(TorrentId),
    /// A torrent's state changed (including completion).
    State(TorrentView),
}

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// No torrent has this id or info-hash.
    #[error("no torrent {0}; list them with GET /api/v1/torrents")]
    NotFound(String),
    /// The torrent is in the library already.
    #[error("torrent {hash} is already added (id {id})")]
    Duplicate {
        /// Its id.
        id: TorrentId,
        /// Its info-hash in hex.
        hash: String,
        /// Its name.
        name: String,
    },
    /// The .torrent bytes do not parse.
    #[error("invalid torrent file: {0}")]
    BadTorrent(String),
    /// The magnet link does not parse.
    #[error("invalid magnet link: {0}")]
    BadMagnet(String),
    /// A peer address or path in the request is unusable.
    #[error("{0}")]
    BadRequest(String),
    /// Reading or writing the library's files failed.
    #[error("library storage: {0}; check the data directory's permissions and free space")]
    Io(#[from] std::io::Error),
}

/// Paths and defaults of a library.
#[derive(Debug, Clone)]
pub struct LibraryConfig {
    /// Where `library.json` and the .torrent files live.
    pub dir: PathBuf,
    /// Default download directory.
    pub download_dir: PathBuf,
    /// The engine session's data directory (its resume records are read for stopped torrents).
    pub resume_dir: PathBuf,
    /// The Speed market every torrent takes part in; `None` (the default) runs none.
    pub market: Option<Arc<NodeMarket>>,
}

/// The persisted part of a torrent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) id: TorrentId,
    pub(crate) hash: String,
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) magnet: Option<String>,
    pub(crate) download_dir: PathBuf,
    pub(crate) added_at: u64,
    #[serde(default)]
    pub(crate) done_at: u64,
    pub(crate) paused: bool,
    pub(crate) queue_position: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) peers: Vec<SocketAddr>,
    /// The torrent's own download limit, bytes per second (0 = none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) download_limit: u64,
    /// The torrent's own upload limit, bytes per second (0 = none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) upload_limit: u64,
    /// Most to spend buying bandwidth over all runs, wei (0 = never buys).
    #[serde(default, skip_serializing_if = "is_zero_amount", with = "wei_string")]
    pub(crate) budget: Amount,
    /// Highest bid, wei per byte (`None`: no limit but the budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_price: Option<u64>,
    /// Spent buying for this torrent, wei, over all runs up to the last save.
    #[serde(default, skip_serializing_if = "is_zero_amount", with = "wei_string")]
    pub(crate) spent: Amount,
    /// Earned selling this torrent, wei, over all runs up to the last save.
    #[serde(default, skip_serializing_if = "is_zero_amount", with = "wei_string")]
    pub(crate) earned: Amount,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_amount(v: &Amount) -> bool {
    *v == Amount::ZERO
}

/// Amounts in `library.json` are decimal strings of wei: JSON numbers lose precision above
/// 2^53 in most readers.
mod wei_string {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use speed::Amount;

    pub(super) fn serialize<S: Serializer>(a: &Amount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.0.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let text = String::deserialize(d)?;
        crate::node_market::parse_wei(&text, "amount").map_err(D::Error::custom)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LibraryFile {
    version: u32,
    next_id: u32,
    torrents: Vec<Record>,
}

/// One torrent in memory.
struct Entry {
    record: Record,
    hash: [u8; 20],
    torrent: Option<Arc<Torrent>>,
    handle: Option<TorrentHandle>,
    error: Option<String>,
    /// Set by requests; the actor applies it.
    desired: watch::Sender<(u64, Desired)>,
    /// The last request sequence number the actor has applied.
    applied: watch::Receiver<u64>,
    /// While stopped: verified pieces from the resume record, read once.
    resumed_have: Option<views::Resumed>,
    /// While running with the market on: this run's market extension.
    speed: Option<Arc<SpeedTorrent>>,
    /// (earned, spent) of earlier runs, to which this run's figures add.
    market_base: (Amount, Amount),
}

impl Entry {
    /// (earned, spent) over every run, this one included.
    fn market_totals(&self) -> (Amount, Amount) {
        match &self.speed {
            Some(t) => {
                let s = t.stats();
                (
                    Amount(self.market_base.0 .0.saturating_add(s.earned.0)),
                    Amount(self.market_base.1 .0.saturating_add(s.spent.0)),
                )
            }
            None => (self.record.earned, self.record.spent),
        }
    }

    /// Copies the running totals into the record; true when they changed.
    fn fold_market(&mut self) -> bool {
        let (earned, spent) = self.market_totals();
        let changed = (earned, spent) != (self.record.earned, self.record.spent);
        self.record.earned = earned;
        self.record.spent = spent;
        changed
    }
}

struct Inner {
    entries: BTreeMap<TorrentId, Entry>,
    next_id: u32,
    seq: u64,
}

struct Shared {
    session: Session,
    config: LibraryConfig,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    /// The last state published per torrent, so each change is reported once, whoever sees it
    /// first (the actor applying a request, or the ticker seeing the engine move on).
    published: Mutex<BTreeMap<TorrentId, &'static str>>,
    /// Serialises writes of `library.json`.
    save_lock: Mutex<()>,
}

/// The node's torrents. Cheap to clone.
#[derive(Clone)]
pub struct Library {
    shared: Arc<Shared>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self) -> std::io::Result<()> {
        let _guard = self.save_lock.lock().unwrap_or_else(|e| e.into_inner());
        let file = {
            let inner = self.lock();
            LibraryFile {
                version: 1,
                next_id: inner.next_id,
                torrents: inner.entries.values().map(|e| e.record.clone()).collect(),
            }
        };
        let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        write_atomic(&self.config.dir.join("library.json"), &json)
    }

    /// Sends a `State` event when `view`'s state differs from the last one published.
    fn publish_state(&self, view: &TorrentView) {
        let prev = self
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(view.id, view.state);
        if prev.is_some_and(|p| p != view.state) {
            let _ = self.events.send(Event::State(view.clone()));
        }
    }

    /// Publishes the state of one torrent now.
    fn publish_state_of(&self, id: TorrentId) {
        let view = self.lock().entries.get(&id).map(|e| self.view(e));
        if let Some(v) = view {
            self.publish_state(&v);
        }
    }

    fn torrent_path(&self, hash: &str) -> PathBuf {
        self.config.dir.join(format!("{hash}.torrent"))
    }

    fn view(&self, entry: &Entry) -> TorrentView {
        let stats = entry.handle.as_ref().map(|h| h.stats());
        let desired = entry.desired.borrow().1;
        views::torrent_view(
            &entry.record,
            entry.torrent.as_deref(),
            stats.as_ref(),
            entry.resumed_have.as_ref(),
            entry.error.as_deref(),
            desired == Desired::Running,
            entry.market_totals(),
        )
    }
}

impl Library {
    /// Opens the library in `config.dir` (creating it), and starts every torrent that was running
    /// when the node last stopped. Must be called inside a tokio runtime.
    pub async fn open(session: Session, config: LibraryConfig) -> Result<Self, LibraryError> {
        std::fs::create_dir_all(&config.dir)?;
        let path = config.dir.join("library.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<LibraryFile>(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is corrupt ({e}); move it away to start with an empty list",
                        path.display()
                    ),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LibraryFile {
                version: 1,
                next_id: 1,
                torrents: Vec::new(),
            },
            Err(e) => return Err(e.into()),
        };
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            session,
            config,
            inner: Mutex::new(Inner {
                entries: BTreeMap::new(),
                next_id: file.next_id.max(1),
                seq: 0,
            }),
            events,
            published: Mutex::new(BTreeMap::new()),
            save_lock: Mutex::new(()),
        });
        for record in file.torrents {
            let Ok(InfoHash(hash)) = InfoHash::from_hex(&record.hash) else {
                tracing::warn!(hash = %record.hash, "skipping a library record with a bad info-hash");
                continue;
            };
            let torrent = match std::fs::read(shared.torrent_path(&record.hash)) {
                Ok(bytes) => match Torrent::from_bytes(&bytes) {
                    Ok(t) => Some(Arc::new(t)),
                    Err(e) => {
                        tracing::warn!(hash = %record.hash, "stored torrent unreadable ({e}); fetching metadata again");
                        None
                    }
                },
                Err(_) => None,
            };
            if torrent.is_none() && record.magnet.is_none() {
                tracing::warn!(hash = %record.hash, "no metadata and no magnet link; dropping it from the list");
                continue;
            }
            let desired = if record.paused {
                Desired::Stopped
            } else {
                Desired::Running
            };
            spawn_entry(&shared, record, hash, torrent, desired);
        }
        tokio::spawn(ticker(Arc::downgrade(&shared)));
        Ok(Self { shared })
    }

    /// The engine session the library drives.
    pub fn session(&self) -> &Session {
        &self.shared.session
    }

    /// The Speed market the torrents take part in, when the node runs one.
    pub fn market(&self) -> Option<&Arc<NodeMarket>> {
        self.shared.config.market.as_ref()
    }

    /// The default download directory.
    pub fn download_dir(&self) -> &Path {
        &self.shared.config.download_dir
    }

    /// Where the library keeps its list and .torrent files (Transmission's `config-dir`).
    pub(crate) fn state_dir(&self) -> &Path {
        &self.shared.config.dir
    }

    /// Live updates.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Adds a torrent. Returns once it is recorded; checking data and downloading go on in the
    /// background (watch [`Library::get`] or the events).
    pub async fn add(&self, source: Source, opts: AddOptions) -> Result<TorrentView, LibraryError> {
        let (torrent, magnet, hash, name) = match source {
            Source::Torrent(bytes) => {
                let t = Torrent::from_bytes(&bytes)
                    .map_err(|e| LibraryError::BadTorrent(e.to_string()))?;
                let name = t.info.name.clone();
                (Some(Arc::new(t)), None, None, name)
            }
            Source::Magnet(link) => {
                let m = Magnet::parse(link.trim())
                    .map_err(|e| LibraryError::BadMagnet(e.to_string()))?;
                let hash = m
                    .wire_id()
                    .ok_or_else(|| LibraryError::BadMagnet("it names no info-hash".into()))?;
                let name = m.display_name.clone().unwrap_or_else(|| hash.to_hex());
                (None, Some(link.trim().to_string()), Some(hash.0), name)
            }
        };
        let hash = match (&torrent, hash) {
            (Some(t), _) => t.info_hash.0,
            (None, Some(h)) => h,
            (None, None) => return Err(LibraryError::BadRequest("nothing to add".into())),
        };
        let hex = InfoHash(hash).to_hex();
        self.check_buying(opts.budget, opts.max_price)?;
        if let Some(dir) = &opts.download_dir {
            if !dir.is_absolute() {
                return Err(LibraryError::BadRequest(format!(
                    "download directory {} is not an absolute path",
                    dir.display()
                )));
            }
        }
        let record = {
            let mut inner = self.shared.lock();
            if let Some((id, e)) = inner.entries.iter().find(|(_, e)| e.hash == hash) {
                return Err(LibraryError::Duplicate {
                    id: *id,
                    hash: hex,
                    name: e.record.name.clone(),
                });
            }
            let id = TorrentId(inner.next_id);
            inner.next_id += 1;
            let queue_position = inner.entries.len() as u32;
            Record {
                id,
                hash: hex.clone(),
                name,
                magnet,
                download_dir: opts
                    .download_dir
                    .clone()
                    .unwrap_or_else(|| self.shared.config.download_dir.clone()),
                added_at: unix_now(),
                done_at: 0,
                paused: opts.paused,
                queue_position,
                peers: opts.peers.clone(),
                download_limit: 0,
                upload_limit: 0,
                budget: opts.budget,
                max_price: opts.max_price,
                spent: Amount::ZERO,
                earned: Amount::ZERO,
            }
        };
        if let Some(t) = &torrent {
            write_atomic(&self.shared.torrent_path(&hex), &t.to_bytes())?;
        }
        let desired = if opts.paused {
            Desired::Stopped
        } else {
            Desired::Running
        };
        let id = record.id;
        spawn_entry(&self.shared, record, hash, torrent, desired);
        if let Err(e) = self.shared.save() {
            self.shared.lock().entries.remove(&id);
            return Err(e.into());
        }
        let view = self.get(id)?;
        self.shared.publish_state(&view);
        let _ = self.shared.events.send(Event::Added(view.clone()));
        Ok(view)
    }

    /// Finds a torrent by its number or its info-hash (40 hex digits).
    pub fn resolve(&self, key: &str) -> Result<TorrentId, LibraryError> {
        let inner = self.shared.lock();
        if let Ok(n) = key.parse::<u32>() {
            if inner.entries.contains_key(&TorrentId(n)) {
                return Ok(TorrentId(n));
            }
        } else if let Ok(InfoHash(hash)) = InfoHash::from_hex(key) {
            if let Some((id, _)) = inner.entries.iter().find(|(_, e)| e.hash == hash) {
                return Ok(*id);
            }
        }
        Err(LibraryError::NotFound(key.to_string()))
    }

    /// Every torrent, by id.
    pub fn list(&self) -> Vec<TorrentView> {
        let inner = self.shared.lock();
        inner
            .entries
            .values()
            .map(|e| self.shared.view(e))
            .collect()
    }

    /// Ids of every torrent.
    pub fn ids(&self) -> Vec<TorrentId> {
        self.shared.lock().entries.keys().copied().collect()
    }

    /// One torrent.
    pub fn get(&self, id: TorrentId) -> Result<TorrentView, LibraryError> {
        let inner = self.shared.lock();
        let e = entry(&inner, id)?;
        Ok(self.shared.view(e))
    }

    /// The torrent's metainfo, once known.
    pub fn metainfo(&self, id: TorrentId) -> Result<Option<Arc<Torrent>>, LibraryError> {
        Ok(entry(&self.shared.lock(), id)?.torrent.clone())
    }

    /// Files with their progress (empty while metadata is being fetched).
    pub fn files(&self, id: TorrentId) -> Result<Vec<FileView>, LibraryError> {
        let inner = self.shared.lock();
        let e = entry(&inner, id)?;
        let Some(t) = &e.torrent else {
            return Ok(Vec::new());
        };
        let have = have_of(e);
        Ok(views::files(&t.info, have.as_ref()))
    }

    /// Connected peers.
    pub fn peers(&self, id: TorrentId) -> Result<Vec<PeerView>, LibraryError> {
        let handle = entry(&self.shared.lock(), id)?.handle.clone();
        Ok(handle
            .map(|h| h.peers().iter().map(views::peer).collect())
            .unwrap_or_default())
    }

    /// Verified pieces.
    pub fn pieces(&self, id: TorrentId) -> Result<PiecesView, LibraryError> {
        let inner = self.shared.lock();
        let e = entry(&inner, id)?;
        Ok(views::pieces(e.torrent.as_deref(), have_of(e)))
    }

    /// Verified pieces as a bitfield sized to the torrent (empty while metadata is unknown).
    pub fn piece_bits(&self, id: TorrentId) -> Result<wire::Bitfield, LibraryError> {
        let inner = self.shared.lock();
        let e = entry(&inner, id)?;
        Ok(views::piece_bits(e.torrent.as_deref(), have_of(e)))
    }

    /// Trackers by tier.
    pub fn trackers(&self, id: TorrentId) -> Result<Vec<TrackerView>, LibraryError> {
        let inner = self.shared.lock();
        let e = entry(&inner, id)?;
        let tiers = match (&e.torrent, &e.record.magnet) {
            (Some(t), _) => t.trackers(),
            (None, Some(m)) => Magnet::parse(m)
                .map(|m| m.trackers.into_iter().map(|t| vec![t]).collect())
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        Ok(views::trackers(&tiers))
    }

    /// A magnet link for the torrent.
    pub fn magnet(&self, id: TorrentId) -> Result<String, LibraryError> {
        let inner = self.shared.lock();
        let e = entry(&inner, id)?;
        Ok(match (&e.torrent, &e.record.magnet) {
            (Some(t), _) => Magnet::from_torrent(t).to_string(),
            (None, Some(m)) => m.clone(),
            (None, None) => format!("magnet:?xt=urn:btih:{}", e.record.hash),
        })
    }

    /// Totals over every torrent.
    pub fn stats(&self) -> StatsView {
        views::stats(&self.list())
    }

    /// Starts a torrent (a no-op when it runs already); a failed one is retried.
    pub async fn start(&self, id: TorrentId) -> Result<TorrentView, LibraryError> {
        self.set_desired(id, Desired::Running).await?;
        self.get(id)
    }

    /// Stops a torrent: it leaves the engine session with its resume record written.
    pub async fn stop(&self, id: TorrentId) -> Result<TorrentView, LibraryError> {
        self.set_desired(id, Desired::Stopped).await?;
        self.get(id)
    }

    /// Removes a torrent from the library, deleting its downloaded files when `delete_data`.
    pub async fn remove(&self, id: TorrentId, delete_data: bool) -> Result<(), LibraryError> {
        self.set_desired(id, Desired::Removed { delete_data }).await
    }

    /// Changes a torrent's own limits (bytes per second, 0 = none; `None` leaves one as it is).
    /// They apply at once when it runs and are kept across restarts.
    pub fn set_limits(
        &self,
        id: TorrentId,
        download: Option<u64>,
        upload: Option<u64>,
    ) -> Result<TorrentView, LibraryError> {
        let handle = {
            let mut inner = self.shared.lock();
            let e = inner
                .entries
                .get_mut(&id)
                .ok_or_else(|| LibraryError::NotFound(id.0.to_string()))?;
            if let Some(d) = download {
                e.record.download_limit = d;
            }
            if let Some(u) = upload {
                e.record.upload_limit = u;
            }
            e.handle
                .clone()
                .map(|h| (h, e.record.download_limit, e.record.upload_limit))
        };
        self.shared.save()?;
        if let Some((h, d, u)) = handle {
            h.set_rate_limits(d, u);
        }
        self.get(id)
    }

    /// Changes a torrent's buying limits (`None` leaves one as it is): `budget` is the most
    /// spent on it over all runs, wei, what it spent already included; `max_price` the highest
    /// bid, wei per byte. Kept across restarts; a running torrent uses them from its next start.
    pub fn set_buying(
        &self,
        id: TorrentId,
        budget: Option<Amount>,
        max_price: Option<u64>,
    ) -> Result<TorrentView, LibraryError> {
        self.check_buying(budget.unwrap_or(Amount::ZERO), None)?;
        {
            let mut inner = self.shared.lock();
            let e = inner
                .entries
                .get_mut(&id)
                .ok_or_else(|| LibraryError::NotFound(id.0.to_string()))?;
            if let Some(b) = budget {
                e.record.budget = b;
            }
            if let Some(p) = max_price {
                e.record.max_price = Some(p);
            }
        }
        self.shared.save()?;
        self.get(id)
    }

    /// Buying needs the market; a price limit without a budget limits nothing.
    fn check_buying(&self, budget: Amount, max_price: Option<u64>) -> Result<(), LibraryError> {
        if budget > Amount::ZERO && self.shared.config.market.is_none() {
            return Err(LibraryError::BadRequest(
                "a budget needs the Speed market, which is off on this node: start the node \
                 with --market true and a wallet key (see docs/node.md)"
                    .into(),
            ));
        }
        if budget == Amount::ZERO && max_price.is_some() {
            return Err(LibraryError::BadRequest(
                "max_price limits buying, which is off without a budget: give budget too".into(),
            ));
        }
        Ok(())
    }

    /// The session's global (download, upload) limits, bytes per second, 0 = none.
    pub fn session_limits(&self) -> (u64, u64) {
        self.shared.session.rate_limits()
    }

    /// Changes the global limits until the node stops (the config file holds the lasting
    /// ones); `None` leaves one as it is.
    pub fn set_session_limits(&self, download: Option<u64>, upload: Option<u64>) {
        let (d, u) = self.session_limits();
        self.shared
            .session
            .set_rate_limits(download.unwrap_or(d), upload.unwrap_or(u));
    }

    /// Moves torrents to the top of the queue, keeping their relative order.
    pub fn queue_move_top(&self, ids: &[TorrentId]) -> Result<(), LibraryError> {
        {
            let mut inner = self.shared.lock();
            for id in ids {
                entry(&inner, *id)?;
            }
            let mut order: Vec<TorrentId> = inner.entries.keys().copied().collect();
            order.sort_by_key(|id| inner.entries[id].record.queue_position);
            order.retain(|id| !ids.contains(id));
            for (pos, id) in ids.iter().chain(order.iter()).enumerate() {
                if let Some(e) = inner.entries.get_mut(id) {
                    e.record.queue_position = pos as u32;
                }
            }
        }
        self.shared.save()?;
        Ok(())
    }

    /// Stops every torrent (resume records written, market figures saved), for a graceful
    /// shutdown.
    pub async fn shutdown(&self) {
        self.shared.session.shutdown().await;
        let changed = {
            let mut inner = self.shared.lock();
            let mut changed = false;
            for e in inner.entries.values_mut() {
                changed |= e.fold_market();
                e.speed = None;
                e.market_base = (e.record.earned, e.record.spent);
            }
            changed
        };
        if changed {
            if let Err(e) = self.shared.save() {
                tracing::warn!("cannot save the torrent list: {e}");
            }
        }
    }

    async fn set_desired(&self, id: TorrentId, desired: Desired) -> Result<(), LibraryError> {
        let mut applied = {
            let mut inner = self.shared.lock();
            inner.seq += 1;
            let seq = inner.seq;
            let e = inner
                .entries
                .get_mut(&id)
                .ok_or_else(|| LibraryError::NotFound(id.0.to_string()))?;
            let paused = !matches!(desired, Desired::Running);
            if desired == Desired::Running {
                e.error = None;
            }
            if e.record.paused != paused {
                e.record.paused = paused;
            }
            e.desired.send_replace((seq, desired));
            (e.applied.clone(), seq)
        };
        if !matches!(desired, Desired::Removed { .. }) {
            self.shared.save()?;
        }
        let seq = applied.1;
        let _ = tokio::time::timeout(APPLY_TIMEOUT, applied.0.wait_for(|s| *s >= seq)).await;
        Ok(())
    }
}

fn entry(inner: &Inner, id: TorrentId) -> Result<&Entry, LibraryError> {
    inner
        .entries
        .get(&id)
        .ok_or_else(|| LibraryError::NotFound(id.0.to_string()))
}

fn have_of(e: &Entry) -> Option<wire::Bitfield> {
    match &e.handle {
        Some(h) => Some(h.have()),
        None => e.resumed_have.as_ref().map(|r| r.have.clone()),
    }
}

fn spawn_entry(
    shared: &Arc<Shared>,
    record: Record,
    hash: [u8; 20],
    torrent: Option<Arc<Torrent>>,
    desired: Desired,
) {
    let (desired_tx, desired_rx) = watch::channel((0, desired));
    let (applied_tx, applied_rx) = watch::channel(0);
    let id = record.id;
    let resumed_have = torrent
        .as_ref()
        .and_then(|t| resumed_pieces(&shared.config.resume_dir, &hash, t));
    shared.lock().entries.insert(
        id,
        Entry {
            record,
            hash,
            torrent,
            handle: None,
            error: None,
            desired: desired_tx,
            applied: applied_rx,
            resumed_have,
            speed: None,
            market_base: (Amount::ZERO, Amount::ZERO),
        },
    );
    tokio::spawn(actor(Arc::downgrade(shared), id, desired_rx, applied_tx));
}

fn resumed_pieces(resume_dir: &Path, hash: &[u8; 20], t: &Torrent) -> Option<views::Resumed> {
    engine::resume::load(
        &engine::resume::path_for(resume_dir, hash),
        t.info.num_pieces(),
    )
    .map(|r| views::Resumed::new(&t.info, r.pieces))
}

/// One torrent's actor: applies the desired state, one change at a time.
async fn actor(
    shared: std::sync::Weak<Shared>,
    id: TorrentId,
    mut desired: watch::Receiver<(u64, Desired)>,
    applied: watch::Sender<u64>,
) {
    loop {
        let (seq, want) = *desired.borrow_and_update();
        let Some(s) = shared.upgrade() else { return };
        match want {
            Desired::Running => {
                if !run(&s, id, &mut desired).await {
                    // A newer request arrived while fetching metadata; apply it.
                    continue;
                }
            }
            Desired::Stopped => {
                take_out(&s, id).await;
            }
            Desired::Removed { delete_data } => {
                take_out(&s, id).await;
                let removed = s.lock().entries.remove(&id);
                if let Some(e) = removed {
                    let _ = std::fs::remove_file(s.torrent_path(&e.record.hash));
                    let _ = std::fs::remove_file(engine::resume::path_for(
                        &s.config.resume_dir,
                        &e.hash,
                    ));
                    if delete_data {
                        if let Some(t) = &e.torrent {
                            delete_files(&e.record.download_dir, t);
                        }
                    }
                }
                if let Err(e) = s.save() {
                    tracing::warn!("cannot save the torrent list: {e}");
                }
                s.published
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                let _ = s.events.send(Event::Removed(id));
                applied.send_replace(seq);
                return;
            }
        }
        s.publish_state_of(id);
        applied.send_replace(seq);
        drop(s);
        if desired.changed().await.is_err() {
            return;
        }
    }
}

/// Brings a torrent into the engine session. Returns false when a newer request interrupted a
/// metadata fetch.
async fn run(
    s: &Arc<Shared>,
    id: TorrentId,
    desired: &mut watch::Receiver<(u64, Desired)>,
) -> bool {
    let (torrent, magnet, dir, peers, running) = {
        let inner = s.lock();
        let Some(e) = inner.entries.get(&id) else {
            return true;
        };
        (
            e.torrent.clone(),
            e.record.magnet.clone(),
            e.record.download_dir.clone(),
            e.record.peers.clone(),
            e.handle.is_some(),
        )
    };
    if running {
        return true;
    }
    let torrent = match torrent {
        Some(t) => t,
        None => {
            let Some(link) = magnet.and_then(|m| Magnet::parse(&m).ok()) else {
                set_error(s, id, "no metadata and no usable magnet link".into());
                return true;
            };
            // Peers for a new link may take a while to appear (trackers, DHT): keep asking,
            // backing off, until the metadata arrives or the user changes their mind.
            let mut backoff = METADATA_RETRY_MIN;
            let fetched = loop {
                let attempt = tokio::select! {
                    r = s.session.fetch_metadata(&link, peers.clone()) => r,
                    _ = desired.changed() => return false,
                };
                match attempt {
                    Ok(f) => break f,
                    Err(e) => {
                        tracing::info!(id = id.0, "no metadata yet ({e}); retrying in {backoff:?}");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = desired.changed() => return false,
                        }
                        backoff = (backoff * 2).min(METADATA_RETRY_MAX);
                    }
                }
            };
            let t = Arc::new(fetched.torrent);
            let hex = t.info_hash.to_hex();
            if let Err(e) = write_atomic(&s.torrent_path(&hex), &t.to_bytes()) {
                set_error(s, id, format!("cannot store the fetched metadata: {e}"));
                return true;
            }
            {
                let mut inner = s.lock();
                if let Some(e) = inner.entries.get_mut(&id) {
                    e.torrent = Some(t.clone());
                    e.record.name = t.info.name.clone();
                    for p in fetched.peers {
                        if !e.record.peers.contains(&p) {
                            e.record.peers.push(p);
                        }
                    }
                }
            }
            if let Err(e) = s.save() {
                tracing::warn!("cannot save the torrent list: {e}");
            }
            t
        }
    };
    // Read again: a metadata fetch adds the peers that answered, and limits may have changed.
    let Some((peers, download_limit, upload_limit)) = s.lock().entries.get(&id).map(|e| {
        (
            e.record.peers.clone(),
            e.record.download_limit,
            e.record.upload_limit,
        )
    }) else {
        return true;
    };
    let speed = market_extension(s, id, &torrent);
    let mut add = AddTorrent::new((*torrent).clone(), dir);
    add.peers = peers;
    add.download_rate_limit = download_limit;
    add.upload_rate_limit = upload_limit;
    add.extension = speed.clone().map(|t| t as Arc<dyn engine::ext::Extension>);
    match s.session.add_torrent(add).await {
        Ok(handle) => {
            let mut inner = s.lock();
            if let Some(e) = inner.entries.get_mut(&id) {
                e.handle = Some(handle);
                e.error = None;
                e.resumed_have = None;
                e.market_base = (e.record.earned, e.record.spent);
                e.speed = speed;
            }
        }
        Err(e) => set_error(s, id, e.to_string()),
    }
    true
}

/// The torrent's market extension for this run, when the node runs a market: it sells on the
/// node's terms and buys with what is left of the torrent's budget.
fn market_extension(s: &Shared, id: TorrentId, torrent: &Torrent) -> Option<Arc<SpeedTorrent>> {
    let market = s.config.market.as_ref()?;
    let (budget, max_price, spent, have) = {
        let inner = s.lock();
        let e = inner.entries.get(&id)?;
        (
            e.record.budget,
            e.record.max_price,
            e.record.spent,
            e.resumed_have.as_ref().map_or(0, |r| r.bytes),
        )
    };
    let left = Amount(budget.0.saturating_sub(spent.0));
    let bidder = BidderConfig {
        budget: left,
        daily_cap: None,
        max_price: if left == Amount::ZERO {
            0
        } else {
            max_price.unwrap_or(u64::MAX)
        },
        top_up_low_water_pieces: 2,
    };
    if left > Amount::ZERO {
        tracing::info!(
            id = id.0,
            budget_wei = %left.0,
            "market: buying bandwidth for this torrent within its budget"
        );
    }
    Some(market.market().torrent(
        torrent.info_hash.0,
        u64::from(torrent.info.piece_length),
        torrent.info.total_length.saturating_sub(have),
        bidder,
    ))
}

fn set_error(s: &Shared, id: TorrentId, message: String) {
    tracing::warn!(id = id.0, "torrent failed: {message}");
    if let Some(e) = s.lock().entries.get_mut(&id) {
        e.error = Some(message);
    }
}

/// Takes a torrent out of the engine session (its resume record is written on the way out).
async fn take_out(s: &Arc<Shared>, id: TorrentId) {
    let handle = s.lock().entries.get_mut(&id).and_then(|e| e.handle.take());
    if let Some(h) = handle {
        let hash = h.info_hash();
        s.session.remove_torrent(&hash).await;
        let changed = {
            let mut inner = s.lock();
            match inner.entries.get_mut(&id) {
                Some(e) => {
                    e.resumed_have = e
                        .torrent
                        .as_ref()
                        .map(|t| views::Resumed::new(&t.info, h.have()));
                    if let State::Failed(msg) = h.stats().state {
                        e.error = Some(msg);
                    }
                    let changed = e.fold_market();
                    e.speed = None;
                    e.market_base = (e.record.earned, e.record.spent);
                    changed
                }
                None => false,
            }
        };
        if changed {
            if let Err(e) = s.save() {
                tracing::warn!("cannot save the torrent list: {e}");
            }
        }
    }
}

/// Deletes a torrent's files and then the directories they leave empty (never the download
/// directory itself).
fn delete_files(download_dir: &Path, t: &Torrent) {
    let mut dirs = Vec::new();
    for (i, f) in t.info.files.iter().enumerate() {
        if f.pad {
            continue;
        }
        let path = download_dir.join(t.info.file_path(i));
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot delete {}: {e}", path.display());
            }
        }
        let mut parent = path.parent();
        while let Some(p) = parent {
            if p == download_dir || !p.starts_with(download_dir) {
                break;
            }
            dirs.push(p.to_path_buf());
            parent = p.parent();
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        let _ = std::fs::remove_dir(&d);
    }
}

/// Publishes a tick per second and the state changes the engine made; records completion times.
async fn ticker(shared: std::sync::Weak<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(s) = shared.upgrade() else { return };
        let mut done = false;
        let views: Vec<TorrentView> = {
            let mut inner = s.lock();
            let mut out = Vec::with_capacity(inner.entries.len());
            for e in inner.entries.values_mut() {
                let v = s.view(e);
                if v.state == "seeding" && e.record.done_at == 0 {
                    e.record.done_at = unix_now();
                    done = true;
                }
                // Money moved: keep the totals on disk, so a crash loses at most a tick's worth
                // (and the buyer's channel book holds every promise anyway).
                done |= e.fold_market();
                out.push(v);
            }
            out
        };
        if done {
            if let Err(e) = s.save() {
                tracing::warn!("cannot save the torrent list: {e}");
            }
        }
        for v in &views {
            s.publish_state(v);
        }
        let stats = views::stats(&views);
        let _ = s.events.send(Event::Tick(Arc::new((views, stats))));
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes a file so that a crash leaves either the old or the new contents: a synced temporary
/// file renamed over the target, then the directory synced.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_file_format_is_stable() {
        let file = LibraryFile {
            version: 1,
            next_id: 3,
            torrents: vec![Record {
                id: TorrentId(2),
                hash: "00".repeat(20),
                name: "a".into(),
                magnet: None,
                download_dir: "/d".into(),
                added_at: 10,
                done_at: 0,
                paused: true,
                queue_position: 0,
                peers: vec![],
                download_limit: 0,
                upload_limit: 0,
                budget: Amount::ZERO,
                max_price: None,
                spent: Amount::ZERO,
                earned: Amount::ZERO,
            }],
        };
        let json = serde_json::to_string(&file).unwrap();
        assert_eq!(
            json,
            r#"{"version":1,"next_id":3,"torrents":[{"id":2,"hash":"0000000000000000000000000000000000000000","name":"a","download_dir":"/d","added_at":10,"done_at":0,"paused":true,"queue_position":0}]}"#
        );
        let back: LibraryFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back.torrents[0].id, TorrentId(2));
    }

    #[test]
    fn market_fields_are_wei_strings_and_optional() {
        let mut record: Record = serde_json::from_str(
            r#"{"id":1,"hash":"00","name":"a","download_dir":"/d","added_at":1,"paused":false,"queue_position":0}"#,
        )
        .unwrap();
        assert_eq!(record.budget, Amount::ZERO);
        assert_eq!(record.max_price, None);
        record.budget = Amount(u128::MAX);
        record.max_price = Some(5);
        record.spent = Amount(1_000_000_000_000_000_001);
        record.earned = Amount(7);
        let json = serde_json::to_string(&record).unwrap();
        assert!(
            json.ends_with(&format!(
                r#""budget":"{}","max_price":5,"spent":"1000000000000000001","earned":"7"}}"#,
                u128::MAX
            )),
            "{json}"
        );
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back.budget, Amount(u128::MAX));
        assert_eq!(back.spent, Amount(1_000_000_000_000_000_001));
        assert!(serde_json::from_str::<Record>(&json.replace("\"7\"", "\"-7\"")).is_err());
    }
}
