//! Hooks for a BEP 10 extension that takes part in policy: the Speed market plugs in here.
//!
//! A torrent added with an [`Extension`] names it in every extended handshake (under
//! [`EXTENSION_ID`]) with the connection's own top-level entry, gives each connection a
//! [`PeerExtension`] with a [`PeerLink`] to talk back, asks it who to unchoke each rechoke
//! round, asks it before serving every block (a seller's credit rule), and tells it which peers
//! supplied each piece that passed or failed its hash check (a buyer pays per verified piece).
//! Peers that do not speak the extension are unaffected: the extension sees them as plain peers
//! in the rechoke.
//!
//! Callbacks run on the engine's tasks with no engine lock held. They must be quick and must not
//! block; chain I/O belongs on tasks the extension spawns, which answer through the [`PeerLink`].

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::picker::PeerKey;
use crate::torrent::PeerCmd;

/// Our extended-message id for the extension's messages (peers send them to us under it).
pub const EXTENSION_ID: u8 = 7;

/// A torrent's extension. One value per torrent, shared by all of its connections.
pub trait Extension: Send + Sync + 'static {
    /// The extension's name in the BEP 10 `m` dictionary (for example `by_speed`).
    fn name(&self) -> &'static str;

    /// A connection finished its BitTorrent handshake.
    fn connect(self: Arc<Self>, peer: PeerKey, link: PeerLink) -> Box<dyn PeerExtension>;

    /// Who is unchoked this round; `None` keeps the engine's tit-for-tat choker.
    fn rechoke(&self, peers: &[RechokePeer], slots: usize, seeding: bool) -> Option<Vec<PeerKey>>;

    /// Piece `index` passed its hash check; `sources` lists each peer that sent blocks of it with
    /// the payload bytes it sent.
    fn piece_verified(&self, index: u32, sources: &[(PeerKey, u64)]);

    /// Piece `index` failed its hash check; `sources` as for [`piece_verified`](Self::piece_verified).
    fn piece_failed(&self, index: u32, sources: &[(PeerKey, u64)]);
}

impl std::fmt::Debug for dyn Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extension({})", self.name())
    }
}

/// One connection's side of the extension.
pub trait PeerExtension: Send + 'static {
    /// The bencoded value of our top-level handshake entry under the extension's name on this
    /// connection; `None` leaves the extension out of our handshake.
    fn handshake_entry(&mut self) -> Option<Vec<u8>>;

    /// The peer's extended handshake (the whole payload) and the id it receives our extension's
    /// messages on (`None`: it does not speak the extension).
    fn on_handshake(&mut self, payload: &[u8], their_id: Option<u8>);

    /// A message the peer sent to [`EXTENSION_ID`].
    fn on_message(&mut self, payload: &[u8]);

    /// The writer is about to send the peer a block of `len` payload bytes. `true` counts it as
    /// served; `false` holds the upload queue back until [`PeerLink::resume`].
    fn on_serve(&mut self, len: u32) -> bool;

    /// The connection closed.
    fn on_close(&mut self);
}

/// What the rechoke tells the extension about one connection: the choker's own view.
pub use crate::choker::Candidate as RechokePeer;

/// The extension's handle on its connection: send extension messages, choke, unchoke, close.
/// Cheap to clone and usable from any task; does nothing once the connection has closed.
#[derive(Clone)]
pub struct PeerLink {
    pub(crate) out: Arc<crate::peer::Outbox>,
    pub(crate) cmd: mpsc::UnboundedSender<PeerCmd>,
    pub(crate) their_id: Arc<AtomicU8>,
    pub(crate) rechoke: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLink")
            .field("their_id", &self.their_id.load(Relaxed))
            .finish()
    }
}

impl PeerLink {
    /// Sends an extension message; `false` if the peer has not named the extension (or the
    /// connection is gone).
    pub fn send(&self, payload: &[u8]) -> bool {
        let id = self.their_id.load(Relaxed);
        if id == 0 || self.cmd.is_closed() {
            return false;
        }
        self.out.send(&wire::Message::Extended { id, payload });
        true
    }

    /// Chokes the peer now (until the next rechoke decides otherwise).
    pub fn choke(&self) {
        let _ = self.cmd.send(PeerCmd::Choke);
    }

    /// Unchokes the peer now.
    pub fn unchoke(&self) {
        let _ = self.cmd.send(PeerCmd::Unchoke);
    }

    /// Serves the upload queue again after [`PeerExtension::on_serve`] held it back.
    pub fn resume(&self) {
        self.out.resume();
    }

    /// Sets this connection's upload weight relative to an equal share (100): when upload is
    /// rate-limited, backlogged connections get bandwidth in proportion to their weights, and
    /// what one does not use goes to the others. Without a limit the network decides.
    pub fn set_upload_share(&self, pct: u32) {
        self.out.set_share(pct);
    }

    /// Asks for a rechoke now rather than at the next round (for example, a new eligible bid).
    pub fn rechoke_soon(&self) {
        self.rechoke.notify_one();
    }

    /// Closes the connection.
    pub fn disconnect(&self) {
        let _ = self.cmd.send(PeerCmd::Disconnect);
    }

    /// The connection is closed.
    pub fn is_closed(&self) -> bool {
        self.cmd.is_closed()
    }
}

/// What a [`PeerLink`] asked of its connection, as a [`LinkProbe`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCommand {
    /// [`PeerLink::choke`].
    Choke,
    /// [`PeerLink::unchoke`].
    Unchoke,
    /// [`PeerLink::disconnect`].
    Disconnect,
}

/// The far side of a [`detached`] link: sees what the extension sent and asked.
pub struct LinkProbe {
    out: Arc<crate::peer::Outbox>,
    cmd: mpsc::UnboundedReceiver<PeerCmd>,
    rechoke: Arc<tokio::sync::Notify>,
}

/// A link to no connection, with the probe that sees what goes through it: for testing an
/// extension without sockets. `their_id` is the id the imaginary peer gave the extension.
pub fn detached(their_id: u8) -> (PeerLink, LinkProbe) {
    let out = Arc::new(crate::peer::Outbox::new());
    let (tx, rx) = mpsc::unbounded_channel();
    let rechoke = Arc::new(tokio::sync::Notify::new());
    let link = PeerLink {
        out: out.clone(),
        cmd: tx,
        their_id: Arc::new(AtomicU8::new(their_id)),
        rechoke: rechoke.clone(),
    };
    (
        link,
        LinkProbe {
            out,
            cmd: rx,
            rechoke,
        },
    )
}

impl std::fmt::Debug for LinkProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkProbe").finish_non_exhaustive()
    }
}

impl LinkProbe {
    /// The extension payloads sent since the last call, in order.
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        let bytes = self.out.take_ctrl();
        let mut dec = wire::FrameDecoder::new(bytes.len().max(16));
        let mut sent = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let spare = dec.spare();
            let n = spare.len().min(bytes.len() - at);
            spare[..n].copy_from_slice(&bytes[at..at + n]);
            dec.advance(n);
            at += n;
            while let Ok(Some(m)) = dec.next() {
                if let wire::Message::Extended { payload, .. } = m {
                    sent.push(payload.to_vec());
                }
            }
        }
        sent
    }

    /// The commands asked since the last call, in order.
    pub fn take_commands(&mut self) -> Vec<LinkCommand> {
        let mut cmds = Vec::new();
        while let Ok(c) = self.cmd.try_recv() {
            cmds.push(match c {
                PeerCmd::Choke => LinkCommand::Choke,
                PeerCmd::Unchoke => LinkCommand::Unchoke,
                _ => LinkCommand::Disconnect,
            });
        }
        cmds
    }

    /// Whether the upload queue is held back (until [`PeerLink::resume`]).
    pub fn held(&self) -> bool {
        self.out.is_held()
    }

    /// The upload weight set with [`PeerLink::set_upload_share`] (100 if never set).
    pub fn upload_share(&self) -> u32 {
        self.out.share()
    }

    /// Whether a rechoke was asked for since the last call.
    pub fn rechoke_asked(&self) -> bool {
        let notified = self.rechoke.notified();
        tokio::pin!(notified);
        notified.as_mut().enable()
    }
}

/// A connection's extension state, shared by its reader and writer.
pub(crate) type SharedPeerExt = Arc<Mutex<Box<dyn PeerExtension>>>;

pub(crate) fn lock(ext: &SharedPeerExt) -> std::sync::MutexGuard<'_, Box<dyn PeerExtension>> {
    ext.lock().unwrap_or_else(|e| e.into_inner())
}
