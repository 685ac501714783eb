//! Deterministic simulation of a validator set: the production engine on commonware's
//! deterministic runtime (seeded scheduling, virtual time, in-memory storage) and simulated
//! network (per-link latency, jitter and loss).
//!
//! [`run`] hands a scenario a [`Cluster`] of validators running [`SimApp`], a small
//! [`ChainApp`] that builds empty blocks. Every finalized block of every validator is checked
//! against one shared record, so two different blocks at one height are caught the moment the
//! second is applied ([`Cluster::violations`]). The same seed gives the same run, including
//! virtual time.
//!
//! Only for tests (this crate's, and the node's with the `sim` feature).

use crate::{
    block::ConsensusBlock,
    engine::{self, Channels, EngineConfig, Timeouts, CHANNELS},
    namespace, ChainApp, ProposalCtx, Status, ValidatorInfo, ValidatorKeys, Verdict,
};
use chain_types::{Address, Block, Header, B256};
use commonware_cryptography::Signer as _;
use commonware_p2p::{
    simulated::{self, Link, Network, Oracle},
    Manager as _, TrackedPeers,
};
use commonware_runtime::{
    deterministic, Clock, Handle, Quota, Runner as _, Spawner as _, Supervisor as _,
};
use commonware_utils::{ordered::Set, NZUsize, Probability, NZU32};
use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::sync::watch;

/// Chain id of simulated chains.
pub const SIM_CHAIN_ID: u64 = 7215;
/// Largest block in the simulation.
const MAX_BLOCK_BYTES: usize = 64 * 1024;
/// Leader timeout in the simulation.
const LEADER_TIMEOUT_MS: u64 = 1_000;
/// How far ahead of a verifier's clock a block's timestamp may be before it waits.
pub const MAX_FUTURE_MS: u64 = 100;

/// A simulated link, one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// Mean latency.
    pub latency_ms: u64,
    /// Standard deviation of the latency.
    pub jitter_ms: u64,
    /// Percentage of messages delivered (0-100).
    pub delivered_percent: u8,
}

impl LinkSpec {
    /// 50 ± 10 ms, lossless.
    pub const GOOD: Self = Self {
        latency_ms: 50,
        jitter_ms: 10,
        delivered_percent: 100,
    };

    fn link(self) -> Link {
        let percent = u64::from(self.delivered_percent.min(100));
        Link {
            latency: Duration::from_millis(self.latency_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            success_rate: Probability::new(percent, 100)
                .unwrap_or_else(|| unreachable!("percent <= 100")),
        }
    }
}

/// Shared record of everything finalized, by height, across all validators.
#[derive(Default)]
struct Record {
    /// Height -> the first block hash any validator applied there.
    canonical: BTreeMap<u64, B256>,
    /// Per validator: height -> applied hash (what its "database" holds; survives crashes).
    applied: Vec<BTreeMap<u64, B256>>,
    /// Height -> index of the validator that proposed the canonical block.
    proposers: BTreeMap<u64, usize>,
    /// Safety violations seen, as messages.
    violations: Vec<String>,
    /// Evidence handed to each node's [`ChainApp::equivocation`]: (node, bytes).
    evidence: Vec<(usize, Vec<u8>)>,
}

/// Which nodes form the committee of each epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Epochs {
    /// Blocks per epoch (`u64::MAX`: one epoch).
    pub length: u64,
    /// Epoch -> member indices, from that epoch until the next entry. Must have an entry for
    /// epoch 0 (the genesis committee).
    pub schedule: BTreeMap<u64, Vec<usize>>,
}

impl Epochs {
    /// One epoch forever, with nodes `0..n` as its committee.
    pub fn single(n: usize) -> Self {
        Self {
            length: u64::MAX,
            schedule: BTreeMap::from([(0, (0..n).collect())]),
        }
    }

    /// The member indices of `epoch`.
    pub fn members(&self, epoch: u64) -> Vec<usize> {
        self.schedule
            .range(..=epoch)
            .next_back()
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// The epoch of `height`.
    pub fn epoch_of(&self, height: u64) -> u64 {
        height / self.length.max(2)
    }
}

/// The test application: empty blocks, timestamps from the proposer's (optionally skewed)
/// clock, the proposer's index in the proposer address, committees from a shared schedule.
pub struct SimApp {
    index: usize,
    genesis: Block,
    record: Arc<Mutex<Record>>,
    /// Added to `ctx.now_ms` when building (a fast clock).
    clock_skew_ms: u64,
    epochs: Arc<Epochs>,
    /// Every node's public entry, by index.
    infos: Arc<Vec<ValidatorInfo>>,
}

fn lock(record: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The proposer address of validator `index`.
pub fn proposer(index: usize) -> Address {
    let mut a = [0u8; 20];
    a[12..].copy_from_slice(&(index as u64).to_be_bytes());
    Address::from(a)
}

/// The simulated chain's genesis block.
pub fn genesis() -> Block {
    Block {
        header: Header {
            transactions_root: chain_types::transactions_root(&[]),
            gas_limit: 30_000_000,
            ..Default::default()
        },
        transactions: Vec::new(),
    }
}

impl ChainApp for SimApp {
    fn genesis(&self) -> Block {
        self.genesis.clone()
    }

    fn build(&mut self, parent: &Block, ctx: &ProposalCtx) -> Option<Block> {
        let header = Header {
            parent_hash: parent.hash(),
            number: parent.header.number + 1,
            timestamp_ms: (ctx.now_ms + self.clock_skew_ms).max(parent.header.timestamp_ms + 1),
            proposer: proposer(self.index),
            epoch: ctx.epoch,
            transactions_root: chain_types::transactions_root(&[]),
            gas_limit: parent.header.gas_limit,
            ..Default::default()
        };
        Some(Block {
            header,
            transactions: Vec::new(),
        })
    }

    fn verify(&mut self, parent: &Block, block: &Block, ctx: &ProposalCtx) -> Verdict {
        let h = &block.header;
        if h.timestamp_ms <= parent.header.timestamp_ms {
            return Verdict::Invalid("timestamp not above the parent's".into());
        }
        if !block.transactions.is_empty() || h.gas_used != 0 {
            return Verdict::Invalid("simulated blocks are empty".into());
        }
        if h.gas_limit != parent.header.gas_limit {
            return Verdict::Invalid("gas limit changed".into());
        }
        if h.timestamp_ms > ctx.now_ms + MAX_FUTURE_MS {
            return Verdict::RetryAt {
                now_ms: h.timestamp_ms - MAX_FUTURE_MS,
            };
        }
        Verdict::Valid
    }

    fn finalized(&mut self, block: &Block) -> Result<(), String> {
        let (height, hash) = (block.header.number, block.hash());
        let mut record = lock(&self.record);
        let first = *record.canonical.entry(height).or_insert(hash);
        let by = usize::try_from(u64::from_be_bytes(
            block.header.proposer.0 .0[12..]
                .try_into()
                .unwrap_or_default(),
        ))
        .unwrap_or(usize::MAX);
        record.proposers.entry(height).or_insert(by);
        if header_epoch_wrong(&self.epochs, block) {
            let message = format!(
                "validator {} applied height {height} built for epoch {}",
                self.index, block.header.epoch
            );
            record.violations.push(message);
        }
        if first != hash {
            let message = format!(
                "validator {} finalized {hash} at height {height}, another finalized {first}",
                self.index
            );
            record.violations.push(message);
        }
        let mine = &mut record.applied[self.index];
        let last = mine.last_key_value().map_or(0, |(h, _)| *h);
        let gap = height > last + 1;
        mine.insert(height, hash);
        if gap {
            let message = format!(
                "validator {} applied height {height} after {last}",
                self.index
            );
            record.violations.push(message);
        }
        Ok(())
    }

    fn committee(&self, epoch: u64) -> Option<Vec<ValidatorInfo>> {
        // Known only once this node applied the previous epoch's last block, as on a real
        // chain where the committee is state.
        if let Some(previous_last) = epoch
            .checked_mul(self.epochs.length)
            .and_then(|h| h.checked_sub(1))
        {
            if !lock(&self.record).applied[self.index].contains_key(&previous_last) {
                return None;
            }
        }
        Some(
            self.epochs
                .members(epoch)
                .into_iter()
                .map(|i| self.infos[i].clone())
                .collect(),
        )
    }

    fn equivocation(&mut self, evidence: Vec<u8>) {
        lock(&self.record).evidence.push((self.index, evidence));
    }

    fn finalized_height(&self) -> u64 {
        lock(&self.record).applied[self.index]
            .last_key_value()
            .map_or(0, |(h, _)| *h)
    }
}

/// Whether `block` was built in another epoch than its height's (genesis is exempt).
fn header_epoch_wrong(epochs: &Epochs, block: &Block) -> bool {
    block.header.number != 0 && block.header.epoch != epochs.epoch_of(block.header.number)
}

/// A simulated validator set; see the module docs.
pub struct Cluster {
    context: deterministic::Context,
    oracle: Oracle<crate::Identity, deterministic::Context>,
    keys: Vec<ValidatorKeys>,
    identities: Vec<crate::Identity>,
    infos: Arc<Vec<ValidatorInfo>>,
    epochs: Arc<Epochs>,
    running: Vec<Option<Handle<()>>>,
    status: Vec<watch::Receiver<Status>>,
    record: Arc<Mutex<Record>>,
    link: LinkSpec,
    clock_skew_ms: Vec<u64>,
    equivocate: Vec<bool>,
}

/// Runs `scenario` on a fresh cluster of `validators` (all started, all links `link`) in a
/// deterministic runtime seeded with `seed`. Returns the scenario's output and the virtual time
/// at the end in milliseconds.
pub fn run<F, Fut, T>(seed: u64, validators: usize, link: LinkSpec, scenario: F) -> (T, u64)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: Future<Output = T>,
{
    run_with_epochs(seed, validators, Epochs::single(validators), link, scenario)
}

/// Like [`run`], with `nodes` nodes whose committees follow `epochs`: every node has validator
/// keys, and votes in the epochs whose committee lists it (observing the others).
pub fn run_with_epochs<F, Fut, T>(
    seed: u64,
    nodes: usize,
    epochs: Epochs,
    link: LinkSpec,
    scenario: F,
) -> (T, u64)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: Future<Output = T>,
{
    let cfg = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(Duration::from_secs(24 * 3600)));
    deterministic::Runner::new(cfg).start(|context| async move {
        let cluster = Cluster::new(context, nodes, epochs, link).await;
        let clock = cluster.context.child("clock");
        let output = scenario(cluster).await;
        (output, crate::application::now_ms(&clock))
    })
}

impl Cluster {
    async fn new(
        context: deterministic::Context,
        n: usize,
        epochs: Epochs,
        link: LinkSpec,
    ) -> Self {
        let ns = namespace(SIM_CHAIN_ID);
        let keys: Vec<_> = (0..n)
            .map(|i| ValidatorKeys::generate([u8::try_from(i).unwrap_or(u8::MAX); 32]))
            .collect();
        let infos: Vec<_> = keys.iter().map(|k| k.public(&ns)).collect();
        let identities: Vec<_> = keys.iter().map(|k| k.identity().public_key()).collect();
        let max_size = engine::max_message_bytes(n, MAX_BLOCK_BYTES);
        // Peer set 0 is the genesis committee and everyone else as secondary peers; each node
        // tracks the later epochs' sets itself (the simulated network keeps the first copy).
        let genesis_members = epochs.members(0);
        let (primary, secondary): (Vec<_>, Vec<_>) = identities
            .iter()
            .enumerate()
            .partition(|(i, _)| genesis_members.contains(i));
        let (network, oracle) = Network::new_with_split_peers(
            context.child("network"),
            simulated::Config {
                max_size,
                max_peers_per_set: NZUsize!(n.max(1)),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(3),
            },
            primary.into_iter().map(|(_, k)| k.clone()),
            secondary.into_iter().map(|(_, k)| k.clone()),
        )
        .await;
        network.start();
        let record = Record {
            applied: vec![BTreeMap::new(); n],
            ..Default::default()
        };
        let mut cluster = Self {
            context,
            oracle,
            keys,
            identities,
            infos: Arc::new(infos),
            epochs: Arc::new(epochs),
            running: (0..n).map(|_| None).collect(),
            status: Vec::new(),
            record: Arc::new(Mutex::new(record)),
            link,
            clock_skew_ms: vec![0; n],
            equivocate: vec![false; n],
        };
        cluster.heal().await;
        for i in 0..n {
            let (_tx, rx) = watch::channel(Status::default());
            cluster.status.push(rx);
            cluster.start(i).await;
        }
        cluster
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the cluster has no validators.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Makes validator `i` build blocks timestamped `skew_ms` ahead of its clock (from its next
    /// start).
    pub fn set_clock_skew(&mut self, i: usize, skew_ms: u64) {
        self.clock_skew_ms[i] = skew_ms;
    }

    /// Makes validator `i` equivocate (twin each notarize with a conflicting one) from its next
    /// start.
    pub fn set_equivocate(&mut self, i: usize, on: bool) {
        self.equivocate[i] = on;
    }

    /// Evidence of conflicting votes the nodes handed to [`ChainApp::equivocation`]:
    /// (receiving node, evidence bytes).
    pub fn evidence(&self) -> Vec<(usize, Vec<u8>)> {
        lock(&self.record).evidence.clone()
    }

    /// The public entries of the committee of `epoch`.
    pub fn committee(&self, epoch: u64) -> Vec<ValidatorInfo> {
        self.epochs
            .members(epoch)
            .into_iter()
            .map(|i| self.infos[i].clone())
            .collect()
    }

    /// Validator `i`'s identity key, `0x` hex.
    pub fn identity_hex(&self, i: usize) -> String {
        self.keys[i].identity_hex()
    }

    /// Starts (or restarts, from its own storage) validator `i`.
    pub async fn start(&mut self, i: usize) {
        assert!(
            self.running[i].is_none(),
            "validator {i} is already running"
        );
        let me = self.identities[i].clone();
        // Registering again replaces a crashed instance's channels.
        let control = self.oracle.control(me.clone());
        let quota = Quota::per_second(NZU32!(100_000));
        let mut registered = Vec::with_capacity(CHANNELS.len());
        for channel in CHANNELS {
            match control.register(channel, quota).await {
                Ok(pair) => registered.push(pair),
                Err(e) => panic!("register channel {channel}: {e}"),
            }
        }
        let mut registered = registered.into_iter();
        let mut next = || registered.next().unwrap_or_else(|| unreachable!());
        let channels = Channels {
            votes: next(),
            certificates: next(),
            resolver: next(),
            blocks: next(),
            backfill: next(),
        };
        let app = SimApp {
            index: i,
            genesis: genesis(),
            record: self.record.clone(),
            clock_skew_ms: self.clock_skew_ms[i],
            epochs: self.epochs.clone(),
            infos: self.infos.clone(),
        };
        let cfg = EngineConfig {
            me,
            keys: Some(self.keys[i].clone()),
            namespace: namespace(SIM_CHAIN_ID),
            genesis_committee: self
                .epochs
                .members(0)
                .into_iter()
                .map(|m| self.infos[m].clone())
                .collect(),
            epoch_length: self.epochs.length,
            genesis: ConsensusBlock::new(genesis()),
            partition: format!("validator{i}"),
            max_block_bytes: MAX_BLOCK_BYTES,
            timeouts: Timeouts::from_leader_ms(LEADER_TIMEOUT_MS),
            equivocate: self.equivocate[i].then_some(std::time::Duration::ZERO),
        };
        let (status_tx, status_rx) = watch::channel(Status::default());
        self.status[i] = status_rx;
        let peers = self.oracle.manager();
        let mut manager = self.oracle.manager();
        let everyone = self.identities.clone();
        let track: engine::TrackPeers = Box::new(move |epoch, members| {
            let secondary = everyone.iter().filter(|k| !members.contains(k)).cloned();
            let peers = TrackedPeers::new(
                Set::from_iter_dedup(members.iter().cloned()),
                Set::from_iter_dedup(secondary),
            );
            let _ = manager.track(epoch, peers);
        });
        // The validator's whole task tree hangs under this task: aborting it is a crash.
        let handle = self
            .context
            .child("validator")
            .with_attribute("index", i)
            .spawn(move |ctx| async move {
                match Box::pin(engine::start(
                    ctx,
                    cfg,
                    app,
                    status_tx,
                    peers,
                    control,
                    track,
                    engine::fault_to_app(crate::evidence::encode_activity),
                    channels,
                ))
                .await
                {
                    Ok(engine) => {
                        let _ = engine.await;
                    }
                    Err(e) => panic!("validator {i} failed to start: {e}"),
                }
            });
        self.running[i] = Some(handle);
    }

    /// Crashes validator `i` (all its tasks stop; its storage stays).
    pub fn crash(&mut self, i: usize) {
        if let Some(handle) = self.running[i].take() {
            handle.abort();
        }
    }

    /// Sets the link from `from` to `to` (`None` cuts it).
    pub async fn set_link(&self, from: usize, to: usize, link: Option<LinkSpec>) {
        let (a, b) = (self.identities[from].clone(), self.identities[to].clone());
        // Removing a missing link fails harmlessly.
        let _ = self.oracle.remove_link(a.clone(), b.clone()).await;
        if let Some(link) = link {
            if let Err(e) = self.oracle.add_link(a, b, link.link()).await {
                panic!("add link {from}->{to}: {e}");
            }
        }
    }

    /// Sets both directions between `a` and every other validator.
    pub async fn set_links_of(&self, a: usize, link: Option<LinkSpec>) {
        for b in 0..self.len() {
            if a != b {
                self.set_link(a, b, link).await;
                self.set_link(b, a, link).await;
            }
        }
    }

    /// Cuts every link between different groups; links inside a group are the default.
    pub async fn partition(&self, groups: &[&[usize]]) {
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for a in 0..self.len() {
            for b in 0..self.len() {
                if a != b {
                    let same = group_of(a).is_some() && group_of(a) == group_of(b);
                    self.set_link(a, b, same.then_some(self.link)).await;
                }
            }
        }
    }

    /// Restores every link to the default.
    pub async fn heal(&self) {
        self.partition(&[&(0..self.len()).collect::<Vec<_>>()])
            .await;
    }

    /// Sleeps in virtual time.
    pub async fn sleep_ms(&self, ms: u64) {
        self.context.sleep(Duration::from_millis(ms)).await;
    }

    /// Virtual time, in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        crate::application::now_ms(&self.context)
    }

    /// Highest height each validator has applied (what its database holds).
    pub fn heights(&self) -> Vec<u64> {
        let record = lock(&self.record);
        record
            .applied
            .iter()
            .map(|m| m.last_key_value().map_or(0, |(h, _)| *h))
            .collect()
    }

    /// The status validator `i` publishes (as `Handle::subscribe` does in production).
    pub fn status(&self, i: usize) -> Status {
        *self.status[i].borrow()
    }

    /// The finalized chain: height -> hash.
    pub fn chain(&self) -> BTreeMap<u64, B256> {
        lock(&self.record).canonical.clone()
    }

    /// The epoch of `height`.
    pub fn epoch_of(&self, height: u64) -> u64 {
        self.epochs.epoch_of(height)
    }

    /// Which validator proposed each finalized block, by height.
    pub fn proposers(&self) -> BTreeMap<u64, usize> {
        lock(&self.record).proposers.clone()
    }

    /// Safety violations seen so far (empty in a correct run).
    pub fn violations(&self) -> Vec<String> {
        lock(&self.record).violations.clone()
    }

    /// Waits until every validator in `who` has applied `height`, checking safety every 50 ms
    /// of virtual time. Errors with the heights if `limit_ms` passes first, or on a violation.
    pub async fn wait_for(&self, who: &[usize], height: u64, limit_ms: u64) -> Result<(), String> {
        let deadline = self.context.current() + Duration::from_millis(limit_ms);
        loop {
            let violations = self.violations();
            if !violations.is_empty() {
                return Err(format!("safety violated: {violations:?}"));
            }
            let heights = self.heights();
            if who.iter().all(|&i| heights[i] >= height) {
                return Ok(());
            }
            if self.context.current() >= deadline {
                return Err(format!(
                    "validators {who:?} did not reach height {height} within {limit_ms} ms: heights {heights:?}"
                ));
            }
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits `ms` of virtual time, checking every 50 ms that nothing is finalized (heights stay
    /// put) and nothing conflicts.
    pub async fn expect_halted(&self, ms: u64) -> Result<(), String> {
        let before = self.heights();
        let deadline = self.context.current() + Duration::from_millis(ms);
        while self.context.current() < deadline {
            self.context.sleep(Duration::from_millis(50)).await;
            let now = self.heights();
            if now != before {
                return Err(format!("finalized without a quorum: {before:?} -> {now:?}"));
            }
            let violations = self.violations();
            if !violations.is_empty() {
                return Err(format!("safety violated: {violations:?}"));
            }
        }
        Ok(())
    }

    /// Stops every validator.
    pub fn shutdown(mut self) {
        for i in 0..self.len() {
            self.crash(i);
        }
    }
}
