//! One torrent: shared state, housekeeping, dialing, trackers, piece verification.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use metainfo::Info;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use wire::{Bitfield, Handshake};

use crate::choker::{Candidate, Choker, RECHOKE_INTERVAL};
use crate::picker::{PeerKey, Picker};
use crate::ratelimit::RateLimiter;
use crate::resume::{self, ResumeData};
use crate::session::{AddTorrent, SessionShared};
use crate::storage::{PieceHashes, Storage};
use crate::transport::PeerStream;
use crate::Error;

/// Longest we wait for one tracker before trying the next.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(300);
/// Outgoing connections to one address tried this often before it is dropped from the list; the
/// wait doubles from [`REDIAL_BASE`] each time (5 s … 2.7 min).
const MAX_REDIALS: u32 = 6;
const REDIAL_BASE: Duration = Duration::from_secs(5);
/// How often a resume record is written while pieces keep arriving.
const RESUME_INTERVAL: Duration = Duration::from_secs(10);

/// Where a torrent is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Hashing data found on disk.
    Checking,
    /// Fetching pieces.
    Downloading,
    /// Complete; serving others.
    Seeding,
    /// Stopped by an error (disk full, …).
    Failed(String),
    /// Stopped on request.
    Stopped,
}

/// A snapshot of a torrent's progress and counters.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Life-cycle state.
    pub state: State,
    /// Pieces in the torrent.
    pub pieces_total: u32,
    /// Pieces verified now.
    pub pieces_have: u32,
    /// Pieces found verified on disk when the torrent was added.
    pub pieces_resumed: u32,
    /// Pieces fetched from peers and verified in this session.
    pub pieces_downloaded: u32,
    /// Payload bytes received from peers (including discarded data).
    pub bytes_downloaded: u64,
    /// Payload bytes sent to peers.
    pub bytes_uploaded: u64,
    /// Bytes still missing.
    pub bytes_left: u64,
    /// Torrent size in bytes.
    pub total_length: u64,
    /// Recent download rate.
    pub download_rate_bytes_per_s: u64,
    /// Recent upload rate.
    pub upload_rate_bytes_per_s: u64,
    /// Connected peers.
    pub peers: usize,
    /// Of those, peers connected over uTP.
    pub peers_utp: usize,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
    /// Peers banned for sending corrupt data (`addr` and client id).
    pub banned_peers: Vec<String>,
}

/// A snapshot of one connected peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's address on this connection.
    pub addr: SocketAddr,
    /// The peer id from its handshake (the client prefix names its software).
    pub peer_id: [u8; 20],
    /// How the connection is carried.
    pub transport: crate::Transport,
    /// The peer wants pieces from us.
    pub interested: bool,
    /// We let the peer request pieces.
    pub unchoked: bool,
    /// The peer has every piece.
    pub is_seed: bool,
    /// Payload bytes received from the peer on this connection.
    pub downloaded: u64,
    /// Payload bytes sent to the peer on this connection.
    pub uploaded: u64,
    /// Recent rate from the peer.
    pub download_rate_bytes_per_s: u64,
    /// Recent rate to the peer.
    pub upload_rate_bytes_per_s: u64,
}

/// Commands from the torrent to one peer's task.
#[derive(Debug)]
pub(crate) enum PeerCmd {
    /// Ask the peer (if it speaks v2 and has the piece) for the leaf hashes of a piece that
    /// failed its check, to find the bad blocks (BEP 52 hash request).
    BlockHashes {
        piece: u32,
        request: wire::HashRequest,
    },
    Choke,
    Unchoke,
    /// Another peer delivered this block first (endgame).
    Cancel(wire::BlockRef),
    Disconnect,
}

/// Per-connection counters written by the peer task and read by the housekeeping task.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    pub(crate) down: AtomicU64,
    pub(crate) up: AtomicU64,
    pub(crate) down_rate: AtomicU64,
    pub(crate) up_rate: AtomicU64,
    pub(crate) snubbed: std::sync::atomic::AtomicBool,
}

/// One block of a failed piece: who sent it and the SHA-256 of what they sent (`None` for padding
/// or a sender already gone).
type BlockRecord = Option<(Suspect, [u8; 32])>;

/// Who sent a block of a piece that failed, kept beyond the connection's life.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    peer_id: [u8; 20],
    addr: SocketAddr,
}

pub(crate) struct PeerEntry {
    pub(crate) addr: SocketAddr,
    /// Where the peer accepts connections, if known (PEX passes these on).
    pub(crate) listen_addr: Option<SocketAddr>,
    pub(crate) transport: crate::Transport,
    pub(crate) peer_id: [u8; 20],
    pub(crate) cmd: mpsc::UnboundedSender<PeerCmd>,
    pub(crate) interested: bool,
    pub(crate) unchoked: bool,
    pub(crate) is_seed: bool,
    pub(crate) counters: Arc<PeerCounters>,
    pub(crate) connected_at: Instant,
    last: (u64, u64),
}

/// Mutable torrent state behind one lock. Never held across an await.
pub(crate) struct Inner {
    pub(crate) picker: Picker,
    pub(crate) peers: HashMap<PeerKey, PeerEntry>,
    /// Piece indices in verification order; peers send `have` for the entries past their cursor.
    pub(crate) completed_log: Vec<u32>,
    banned_ids: HashSet<[u8; 20]>,
    banned_addrs: HashSet<SocketAddr>,
    banned_list: Vec<String>,
    /// Sources that are not peers (web seeds) whose data failed a hash check on its own.
    bad_sources: HashSet<PeerKey>,
    /// Failed pieces with several senders: per block, who sent it and the hash of what they sent.
    /// When the piece later verifies, senders of blocks that differ from the good data are banned.
    suspects: HashMap<u32, Vec<BlockRecord>>,
    candidates: VecDeque<SocketAddr>,
    dialing: HashSet<SocketAddr>,
    /// Addresses to dial again after a failed or dropped outgoing connection: attempts so far and
    /// when to try next (`None` while a dial is under way).
    redial: HashMap<SocketAddr, (u32, Option<Instant>)>,
    /// Addresses of peers seen to have every piece (no use dialling them once we are complete).
    pub(crate) seeds: HashSet<SocketAddr>,
    pieces_resumed: u32,
    pieces_downloaded: u32,
    hash_failures: u32,
    choker: Choker,
    rng: SmallRng,
    resume_dirty: bool,
    /// Pieces whose data is known to be on stable storage (found at start, or synced since).
    durable: Bitfield,
    /// What the resume record on disk vouches for.
    recorded: Option<Bitfield>,
    rates: (u64, u64),
    last_totals: (u64, u64),
    state: State,
}

impl Inner {
    pub(crate) fn is_banned(&self, addr: &SocketAddr, peer_id: &[u8; 20]) -> bool {
        self.banned_addrs.contains(addr) || self.banned_ids.contains(peer_id)
    }

    pub(crate) fn unchoked_count(&self) -> usize {
        self.peers.values().filter(|p| p.unchoked).count()
    }
}

pub(crate) struct Shared {
    pub(crate) session: Arc<SessionShared>,
    /// The info-hash on the wire: v1 for v1 and hybrid torrents, the truncated v2 hash for v2.
    pub(crate) info_hash: [u8; 20],
    /// A hybrid torrent's truncated v2 hash, which peers may also use for it.
    pub(crate) alt_info_hash: Option<[u8; 20]>,
    /// The raw info dictionary, served to peers that fetch metadata (BEP 9).
    pub(crate) info_bytes: Arc<Vec<u8>>,
    pub(crate) info: Arc<Info>,
    pub(crate) storage: Arc<Storage>,
    pub(crate) hashes: Arc<PieceHashes>,
    /// v2 files by pieces root, for hash requests.
    pub(crate) roots: HashMap<[u8; 32], usize>,
    inner: Mutex<Inner>,
    /// Length of `completed_log`, so peer tasks wake when a piece completes.
    pub(crate) have_version: watch::Sender<usize>,
    status: watch::Sender<State>,
    pub(crate) download_limit: RateLimiter,
    pub(crate) upload_limit: RateLimiter,
    pub(crate) downloaded: AtomicU64,
    pub(crate) uploaded: AtomicU64,
    pub(crate) shutdown: watch::Sender<bool>,
    dial_wake: tokio::sync::Notify,
    completed_wake: tokio::sync::Notify,
    /// Signalled whenever a piece's verification ends (either way).
    verify_done: tokio::sync::Notify,
    next_key: AtomicU64,
    resume_path: PathBuf,
    /// Only seeding: advertised as `upload_only` in the extension handshake.
    pub(crate) seed_only: bool,
    /// The torrent's policy extension (Speed), if any.
    pub(crate) extension: Option<Arc<dyn crate::ext::Extension>>,
    /// Asks the housekeeping task for a rechoke before the next round (the extension saw a
    /// change that matters, such as a new eligible bid).
    pub(crate) rechoke_wake: Arc<tokio::sync::Notify>,
    /// Held while a resume record is written.
    resume_writer: Mutex<()>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Our handshake for this torrent.
    pub(crate) fn handshake(&self) -> Handshake {
        Handshake::new(self.info_hash, self.session.peer_id).with_v2(self.info.version.has_v2())
    }

    /// Whether peers are exchanged with PEX (on in the session, and the torrent is not private).
    pub(crate) fn pex_enabled(&self) -> bool {
        self.session.config.pex && !self.info.private
    }

    pub(crate) fn next_key(&self) -> PeerKey {
        self.next_key.fetch_add(1, Relaxed)
    }

    fn set_state(&self, s: State) {
        self.lock().state = s.clone();
        self.status.send_replace(s);
    }

    /// Queues peer addresses to dial.
    pub(crate) fn add_candidates(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let own = self.session.listen_port;
        let mut inner = self.lock();
        for a in addrs {
            let is_self = a.port() == own && (a.ip().is_loopback() || a.ip().is_unspecified());
            if is_self || inner.banned_addrs.contains(&a) || inner.candidates.contains(&a) {
                continue;
            }
            if inner.peers.values().any(|p| p.addr == a) || inner.dialing.contains(&a) {
                continue;
            }
            inner.candidates.push_back(a);
        }
        drop(inner);
        self.dial_wake.notify_one();
    }

    /// Verifies and stores a complete piece. Runs on a blocking thread.
    ///
    /// `from` names the sender of each block. A failed piece sent by one peer bans that peer; a failed
    /// piece with several senders is remembered block by block, and once the piece verifies (it is
    /// re-downloaded from a single peer) the senders of blocks that differ from the good data are banned.
    pub(crate) fn verify_piece(
        self: &Arc<Self>,
        index: u32,
        data: crate::storage::PieceBuf,
        from: Vec<PeerKey>,
    ) {
        self.check_and_store(index, data, from);
        self.verify_done.notify_waiters();
    }

    fn check_and_store(
        self: &Arc<Self>,
        index: u32,
        data: crate::storage::PieceBuf,
        from: Vec<PeerKey>,
    ) {
        let ok = self.hashes.piece_ok(index, &data);
        if let Some(ext) = &self.extension {
            let sources = block_sources(&from, data.len() as u64);
            if ok {
                ext.piece_verified(index, &sources);
            } else {
                ext.piece_failed(index, &sources);
            }
        }
        if ok {
            if let Err(e) = self.storage.write_piece(index, &data) {
                tracing::error!("{e}");
                self.lock().picker.piece_failed(index);
                self.fail(format!("{e}"));
                return;
            }
        }
        // Per-block SHA-256, the BEP 52 leaf hash: for v2 torrents exactly the Merkle leaves.
        let block_hashes = |data: &[u8]| -> Vec<[u8; 32]> {
            data.chunks(wire::BLOCK_SIZE as usize)
                .map(metainfo::merkle::leaf_hash)
                .collect()
        };
        let mut inner = self.lock();
        if ok {
            inner.picker.piece_verified(index);
            inner.pieces_downloaded += 1;
            inner.completed_log.push(index);
            inner.resume_dirty = true;
            if let Some(suspects) = inner.suspects.remove(&index) {
                let good = block_hashes(&data);
                for (suspect, good) in suspects.iter().zip(&good) {
                    if let Some((who, hash)) = suspect {
                        if hash != good {
                            self.ban(&mut inner, *who);
                        }
                    }
                }
            }
            inner.picker.recycle(data);
            let n = inner.completed_log.len();
            let complete = inner.picker.is_complete();
            drop(inner);
            self.have_version.send_replace(n);
            if complete {
                tracing::info!("download complete");
                self.completed_wake.notify_one();
            }
            return;
        }
        inner.picker.piece_failed(index);
        inner.hash_failures += 1;
        let senders: Vec<Option<Suspect>> = from
            .iter()
            .map(|k| {
                inner.peers.get(k).map(|p| Suspect {
                    peer_id: p.peer_id,
                    addr: p.addr,
                })
            })
            .collect();
        let mut distinct: Vec<PeerKey> = from.iter().copied().filter(|&k| k != 0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        tracing::warn!(
            piece = index,
            senders = distinct.len(),
            "piece failed its hash check"
        );
        if let [only] = distinct[..] {
            match senders.iter().flatten().next() {
                Some(who) => self.ban(&mut inner, *who),
                None => {
                    inner.bad_sources.insert(only);
                }
            }
        } else {
            let hashes = block_hashes(&data);
            let record: Vec<BlockRecord> = senders
                .into_iter()
                .zip(hashes)
                .map(|(s, h)| s.map(|s| (s, h)))
                .collect();
            if record.iter().any(Option::is_some) {
                inner.suspects.insert(index, record);
                if let Some(request) = self.block_hash_request(index) {
                    // v2: the leaf hashes from any peer, checked against the piece layer, say
                    // which blocks were bad without waiting for a clean re-download.
                    for p in inner.peers.values() {
                        let _ = p.cmd.send(PeerCmd::BlockHashes {
                            piece: index,
                            request,
                        });
                    }
                }
            }
        }
        inner.picker.recycle(data);
    }

    /// The BEP 52 request for every leaf hash of v2 piece `index` (`None` for v1 torrents).
    fn block_hash_request(&self, index: u32) -> Option<wire::HashRequest> {
        let p = self.info.v2_piece(index)?;
        let file = &self.info.files[p.file];
        let pieces_root = file.pieces_root?;
        let per_piece = self.info.blocks_per_piece();
        let length = if file.length <= u64::from(self.info.piece_length) {
            // A one-piece file's tree is its leaves padded to a power of two.
            (metainfo::merkle::block_count(file.length) as u32)
                .next_power_of_two()
                .max(2)
        } else {
            per_piece
        };
        Some(wire::HashRequest {
            pieces_root,
            base_layer: 0,
            index: p.piece_in_file * per_piece,
            length,
            proof_layers: 0,
        })
    }

    /// Leaf hashes for piece `index` arrived from a peer: if they are the piece's true leaves,
    /// the senders of the blocks of its failed copy that differ are banned.
    pub(crate) fn on_block_hashes(&self, index: u32, leaves: &[[u8; 32]]) -> bool {
        if !self.hashes.leaves_ok(index, leaves) {
            return false;
        }
        let mut inner = self.lock();
        let Some(suspects) = inner.suspects.remove(&index) else {
            return true;
        };
        for (i, s) in suspects.iter().enumerate() {
            if let Some((who, hash)) = s {
                if leaves.get(i) != Some(hash) {
                    tracing::warn!(piece = index, block = i, "merkle check pins a bad block");
                    self.ban(&mut inner, *who);
                }
            }
        }
        true
    }

    /// The `hashes` answer to a peer's BEP 52 request, or `None` to reject it: piece-layer
    /// requests come from the torrent's piece layers, block-level ones from a piece we have.
    pub(crate) fn answer_hash_request(&self, req: &wire::HashRequest) -> Option<Vec<[u8; 32]>> {
        use metainfo::merkle::{self, MerkleTree};
        let &file = self.roots.get(&req.pieces_root)?;
        let info = &self.info;
        let f = &info.files[file];
        let mreq = merkle::HashRequest {
            base_layer: req.base_layer,
            index: req.index,
            length: req.length,
            proof_layers: req.proof_layers,
        };
        let piece_height = merkle::piece_height(info.piece_length);
        let layer = self.hashes.layer(&req.pieces_root);
        if let (Some(layer), true) = (layer, req.base_layer >= piece_height) {
            return MerkleTree::from_piece_layer(layer, info.piece_length)
                .hashes(&mreq)
                .ok();
        }
        // Below the piece layer: the hashes must lie in one piece we have.
        let first_leaf = u64::from(req.index) << req.base_layer.min(63);
        let piece_in_file = u32::try_from(first_leaf >> piece_height).ok()?;
        let piece = u32::try_from(f.offset / u64::from(info.piece_length)).ok()? + piece_in_file;
        let p = info.v2_piece(piece).filter(|p| p.file == file)?;
        if !self.lock().picker.have().get(piece) {
            return None;
        }
        let mut data = vec![0u8; p.real_len as usize];
        self.storage.read(piece, 0, &mut data).ok()?;
        let leaves = merkle::leaf_hashes(&data);
        match layer {
            Some(layer) => merkle::hashes_within_piece(
                &leaves,
                piece_in_file,
                &MerkleTree::from_piece_layer(layer, info.piece_length),
                &mreq,
            )
            .ok(),
            None if f.length <= u64::from(info.piece_length) => {
                MerkleTree::from_leaves(&leaves).hashes(&mreq).ok()
            }
            None => None,
        }
    }

    fn ban(&self, inner: &mut Inner, who: Suspect) {
        if inner.banned_ids.insert(who.peer_id) {
            tracing::warn!(addr = %who.addr, "banning peer for sending corrupt data");
            inner.banned_addrs.insert(who.addr);
            let client = String::from_utf8_lossy(&who.peer_id[..8]).into_owned();
            inner.banned_list.push(format!("{} {client}", who.addr));
        }
        for p in inner.peers.values().filter(|p| p.peer_id == who.peer_id) {
            let _ = p.cmd.send(PeerCmd::Disconnect);
        }
    }

    fn fail(&self, msg: String) {
        self.set_state(State::Failed(msg));
        self.shutdown.send_replace(true);
    }

    /// Writes the resume record.
    ///
    /// With `sync`, the data files are flushed first, so every piece verified so far becomes durable;
    /// without, the record vouches only for pieces an earlier sync made durable (the rest are found
    /// by hashing on the next start). Completion and shutdown never wait for a flush of the whole
    /// download this way; the periodic record does the flushing in the background.
    fn save_resume(&self, sync: bool) {
        // One writer at a time: two saves (completion and stop) would share the temp file, and
        // one could rename the other's half-written record into place.
        let _writing = self.resume_writer.lock().unwrap_or_else(|e| e.into_inner());
        let (pieces, dirty) = {
            let mut inner = self.lock();
            let dirty = std::mem::take(&mut inner.resume_dirty);
            (inner.picker.have().clone(), dirty)
        };
        if sync && dirty {
            if let Err(e) = self.storage.sync_all() {
                tracing::warn!("cannot sync data before writing resume record: {e}");
                self.lock().resume_dirty = true;
                return;
            }
            self.lock().durable = pieces;
        }
        let durable = {
            let inner = self.lock();
            if inner.recorded.as_ref() == Some(&inner.durable) {
                return;
            }
            inner.durable.clone()
        };
        let files = resume::file_stamps(&self.storage.data_paths()).unwrap_or_default();
        let data = ResumeData {
            info_hash: self.info_hash,
            pieces: durable.clone(),
            files,
        };
        match resume::save(&self.resume_path, &data) {
            Ok(()) => self.lock().recorded = Some(durable),
            Err(e) => tracing::warn!(
                "cannot write resume record {}: {e}",
                self.resume_path.display()
            ),
        }
    }
}

/// Control handle for a torrent in a session.
#[derive(Clone)]
pub struct TorrentHandle {
    shared: Arc<Shared>,
}

impl TorrentHandle {
    /// The torrent's info-hash.
    pub fn info_hash(&self) -> [u8; 20] {
        self.shared.info_hash
    }

    /// A snapshot of progress and counters.
    pub fn stats(&self) -> Stats {
        let inner = self.shared.lock();
        Stats {
            state: inner.state.clone(),
            pieces_total: self.shared.info.num_pieces(),
            pieces_have: inner.picker.have().count_ones(),
            pieces_resumed: inner.pieces_resumed,
            pieces_downloaded: inner.pieces_downloaded,
            bytes_downloaded: self.shared.downloaded.load(Relaxed),
            bytes_uploaded: self.shared.uploaded.load(Relaxed),
            bytes_left: inner.picker.bytes_left(),
            total_length: self.shared.info.total_length,
            download_rate_bytes_per_s: inner.rates.0,
            upload_rate_bytes_per_s: inner.rates.1,
            peers: inner.peers.len(),
            peers_utp: inner
                .peers
                .values()
                .filter(|p| p.transport == crate::Transport::Utp)
                .count(),
            hash_failures: inner.hash_failures,
            banned_peers: inner.banned_list.clone(),
        }
    }

    /// The connected peers, in no particular order.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let inner = self.shared.lock();
        inner
            .peers
            .values()
            .map(|p| PeerInfo {
                addr: p.addr,
                peer_id: p.peer_id,
                transport: p.transport,
                interested: p.interested,
                unchoked: p.unchoked,
                is_seed: p.is_seed,
                downloaded: p.counters.down.load(Relaxed),
                uploaded: p.counters.up.load(Relaxed),
                download_rate_bytes_per_s: p.counters.down_rate.load(Relaxed),
                upload_rate_bytes_per_s: p.counters.up_rate.load(Relaxed),
            })
            .collect()
    }

    /// The torrent's own (download, upload) limits in bytes per second, 0 = none.
    pub fn rate_limits(&self) -> (u64, u64) {
        (
            self.shared.download_limit.rate(),
            self.shared.upload_limit.rate(),
        )
    }

    /// Changes the torrent's own limits at once (bytes per second, 0 = none); the session's
    /// global limits still apply on top.
    pub fn set_rate_limits(&self, download_bytes_per_s: u64, upload_bytes_per_s: u64) {
        self.shared.download_limit.set_rate(download_bytes_per_s);
        self.shared.upload_limit.set_rate(upload_bytes_per_s);
    }

    /// The pieces verified now.
    pub fn have(&self) -> wire::Bitfield {
        self.shared.lock().picker.have().clone()
    }

    /// Waits until every piece is verified, or returns the error that stopped the torrent.
    pub async fn wait_complete(&self) -> Result<(), Error> {
        let mut rx = self.shared.status.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                State::Seeding => return Ok(()),
                State::Failed(e) => return Err(Error::Stopped(e.clone())),
                State::Stopped => return Err(Error::Stopped("stopped on request".into())),
                _ => {}
            }
            if rx.changed().await.is_err() {
                return Err(Error::Stopped("session ended".into()));
            }
        }
    }

    /// Waits until the torrent stops (error or [`TorrentHandle::stop`]).
    pub async fn wait_stopped(&self) -> State {
        let mut rx = self.shared.status.subscribe();
        loop {
            let s = rx.borrow_and_update().clone();
            if matches!(s, State::Failed(_) | State::Stopped) {
                return s;
            }
            if rx.changed().await.is_err() {
                return State::Stopped;
            }
        }
    }

    /// Stops the torrent: disconnects peers, announces `stopped`, writes the resume record.
    pub async fn stop(&self) {
        let s = self.shared.clone();
        if !matches!(s.lock().state, State::Failed(_)) {
            s.set_state(State::Stopped);
        }
        s.shutdown.send_replace(true);
        // Pieces already being hashed finish (and reach the disk) before the record is written,
        // so nothing is written behind a stopped torrent's back.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let settled = s.verify_done.notified();
            if s.lock().picker.verifying_count() == 0 || Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout_at(deadline, settled).await;
        }
        let _ = tokio::task::spawn_blocking(move || s.save_resume(false)).await;
    }

    /// A hybrid torrent's truncated v2 info-hash (peers may use either).
    pub fn alt_info_hash(&self) -> Option<[u8; 20]> {
        self.shared.alt_info_hash
    }

    /// Whether the torrent is private (BEP 27): peers come only from its trackers.
    pub fn is_private(&self) -> bool {
        self.shared.info.private
    }

    /// Dials `addr` (in addition to tracker peers).
    pub fn add_peer(&self, addr: SocketAddr) {
        self.shared.add_candidates([addr]);
    }

    /// Hands over an accepted connection whose handshake named this torrent (ours is already sent).
    pub(crate) fn incoming(&self, stream: PeerStream, addr: SocketAddr, hs: Handshake) {
        let shared = self.shared.clone();
        if !admit(&shared, &addr, &hs) {
            return;
        }
        tokio::spawn(async move {
            crate::peer::run(shared.clone(), stream, addr, hs, false).await;
            shared.session.release_connection();
        });
    }
}

/// Checks limits and bans for a new connection and takes a global slot.
fn admit(shared: &Arc<Shared>, addr: &SocketAddr, hs: &Handshake) -> bool {
    if hs.peer_id == shared.session.peer_id {
        return false;
    }
    let inner = shared.lock();
    if inner.is_banned(addr, &hs.peer_id)
        || inner.peers.len() >= shared.session.config.max_connections_per_torrent
        || inner.peers.values().any(|p| p.peer_id == hs.peer_id)
        || matches!(inner.state, State::Stopped | State::Failed(_))
    {
        return false;
    }
    drop(inner);
    shared.session.try_connection()
}

/// Payload bytes per sender of a piece of `len` bytes whose blocks came from `from` (one entry
/// per block; key 0 is no peer), in first-seen order.
fn block_sources(from: &[PeerKey], len: u64) -> Vec<(PeerKey, u64)> {
    let block = u64::from(wire::BLOCK_SIZE);
    let mut sources: Vec<(PeerKey, u64)> = Vec::new();
    for (i, &key) in from.iter().enumerate() {
        let bytes = len.saturating_sub(i as u64 * block).min(block);
        if key == 0 || bytes == 0 {
            continue;
        }
        match sources.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += bytes,
            None => sources.push((key, bytes)),
        }
    }
    sources
}

/// Registers a peer whose handshake completed; returns its key and command receiver.
pub(crate) fn register_peer(
    shared: &Shared,
    addr: SocketAddr,
    listen_addr: Option<SocketAddr>,
    transport: crate::Transport,
    peer_id: [u8; 20],
    counters: Arc<PeerCounters>,
) -> Option<(PeerKey, mpsc::UnboundedReceiver<PeerCmd>)> {
    let mut inner = shared.lock();
    if inner.peers.values().any(|p| p.peer_id == peer_id) || inner.is_banned(&addr, &peer_id) {
        return None;
    }
    let key = shared.next_key();
    let (tx, rx) = mpsc::unbounded_channel();
    inner.peers.insert(
        key,
        PeerEntry {
            addr,
            listen_addr,
            transport,
            peer_id,
            cmd: tx,
            interested: false,
            unchoked: false,
            is_seed: false,
            counters,
            connected_at: Instant::now(),
            last: (0, 0),
        },
    );
    Some((key, rx))
}

/// Checks existing data, then starts the torrent's tasks.
pub(crate) async fn start(
    session: Arc<SessionShared>,
    add: AddTorrent,
) -> Result<TorrentHandle, Error> {
    let torrent = add.torrent;
    let tiers = torrent.trackers();
    let info = Arc::new(torrent.info);
    let info_hash = torrent.info_hash.0;
    let info_bytes = Arc::new(torrent.info_bytes);
    let hashes = Arc::new(PieceHashes::new(info.clone(), torrent.piece_layers));
    let alt_info_hash = match (torrent.info_hashes.v1, torrent.info_hashes.v2) {
        (Some(_), Some(v2)) => Some(v2.truncated()),
        _ => None,
    };
    let storage = Arc::new(Storage::new(info.clone(), &add.dir, !add.seed_only));
    let resume_path = resume::path_for(&session.config.data_dir.join("resume"), &info_hash);

    let have = {
        let (info, storage, resume_path) = (info.clone(), storage.clone(), resume_path.clone());
        let hashes = hashes.clone();
        let seed_only = add.seed_only;
        tokio::task::spawn_blocking(move || {
            check_existing(&info, &storage, &hashes, &resume_path, info_hash, seed_only)
        })
        .await
        .map_err(|e| Error::Stopped(format!("checking task failed: {e}")))??
    };
    let pieces_resumed = have.count_ones();
    if add.seed_only && !have.all() {
        return Err(Error::IncompleteData {
            dir: add.dir.display().to_string(),
            have: pieces_resumed,
            total: info.num_pieces(),
        });
    }
    let complete = have.all();
    let have_at_start = have.clone();
    let mut picker = Picker::new(info.piece_length, info.total_length, have, rand::random());
    if info.version.has_v2() {
        for i in 0..info.num_pieces() {
            if let Some(p) = info.v2_piece(i) {
                picker.set_real_len(i, p.real_len);
            }
        }
    }
    let state = if complete {
        State::Seeding
    } else {
        State::Downloading
    };
    let (shutdown, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        download_limit: RateLimiter::new(add.download_rate_limit),
        upload_limit: RateLimiter::new(add.upload_rate_limit),
        session,
        info_hash,
        alt_info_hash,
        info_bytes,
        roots: info
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.pieces_root.map(|r| (r, i)))
            .collect(),
        info,
        storage,
        hashes,
        inner: Mutex::new(Inner {
            picker,
            peers: HashMap::new(),
            completed_log: Vec::new(),
            banned_ids: HashSet::new(),
            banned_addrs: HashSet::new(),
            banned_list: Vec::new(),
            bad_sources: HashSet::new(),
            suspects: HashMap::new(),
            candidates: VecDeque::new(),
            dialing: HashSet::new(),
            redial: HashMap::new(),
            seeds: HashSet::new(),
            pieces_resumed,
            pieces_downloaded: 0,
            hash_failures: 0,
            choker: Choker::default(),
            rng: SmallRng::from_entropy(),
            resume_dirty: false,
            durable: have_at_start,
            recorded: None,
            rates: (0, 0),
            last_totals: (0, 0),
            state: state.clone(),
        }),
        have_version: watch::channel(0).0,
        status: watch::channel(state).0,
        downloaded: AtomicU64::new(0),
        uploaded: AtomicU64::new(0),
        shutdown,
        dial_wake: tokio::sync::Notify::new(),
        completed_wake: tokio::sync::Notify::new(),
        verify_done: tokio::sync::Notify::new(),
        next_key: AtomicU64::new(1),
        resume_path,
        seed_only: add.seed_only,
        extension: add.extension,
        rechoke_wake: Arc::new(tokio::sync::Notify::new()),
        resume_writer: Mutex::new(()),
    });
    {
        let s = shared.clone();
        tokio::task::spawn_blocking(move || s.save_resume(false));
    }
    tokio::spawn(housekeeping(shared.clone()));
    tokio::spawn(dialer(shared.clone()));
    // A hybrid is announced under both info-hashes, so v2-only peers find it too (BEP 52).
    if let Some(alt) = shared.alt_info_hash {
        tokio::spawn(announcer(shared.clone(), alt, tiers.clone()));
    }
    tokio::spawn(announcer(shared.clone(), shared.info_hash, tiers));
    tokio::spawn(crate::discovery::dht_announcer(shared.clone()));
    for url in add.web_seeds {
        match crate::webseed::WebSeed::new(&url) {
            Ok(ws) => {
                tokio::spawn(web_seeder(shared.clone(), ws));
            }
            Err(e) => tracing::warn!(%url, "web seed ignored: {e}"),
        }
    }
    shared.add_candidates(add.peers);
    Ok(TorrentHandle { shared })
}

/// Finds which pieces are already on disk: trusts a valid resume record, hashes the rest where files
/// already existed. Creates missing files (sparse, full length) unless only seeding.
fn check_existing(
    info: &Info,
    storage: &Storage,
    hashes: &PieceHashes,
    resume_path: &std::path::Path,
    info_hash: [u8; 20],
    seed_only: bool,
) -> Result<Bitfield, Error> {
    let n = info.num_pieces();
    let before = storage.file_lengths();
    let stamps: Option<Vec<(u64, i64)>> = before
        .iter()
        .zip(&info.files)
        .map(|(l, f)| l.filter(|&l| l == f.length).map(|l| (l, 0)))
        .collect();
    let mut have = Bitfield::new(n);
    if let (Some(record), Some(_)) = (resume::load(resume_path, n), stamps) {
        if let Some(now) = resume::file_stamps(&storage.data_paths()) {
            if let Some(trusted) = record.trusted_pieces(&info_hash, &now) {
                have = trusted.clone();
            }
        }
    }
    // Pieces worth hashing: not vouched for, and entirely inside files that existed before we ran.
    let to_check: Vec<u32> = (0..n)
        .filter(|&i| !have.get(i))
        .filter(|&i| {
            info.piece_spans(i, 0, info.piece_size(i))
                .all(|s| before[s.file].is_some_and(|len| len >= s.file_offset + u64::from(s.len)))
        })
        .collect();
    if !to_check.is_empty() {
        tracing::info!(pieces = to_check.len(), "checking existing data");
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(4);
        let found: Vec<u32> = std::thread::scope(|s| {
            let chunks: Vec<&[u32]> = to_check.chunks(to_check.len().div_ceil(threads)).collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    s.spawn(move || {
                        let mut buf = Vec::new();
                        chunk
                            .iter()
                            .copied()
                            .filter(|&i| storage.check_piece(i, &mut buf, hashes))
                            .collect::<Vec<u32>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for i in found {
            have.set(i, true);
        }
    }
    if !seed_only {
        storage.allocate()?;
    }
    Ok(have)
}

/// Rates, rechoking, resume records, seed/seed disconnects, completion.
async fn housekeeping(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    let mut last_resume = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.completed_wake.notified() => {
                on_complete(&shared).await;
                continue;
            }
            _ = shared.rechoke_wake.notified() => {
                rechoke(&shared);
                continue;
            }
            _ = shutdown.changed() => break,
        }
        ticks += 1;
        update_rates(&shared);
        if ticks % RECHOKE_INTERVAL.as_secs() == 1 {
            rechoke(&shared);
        }
        if last_resume.elapsed() >= RESUME_INTERVAL {
            last_resume = Instant::now();
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || s.save_resume(true)).await;
        }
        let due: Vec<SocketAddr> = {
            let mut inner = shared.lock();
            let now = Instant::now();
            let mut due = Vec::new();
            for (addr, (_, at)) in inner.redial.iter_mut() {
                if at.is_some_and(|t| t <= now) {
                    *at = None;
                    due.push(*addr);
                }
            }
            due
        };
        shared.add_candidates(due);
        shared.dial_wake.notify_one();
    }
    // Final disconnect of every peer.
    for p in shared.lock().peers.values() {
        let _ = p.cmd.send(PeerCmd::Disconnect);
    }
}

async fn on_complete(shared: &Arc<Shared>) {
    if !matches!(shared.lock().state, State::Downloading) {
        return;
    }
    shared.set_state(State::Seeding);
    // Flush and record in the background: completion does not wait for the disk.
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.save_resume(true));
    // Seeds have nothing to trade with other seeds.
    for p in shared.lock().peers.values().filter(|p| p.is_seed) {
        let _ = p.cmd.send(PeerCmd::Disconnect);
    }
}

fn update_rates(shared: &Shared) {
    let mut inner = shared.lock();
    for p in inner.peers.values_mut() {
        let d = p.counters.down.load(Relaxed);
        let u = p.counters.up.load(Relaxed);
        let (ld, lu) = p.last;
        // Exponential average over roughly five seconds.
        let avg = |old: u64, new: u64| (old * 4 + new) / 5;
        p.counters
            .down_rate
            .store(avg(p.counters.down_rate.load(Relaxed), d - ld), Relaxed);
        p.counters
            .up_rate
            .store(avg(p.counters.up_rate.load(Relaxed), u - lu), Relaxed);
        p.last = (d, u);
    }
    let (d, u) = (
        shared.downloaded.load(Relaxed),
        shared.uploaded.load(Relaxed),
    );
    let (ld, lu) = inner.last_totals;
    inner.rates = (
        (inner.rates.0 + 2 * (d - ld)) / 3,
        (inner.rates.1 + 2 * (u - lu)) / 3,
    );
    inner.last_totals = (d, u);
}

fn rechoke(shared: &Shared) {
    let candidates = |inner: &Inner| -> Vec<Candidate> {
        inner
            .peers
            .iter()
            .map(|(&key, p)| Candidate {
                key,
                interested: p.interested,
                down_rate_bytes_per_s: p.counters.down_rate.load(Relaxed),
                up_rate_bytes_per_s: p.counters.up_rate.load(Relaxed),
                snubbed: p.counters.snubbed.load(Relaxed),
                connected_for: p.connected_at.elapsed(),
            })
            .collect()
    };
    let slots = shared.session.config.upload_slots;
    if let Some(ext) = &shared.extension {
        let (peers, seeding) = {
            let inner = shared.lock();
            (candidates(&inner), inner.picker.is_complete())
        };
        // The extension decides without the torrent's lock held.
        if let Some(unchoke) = ext.rechoke(&peers, slots, seeding) {
            let unchoke: HashSet<PeerKey> = unchoke.into_iter().collect();
            apply_unchoke(&mut shared.lock(), &unchoke);
            return;
        }
    }
    let mut guard = shared.lock();
    let inner = &mut *guard;
    let seeding = inner.picker.is_complete();
    let peers = candidates(inner);
    let unchoke: HashSet<PeerKey> = inner
        .choker
        .rechoke(&peers, slots, seeding, &mut inner.rng)
        .into_iter()
        .collect();
    apply_unchoke(inner, &unchoke);
}

/// Chokes and unchokes peers so that exactly `unchoke` are unchoked.
fn apply_unchoke(inner: &mut Inner, unchoke: &HashSet<PeerKey>) {
    for (key, p) in inner.peers.iter_mut() {
        let want = unchoke.contains(key);
        if want != p.unchoked {
            p.unchoked = want;
            let _ = p.cmd.send(if want {
                PeerCmd::Unchoke
            } else {
                PeerCmd::Choke
            });
        }
    }
}

/// Dials queued candidates while limits allow.
async fn dialer(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = shared.dial_wake.notified() => {}
            _ = shutdown.changed() => return,
        }
        loop {
            let addr = {
                let mut inner = shared.lock();
                let room = inner.peers.len() + inner.dialing.len()
                    < shared.session.config.max_connections_per_torrent;
                if !room || matches!(inner.state, State::Stopped | State::Failed(_)) {
                    break;
                }
                let Some(addr) = inner.candidates.pop_front() else {
                    break;
                };
                if !shared.session.try_connection() {
                    inner.candidates.push_front(addr);
                    break;
                }
                inner.dialing.insert(addr);
                addr
            };
            let shared2 = shared.clone();
            tokio::spawn(async move {
                crate::peer::dial(shared2.clone(), addr).await;
                schedule_redial(&shared2, addr);
                shared2.session.release_connection();
            });
        }
    }
}

/// Called when an outgoing connection to `addr` ends (failed or dropped): dial it again later unless
/// it is banned, the torrent stopped, it is a seed and we are complete, or it failed too often.
fn schedule_redial(shared: &Shared, addr: SocketAddr) {
    let mut inner = shared.lock();
    inner.dialing.remove(&addr);
    let useless = inner.banned_addrs.contains(&addr)
        || matches!(inner.state, State::Stopped | State::Failed(_))
        || (inner.picker.is_complete() && inner.seeds.contains(&addr));
    let attempts = inner.redial.get(&addr).map_or(0, |r| r.0);
    if useless || attempts >= MAX_REDIALS {
        inner.redial.remove(&addr);
        return;
    }
    inner.redial.insert(
        addr,
        (
            attempts + 1,
            Some(Instant::now() + REDIAL_BASE * 2u32.pow(attempts)),
        ),
    );
}

/// Downloads pieces from one web seed (BEP 19) alongside the peers: it takes blocks from the
/// picker like a peer that has every piece, fetches each piece's share as one ranged request and
/// hands the blocks over for verification. A seed that fails keeps backing off; one whose data
/// failed a hash check is dropped.
async fn web_seeder(shared: Arc<Shared>, mut ws: crate::webseed::WebSeed) {
    /// Blocks asked of a web seed at once: a few pieces' worth, so requests stay large.
    const WEB_SEED_BLOCKS: usize = 256;
    let key = shared.next_key();
    let all = Bitfield::full(shared.info.num_pieces());
    let mut shutdown = shared.shutdown.subscribe();
    let mut picks = Vec::new();
    tracing::info!(url = ws.url(), "using web seed");
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let now = std::time::Instant::now();
        if !ws.is_ready(now) {
            let wait = ws.retry_at().map_or(Duration::from_secs(1), |t| t - now);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        picks.clear();
        {
            let mut inner = shared.lock();
            if inner.bad_sources.contains(&key) {
                tracing::warn!(
                    url = ws.url(),
                    "web seed sent data that failed its hash check; dropped"
                );
                return;
            }
            if inner.picker.is_complete() {
                let st = ws.stats();
                tracing::info!(
                    url = ws.url(),
                    bytes = st.bytes_received,
                    requests = st.requests,
                    "web seed done"
                );
                return;
            }
            if inner.picker.verifying_count() < 16 {
                inner
                    .picker
                    .pick(key, &all, WEB_SEED_BLOCKS, None, &mut picks);
            }
        }
        if picks.is_empty() {
            // Everything left is in flight at peers: look again shortly.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        // Contiguous blocks of one piece become one request.
        let mut i = 0;
        while i < picks.len() {
            let first = picks[i];
            let mut len = first.length;
            let mut j = i + 1;
            while j < picks.len()
                && picks[j].index == first.index
                && picks[j].begin == first.begin + len
            {
                len += picks[j].length;
                j += 1;
            }
            let result = ws.fetch(&shared.info, first.index, first.begin, len).await;
            let mut inner = shared.lock();
            match result {
                Ok(data) => {
                    shared.downloaded.fetch_add(data.len() as u64, Relaxed);
                    for b in &picks[i..j] {
                        let at = (b.begin - first.begin) as usize;
                        let block = &data[at..at + b.length as usize];
                        if let crate::picker::BlockOutcome::Stored { complete: true, .. } =
                            inner.picker.on_block(key, b.index, b.begin, block)
                        {
                            if let Some((buf, from)) = inner.picker.take_complete(b.index) {
                                let s = shared.clone();
                                let index = b.index;
                                tokio::task::spawn_blocking(move || {
                                    s.verify_piece(index, buf, from)
                                });
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(
                        url = ws.url(),
                        failures = ws.consecutive_failures(),
                        "web seed request failed: {e}"
                    );
                    for b in &picks[i..] {
                        inner.picker.release(key, *b);
                    }
                    if e.is_permanent() {
                        tracing::warn!(url = ws.url(), "web seed dropped: {e}");
                        return;
                    }
                    break;
                }
            }
            drop(inner);
            i = j;
        }
    }
}

/// Announces `info_hash` (the torrent's, or a hybrid's other one) to the torrent's trackers
/// (BEP 12 tiers) until stopped.
async fn announcer(shared: Arc<Shared>, info_hash: [u8; 20], tiers: Vec<Vec<String>>) {
    use tracker::{AnnounceRequest, Event, TierList};
    if tiers.iter().all(|t| t.is_empty()) {
        return;
    }
    let mut list = TierList::new(tiers, &mut SmallRng::from_entropy());
    let client = tracker::Client::new(shared.session.config.tracker.clone());
    let key: u32 = rand::random();
    let mut event = Event::Started;
    let mut tracker_id: Option<String> = None;
    let mut shutdown = shared.shutdown.subscribe();
    let mut status = shared.status.subscribe();
    let mut failures: u32 = 0;
    let mut announced_complete = shared.lock().picker.is_complete();
    loop {
        let req = |event: Event, tracker_id: Option<String>| AnnounceRequest {
            info_hash,
            peer_id: shared.session.peer_id,
            port: shared.session.listen_port,
            uploaded: shared.uploaded.load(Relaxed),
            downloaded: shared.downloaded.load(Relaxed),
            left: shared.lock().picker.bytes_left(),
            event,
            num_want: Some(200),
            key,
            tracker_id,
        };
        let Some(url) = list.current().map(str::to_owned) else {
            return;
        };
        let request = req(event, tracker_id.clone());
        let result =
            match tokio::time::timeout(ANNOUNCE_TIMEOUT, client.announce(&url, &request)).await {
                Ok(r) => r,
                Err(_) => Err(tracker::Error::HttpTimeout(ANNOUNCE_TIMEOUT)),
            };
        let wait = match result {
            Ok(resp) => {
                list.report_success();
                failures = 0;
                if let Some(w) = &resp.warning {
                    tracing::warn!(tracker = %url, "tracker warning: {w}");
                }
                tracing::info!(tracker = %url, peers = resp.peers.len(), "announced");
                if resp.tracker_id.is_some() {
                    tracker_id = resp.tracker_id.clone();
                }
                event = Event::None;
                shared.add_candidates(resp.peers);
                resp.interval
                    .max(resp.min_interval.unwrap_or_default())
                    .clamp(Duration::from_secs(5), Duration::from_secs(3600))
            }
            Err(e) => {
                tracing::warn!(tracker = %url, "announce failed: {e}");
                list.report_failure();
                failures += 1;
                // Back off only after a whole pass over the trackers failed.
                let all = list.all().count() as u32;
                if !failures.is_multiple_of(all.max(1)) {
                    continue;
                }
                Duration::from_secs(5 * 2u64.pow((failures / all.max(1)).min(6)))
            }
        };
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.changed() => {
                    let stop = req(Event::Stopped, tracker_id.clone());
                    let _ = tokio::time::timeout(Duration::from_secs(5), client.announce(&url, &stop)).await;
                    return;
                }
                r = status.changed() => {
                    if r.is_err() { return; }
                    if !announced_complete && *status.borrow() == State::Seeding {
                        announced_complete = true;
                        event = Event::Completed;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::block_sources;

    #[test]
    fn block_sources_count_bytes_per_sender() {
        // A 40,000-byte piece: blocks of 16,384, 16,384 and 7,232 bytes.
        assert_eq!(
            block_sources(&[5, 9, 5], 40_000),
            vec![(5, 16_384 + 7_232), (9, 16_384)]
        );
        // Key 0 (padding, or no peer) is left out.
        assert_eq!(block_sources(&[0, 9], 32_768), vec![(9, 16_384)]);
        assert_eq!(block_sources(&[], 0), vec![]);
    }
}
