//! The production driver: commonware's tokio runtime on its own OS thread, authenticated p2p
//! over TCP among the validators, storage under [`Config::storage_dir`].

use crate::{
    block::ConsensusBlock,
    engine::{self, Channels, EngineConfig, Timeouts, CHANNELS},
    keys::{self, parse_identity},
    namespace, ChainApp, Error, Identity, NodeKey, Status, ValidatorInfo, ValidatorKeys,
};
use commonware_cryptography::{ChaCha20Poly1305, Signer as _};
use commonware_p2p::{
    authenticated::lookup, Address, AddressableManager as _, AddressableTrackedPeers,
};
use commonware_p2p::{Receiver as _, Recipients, Sender as _};
use commonware_runtime::{tokio as cw_tokio, Quota, Runner as _, Spawner as _, Supervisor as _};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{ordered::Map, NZUsize, NZU32};
use futures::{
    channel::{mpsc, oneshot},
    StreamExt as _,
};
use std::{
    net::SocketAddr, path::PathBuf, sync::mpsc as std_mpsc, sync::Arc, thread::JoinHandle,
    time::Duration,
};
use tokio::sync::watch;
use tracing::{info, warn};

/// How long [`Handle::stop`] lets tasks finish (journals sync) before the runtime is dropped.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What this node is in consensus.
#[derive(Clone, Debug)]
pub enum Role {
    /// A member of the committee: votes, proposes and signs with these keys. Its identity must
    /// be in [`Config::validators`].
    Validator(ValidatorKeys),
    /// A full node: follows the committee's votes and certificates, verifies each against the
    /// committee's BLS keys, and applies every finalized block, but never votes or proposes
    /// ([`ChainApp::build`] is never called). Its identity must not be a validator's, and the
    /// validators must list it in their [`Config::followers`] to accept its connections.
    Follower(NodeKey),
}

impl Role {
    /// The p2p identity key as `0x` hex.
    pub fn identity_hex(&self) -> String {
        match self {
            Self::Validator(keys) => keys.identity_hex(),
            Self::Follower(key) => key.identity_hex(),
        }
    }
}

/// A node's consensus configuration.
#[derive(Debug)]
pub struct Config {
    /// Chain id; the signing namespace is [`namespace`]`(chain_id)`.
    pub chain_id: u64,
    /// The committee of epoch 0, as the genesis file lists it. Later committees come from
    /// [`ChainApp::committee`].
    pub validators: Vec<ValidatorInfo>,
    /// This node's role and keys.
    pub me: Role,
    /// Address to accept connections on.
    pub listen: SocketAddr,
    /// The address book of every node that may ever be a validator: (identity as `0x` hex,
    /// address). Every genesis validator except this one needs an entry, and so does a
    /// validator of a later epoch (one without an entry cannot be dialed). In each epoch the
    /// committee members are primary peers and the other entries secondary ones. An entry for
    /// this node itself is ignored.
    pub peers: Vec<(String, SocketAddr)>,
    /// Full nodes allowed to connect: (identity as `0x` hex, address). They dial in (from the
    /// address's IP) and receive votes, certificates, blocks and gossip, and can fetch
    /// finalized blocks; they are never dialed. Identities must not be genesis validators'. A
    /// full node needs no entries (it tracks itself).
    pub followers: Vec<(String, SocketAddr)>,
    /// Directory for consensus storage (votes journal, finalized block and certificate
    /// archives), e.g. `<datadir>/consensus`; created if missing.
    pub storage_dir: PathBuf,
    /// How long to wait for a leader's block before voting to skip its view. The other
    /// consensus timeouts scale with it (certification 2×, vote rebroadcast 5×).
    pub leader_timeout_ms: u64,
    /// Largest encoded block this node builds or accepts, in bytes. Must be the same on every
    /// validator; it also bounds p2p message sizes.
    pub max_block_bytes: usize,
    /// Called (on the consensus runtime; it must return quickly) with every gossip message
    /// another node sent with [`Handle::gossip`]. `None` drops them.
    pub on_gossip: Option<GossipHandler>,
    /// Blocks per epoch (at least 2; `u64::MAX` keeps one epoch forever). Epoch `e` covers
    /// heights `[e * L, e * L + L - 1]`; the committee of epoch `e + 1` is
    /// [`ChainApp::committee`]`(e + 1)`, asked once the last block of `e` is applied. Must be
    /// the same on every node.
    pub epoch_length: u64,
    /// Test networks only: also send a conflicting notarize vote with each of ours, so the
    /// other validators see (and report) equivocation. Never set this on a real validator:
    /// equivocation is slashable.
    pub equivocate: bool,
}

/// Receives the application's gossip (transactions, for instance) from other validators.
#[derive(Clone)]
pub struct GossipHandler(pub Arc<dyn Fn(Vec<u8>) + Send + Sync>);

impl std::fmt::Debug for GossipHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipHandler")
    }
}

/// Sends application gossip to the connected peers; see [`Handle::gossip`].
#[derive(Clone, Debug)]
pub struct Gossiper(mpsc::UnboundedSender<Vec<u8>>);

impl Gossiper {
    /// Like [`Handle::gossip`]; does nothing once consensus has stopped.
    pub fn gossip(&self, message: Vec<u8>) {
        let _ = self.0.unbounded_send(message);
    }
}

/// p2p channel for application gossip; outside the engine's channels.
const CHANNEL_GOSSIP: u64 = 5;

/// A running consensus engine. Dropping it stops the engine like [`Handle::stop`].
pub struct Handle {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    status: watch::Receiver<Status>,
    gossip: mpsc::UnboundedSender<Vec<u8>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// The latest progress.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A receiver that is notified whenever a block is applied or the finalized tip moves.
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Sends `message` to every peer that is connected now: the other validators, and on a
    /// validator also the full nodes that dialed in (best effort: nothing is queued for peers
    /// that are offline). It must fit the p2p message limit, which is at
    /// least [`Config::max_block_bytes`].
    pub fn gossip(&self, message: Vec<u8>) {
        let _ = self.gossip.unbounded_send(message);
    }

    /// A cloneable sender for [`Handle::gossip`], for tasks that outlive a borrow of the handle.
    pub fn gossiper(&self) -> Gossiper {
        Gossiper(self.gossip.clone())
    }

    /// Stops the engine and waits for its thread to exit. Blocks that were applied but not
    /// yet recorded by marshal are delivered again on the next start.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("consensus thread panicked while stopping");
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the runtime thread reports once the engine is up (or failed to start).
type Ready = Result<(), Error>;

/// Starts consensus for this node (a validator, or a full node following the validators) on
/// its own OS thread and returns once its storage is open and its network is listening.
pub fn start<A: ChainApp>(cfg: Config, app: A) -> Result<Handle, Error> {
    let namespace = namespace(cfg.chain_id);
    let committee = keys::committee(&cfg.validators, &namespace)?;
    if cfg.epoch_length < 2 {
        return Err(Error::EpochLength(cfg.epoch_length));
    }
    let (signer, validator_keys) = match &cfg.me {
        Role::Validator(keys) => (keys.identity().clone(), Some(keys.clone())),
        Role::Follower(key) => (key.identity().clone(), None),
    };
    let me = signer.public_key();

    // The address book: any identity that may ever be a validator.
    let mut book: Vec<(Identity, SocketAddr)> = Vec::with_capacity(cfg.peers.len());
    for (identity, addr) in &cfg.peers {
        let key = parse_identity(identity).map_err(|source| Error::Peer {
            identity: identity.clone(),
            source,
        })?;
        if key != me && !book.iter().any(|(k, _)| *k == key) {
            book.push((key, *addr));
        }
    }
    match &cfg.me {
        Role::Validator(keys) => {
            // A validator outside the genesis committee joins later, which needs the others to
            // know its address; a key that is in neither list is a misconfiguration.
            if committee.get_value(&me).is_some() {
                keys::signer(keys, committee.clone(), &namespace)?;
            } else if !cfg
                .peers
                .iter()
                .any(|(id, _)| parse_identity(id).ok() == Some(me.clone()))
            {
                return Err(Error::NotAValidator(keys.identity_hex()));
            }
        }
        Role::Follower(key) => {
            keys::verifier(key, committee.clone(), &namespace)?;
        }
    }
    for identity in committee.keys().iter() {
        if *identity != me && !book.iter().any(|(k, _)| k == identity) {
            return Err(Error::MissingPeerAddress(keys::to_hex(
                &commonware_codec::Encode::encode(identity),
            )));
        }
    }
    // Followers are secondary peers: accepted when they dial in (from their address's IP) and
    // sent votes, certificates and blocks, but never dialed and never counted on for progress.
    let mut followers: Vec<(Identity, SocketAddr)> = Vec::with_capacity(cfg.followers.len());
    for (identity, addr) in &cfg.followers {
        let key = parse_identity(identity).map_err(|source| Error::Peer {
            identity: identity.clone(),
            source,
        })?;
        if committee.get_value(&key).is_some() {
            return Err(Error::FollowerIsValidator(identity.clone()));
        }
        if key != me
            && !followers.iter().any(|(k, _)| *k == key)
            && !book.iter().any(|(k, _)| *k == key)
        {
            followers.push((key, *addr));
        }
    }
    let local = book
        .iter()
        .chain(&followers)
        .all(|(_, a)| a.ip().is_loopback() || is_private(a));

    let genesis = app.genesis();
    if genesis.header.number != 0 {
        return Err(Error::Genesis(genesis.header.number));
    }
    let genesis = ConsensusBlock::new(genesis);

    // Fail early, with the address in the message, if the port is taken.
    drop(
        std::net::TcpListener::bind(cfg.listen).map_err(|source| Error::Listen {
            addr: cfg.listen,
            source,
        })?,
    );
    std::fs::create_dir_all(&cfg.storage_dir)
        .map_err(|e| Error::Storage(format!("cannot create {}: {e}", cfg.storage_dir.display())))?;

    // Messages are sized for the largest committee a later epoch may plausibly have.
    let participants = committee.len().max(engine::MAX_PARTICIPANTS);
    let max_message_bytes = engine::max_message_bytes(participants, cfg.max_block_bytes);
    let engine_cfg = EngineConfig {
        me: me.clone(),
        keys: validator_keys,
        namespace: namespace.clone(),
        genesis_committee: cfg.validators.clone(),
        epoch_length: cfg.epoch_length,
        genesis,
        partition: "consensus".to_string(),
        max_block_bytes: cfg.max_block_bytes,
        timeouts: Timeouts::from_leader_ms(cfg.leader_timeout_ms),
        equivocate: cfg.equivocate.then_some(crate::equivocate::WARM_UP),
    };
    let max_peers = book.len() + followers.len() + 1;
    let genesis_validators = committee.len();
    let listen = cfg.listen;
    let (status_tx, status_rx) = watch::channel(Status::default());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (gossip_tx, mut gossip_rx) = mpsc::unbounded::<Vec<u8>>();
    let on_gossip = cfg.on_gossip;
    let (ready_tx, ready_rx) = std_mpsc::channel::<Ready>();
    let runtime_cfg = cw_tokio::Config::new()
        .with_worker_threads(2)
        .with_storage_directory(cfg.storage_dir.clone());

    let thread =
        std::thread::Builder::new()
            .name("consensus".into())
            .spawn(move || {
                let runner = cw_tokio::Runner::new(runtime_cfg);
                runner.start(|context| async move {
                let handshake = Cups::<_, ChaCha20Poly1305>::new(
                    Sake {
                        signer,
                        synchrony_bound: Duration::from_secs(5),
                        max_handshake_age: Duration::from_secs(10),
                        version: sake::Version::V1,
                    },
                    cups::Version::V1,
                );
                let args = (
                    handshake,
                    namespace.as_slice(),
                    listen,
                    NZUsize!(max_peers),
                    max_message_bytes,
                    NZUsize!(1024),
                );
                // Validators on loopback or private addresses (devnets, tests) need private
                // addresses allowed and benefit from fast redials.
                let p2p_cfg = if local {
                    lookup::Config::local(args.0, args.1, args.2, args.3, args.4, args.5)
                } else {
                    lookup::Config::recommended(args.0, args.1, args.2, args.3, args.4, args.5)
                };
                let (mut network, oracle) = lookup::Network::new(context.child("p2p"), p2p_cfg);
                // Each epoch's peer set: its committee as primary peers (dialed), everyone else
                // in the address book and the followers as secondary ones.
                let mut tracker = oracle.clone();
                let track: engine::TrackPeers = Box::new(move |epoch, members| {
                    let address = |key: &Identity| {
                        if *key == me {
                            Some(listen)
                        } else {
                            book.iter().find(|(k, _)| k == key).map(|(_, a)| *a)
                        }
                    };
                    let mut primary = Vec::with_capacity(members.len());
                    for key in members {
                        match address(key) {
                            Some(addr) => primary.push((key.clone(), Address::from(addr))),
                            None => warn!(
                                epoch,
                                validator = %keys::to_hex(&commonware_codec::Encode::encode(key)),
                                "no address for a committee member: add it to the peer list"
                            ),
                        }
                    }
                    let secondary: Vec<_> = book
                        .iter()
                        .chain(&followers)
                        .cloned()
                        .chain(std::iter::once((me.clone(), listen)))
                        .filter(|(k, _)| !members.contains(k))
                        .map(|(k, a)| (k, Address::from(a)))
                        .collect();
                    let (Ok(primary), Ok(secondary)) = (
                        Map::<Identity, Address>::try_from(primary),
                        Map::<Identity, Address>::try_from(secondary),
                    ) else {
                        warn!(epoch, "duplicate identities in the epoch's peer set; not tracked");
                        return;
                    };
                    let _ = tracker.track(epoch, AddressableTrackedPeers::new(primary, secondary));
                });
                let quota = Quota::per_second(NZU32!(10_000));
                let [votes, certificates, resolver, blocks, backfill] =
                    CHANNELS.map(|channel| network.register(channel, quota));
                let (mut gossip_out, mut gossip_in) = network.register(CHANNEL_GOSSIP, quota);
                let _network = network.start();
                context.child("gossip_out").spawn(move |_| async move {
                    while let Some(message) = gossip_rx.next().await {
                        gossip_out.send(Recipients::All, message, false);
                    }
                });
                context.child("gossip_in").spawn(move |_| async move {
                    while let Ok((_, message)) = gossip_in.recv().await {
                        if let Some(handler) = &on_gossip {
                            (handler.0)(message.as_ref().to_vec());
                        }
                    }
                });
                let channels = Channels {
                    votes,
                    certificates,
                    resolver,
                    blocks,
                    backfill,
                };
                let started = engine::start(
                    context.child("engine"),
                    engine_cfg,
                    app,
                    status_tx,
                    oracle.clone(),
                    oracle,
                    track,
                    engine::fault_to_app(crate::evidence::encode_activity),
                    channels,
                )
                .await;
                let engine = match started {
                    Ok(engine) => engine,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                info!(%listen, genesis_validators, "consensus started");
                futures::pin_mut!(engine);
                futures::future::select(stop_rx, engine).await;
                if context.stop(0, Some(STOP_TIMEOUT)).await.is_err() {
                    warn!("consensus tasks did not stop within {STOP_TIMEOUT:?}");
                }
            });
            })
            .map_err(|e| Error::Thread(e.to_string()))?;

    let mut handle = Handle {
        stop: Some(stop_tx),
        thread: Some(thread),
        status: status_rx,
        gossip: gossip_tx,
    };
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            handle.shutdown();
            Err(e)
        }
        Err(_) => {
            handle.shutdown();
            Err(Error::Thread(
                "the consensus runtime exited while starting; see the log".into(),
            ))
        }
    }
}

/// RFC 1918 / unique-local addresses.
fn is_private(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.is_private() || ip.is_link_local(),
        std::net::IpAddr::V6(ip) => (ip.segments()[0] & 0xfe00) == 0xfc00,
    }
}
