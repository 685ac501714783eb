//! Wiring of one validator: the application actor, marshal (with its block relay, backfill
//! resolver and two archives), the `Inline` wrapper and simplex. Generic over the runtime
//! (tokio or deterministic) and the p2p stack (authenticated or simulated), so production and
//! the simulation run exactly this code.

use crate::{
    application::{Actor, Mailbox},
    block::{ConsensusBlock, Digest, MaxBlockBytes},
    ChainApp, Error, Identity, Scheme, Status,
};
use commonware_broadcast::buffered;
use commonware_consensus::{
    marshal::{
        self,
        core::Actor as MarshalActor,
        resolver::p2p as marshal_resolver,
        standard::{Inline, Standard},
        Start,
    },
    simplex::{
        self,
        config::{Floor, ForwardPolicy, SkipBudget, SkipPolicy},
        elector::RoundRobin,
    },
    types::{Epoch, FixedEpocher, ViewDelta},
};
use commonware_cryptography::{
    certificate::{ConstantProvider, Verifier as _},
    Digested, Digestible, Sha256,
};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{
    buffer::paged::CacheRef, Clock, Handle, Metrics, Spawner, Storage, Supervisor,
};
use commonware_storage::archive::immutable;
use commonware_utils::{NZDuration, NZUsize, NZU16, NZU64};
use futures::channel::mpsc;
use rand::CryptoRng;
use std::{num::NonZeroUsize, time::Duration};
use tokio::sync::watch;

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

/// The largest p2p message a committee of `participants` sends with blocks bounded by
/// `max_block_bytes`.
pub(crate) fn max_message_bytes(participants: usize, max_block_bytes: usize) -> u32 {
    let n = u32::try_from(participants).unwrap_or(u32::MAX);
    let block_cfg = MaxBlockBytes(max_block_bytes);
    let marshal = marshal::max_payload_size::<Standard<ConsensusBlock>, Scheme>(n, &block_cfg);
    let simplex = simplex::max_payload_size::<Scheme, Digest>(n);
    u32::try_from(marshal.max(simplex)).unwrap_or(u32::MAX)
}

/// Everything one validator needs besides the runtime, the network and the application.
pub(crate) struct EngineConfig {
    /// Our identity (p2p and committee).
    pub(crate) me: Identity,
    /// Our signing scheme over the committee (verify-only on a follower).
    pub(crate) scheme: Scheme,
    /// We follow the committee without voting (a full node).
    pub(crate) observer: bool,
    /// The height-0 block.
    pub(crate) genesis: ConsensusBlock,
    /// Prefix of every storage partition (unique per validator within one runtime).
    pub(crate) partition: String,
    /// Largest block accepted or built.
    pub(crate) max_block_bytes: usize,
    /// Consensus timeouts.
    pub(crate) timeouts: Timeouts,
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

/// Starts the application actor, marshal and simplex under `context` and returns simplex's
/// handle. Everything is spawned under `context`: aborting the task that owns it stops the
/// whole validator.
pub(crate) async fn start<E, Tx, Rx, P, B, A>(
    context: E,
    cfg: EngineConfig,
    app: A,
    status: watch::Sender<Status>,
    peers: P,
    blocker: B,
    channels: Channels<Tx, Rx>,
) -> Result<Handle<()>, Error>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + Supervisor,
    Tx: Sender<PublicKey = Identity>,
    Rx: Receiver<PublicKey = Identity>,
    P: Provider<PublicKey = Identity> + Clone,
    B: Blocker<PublicKey = Identity> + Clone,
    A: ChainApp,
{
    let partition = cfg.partition;
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(64));
    let mailbox_size: NonZeroUsize = NZUsize!(1024);
    let block_cfg = MaxBlockBytes(cfg.max_block_bytes);
    // One epoch covering every height; committee changes will run one engine per epoch.
    let epocher = FixedEpocher::new(NZU64!(u64::MAX));
    let genesis_digest = cfg.genesis.digest();

    // The application actor gets its own thread on tokio (slow builds and verifies must not
    // stall consensus tasks); the deterministic runtime runs it like any other task.
    let (sender, receiver) = mpsc::unbounded();
    let actor = Actor::new(app, receiver, status, cfg.max_block_bytes);
    context
        .child("application")
        .dedicated()
        .spawn(move |ctx| actor.run(ctx));
    let app_mailbox = Mailbox::new(sender, cfg.observer);

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

    let (marshal_actor, marshal_mailbox, _floor) =
        MarshalActor::<_, Standard<ConsensusBlock>, _, _, _, _, _, _>::init(
            context.child("marshal"),
            finalizations,
            blocks,
            marshal::Config {
                provider: ConstantProvider::new(cfg.scheme.clone()),
                epocher: epocher.clone(),
                start: Start::Genesis(Digested::precomputed(cfg.genesis, genesis_digest)),
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

    // `Inline` verifies a block before this node votes for it, and is simplex's automaton,
    // relay and reporter at once.
    let wrapper = Inline::new(
        context.child("inline"),
        app_mailbox,
        marshal_mailbox,
        epocher,
    );
    let timeouts = cfg.timeouts;
    let engine = simplex::Engine::new(
        context.child("simplex"),
        simplex::config::Config {
            scheme: cfg.scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: wrapper.clone(),
            relay: wrapper.clone(),
            reporter: wrapper,
            strategy: Sequential,
            partition: format!("{partition}-simplex"),
            mailbox_size,
            epoch: Epoch::zero(),
            floor: Floor::Genesis(genesis_digest),
            replay_buffer: NZUsize!(1024 * 1024),
            write_buffer: NZUsize!(1024 * 1024),
            page_cache,
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
    Ok(engine.start(channels.votes, channels.certificates, channels.resolver))
}
