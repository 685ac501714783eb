//! Wiring of one validator: the application actor, marshal (with its block relay, backfill
//! resolver and two archives), the `Inline` wrapper and simplex. Generic over the runtime
//! (tokio or deterministic) and the p2p stack (authenticated or simulated), so production and
//! the simulation run exactly this code.

use crate::{
    application::{Actor, Boundary, Mailbox},
    block::{ConsensusBlock, Digest, MaxBlockBytes},
    equivocate, keys, ChainApp, Error, Identity, Scheme, Status, ValidatorInfo, ValidatorKeys,
};
use commonware_actor::Feedback;
use commonware_broadcast::buffered;
use commonware_consensus::{
    marshal::{
        self,
        core::{Actor as MarshalActor, Mailbox as MarshalMailbox},
        resolver::p2p as marshal_resolver,
        standard::{Inline, Standard},
        Start,
    },
    simplex::{
        self,
        config::{Floor, ForwardPolicy, SkipBudget, SkipPolicy},
        elector::RoundRobin,
        types::Activity,
    },
    types::{Epoch, Epocher as _, FixedEpocher, Height, ViewDelta},
    Reporter,
};
use commonware_cryptography::{
    certificate::{Provider, Scoped, Verifier as _},
    Digested, Digestible, Sha256,
};
use commonware_p2p::{
    utils::mux::{self, Builder as _, MuxHandle, Muxer},
    Blocker, Receiver, Sender,
};
use commonware_parallel::Sequential;
use commonware_runtime::{
    buffer::paged::CacheRef, Clock, Handle, Metrics, Spawner, Storage, Supervisor,
};
use commonware_storage::archive::immutable;
use commonware_utils::{vec::NonEmptyVec, NZDuration, NZUsize, NZU16, NZU64};
use futures::{channel::mpsc, FutureExt as _, StreamExt as _};
use rand::CryptoRng;
use std::{
    collections::BTreeMap,
    num::{NonZeroU64, NonZeroUsize},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// p2p channel ids; every node must use the same ones. Simplex uses three, marshal two.
pub(crate) const CHANNEL_VOTES: u64 = 0;
pub(crate) const CHANNEL_CERTIFICATES: u64 = 1;
pub(crate) const CHANNEL_RESOLVER: u64 = 2;
pub(crate) const CHANNEL_BLOCKS: u64 = 3;
pub(crate) const CHANNEL_BACKFILL: u64 = 4;

/// Every channel id, in registration order.
pub(crate) const CHANNELS: [u64; 5] = [
    CHANNEL_VOTES,
    CHANNEL_CERTIFICATES,
    CHANNEL_RESOLVER,
    CHANNEL_BLOCKS,
    CHANNEL_BACKFILL,
];

/// How many finalized blocks may wait for the application's acknowledgement (marshal keeps
/// twice as many in memory).
const MAX_PENDING_ACKS: usize = 16;

/// Consensus timeouts, all derived from the leader timeout so one knob scales them together.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// How long to wait for the leader's proposal before voting to skip the view.
    pub(crate) leader: Duration,
    /// How long to wait for a notarized proposal to certify.
    pub(crate) certification: Duration,
    /// How often to rebroadcast votes in a stalled view.
    pub(crate) retry: Duration,
    /// How long an inactive leader keeps being skipped.
    pub(crate) skip: Duration,
}

impl Timeouts {
    pub(crate) fn from_leader_ms(leader_ms: u64) -> Self {
        let leader = Duration::from_millis(leader_ms.max(1));
        Self {
            leader,
            certification: leader * 2,
            retry: leader * 5,
            skip: leader * 10,
        }
    }
}

/// The largest committee message sizes are computed for; a larger committee still works as long
/// as its messages fit.
pub(crate) const MAX_PARTICIPANTS: usize = 128;

/// The largest p2p message a committee of `participants` sends with blocks bounded by
/// `max_block_bytes`.
pub(crate) fn max_message_bytes(participants: usize, max_block_bytes: usize) -> u32 {
    let n = u32::try_from(participants).unwrap_or(u32::MAX);
    let block_cfg = MaxBlockBytes(max_block_bytes);
    let marshal = marshal::max_payload_size::<Standard<ConsensusBlock>, Scheme>(n, &block_cfg);
    // Simplex runs on one sub-channel per epoch, which prefixes each message.
    let simplex = mux::prefixed(simplex::max_payload_size::<Scheme, Digest>(n));
    u32::try_from(marshal.max(simplex)).unwrap_or(u32::MAX)
}

/// Everything one node needs besides the runtime, the network and the application.
pub(crate) struct EngineConfig {
    /// Our identity (p2p and committee).
    pub(crate) me: Identity,
    /// Our signing keys if we are a validator: we vote in every epoch whose committee lists our
    /// identity with our BLS key, and observe the others. `None` on a full node.
    pub(crate) keys: Option<ValidatorKeys>,
    /// The signing namespace ([`crate::namespace`]).
    pub(crate) namespace: Vec<u8>,
    /// The committee of epoch 0.
    pub(crate) genesis_committee: Vec<ValidatorInfo>,
    /// Blocks per epoch (at least 2; `u64::MAX` for a single epoch).
    pub(crate) epoch_length: u64,
    /// The height-0 block.
    pub(crate) genesis: ConsensusBlock,
    /// Prefix of every storage partition (unique per node within one runtime).
    pub(crate) partition: String,
    /// Largest block accepted or built.
    pub(crate) max_block_bytes: usize,
    /// Consensus timeouts.
    pub(crate) timeouts: Timeouts,
    /// Test networks only: twin every notarize this node sends with a conflicting one
    /// ([`crate::equivocate`]), from this long after the process started (zero in the
    /// simulation, where every notarize is twinned; otherwise only rounds this node led).
    pub(crate) equivocate: Option<Duration>,
}

/// Tells the p2p layer who takes part in an epoch: called with the epoch and its committee
/// (primary peers) before that epoch's engine starts; everyone else the driver knows of is a
/// secondary peer of the epoch. Epochs arrive in increasing order.
pub(crate) type TrackPeers = Box<dyn FnMut(u64, &[Identity]) + Send>;

/// Called with every conflicting-vote activity simplex reports (before it reaches marshal), and
/// the application mailbox to hand evidence to.
pub(crate) type OnFault = Arc<dyn Fn(&Activity<Scheme, Digest>, &Mailbox) + Send + Sync>;

/// The schemes of the epochs this node knows, shared between the epoch orchestrator (which
/// registers them) and marshal (which verifies certificates with them).
#[derive(Clone, Default)]
pub(crate) struct EpochSchemes {
    schemes: Arc<Mutex<BTreeMap<Epoch, Arc<Scheme>>>>,
}

impl EpochSchemes {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Epoch, Arc<Scheme>>> {
        self.schemes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, epoch: Epoch, scheme: Scheme) {
        self.lock().insert(epoch, Arc::new(scheme));
    }

    /// Forgets every epoch below `epoch`.
    fn retain_from(&self, epoch: Epoch) {
        self.lock().retain(|e, _| *e >= epoch);
    }
}

impl Provider for EpochSchemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    // Marshal needs the full scheme object (its participant set) even on epochs where this
    // node only observes; a verify-only `Scheme` simply never signs.
    fn scoped(&self, epoch: Epoch) -> Option<Scoped<Scheme>> {
        self.lock().get(&epoch).cloned().map(Scoped::scheme)
    }
}

/// The scheme of one epoch for this node, and whether it signs in it.
struct EpochScheme {
    scheme: Scheme,
    signer: bool,
    members: Vec<Identity>,
}

/// Builds this node's scheme for a committee: a signer if the committee lists our identity with
/// our BLS key, a verifier otherwise.
fn epoch_scheme(cfg: &EngineConfig, infos: &[ValidatorInfo]) -> Result<EpochScheme, Error> {
    let committee = keys::committee(infos, &cfg.namespace)?;
    let members: Vec<Identity> = committee.keys().iter().cloned().collect();
    if committee.get_value(&cfg.me).is_some() {
        if let Some(keys) = &cfg.keys {
            match keys::signer(keys, committee.clone(), &cfg.namespace) {
                Ok(scheme) => {
                    return Ok(EpochScheme {
                        scheme,
                        signer: true,
                        members,
                    })
                }
                Err(e) => error!(%e, "cannot sign in this committee; following it without voting"),
            }
        } else {
            error!("this full node's identity is in the committee; following it without voting");
        }
    }
    Ok(EpochScheme {
        scheme: Scheme::verifier(&cfg.namespace, committee),
        signer: false,
        members,
    })
}

/// Configuration of one of marshal's immutable archives.
fn archive_config<C>(
    partition: &str,
    name: &str,
    page_cache: &CacheRef,
    codec_config: C,
) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{partition}-{name}-metadata"),
        freezer_table_partition: format!("{partition}-{name}-freezer-table"),
        freezer_table_initial_size: 64,
        freezer_table_resize_frequency: 10,
        freezer_table_resize_chunk_size: 10,
        freezer_key_partition: format!("{partition}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{partition}-{name}-freezer-value"),
        freezer_value_target_size: 1024 * 1024,
        freezer_value_compression: None,
        ordinal_partition: format!("{partition}-{name}-ordinal"),
        items_per_section: NZU64!(1024),
        codec_config,
        replay_buffer: NZUsize!(64 * 1024),
        freezer_key_write_buffer: NZUsize!(64 * 1024),
        freezer_value_write_buffer: NZUsize!(64 * 1024),
        ordinal_write_buffer: NZUsize!(64 * 1024),
    }
}

/// One duplex p2p channel.
pub(crate) type Channel<Tx, Rx> = (Tx, Rx);

/// The five channels, in [`CHANNELS`] order.
pub(crate) struct Channels<Tx, Rx> {
    pub(crate) votes: Channel<Tx, Rx>,
    pub(crate) certificates: Channel<Tx, Rx>,
    pub(crate) resolver: Channel<Tx, Rx>,
    pub(crate) blocks: Channel<Tx, Rx>,
    pub(crate) backfill: Channel<Tx, Rx>,
}

/// Starts the application actor, marshal, and simplex for the epoch of the application's next
/// height, under `context`, and returns the handle of the epoch orchestrator, which starts the
/// engine of each following epoch as its first block's parent is applied. Everything is spawned
/// under `context`: aborting the task that owns it stops the whole node.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start<E, Tx, Rx, P, B, A>(
    context: E,
    cfg: EngineConfig,
    app: A,
    status: watch::Sender<Status>,
    peers: P,
    blocker: B,
    track: TrackPeers,
    on_fault: OnFault,
    channels: Channels<Tx, Rx>,
) -> Result<Handle<()>, Error>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + Supervisor,
    Tx: Sender<PublicKey = Identity>,
    Rx: Receiver<PublicKey = Identity>,
    P: commonware_p2p::Provider<PublicKey = Identity> + Clone,
    B: Blocker<PublicKey = Identity> + Clone,
    A: ChainApp,
{
    let partition = cfg.partition.clone();
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(64));
    let mailbox_size: NonZeroUsize = NZUsize!(1024);
    let block_cfg = MaxBlockBytes(cfg.max_block_bytes);
    let epoch_length = NonZeroU64::new(cfg.epoch_length.max(2)).unwrap_or(NZU64!(u64::MAX));
    let epocher = FixedEpocher::new(epoch_length);
    let genesis_digest = cfg.genesis.digest();

    // The application actor gets its own thread on tokio (slow builds and verifies must not
    // stall consensus tasks); the deterministic runtime runs it like any other task.
    let (sender, receiver) = mpsc::unbounded();
    let (boundary_tx, boundary_rx) = mpsc::unbounded();
    // Test networks: on a real network an equivocator twins only the rounds it leads (see
    // `equivocate`); in the simulation (no warm-up) it twins every notarize.
    let led = cfg
        .equivocate
        .filter(|warm_up| !warm_up.is_zero())
        .map(|_| crate::equivocate::LedRounds::default());
    let actor = Actor::new(
        app,
        receiver,
        status,
        cfg.max_block_bytes,
        epoch_length.get(),
        boundary_tx,
        led.clone(),
    );
    context
        .child("application")
        .dedicated()
        .spawn(move |ctx| actor.run(ctx));
    let app_mailbox = Mailbox::new(sender, true);

    // Marshal fetches missing finalized blocks and certificates over the backfill channel.
    let backfill = marshal_resolver::init(
        context.child("backfill"),
        marshal_resolver::Config {
            public_key: cfg.me.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );

    // Proposers push whole blocks to the committee over the blocks channel.
    let (relay, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: cfg.me.clone(),
            mailbox_size,
            deque_size: 16,
            priority: false,
            codec_config: block_cfg,
            peer_provider: peers,
            strategy: Sequential,
        },
    );
    relay.start(channels.blocks);

    // Finalization certificates by height, and finalized blocks by height and digest.
    // Our own archives are trusted, so certificates there decode without the committee bound.
    let finalizations = immutable::Archive::init(
        context.child("finalizations"),
        archive_config(
            &partition,
            "finalizations",
            &page_cache,
            Scheme::certificate_codec_config_unbounded(),
        ),
    )
    .await
    .map_err(|e| Error::Storage(format!("finalizations archive: {e}")))?;
    let blocks = immutable::Archive::init(
        context.child("blocks"),
        archive_config(&partition, "blocks", &page_cache, block_cfg),
    )
    .await
    .map_err(|e| Error::Storage(format!("blocks archive: {e}")))?;

    // One marshal for every epoch: it verifies each height's certificate with the scheme of
    // the height's epoch, which the orchestrator registers before that epoch starts.
    let schemes = EpochSchemes::default();
    let (marshal_actor, marshal_mailbox, _floor) =
        MarshalActor::<_, Standard<ConsensusBlock>, _, _, _, _, _, _>::init(
            context.child("marshal"),
            finalizations,
            blocks,
            marshal::Config {
                provider: schemes.clone(),
                epocher: epocher.clone(),
                start: Start::Genesis(Digested::precomputed(cfg.genesis.clone(), genesis_digest)),
                partition_prefix: partition.clone(),
                mailbox_size,
                view_retention: ViewDelta::new(10),
                prunable_items_per_section: NZU64!(64),
                page_cache: page_cache.clone(),
                replay_buffer: NZUsize!(64 * 1024),
                key_write_buffer: NZUsize!(64 * 1024),
                value_write_buffer: NZUsize!(64 * 1024),
                block_codec_config: block_cfg,
                max_repair: NZUsize!(16),
                max_pending_acks: NZUsize!(MAX_PENDING_ACKS),
                strategy: Sequential,
            },
        )
        .await;
    marshal_actor.start(app_mailbox.clone(), buffer, backfill);

    // Resume in the epoch of the application's next height, from that epoch's genesis: the
    // last block of the epoch before (which marshal archived before the application applied
    // it).
    let applied = app_mailbox
        .finalized_height()
        .await
        .ok_or_else(|| Error::Thread("the application actor stopped while starting".into()))?;
    let first = epocher
        .containing(Height::new(applied.saturating_add(1)))
        .map_or(Epoch::zero(), |info| info.epoch());
    let (committee, floor) = if first == Epoch::zero() {
        (cfg.genesis_committee.clone(), genesis_digest)
    } else {
        let previous_last = epocher
            .last(first.previous().unwrap_or(Epoch::zero()))
            .unwrap_or(Height::zero());
        let Some((_, floor)) = marshal_mailbox.get_info(previous_last).await else {
            return Err(Error::Storage(format!(
                "the application has applied height {applied}, but block {previous_last} (the genesis of epoch {first}) is not in the consensus archive; restore the consensus storage with the chain data"
            )));
        };
        let committee = app_mailbox.committee(first.get()).await.flatten().ok_or(
            Error::Thread(format!(
                "the application does not know the committee of epoch {first}, the epoch of its next height"
            )),
        )?;
        (committee, floor)
    };
    let scheme = epoch_scheme(&cfg, &committee)?;

    let (vote_mux, votes, backup) = Muxer::builder(
        context.child("votes_mux"),
        channels.votes.0,
        channels.votes.1,
    )
    .with_backup()
    .build();
    vote_mux.start();
    let (certificate_mux, certificates) = Muxer::new(
        context.child("certificates_mux"),
        channels.certificates.0,
        channels.certificates.1,
    );
    certificate_mux.start();
    let (resolver_mux, resolver) = Muxer::new(
        context.child("resolver_mux"),
        channels.resolver.0,
        channels.resolver.1,
    );
    resolver_mux.start();

    let orchestrator = Orchestrator {
        cfg,
        blocker,
        track,
        on_fault,
        app: app_mailbox,
        marshal: marshal_mailbox,
        epocher,
        schemes,
        page_cache,
        votes,
        certificates,
        resolver,
        engines: BTreeMap::new(),
        retiring: BTreeMap::new(),
        current: first,
        led,
    };
    Ok(context
        .child("epochs")
        .spawn(move |ctx| orchestrator.run(ctx, scheme, floor, boundary_rx, backup)))
}

/// How many leader timeouts an epoch's engine keeps running after the next epoch started, so
/// peers that are a little behind can still collect its last certificates from it.
const LINGER_LEADER_TIMEOUTS: u32 = 10;

/// Starts one simplex engine per epoch and retires the previous one; see [`start`].
struct Orchestrator<B, Tx: Sender> {
    cfg: EngineConfig,
    blocker: B,
    track: TrackPeers,
    on_fault: OnFault,
    app: Mailbox,
    marshal: MarshalMailbox<Scheme, Standard<ConsensusBlock>>,
    epocher: FixedEpocher,
    schemes: EpochSchemes,
    page_cache: CacheRef,
    votes: MuxHandle<Tx>,
    certificates: MuxHandle<Tx>,
    resolver: MuxHandle<Tx>,
    /// The running engines by epoch.
    engines: BTreeMap<Epoch, Handle<()>>,
    /// When each superseded engine is stopped.
    retiring: BTreeMap<Epoch, SystemTime>,
    /// The newest epoch with an engine.
    current: Epoch,
    /// Test networks: the rounds this node led, for the equivocator.
    led: Option<crate::equivocate::LedRounds>,
}

impl<B, Tx> Orchestrator<B, Tx>
where
    B: Blocker<PublicKey = Identity> + Clone,
    Tx: Sender<PublicKey = Identity>,
{
    async fn run<E>(
        mut self,
        context: E,
        scheme: EpochScheme,
        floor: Digest,
        mut boundaries: mpsc::UnboundedReceiver<Boundary>,
        mut backup: BackupReceiver,
    ) where
        E: Clock + CryptoRng + Spawner + Storage + Metrics + Supervisor,
    {
        self.enter(&context, self.current, scheme, floor).await;
        loop {
            let next_retirement = self.retiring.values().min().copied();
            let retire = async {
                match next_retirement {
                    Some(at) => context.sleep_until(at).await,
                    None => futures::future::pending().await,
                }
            }
            .fuse();
            let boundary = boundaries.next().fuse();
            let stray = backup.recv().fuse();
            futures::pin_mut!(retire, boundary, stray);
            futures::select! {
                boundary = boundary => {
                    let Some(boundary) = boundary else { break };
                    self.boundary(&context, boundary).await;
                }
                stray = stray => {
                    let Some((epoch, (from, _))) = stray else { break };
                    self.stray(Epoch::new(epoch), from);
                }
                () = retire => self.retire(context.current()),
            }
        }
        debug!("epoch orchestrator stopped");
    }

    /// The last block of `boundary.epoch` is applied: start the next epoch from it.
    async fn boundary<E>(&mut self, context: &E, boundary: Boundary)
    where
        E: Clock + CryptoRng + Spawner + Storage + Metrics + Supervisor,
    {
        let ended = Epoch::new(boundary.epoch);
        // Redeliveries after a restart may replay boundaries this node has already passed.
        if ended < self.current {
            return;
        }
        let next = ended.next();
        let scheme = loop {
            match self.app.committee(next.get()).await {
                None => return,
                Some(Some(infos)) => match epoch_scheme(&self.cfg, &infos) {
                    Ok(scheme) => break scheme,
                    Err(e) => {
                        error!(epoch = %next, %e, "the application's committee is invalid; asking again");
                    }
                },
                Some(None) => {
                    error!(epoch = %next, "the application does not know the committee of the next epoch although the previous epoch's last block is applied; asking again");
                }
            }
            context
                .sleep(Duration::from_millis(crate::FINALIZE_RETRY_MS))
                .await;
        };
        self.enter(context, next, scheme, boundary.digest).await;
        // Keep the previous engine briefly for peers still finishing it.
        let linger = self.cfg.timeouts.leader * LINGER_LEADER_TIMEOUTS;
        self.retiring.insert(ended, context.current() + linger);
    }

    /// Registers the scheme and peer set of `epoch` and starts its engine from `floor`.
    async fn enter<E>(&mut self, context: &E, epoch: Epoch, scheme: EpochScheme, floor: Digest)
    where
        E: Clock + CryptoRng + Spawner + Storage + Metrics + Supervisor,
    {
        if self.engines.contains_key(&epoch) {
            return;
        }
        let EpochScheme {
            scheme,
            signer,
            members,
        } = scheme;
        self.schemes.register(epoch, scheme.clone());
        (self.track)(epoch.get(), &members);
        let subchannel = epoch.get();
        let (Ok(votes), Ok(certificates), Ok(resolver)) = (
            self.votes.register(subchannel).await,
            self.certificates.register(subchannel).await,
            self.resolver.register(subchannel).await,
        ) else {
            error!(%epoch, "cannot open the epoch's p2p sub-channels; the node is stopping");
            return;
        };

        // `Inline` verifies a block before this node votes for it, and is simplex's automaton,
        // relay and reporter at once. Each epoch has its own, since whether the application is
        // asked to verify depends on whether this node votes in the epoch.
        let wrapper = Inline::new(
            context.child("inline").with_attribute("epoch", epoch),
            self.app.with_observer(!signer),
            self.marshal.clone(),
            self.epocher.clone(),
        );
        let reporter = FaultReporter {
            inner: wrapper.clone(),
            app: self.app.clone(),
            on_fault: self.on_fault.clone(),
        };
        let timeouts = self.cfg.timeouts;
        let twin = self
            .cfg
            .equivocate
            .filter(|_| signer)
            .map(|warm_up| (scheme.clone(), warm_up));
        let engine = simplex::Engine::new(
            context.child("simplex").with_attribute("epoch", epoch),
            simplex::config::Config {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                blocker: self.blocker.clone(),
                automaton: wrapper.clone(),
                relay: wrapper,
                reporter,
                strategy: Sequential,
                partition: format!("{}-simplex-{}", self.cfg.partition, epoch.get()),
                mailbox_size: NZUsize!(1024),
                epoch,
                floor: Floor::Genesis(floor),
                replay_buffer: NZUsize!(1024 * 1024),
                write_buffer: NZUsize!(1024 * 1024),
                page_cache: self.page_cache.clone(),
                leader_timeout: timeouts.leader,
                certification_timeout: timeouts.certification,
                timeout_retry: timeouts.retry,
                view_retention: ViewDelta::new(10),
                skip: SkipPolicy::Enabled {
                    timeout: timeouts.skip,
                    budget: SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(Duration::from_secs(1)),
                fetch_retry_delay: Duration::from_millis(100),
                forward: ForwardPolicy::Disabled,
                track_historical_votes: false,
            },
        );
        let handle = match twin {
            Some((scheme, warm_up)) => {
                warn!(%epoch, "equivocating: every notarize vote is sent with a conflicting twin");
                let (sender, receiver) = votes;
                engine.start(
                    (
                        equivocate::wrap(sender, scheme, warm_up, self.led.clone()),
                        receiver,
                    ),
                    certificates,
                    resolver,
                )
            }
            None => engine.start(votes, certificates, resolver),
        };
        self.engines.insert(epoch, handle);
        self.current = self.current.max(epoch);
        // Engines more than one epoch old are of no use to anyone.
        let stale: Vec<Epoch> = self
            .engines
            .keys()
            .copied()
            .filter(|e| e.next() < self.current)
            .collect();
        for old in stale {
            self.stop(old);
        }
        info!(%epoch, voting = signer, participants = members.len(), "entered epoch");
    }

    /// Stops the engines whose linger time has passed.
    fn retire(&mut self, now: SystemTime) {
        let due: Vec<Epoch> = self
            .retiring
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(e, _)| *e)
            .collect();
        for epoch in due {
            self.stop(epoch);
        }
    }

    fn stop(&mut self, epoch: Epoch) {
        self.retiring.remove(&epoch);
        if let Some(handle) = self.engines.remove(&epoch) {
            handle.abort();
            info!(%epoch, "exited epoch");
        }
        // Marshal only verifies certificates of the current epoch and the one before.
        if let Some(keep) = self.current.previous() {
            self.schemes.retain_from(keep);
        }
    }

    /// A vote for an epoch without an engine here. From a later epoch it means the sender has
    /// passed a boundary this node has not applied yet: ask it for the finalization of our
    /// epoch's last block, which lets marshal deliver it and us move on.
    fn stray(&mut self, epoch: Epoch, from: Identity) {
        if epoch <= self.current {
            return;
        }
        let Some(last) = self.epocher.last(self.current) else {
            return;
        };
        debug!(theirs = %epoch, ours = %self.current, %last, "peer is in a later epoch; fetching our epoch's last block");
        self.marshal.hint_finalized(last, NonEmptyVec::new(from));
    }
}

/// What the votes muxer hands over for sub-channels without an engine.
type BackupReceiver =
    commonware_utils::channel::mpsc::Receiver<(u64, commonware_p2p::Message<Identity>)>;

/// Simplex's reporter: everything goes to `inner` (marshal's wrapper); conflicting votes are
/// also handed to `on_fault` first.
#[derive(Clone)]
pub(crate) struct FaultReporter<R> {
    inner: R,
    app: Mailbox,
    on_fault: OnFault,
}

impl<R> Reporter for FaultReporter<R>
where
    R: Reporter<Activity = Activity<Scheme, Digest>>,
{
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        if matches!(
            activity,
            Activity::ConflictingNotarize(_)
                | Activity::ConflictingFinalize(_)
                | Activity::NullifyFinalize(_)
        ) {
            (self.on_fault)(&activity, &self.app);
        }
        self.inner.report(activity)
    }
}

/// Logs every conflicting-vote activity and hands the evidence `encode` makes of it to
/// [`ChainApp::equivocation`] (through the application actor).
pub(crate) fn fault_to_app(encode: fn(&Activity<Scheme, Digest>) -> Option<Vec<u8>>) -> OnFault {
    Arc::new(move |activity, app| {
        warn!(?activity, "conflicting votes from one signer");
        if let Some(evidence) = encode(activity) {
            app.equivocation(evidence);
        }
    })
}
