//! One peer connection: a reader task that drives the protocol and a writer task that sends.
//!
//! The reader owns the protocol state of the connection (choke/interest flags, the peer's pieces, our
//! outstanding requests) and never waits on the writer: outgoing control messages and accepted upload
//! requests go into an [`Outbox`] that the writer drains. Splitting the directions keeps two peers that
//! upload to each other from deadlocking on full socket buffers. Blocks we upload are read from disk
//! on the writer, in batches, so one `write` carries many blocks.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use wire::{Bitfield, BlockRef, ExtendedHandshake, FrameDecoder, Handshake, Message, BLOCK_SIZE};

use crate::ext::{SharedPeerExt, EXTENSION_ID};
use crate::picker::{BlockOutcome, PeerKey};
use crate::session::{SessionShared, CLIENT_VERSION};
use crate::torrent::{register_peer, PeerCmd, PeerCounters, Shared};
use crate::transport::{BoxWrite, PeerStream};

/// Requests we accept from a peer before rejecting more (advertised as `reqq`).
const MAX_INCOMING_REQUESTS: usize = 2000;
/// Requests we keep in flight to one peer, whatever its rate.
const MIN_QUEUE: usize = 32;
/// Upper bound on requests in flight to one peer.
const MAX_QUEUE: usize = 1000;
/// Seconds of requested-but-undelivered data we aim to keep in flight.
const QUEUE_SECONDS: u64 = 2;
/// A peer that delivers nothing for this long while we wait is snubbed.
const SNUB_AFTER: Duration = Duration::from_secs(60);
/// Silence after which a connection is dropped (BEP 3 keep-alives come every two minutes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
/// How often we send a keep-alive.
const KEEPALIVE: Duration = Duration::from_secs(90);
/// Pieces offered as allowed-fast (BEP 6) to a peer we choke.
const ALLOWED_FAST: usize = 10;
/// Largest request we serve.
const MAX_REQUEST_LEN: u32 = 128 * 1024;
/// Complete pieces waiting for their hash check (and write) before peers stop requesting more.
const MAX_VERIFYING: usize = 16;
/// Bytes of blocks the writer reads and sends in one batch.
const UPLOAD_BATCH_BYTES: usize = 256 * 1024;
/// Our extended-message id for `ut_pex` (BEP 11); peers send PEX to us under it.
pub(crate) const UT_PEX_ID: u8 = 1;
/// Our extended-message id for `ut_metadata` (BEP 9).
pub(crate) const UT_METADATA_ID: u8 = 3;
/// How often we send a peer a PEX message, and the shortest gap we accept between theirs
/// (BEP 11: at most once a minute).
const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// Peers named in one PEX message, each for added and dropped (BEP 11: 50).
const PEX_MAX_PEERS: usize = 50;

/// Connects to `addr`, handshakes and runs the connection.
pub(crate) async fn dial(shared: Arc<Shared>, addr: SocketAddr) {
    let ours = shared.handshake();
    match connect(&shared.session, addr, ours, shared.alt_info_hash).await {
        Ok((stream, hs)) => run(shared, stream, addr, hs, true).await,
        Err(e) => tracing::debug!(%addr, "{e}"),
    }
}

/// Opens a connection to `addr` and exchanges handshakes. Fails unless the peer answers for the
/// same info-hash (or, for a hybrid torrent, `alt`: BEP 52 lets a v2-capable peer upgrade the
/// connection by answering with the truncated v2 hash) and is not ourselves.
pub(crate) async fn connect(
    session: &SessionShared,
    addr: SocketAddr,
    ours: Handshake,
    alt: Option<[u8; 20]>,
) -> Result<(PeerStream, Handshake), String> {
    let mut stream = open(session, addr).await?;
    let theirs = async {
        stream.wr.write_all(&ours.encode()).await?;
        let mut buf = [0u8; wire::HANDSHAKE_LEN];
        stream.rd.read_exact(&mut buf).await?;
        Handshake::decode(&buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    };
    let hs = match tokio::time::timeout(Duration::from_secs(30), theirs).await {
        Ok(Ok(hs)) => hs,
        Ok(Err(e)) => return Err(format!("handshake failed: {e}")),
        Err(_) => return Err("handshake timed out".into()),
    };
    if hs.info_hash != ours.info_hash && Some(hs.info_hash) != alt {
        return Err("peer answered for another torrent".into());
    }
    if hs.peer_id == session.peer_id {
        return Err("connected to ourselves".into());
    }
    Ok((stream, hs))
}

/// How long uTP has the connection to itself before TCP is tried alongside it.
const UTP_HEAD_START: Duration = Duration::from_millis(500);

/// Opens a transport to `addr`: uTP first when the session has it (as libtorrent prefers it),
/// with TCP started alongside once uTP has had [`UTP_HEAD_START`] without an answer; the first
/// to connect wins. A peer that answered only over TCP is dialled over TCP from then on.
async fn open(session: &SessionShared, addr: SocketAddr) -> Result<PeerStream, String> {
    let tcp = || async move {
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => Ok(PeerStream::tcp(s)),
            Ok(Err(e)) => Err(format!("connect failed: {e}")),
            Err(_) => Err("connect timed out".to_string()),
        }
    };
    let Some(utp) = &session.utp else {
        return tcp().await;
    };
    let utp_connect = utp.connect(addr);
    tokio::pin!(utp_connect);
    tokio::select! {
        r = &mut utp_connect => return match r {
            Some(s) => Ok(s),
            None => tcp().await,
        },
        _ = tokio::time::sleep(UTP_HEAD_START) => {}
    }
    let tcp_connect = tcp();
    tokio::pin!(tcp_connect);
    tokio::select! {
        r = &mut utp_connect => match r {
            Some(s) => Ok(s),
            None => tcp_connect.await,
        },
        r = &mut tcp_connect => {
            if r.is_ok() {
                utp.prefer_tcp(addr);
            }
            r
        }
    }
}

/// Outgoing data shared between the reader and the writer.
pub(crate) struct Outbox {
    inner: Mutex<OutInner>,
    wake: Notify,
}

#[derive(Default)]
struct OutInner {
    ctrl: Vec<u8>,
    uploads: VecDeque<BlockRef>,
    /// The extension held the upload queue back (a buyer's credit is used up); cleared by
    /// [`Outbox::resume`].
    held: bool,
    /// This connection's upload weight relative to an equal share (100), set by the extension;
    /// 0 until set, which means 100.
    share_pct: u32,
    closed: bool,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(OutInner::default()),
            wake: Notify::new(),
        }
    }

    /// Takes the encoded control messages not yet written.
    pub(crate) fn take_ctrl(&self) -> Vec<u8> {
        std::mem::take(&mut self.lock().ctrl)
    }

    pub(crate) fn is_held(&self) -> bool {
        self.lock().held
    }

    pub(crate) fn set_share(&self, pct: u32) {
        self.lock().share_pct = pct;
    }

    pub(crate) fn share(&self) -> u32 {
        match self.lock().share_pct {
            0 => 100,
            pct => pct,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn send(&self, m: &Message<'_>) {
        m.encode(&mut self.lock().ctrl);
        self.wake.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Lets the writer serve the upload queue again after the extension held it back.
    pub(crate) fn resume(&self) {
        let mut o = self.lock();
        if o.held {
            o.held = false;
            drop(o);
            self.wake.notify_one();
        }
    }
}

/// Reader-side state of one connection.
struct Conn {
    shared: Arc<Shared>,
    key: PeerKey,
    addr: SocketAddr,
    out: Arc<Outbox>,
    counters: Arc<PeerCounters>,
    fast: bool,
    peer_bits: Bitfield,
    am_interested: bool,
    am_choking: bool,
    peer_choking: bool,
    peer_interested: bool,
    outstanding: VecDeque<BlockRef>,
    peer_reqq: usize,
    allowed_fast_in: Vec<u32>,
    allowed_fast_out: Vec<u32>,
    have_cursor: usize,
    last_recv: Instant,
    last_block: Instant,
    last_keepalive: Instant,
    picks: Vec<BlockRef>,
    /// The peer's extended-message ids for the extensions we use.
    their_ut_metadata: Option<u8>,
    their_ut_pex: Option<u8>,
    /// PEX state: when we last sent and received one, and the peers we last told about.
    pex_sent_at: Option<Instant>,
    pex_received_at: Option<Instant>,
    pex_told: std::collections::HashSet<SocketAddr>,
    /// The peer speaks BitTorrent v2 (BEP 52 handshake bit).
    v2: bool,
    /// Our outstanding BEP 52 hash requests, with the piece each is for.
    hash_requests: Vec<(u32, wire::HashRequest)>,
    /// The torrent's extension on this connection, and the id the peer receives it on (0: none).
    ext: Option<(SharedPeerExt, Arc<AtomicU8>)>,
}

/// Runs a connection whose handshakes are done.
///
/// `outgoing` says we dialled `addr`, so it is where the peer accepts connections (what PEX
/// passes on); for an incoming connection that is learnt from the peer's extended handshake.
pub(crate) async fn run(
    shared: Arc<Shared>,
    stream: PeerStream,
    addr: SocketAddr,
    hs: Handshake,
    outgoing: bool,
) {
    let counters = Arc::new(PeerCounters::default());
    let listen_addr = outgoing.then_some(addr);
    let Some((key, mut cmds)) = register_peer(
        &shared,
        addr,
        listen_addr,
        stream.transport,
        hs.peer_id,
        counters.clone(),
    ) else {
        return;
    };
    tracing::debug!(%addr, client = %String::from_utf8_lossy(&hs.peer_id[..8]),
        transport = %stream.transport, "peer connected");
    let PeerStream { mut rd, wr, .. } = stream;
    let out = Arc::new(Outbox::new());
    let ext = shared.extension.as_ref().and_then(|ext| {
        let cmd = shared.lock().peers.get(&key)?.cmd.clone();
        let their_id = Arc::new(AtomicU8::new(0));
        let link = crate::ext::PeerLink {
            out: out.clone(),
            cmd,
            their_id: their_id.clone(),
            rechoke: shared.rechoke_wake.clone(),
        };
        Some((
            Arc::new(Mutex::new(ext.clone().connect(key, link))),
            their_id,
        ))
    });
    let writer = tokio::spawn(write_loop(
        shared.clone(),
        wr,
        out.clone(),
        counters.clone(),
        Serving {
            ext: ext.as_ref().map(|(e, _)| e.clone()),
        },
    ));
    let n = shared.info.num_pieces();
    let now = Instant::now();
    let mut conn = Conn {
        shared: shared.clone(),
        key,
        addr,
        out: out.clone(),
        counters,
        fast: hs.supports_fast(),
        peer_bits: Bitfield::new(n),
        am_interested: false,
        am_choking: true,
        peer_choking: true,
        peer_interested: false,
        outstanding: VecDeque::new(),
        peer_reqq: 250,
        allowed_fast_in: Vec::new(),
        allowed_fast_out: Vec::new(),
        have_cursor: 0,
        last_recv: now,
        last_block: now,
        last_keepalive: now,
        picks: Vec::new(),
        their_ut_metadata: None,
        their_ut_pex: None,
        pex_sent_at: None,
        pex_received_at: None,
        pex_told: std::collections::HashSet::new(),
        // The handshake bit marks v2 support on a hybrid; a v2-only torrent implies it.
        v2: hs.supports_v2() || !shared.info.version.has_v1(),
        hash_requests: Vec::new(),
        ext,
    };
    conn.greet(&hs);

    let max_frame = (n as usize).div_ceil(8).max(MAX_REQUEST_LEN as usize) + 16;
    let mut dec = FrameDecoder::new(max_frame);
    let mut have_rx = shared.have_version.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let result: Result<(), String> = loop {
        tokio::select! {
            r = rd.read(dec.spare()) => {
                let n = match r {
                    Ok(0) => break Err("closed by peer".into()),
                    Ok(n) => n,
                    Err(e) => break Err(e.to_string()),
                };
                dec.advance(n);
                conn.last_recv = Instant::now();
                if let Err(e) = conn.drain(&mut dec) {
                    break Err(e);
                }
                // Download limits apply after the fact: the next read waits for the budget.
                if !shared.download_limit.is_unlimited() {
                    shared.download_limit.acquire(n).await;
                }
                if !shared.session.download_limit.is_unlimited() {
                    shared.session.download_limit.acquire(n).await;
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(PeerCmd::Disconnect) | None => break Err("disconnected by us".into()),
                Some(cmd) => conn.command(cmd),
            },
            r = have_rx.changed() => {
                if r.is_err() { break Err("torrent ended".into()); }
                if let Err(e) = conn.send_haves() { break Err(e); }
            }
            _ = shutdown.changed() => break Err("torrent stopped".into()),
            _ = tick.tick() => {
                if let Err(e) = conn.on_tick() { break Err(e); }
            }
        }
        conn.fill_requests();
    };
    if let Err(reason) = result {
        tracing::debug!(%addr, "peer disconnected: {reason}");
    }
    conn.cleanup();
    out.close();
    let _ = writer.await;
}

impl Conn {
    fn greet(&mut self, hs: &Handshake) {
        if hs.supports_extensions() {
            let mut ext = ExtendedHandshake {
                v: Some(CLIENT_VERSION.to_owned()),
                p: Some(self.shared.session.listen_port),
                reqq: Some(MAX_INCOMING_REQUESTS as u32),
                yourip: Some(match self.addr.ip() {
                    IpAddr::V4(ip) => ip.octets().to_vec(),
                    IpAddr::V6(ip) => ip.octets().to_vec(),
                }),
                upload_only: self.shared.seed_only,
                metadata_size: Some(self.shared.info_bytes.len() as u64),
                ..Default::default()
            };
            ext.m.insert("ut_metadata".into(), UT_METADATA_ID);
            if self.shared.pex_enabled() {
                ext.m.insert("ut_pex".into(), UT_PEX_ID);
            }
            if let (Some(x), Some((peer_ext, _))) = (&self.shared.extension, &self.ext) {
                if let Some(entry) = crate::ext::lock(peer_ext).handshake_entry() {
                    ext.m.insert(x.name().into(), EXTENSION_ID);
                    ext.extra.insert(x.name().into(), entry);
                }
            }
            self.out.send(&Message::Extended {
                id: 0,
                payload: &ext.encode(),
            });
        }
        let inner = self.shared.lock();
        let have = inner.picker.have();
        self.have_cursor = inner.completed_log.len();
        if self.fast && have.all() {
            self.out.send(&Message::HaveAll);
        } else if self.fast && have.count_ones() == 0 {
            self.out.send(&Message::HaveNone);
        } else if have.count_ones() > 0 {
            self.out.send(&Message::Bitfield(have.as_bytes()));
        }
        if self.fast {
            if let IpAddr::V4(ip) = self.addr.ip() {
                let set =
                    wire::allowed_fast_set(ip, &self.shared.info_hash, have.len(), ALLOWED_FAST);
                for i in set.into_iter().filter(|&i| have.get(i)) {
                    self.out.send(&Message::AllowedFast(i));
                    self.allowed_fast_out.push(i);
                }
            }
        }
    }

    /// Handles every complete message in the buffer.
    fn drain(&mut self, dec: &mut FrameDecoder) -> Result<(), String> {
        while let Some(msg) = dec.next().map_err(|e| e.to_string())? {
            self.handle(msg)?;
        }
        Ok(())
    }

    fn handle(&mut self, msg: Message<'_>) -> Result<(), String> {
        let n = self.peer_bits.len();
        match msg {
            Message::Unknown { id, payload } => self.on_hash_message(id, payload),
            Message::KeepAlive | Message::Port(_) | Message::Suggest(_) => {}
            Message::Choke => {
                self.peer_choking = true;
                // Without the fast extension a choke drops every pending request; with it, the peer
                // should reject them, but we re-issue them elsewhere rather than wait.
                let keep: Vec<u32> = self.allowed_fast_in.clone();
                let mut inner = self.shared.lock();
                self.outstanding.retain(|b| {
                    let kept = keep.contains(&b.index);
                    if !kept {
                        inner.picker.release(self.key, *b);
                    }
                    kept
                });
            }
            Message::Unchoke => self.peer_choking = false,
            Message::Interested => {
                self.peer_interested = true;
                let slots = self.shared.session.config.upload_slots;
                let mut inner = self.shared.lock();
                let unchoke_now = inner.unchoked_count() < slots;
                if let Some(p) = inner.peers.get_mut(&self.key) {
                    p.interested = true;
                    if unchoke_now && !p.unchoked {
                        p.unchoked = true;
                        drop(inner);
                        self.set_choking(false);
                    }
                }
            }
            Message::NotInterested => {
                self.peer_interested = false;
                if let Some(p) = self.shared.lock().peers.get_mut(&self.key) {
                    p.interested = false;
                }
            }
            Message::Have(i) => {
                if i >= n {
                    return Err(format!("have for piece {i} of {n}"));
                }
                if !self.peer_bits.get(i) {
                    self.peer_bits.set(i, true);
                    let wanted = {
                        let mut inner = self.shared.lock();
                        inner.picker.add_have(i);
                        !inner.picker.have().get(i)
                    };
                    if wanted {
                        self.set_interested(true);
                    }
                    self.note_seed();
                }
            }
            Message::Bitfield(bytes) => {
                let bits = Bitfield::from_bytes(bytes, n).map_err(|e| e.to_string())?;
                self.replace_bits(bits);
            }
            Message::HaveAll => self.replace_bits(Bitfield::full(n)),
            Message::HaveNone => self.replace_bits(Bitfield::new(n)),
            Message::Request(b) => self.on_request(b),
            Message::Cancel(b) => self.out.lock().uploads.retain(|u| *u != b),
            Message::Reject(b) => {
                if let Some(pos) = self.outstanding.iter().position(|o| *o == b) {
                    self.outstanding.remove(pos);
                    self.shared.lock().picker.release(self.key, b);
                }
            }
            Message::AllowedFast(i) => {
                if i < n && !self.allowed_fast_in.contains(&i) && self.allowed_fast_in.len() < 64 {
                    self.allowed_fast_in.push(i);
                }
            }
            Message::Piece { index, begin, data } => self.on_piece(index, begin, data),
            Message::Extended { id, payload } => self.on_extended(id, payload),
        }
        Ok(())
    }

    fn on_extended(&mut self, id: u8, payload: &[u8]) {
        match id {
            0 => {
                let Ok(ext) = ExtendedHandshake::decode(payload) else {
                    return;
                };
                if let Some(q) = ext.reqq {
                    self.peer_reqq = (q as usize).clamp(1, MAX_QUEUE);
                }
                let nonzero = |name: &str| ext.m.get(name).copied().filter(|&i| i != 0);
                self.their_ut_metadata = nonzero("ut_metadata");
                self.their_ut_pex = nonzero("ut_pex");
                if let Some(port) = ext.p.filter(|&p| p != 0) {
                    let listen = SocketAddr::new(self.addr.ip(), port);
                    if let Some(p) = self.shared.lock().peers.get_mut(&self.key) {
                        p.listen_addr = Some(listen);
                    }
                }
                if let (Some(x), Some((peer_ext, their_id))) = (&self.shared.extension, &self.ext) {
                    let id = ext.extension_id(x.name());
                    their_id.store(id.unwrap_or(0), Relaxed);
                    crate::ext::lock(peer_ext).on_handshake(payload, id);
                }
            }
            EXTENSION_ID if self.ext.is_some() => {
                if let Some((peer_ext, _)) = &self.ext {
                    crate::ext::lock(peer_ext).on_message(payload);
                }
            }
            UT_METADATA_ID => {
                let (Some(their_id), Ok(wire::MetadataMessage::Request { piece })) = (
                    self.their_ut_metadata,
                    wire::MetadataMessage::decode(payload),
                ) else {
                    return;
                };
                let mut answer = Vec::new();
                wire::MetadataMessage::answer(&self.shared.info_bytes, piece).encode(&mut answer);
                self.out.send(&Message::Extended {
                    id: their_id,
                    payload: &answer,
                });
            }
            UT_PEX_ID if self.shared.pex_enabled() => {
                let now = Instant::now();
                // A peer that floods PEX is ignored until a minute has passed.
                if self
                    .pex_received_at
                    .is_some_and(|t| now.duration_since(t) < PEX_INTERVAL / 2)
                {
                    return;
                }
                self.pex_received_at = Some(now);
                if let Ok(pex) = wire::PexMessage::decode(payload) {
                    let found: Vec<SocketAddr> = pex
                        .added
                        .iter()
                        .take(PEX_MAX_PEERS)
                        .map(|p| p.addr)
                        .filter(|a| a.port() != 0)
                        .collect();
                    if !found.is_empty() {
                        tracing::debug!(peers = found.len(), from = %self.addr, "peers from pex");
                        self.shared.add_candidates(found);
                    }
                }
            }
            _ => {}
        }
    }

    /// BEP 52 hash messages (ids 21-23): answers requests, takes the leaf hashes we asked for.
    fn on_hash_message(&mut self, id: u8, payload: &[u8]) {
        let Some(Ok(msg)) = wire::HashMessage::decode(id, payload) else {
            return;
        };
        match msg {
            wire::HashMessage::Request(req) => {
                let answer = tokio::task::block_in_place(|| self.shared.answer_hash_request(&req));
                let mut o = self.out.lock();
                match answer {
                    Some(hashes) => {
                        let flat: Vec<u8> = hashes.concat();
                        wire::HashMessage::Hashes {
                            request: req,
                            hashes: &flat,
                        }
                        .encode(&mut o.ctrl);
                    }
                    None => wire::HashMessage::Reject(req).encode(&mut o.ctrl),
                }
                drop(o);
                self.out.wake.notify_one();
            }
            wire::HashMessage::Hashes { request, hashes } => {
                let Some(pos) = self.hash_requests.iter().position(|(_, r)| *r == request) else {
                    return;
                };
                let (piece, _) = self.hash_requests.swap_remove(pos);
                let leaves: Vec<[u8; 32]> = hashes
                    .chunks_exact(32)
                    .take(request.length as usize)
                    .filter_map(|c| c.try_into().ok())
                    .collect();
                if !self.shared.on_block_hashes(piece, &leaves) {
                    tracing::debug!(addr = %self.addr, piece, "peer sent leaf hashes that do not verify");
                }
            }
            wire::HashMessage::Reject(request) => {
                self.hash_requests.retain(|(_, r)| *r != request);
            }
        }
    }

    /// Sends the peer a PEX message with the connectable peers added and dropped since the last
    /// one, at most once per [`PEX_INTERVAL`].
    fn send_pex(&mut self, now: Instant) {
        let Some(their_id) = self.their_ut_pex else {
            return;
        };
        if !self.shared.pex_enabled()
            || self
                .pex_sent_at
                .is_some_and(|t| now.duration_since(t) < PEX_INTERVAL)
        {
            return;
        }
        let current: std::collections::HashSet<SocketAddr> = {
            let inner = self.shared.lock();
            inner
                .peers
                .iter()
                .filter(|(k, _)| **k != self.key)
                .filter_map(|(_, p)| p.listen_addr)
                .collect()
        };
        let added: Vec<wire::PexPeer> = current
            .difference(&self.pex_told)
            .take(PEX_MAX_PEERS)
            .map(|&addr| wire::PexPeer {
                addr,
                flags: wire::PEX_REACHABLE,
            })
            .collect();
        let dropped: Vec<SocketAddr> = self
            .pex_told
            .difference(&current)
            .take(PEX_MAX_PEERS)
            .copied()
            .collect();
        if added.is_empty() && dropped.is_empty() && self.pex_sent_at.is_some() {
            return;
        }
        self.pex_sent_at = Some(now);
        for p in &added {
            self.pex_told.insert(p.addr);
        }
        for a in &dropped {
            self.pex_told.remove(a);
        }
        let mut payload = Vec::new();
        wire::PexMessage { added, dropped }.encode(&mut payload);
        self.out.send(&Message::Extended {
            id: their_id,
            payload: &payload,
        });
    }

    fn replace_bits(&mut self, bits: Bitfield) {
        let mut inner = self.shared.lock();
        inner.picker.remove_peer_pieces(&self.peer_bits);
        inner.picker.add_peer_pieces(&bits);
        let interesting = inner.picker.is_interesting(&bits);
        drop(inner);
        self.peer_bits = bits;
        self.set_interested(interesting);
        self.note_seed();
    }

    fn note_seed(&mut self) {
        if !self.peer_bits.all() {
            return;
        }
        let mut inner = self.shared.lock();
        let we_are_seed = inner.picker.is_complete();
        if let Some(p) = inner.peers.get_mut(&self.key) {
            p.is_seed = true;
            if we_are_seed {
                let _ = p.cmd.send(PeerCmd::Disconnect);
            }
        }
    }

    fn set_interested(&mut self, v: bool) {
        if v != self.am_interested {
            self.am_interested = v;
            self.out.send(if v {
                &Message::Interested
            } else {
                &Message::NotInterested
            });
        }
    }

    fn set_choking(&mut self, v: bool) {
        if v == self.am_choking {
            return;
        }
        self.am_choking = v;
        if v {
            let dropped: Vec<BlockRef> = {
                let mut o = self.out.lock();
                let allowed = &self.allowed_fast_out;
                let (keep, drop): (VecDeque<BlockRef>, VecDeque<BlockRef>) = o
                    .uploads
                    .drain(..)
                    .partition(|b| allowed.contains(&b.index));
                o.uploads = keep;
                drop.into_iter().collect()
            };
            self.out.send(&Message::Choke);
            if self.fast {
                for b in dropped {
                    self.out.send(&Message::Reject(b));
                }
            }
        } else {
            self.out.send(&Message::Unchoke);
            // A fresh unchoke asks the extension again rather than keep an old hold.
            self.out.resume();
        }
    }

    fn on_request(&mut self, b: BlockRef) {
        let valid = {
            let inner = self.shared.lock();
            b.index < self.peer_bits.len()
                && inner.picker.have().get(b.index)
                && b.length > 0
                && b.length <= MAX_REQUEST_LEN
                && u64::from(b.begin) + u64::from(b.length)
                    <= u64::from(inner.picker.piece_size(b.index))
        };
        let permitted = !self.am_choking || self.allowed_fast_out.contains(&b.index);
        let mut o = self.out.lock();
        if valid && permitted && o.uploads.len() < MAX_INCOMING_REQUESTS {
            if !o.uploads.contains(&b) {
                o.uploads.push_back(b);
            }
            drop(o);
            self.out.wake.notify_one();
        } else if self.fast {
            Message::Reject(b).encode(&mut o.ctrl);
            drop(o);
            self.out.wake.notify_one();
        }
    }

    fn on_piece(&mut self, index: u32, begin: u32, data: &[u8]) {
        let len = data.len() as u64;
        self.counters.down.fetch_add(len, Relaxed);
        self.shared.downloaded.fetch_add(len, Relaxed);
        let block = BlockRef {
            index,
            begin,
            length: data.len() as u32,
        };
        if let Some(pos) = self.outstanding.iter().position(|o| *o == block) {
            self.outstanding.remove(pos);
        }
        self.last_block = Instant::now();
        self.counters.snubbed.store(false, Relaxed);
        let mut inner = self.shared.lock();
        match inner.picker.on_block(self.key, index, begin, data) {
            BlockOutcome::Unwanted => {}
            BlockOutcome::Stored { complete, cancel } => {
                for other in cancel {
                    if let Some(p) = inner.peers.get(&other) {
                        let _ = p.cmd.send(PeerCmd::Cancel(block));
                    }
                }
                if complete {
                    if let Some((buf, from)) = inner.picker.take_complete(index) {
                        drop(inner);
                        let shared = self.shared.clone();
                        tokio::task::spawn_blocking(move || shared.verify_piece(index, buf, from));
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: PeerCmd) {
        match cmd {
            PeerCmd::Choke | PeerCmd::Unchoke => {
                let choke = matches!(cmd, PeerCmd::Choke);
                // The rechoke's view follows, whoever asked (the choker or the extension).
                if let Some(p) = self.shared.lock().peers.get_mut(&self.key) {
                    p.unchoked = !choke;
                }
                self.set_choking(choke);
            }
            PeerCmd::Cancel(b) => {
                if let Some(pos) = self.outstanding.iter().position(|o| *o == b) {
                    self.outstanding.remove(pos);
                    self.out.send(&Message::Cancel(b));
                }
            }
            PeerCmd::BlockHashes { piece, request } => {
                if self.v2 && self.peer_bits.get(piece) && self.hash_requests.len() < 8 {
                    self.hash_requests.push((piece, request));
                    let mut o = self.out.lock();
                    wire::HashMessage::Request(request).encode(&mut o.ctrl);
                    drop(o);
                    self.out.wake.notify_one();
                }
            }
            PeerCmd::Disconnect => {}
        }
    }

    /// Sends `have` for pieces verified since the last call.
    fn send_haves(&mut self) -> Result<(), String> {
        let inner = self.shared.lock();
        let new: Vec<u32> = inner.completed_log[self.have_cursor..].to_vec();
        self.have_cursor = inner.completed_log.len();
        let complete = inner.picker.is_complete();
        let still_interesting = !complete && inner.picker.is_interesting(&self.peer_bits);
        drop(inner);
        for i in new {
            if !self.peer_bits.get(i) {
                self.out.send(&Message::Have(i));
            }
        }
        if !still_interesting {
            self.set_interested(false);
        }
        if complete && self.peer_bits.all() {
            return Err("both sides are seeds".into());
        }
        Ok(())
    }

    /// Tops up the request pipeline to a depth that covers [`QUEUE_SECONDS`] at the peer's rate.
    fn fill_requests(&mut self) {
        if !self.am_interested || (self.peer_choking && self.allowed_fast_in.is_empty()) {
            return;
        }
        let rate = self.counters.down_rate.load(Relaxed);
        let depth = ((rate * QUEUE_SECONDS) / u64::from(BLOCK_SIZE)) as usize;
        let depth = depth.clamp(MIN_QUEUE, MAX_QUEUE).min(self.peer_reqq);
        let room = depth.saturating_sub(self.outstanding.len());
        if room == 0 || (room < depth / 4 && !self.outstanding.is_empty()) {
            return;
        }
        self.picks.clear();
        let allowed = self.peer_choking.then_some(&self.allowed_fast_in[..]);
        let mut inner = self.shared.lock();
        if inner.picker.verifying_count() >= MAX_VERIFYING {
            // Hashing or the disk is behind: stop fetching until they catch up (bounds memory).
            return;
        }
        inner
            .picker
            .pick(self.key, &self.peer_bits, room, allowed, &mut self.picks);
        let nothing_left = self.picks.is_empty()
            && self.outstanding.is_empty()
            && !inner.picker.is_interesting(&self.peer_bits);
        drop(inner);
        if !self.picks.is_empty() {
            let mut o = self.out.lock();
            for b in &self.picks {
                Message::Request(*b).encode(&mut o.ctrl);
            }
            drop(o);
            self.out.wake.notify_one();
            self.outstanding.extend(self.picks.iter().copied());
        }
        if nothing_left {
            self.set_interested(false);
        }
    }

    fn on_tick(&mut self) -> Result<(), String> {
        let now = Instant::now();
        if now.duration_since(self.last_recv) > IDLE_TIMEOUT {
            return Err("idle".into());
        }
        self.send_pex(now);
        if now.duration_since(self.last_keepalive) > KEEPALIVE {
            self.last_keepalive = now;
            self.out.send(&Message::KeepAlive);
        }
        if !self.outstanding.is_empty() && now.duration_since(self.last_block) > SNUB_AFTER {
            // Snubbed: give its requests to other peers.
            self.counters.snubbed.store(true, Relaxed);
            let mut inner = self.shared.lock();
            for b in self.outstanding.drain(..) {
                inner.picker.release(self.key, b);
            }
            self.last_block = now;
        }
        Ok(())
    }

    fn cleanup(&mut self) {
        if let Some((peer_ext, _)) = &self.ext {
            crate::ext::lock(peer_ext).on_close();
        }
        let mut inner = self.shared.lock();
        inner.picker.remove_peer_pieces(&self.peer_bits);
        for b in self.outstanding.drain(..) {
            inner.picker.release(self.key, b);
        }
        if self.peer_bits.all() {
            inner.seeds.insert(self.addr);
        }
        inner.peers.remove(&self.key);
    }
}

/// Bytes a writer takes from its queue per turn at the rate limiters, for an upload weight of
/// `share_pct` (100 = an equal share, 0 = unset). Writers that are all backlogged take turns at
/// the limiter, so their throughput follows their batch sizes: weighted sharing that is
/// work-conserving, since a writer with nothing queued takes no turn.
fn upload_batch(share_pct: u32) -> usize {
    let pct = if share_pct == 0 { 100 } else { share_pct } as usize;
    (UPLOAD_BATCH_BYTES * pct / 100).clamp(BLOCK_SIZE as usize, 4 * UPLOAD_BATCH_BYTES)
}

/// What the writer checks before serving a block.
struct Serving {
    /// The extension, asked before each block (a seller's credit rule).
    ext: Option<SharedPeerExt>,
}

async fn write_loop(
    shared: Arc<Shared>,
    mut wr: BoxWrite,
    out: Arc<Outbox>,
    counters: Arc<PeerCounters>,
    serving: Serving,
) {
    let mut ctrl = Vec::new();
    let mut batch: Vec<u8> = Vec::new();
    loop {
        let mut blocks: Vec<BlockRef> = Vec::new();
        let closed = {
            let mut o = out.lock();
            std::mem::swap(&mut ctrl, &mut o.ctrl);
            let mut bytes = 0usize;
            let batch = upload_batch(o.share_pct);
            while bytes < batch && !o.held {
                let Some(b) = o.uploads.pop_front() else {
                    break;
                };
                bytes += b.length as usize;
                blocks.push(b);
            }
            o.closed
        };
        if closed {
            let _ = wr.write_all(&ctrl).await;
            let _ = wr.shutdown().await;
            return;
        }
        if ctrl.is_empty() && blocks.is_empty() {
            out.wake.notified().await;
            continue;
        }
        if !ctrl.is_empty() {
            if wr.write_all(&ctrl).await.is_err() {
                return out.close();
            }
            ctrl.clear();
        }
        if let Some(ext) = &serving.ext {
            // Asked without the outbox lock: the extension may send messages of its own. The
            // first block it refuses and those after it go back to the queue, which waits for
            // `resume` (a payment); a choke meanwhile rejects them as usual.
            let served = blocks
                .iter()
                .position(|b| !crate::ext::lock(ext).on_serve(b.length))
                .unwrap_or(blocks.len());
            if served < blocks.len() {
                let mut o = out.lock();
                for b in blocks.drain(served..).rev() {
                    o.uploads.push_front(b);
                }
                o.held = true;
            }
        }
        if blocks.is_empty() {
            continue;
        }
        let total: usize = blocks.iter().map(|b| b.length as usize).sum();
        shared.upload_limit.acquire(total).await;
        shared.session.upload_limit.acquire(total).await;
        batch.clear();
        let storage = shared.storage.clone();
        let read = tokio::task::block_in_place(|| -> Result<(), crate::storage::StorageError> {
            for b in &blocks {
                batch.extend_from_slice(&wire::piece_header(b.index, b.begin, b.length));
                let at = batch.len();
                batch.resize(at + b.length as usize, 0);
                storage.read(b.index, b.begin, &mut batch[at..])?;
            }
            Ok(())
        });
        if let Err(e) = read {
            tracing::warn!("cannot serve a block: {e}");
            return out.close();
        }
        if wr.write_all(&batch).await.is_err() {
            return out.close();
        }
        counters.up.fetch_add(total as u64, Relaxed);
        shared.uploaded.fetch_add(total as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_batches_follow_the_weight_within_bounds() {
        assert_eq!(upload_batch(0), UPLOAD_BATCH_BYTES);
        assert_eq!(upload_batch(100), UPLOAD_BATCH_BYTES);
        // A paid peer at 1.2 shares and a free peer at 0.6: 2:1 per turn.
        assert_eq!(upload_batch(120), UPLOAD_BATCH_BYTES * 6 / 5);
        assert_eq!(upload_batch(60), UPLOAD_BATCH_BYTES * 3 / 5);
        assert_eq!(upload_batch(1), BLOCK_SIZE as usize);
        assert_eq!(upload_batch(10_000), 4 * UPLOAD_BATCH_BYTES);
    }
}
