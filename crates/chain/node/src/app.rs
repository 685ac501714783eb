//! The chain behind consensus: builds, verifies and finalizes blocks ([`ChainApp`]).
//!
//! Blocks that are proposed or verified but not finalized yet are kept in memory with their
//! execution results, keyed by hash. A block's state is the finalized state in the store with
//! the changes of its unfinalized ancestors layered on top, so a leader can build on a notarized
//! parent before it is finalized. Finalizing a block writes those cached results to the store in
//! one transaction; a block we never executed (after a restart) is executed then.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use chain_consensus::{ChainApp, ProposalCtx, ValidatorInfo, Verdict};
use chain_state::{
    next_base_fee, read_param_u64, BlockEnv, ChainParams, Executor, Overlay, Param, StateChanges,
    StateReader, StoreError,
};
use chain_types::{
    logs_bloom, receipts_root, transactions_root, Address, Block, Bytes, Header, Receipt,
    RecoveredTx, TxRules, B256, U256,
};

use crate::commitment::{group_leaves, Commitment, LeafUpdates};
use crate::shared::Shared;
use crate::store::{FinalizedBlock, StateWrite, Store};
use crate::Error;

/// Most transactions a proposer puts in one block (the gas limit usually binds first).
const MAX_BLOCK_TXS: usize = 5_000;
/// How far ahead of our clock a block's timestamp may be before we wait for our clock.
const MAX_CLOCK_DRIFT_MS: u64 = 500;
/// Threads that recover the senders of a proposed block.
const RECOVERY_THREADS: NonZeroUsize = NonZeroUsize::MIN.saturating_add(1);

fn store_error(e: StoreError) -> Error {
    Error::Corrupt(e.to_string())
}

/// A block this node built or verified, with what executing it produced.
struct Executed {
    block: Arc<Block>,
    senders: Vec<Address>,
    receipts: Vec<Receipt>,
    changes: StateChanges,
    leaves: LeafUpdates,
    /// Hashes of every bucket that differs from the finalized state after this block (its own
    /// changes and its unfinalized ancestors').
    buckets: BTreeMap<u16, B256>,
}

/// The state after the last of `lineage` (unfinalized blocks on top of the finalized store), with
/// block hashes for `BLOCKHASH` taken from the same chain, so execution never depends on how far
/// finalization has progressed.
struct ChainView<'a> {
    state: Overlay<'a, Store>,
    recent: HashMap<u64, B256>,
}

impl<'a> ChainView<'a> {
    fn new(store: &'a Store, lineage: &[&'a Executed]) -> Self {
        Self {
            state: Overlay::new(store, lineage.iter().map(|e| &e.changes).collect()),
            recent: lineage
                .iter()
                .map(|e| (e.block.header.number, e.block.hash()))
                .collect(),
        }
    }
}

impl StateReader for ChainView<'_> {
    fn account(&self, address: &Address) -> Result<Option<chain_state::Account>, StoreError> {
        self.state.account(address)
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError> {
        self.state.storage(address, slot)
    }

    fn code(&self, hash: &B256) -> Result<Option<Bytes>, StoreError> {
        self.state.code(hash)
    }

    fn block_hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        match self.recent.get(&number) {
            Some(hash) => Ok(Some(*hash)),
            None => self.state.block_hash(number),
        }
    }
}

/// The node's [`ChainApp`].
pub struct App {
    executor: Executor,
    store: Arc<Store>,
    shared: Arc<Shared>,
    genesis: Arc<Block>,
    commitment: Commitment,
    /// Our consensus identity when we hold validator keys; `None` on a full node, which never
    /// builds.
    identity: Option<String>,
    /// The operator account of each committee member, by epoch and identity (read from the
    /// staking module's record of the epoch's set).
    operators: BTreeMap<u64, HashMap<String, Address>>,
    /// Proposers wait this long after the parent's timestamp (paces empty blocks).
    block_interval_ms: u64,
    /// Unfinalized blocks by hash.
    executed: HashMap<B256, Executed>,
    finalized: (u64, B256),
}

impl App {
    /// The app over an opened store whose genesis has been written. `identity` is our
    /// validator identity (`None` on a full node: it never builds blocks).
    pub fn new(
        executor: Executor,
        store: Arc<Store>,
        shared: Arc<Shared>,
        genesis: Arc<Block>,
        identity: Option<String>,
        block_interval_ms: u64,
    ) -> Result<Self, Error> {
        let head = store.head()?.unwrap_or(0);
        let head_block = store
            .block(head)?
            .ok_or_else(|| Error::Corrupt(format!("the head block {head} is missing")))?;
        let commitment = Commitment::load(&store)?;
        if commitment.root() != head_block.block.header.state_root {
            return Err(Error::Corrupt(format!(
                "the stored state does not match the state root of block {head}; \
                 wipe the data directory and let the node catch up from its peers"
            )));
        }
        Ok(Self {
            executor,
            store,
            shared,
            genesis,
            commitment,
            identity,
            operators: BTreeMap::new(),
            block_interval_ms,
            executed: HashMap::new(),
            finalized: (head, head_block.block.hash()),
        })
    }

    fn rules(params: &ChainParams) -> TxRules {
        TxRules::new(params.chain_id, params.gas_limit)
    }

    /// The parameters in force for the child of `parent`: the genesis ones with the governed
    /// gas limit and base-fee floor read from `parent`'s state.
    fn params_after(&self, parent: &B256) -> Result<ChainParams, Error> {
        let lineage = self
            .lineage(parent)
            .ok_or_else(|| Error::Corrupt("parent state is not available".into()))?;
        let state = ChainView::new(&self.store, &lineage);
        let mut params = self.executor.params().clone();
        params.gas_limit = read_param_u64(&state, Param::GasLimit).map_err(store_error)?;
        params.min_base_fee = read_param_u64(&state, Param::MinBaseFee).map_err(store_error)?;
        Ok(params)
    }

    /// The operator of committee member `identity` in `epoch`, from the finalized state.
    fn operator(&mut self, epoch: u64, identity: &str) -> Option<Address> {
        if !self.operators.contains_key(&epoch) {
            let members = match crate::modules::committee(&*self.store, epoch) {
                Ok(Some(members)) => members,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(epoch, error = %e, "cannot read the committee");
                    return None;
                }
            };
            // Only the current and the next epoch are ever asked for.
            while self.operators.len() >= 4 {
                self.operators.pop_first();
            }
            self.operators.insert(
                epoch,
                members
                    .into_iter()
                    .map(|(operator, info)| (info.identity, operator))
                    .collect(),
            );
        }
        self.operators.get(&epoch)?.get(identity).copied()
    }

    /// The unfinalized ancestors of the state after `parent`, oldest first; `None` if `parent`
    /// is neither the finalized head nor a block we executed.
    fn lineage(&self, parent: &B256) -> Option<Vec<&Executed>> {
        let mut out = Vec::new();
        let mut hash = *parent;
        while hash != self.finalized.1 {
            let e = self.executed.get(&hash)?;
            if e.block.header.number <= self.finalized.0 {
                return None;
            }
            out.push(e);
            hash = e.block.header.parent_hash;
        }
        out.reverse();
        Some(out)
    }

    fn env(params: &ChainParams, parent: &Header, header: &Header) -> BlockEnv {
        BlockEnv {
            number: parent.number + 1,
            timestamp_ms: header.timestamp_ms,
            proposer: header.proposer,
            base_fee: next_base_fee(params, parent),
            gas_limit: params.gas_limit,
        }
    }

    /// The header fields that do not depend on execution.
    fn template(
        params: &ChainParams,
        parent: &Header,
        timestamp_ms: u64,
        proposer: Address,
        epoch: u64,
    ) -> Header {
        Header {
            parent_hash: parent.hash(),
            number: parent.number + 1,
            timestamp_ms,
            proposer,
            epoch,
            gas_limit: params.gas_limit,
            base_fee_per_gas: next_base_fee(params, parent),
            extra_data: Bytes::new(),
            ..Header::default()
        }
    }

    /// Fills the execution-derived header fields and remembers the result.
    fn seal(
        &mut self,
        mut header: Header,
        txs: Vec<RecoveredTx>,
        receipts: Vec<Receipt>,
        gas_used: u64,
        changes: StateChanges,
    ) -> Result<Arc<Block>, Error> {
        let leaves = group_leaves(&changes);
        let buckets = {
            let lineage = self
                .lineage(&header.parent_hash)
                .ok_or_else(|| Error::Corrupt("parent state vanished while building".into()))?;
            let ancestors: Vec<&LeafUpdates> = lineage.iter().map(|e| &e.leaves).collect();
            let mut buckets = lineage
                .last()
                .map(|e| e.buckets.clone())
                .unwrap_or_default();
            buckets.extend(Commitment::changed_buckets(
                &self.store,
                &ancestors,
                &leaves,
            )?);
            buckets
        };
        header.state_root = self.commitment.root_with(&buckets);
        let envelopes: Vec<_> = txs.iter().map(|t| t.envelope().clone()).collect();
        header.transactions_root = transactions_root(&envelopes);
        header.receipts_root = receipts_root(&receipts);
        header.logs_bloom = logs_bloom(&receipts);
        header.gas_used = gas_used;
        let block = Arc::new(Block {
            header,
            transactions: envelopes,
        });
        self.executed.insert(
            block.hash(),
            Executed {
                block: block.clone(),
                senders: txs.iter().map(RecoveredTx::sender).collect(),
                receipts,
                changes,
                leaves,
                buckets,
            },
        );
        Ok(block)
    }

    fn try_build(&mut self, parent: &Block, ctx: &ProposalCtx) -> Result<Option<Block>, Error> {
        let Some(identity) = self.identity.clone() else {
            return Ok(None);
        };
        // Consensus only asks the round's leader, which is in the epoch's committee.
        let Some(operator) = self.operator(ctx.epoch, &identity) else {
            tracing::warn!(
                epoch = ctx.epoch,
                "asked to build, but we are not in the committee"
            );
            return Ok(None);
        };
        if self.lineage(&parent.hash()).is_none() {
            self.replay(parent)?;
        }
        let params = self.params_after(&parent.hash())?;
        // Pace blocks: never closer than the block interval to the parent.
        let earliest = parent.header.timestamp_ms + self.block_interval_ms;
        let mut now = ctx.now_ms;
        if now < earliest {
            std::thread::sleep(std::time::Duration::from_millis(earliest - now));
            now = earliest;
        }
        let header = Self::template(&params, &parent.header, now, operator, ctx.epoch);
        let env = Self::env(&params, &parent.header, &header);
        let started = Instant::now();
        let candidates_ms;
        let built = {
            let lineage = self.lineage(&parent.hash()).unwrap_or_default();
            let state = ChainView::new(&self.store, &lineage);
            let mut nonces = HashMap::new();
            let candidates =
                self.shared
                    .mempool
                    .lock()
                    .candidates(env.base_fee, MAX_BLOCK_TXS, |sender| {
                        *nonces.entry(*sender).or_insert_with(|| {
                            state.account(sender).ok().flatten().map_or(0, |a| a.nonce)
                        })
                    });
            candidates_ms = started.elapsed().as_millis();
            match self.executor.build(&state, &env, candidates) {
                Ok(built) => built,
                Err(e) => {
                    tracing::warn!(parent = parent.header.number, error = %e, "cannot build a block");
                    return Ok(None);
                }
            }
        };
        let execute_ms = started.elapsed().as_millis() - candidates_ms;
        for (hash, reason) in &built.rejected {
            tracing::debug!(%hash, %reason, "left a transaction out of the block");
        }
        let block = self.seal(
            header,
            built.txs,
            built.executed.receipts,
            built.executed.gas_used,
            built.executed.changes,
        )?;
        tracing::debug!(
            height = block.header.number,
            txs = block.transactions.len(),
            gas = block.header.gas_used,
            candidates_ms,
            execute_ms,
            seal_ms = started.elapsed().as_millis() - candidates_ms - execute_ms,
            "built block"
        );
        Ok(Some((*block).clone()))
    }

    /// Executes `block` on top of its parent's state and checks every derived field.
    fn check(&mut self, parent: &Block, block: &Block) -> Result<Result<(), String>, Error> {
        let header = &block.header;
        let params = self.params_after(&parent.hash())?;
        let expected_base_fee = next_base_fee(&params, &parent.header);
        if header.base_fee_per_gas != expected_base_fee {
            return Ok(Err(format!(
                "base fee {} differs from the expected {expected_base_fee}",
                header.base_fee_per_gas
            )));
        }
        if header.gas_limit != params.gas_limit {
            return Ok(Err(format!(
                "gas limit {} differs from the chain's {}",
                header.gas_limit, params.gas_limit
            )));
        }
        if let Err(e) = block.verify_roots() {
            return Ok(Err(e.to_string()));
        }
        let started = Instant::now();
        // Senders the mempool already recovered (most transactions arrive by gossip before
        // their block) are not recovered again.
        let known: HashMap<B256, Address> = {
            let pool = self.shared.mempool.lock();
            block
                .transactions
                .iter()
                .filter_map(|tx| {
                    let hash = *tx.tx_hash();
                    pool.get(&hash).map(|t| (hash, t.sender()))
                })
                .collect()
        };
        let recovered =
            block.recover_transactions_cached(&Self::rules(&params), RECOVERY_THREADS, |h| {
                known.get(h).copied()
            });
        let recover_ms = started.elapsed().as_millis();
        let txs = match recovered {
            Ok(txs) => txs,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let env = Self::env(&params, &parent.header, header);
        let executed = {
            let Some(lineage) = self.lineage(&parent.hash()) else {
                return Err(Error::Corrupt("parent state is not available".into()));
            };
            let state = ChainView::new(&self.store, &lineage);
            match self.executor.execute(&state, &env, &txs) {
                Ok(executed) => executed,
                Err(e) => return Ok(Err(e.to_string())),
            }
        };
        let execute_ms = started.elapsed().as_millis() - recover_ms;
        if executed.gas_used != header.gas_used {
            return Ok(Err(format!(
                "gas used {} differs from the header's {}",
                executed.gas_used, header.gas_used
            )));
        }
        if let Err(e) = block.verify_receipts(&executed.receipts) {
            return Ok(Err(e.to_string()));
        }
        let sealed = self.seal(
            header.clone(),
            txs,
            executed.receipts,
            executed.gas_used,
            executed.changes,
        )?;
        if sealed.header.state_root != header.state_root {
            self.executed.remove(&sealed.hash());
            return Ok(Err(format!(
                "state root {} differs from the computed {}",
                header.state_root, sealed.header.state_root
            )));
        }
        // `seal` recomputed every field from the execution; equal hashes mean equal blocks.
        if sealed.hash() != block.hash() {
            self.executed.remove(&sealed.hash());
            return Ok(Err("the header does not match its execution".into()));
        }
        let total_ms = started.elapsed().as_millis();
        tracing::debug!(
            height = header.number,
            txs = block.transactions.len(),
            known_senders = known.len(),
            recover_ms,
            execute_ms,
            root_ms = total_ms - recover_ms - execute_ms,
            total_ms,
            "verified block"
        );
        Ok(Ok(()))
    }

    /// Executes `block` whose parent is the finalized head (used after a restart, when consensus
    /// hands us blocks we never saw).
    fn replay(&mut self, block: &Block) -> Result<(), Error> {
        if self.executed.contains_key(&block.hash()) || block.hash() == self.finalized.1 {
            return Ok(());
        }
        let parent = self
            .store
            .block(block.header.number.saturating_sub(1))?
            .filter(|p| p.block.hash() == block.header.parent_hash)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "block {} does not extend the finalized chain",
                    block.header.number
                ))
            })?;
        match self.check(&parent.block, block)? {
            Ok(()) => Ok(()),
            Err(reason) => Err(Error::Corrupt(format!(
                "finalized block {} does not execute: {reason}",
                block.header.number
            ))),
        }
    }

    fn try_finalize(&mut self, block: &Block) -> Result<(), Error> {
        let height = block.header.number;
        if height <= self.finalized.0 {
            return Ok(());
        }
        let hash = block.hash();
        self.replay(block)?;
        let started = Instant::now();
        let Executed {
            block,
            senders,
            receipts,
            changes,
            leaves,
            buckets,
        } = self
            .executed
            .remove(&hash)
            .ok_or_else(|| Error::Corrupt(format!("block {height} was not executed")))?;
        let leaf_writes: Vec<(B256, Option<B256>)> = leaves
            .values()
            .flat_map(|m| m.iter().map(|(k, v)| (*k, *v)))
            .collect();
        let bucket_writes: Vec<(u16, B256)> = buckets.iter().map(|(b, h)| (*b, *h)).collect();
        let finalized = FinalizedBlock {
            block,
            senders,
            receipts,
        };
        self.store.commit(
            &finalized,
            StateWrite {
                changes: &changes,
                leaves: &leaf_writes,
                buckets: &bucket_writes,
            },
        )?;
        let commit_ms = started.elapsed().as_millis();
        self.commitment.apply(&buckets);
        self.finalized = (height, hash);
        self.executed.retain(|_, e| e.block.header.number > height);
        {
            // Every sender's account is in the block's changes (its nonce moved).
            let senders: std::collections::BTreeSet<&Address> = finalized.senders.iter().collect();
            let mut pool = self.shared.mempool.lock();
            for sender in senders {
                let nonce = match changes.account(sender) {
                    Some(account) => account.map_or(0, |a| a.nonce),
                    None => self
                        .store
                        .account(sender)
                        .ok()
                        .flatten()
                        .map_or(0, |a| a.nonce),
                };
                pool.prune_sender(sender, nonce);
            }
        }
        let txs = finalized.senders.len();
        self.shared.set_head(finalized);
        tracing::debug!(
            height,
            txs,
            commit_ms,
            prune_ms = started.elapsed().as_millis() - commit_ms,
            "finalized block"
        );
        Ok(())
    }
}

impl ChainApp for App {
    fn genesis(&self) -> Block {
        (*self.genesis).clone()
    }

    fn build(&mut self, parent: &Block, ctx: &ProposalCtx) -> Option<Block> {
        match self.try_build(parent, ctx) {
            Ok(block) => block,
            Err(e) => {
                tracing::warn!(error = %e, "could not build a block; skipping the view");
                None
            }
        }
    }

    fn verify(&mut self, parent: &Block, block: &Block, ctx: &ProposalCtx) -> Verdict {
        let header = &block.header;
        if header.timestamp_ms <= parent.header.timestamp_ms {
            return Verdict::Invalid("timestamp is not after the parent's".into());
        }
        if header.timestamp_ms > ctx.now_ms + MAX_CLOCK_DRIFT_MS {
            return Verdict::RetryAt {
                now_ms: header.timestamp_ms - MAX_CLOCK_DRIFT_MS,
            };
        }
        if header.epoch != ctx.epoch {
            return Verdict::Invalid(format!("epoch {} is not {}", header.epoch, ctx.epoch));
        }
        match self.operator(ctx.epoch, &ctx.leader) {
            Some(operator) if operator == header.proposer => {}
            _ => return Verdict::Invalid("proposer is not the round's leader".into()),
        }
        if self.executed.contains_key(&block.hash()) {
            return Verdict::Valid;
        }
        if self.lineage(&parent.hash()).is_none() {
            if let Err(e) = self.replay(parent) {
                // We cannot judge a block whose parent state we lack; ask again later rather
                // than vote against a block that may be valid.
                tracing::warn!(error = %e, "parent state unavailable");
                return Verdict::RetryAt {
                    now_ms: ctx.now_ms + 200,
                };
            }
        }
        match self.check(parent, block) {
            Ok(Ok(())) => Verdict::Valid,
            Ok(Err(reason)) => Verdict::Invalid(reason),
            Err(e) => {
                tracing::warn!(error = %e, "could not verify a block");
                Verdict::RetryAt {
                    now_ms: ctx.now_ms + 200,
                }
            }
        }
    }

    fn committee(&self, epoch: u64) -> Option<Vec<ValidatorInfo>> {
        match crate::modules::committee(&*self.store, epoch) {
            Ok(members) => members.map(|m| m.into_iter().map(|(_, info)| info).collect()),
            Err(e) => {
                tracing::warn!(epoch, error = %e, "cannot read the committee");
                None
            }
        }
    }

    fn finalized_height(&self) -> u64 {
        self.finalized.0
    }

    fn equivocation(&mut self, evidence: Vec<u8>) {
        tracing::warn!(
            bytes = evidence.len(),
            "consensus saw conflicting votes; the evidence is served by btt_getEvidence"
        );
        self.shared.add_evidence(evidence);
    }

    fn finalized(&mut self, block: &Block) -> Result<(), String> {
        self.try_finalize(block).map_err(|e| e.to_string())
    }
}

/// Opens the store and writes the genesis block and state if it is empty; checks that a
/// non-empty store was started from the same genesis.
pub fn init_store(
    store: &Store,
    executor: &Executor,
    genesis: &crate::Genesis,
) -> Result<Arc<Block>, Error> {
    let block = Arc::new(genesis.block(executor)?);
    match store.genesis_hash()? {
        Some(hash) if hash == block.hash() => Ok(block),
        Some(hash) => Err(Error::Corrupt(format!(
            "the data directory belongs to another chain (genesis {hash}, this genesis {}); \
             use a fresh --data-dir",
            block.hash()
        ))),
        None => {
            let changes = genesis.state(executor)?;
            let leaves: Vec<(B256, Option<B256>)> = group_leaves(&changes)
                .into_values()
                .flat_map(|m| m.into_iter())
                .collect();
            let buckets = Commitment::fresh_buckets(&changes);
            store.commit(
                &FinalizedBlock {
                    block: block.clone(),
                    senders: Vec::new(),
                    receipts: Vec::new(),
                },
                StateWrite {
                    changes: &changes,
                    leaves: &leaves,
                    buckets: &buckets,
                },
            )?;
            Ok(block)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chain_consensus::ValidatorKeys;
    use chain_state::ChainParams;
    use chain_types::U256;

    use super::*;
    use crate::genesis::{Genesis, GenesisAccount, GenesisValidator};
    use crate::mempool::{Limits, Mempool};
    use crate::testkit::{signed_transfer, Key, TEST_CHAIN};

    const GWEI: u128 = 1_000_000_000;

    struct Fixture {
        genesis: Genesis,
        identity: String,
        fee_recipient: Address,
    }

    fn fixture() -> Fixture {
        let keys = ValidatorKeys::generate([7; 32]);
        let ns = chain_consensus::namespace(TEST_CHAIN);
        let fee_recipient = Key::new(100).address();
        let genesis = Genesis {
            params: ChainParams {
                chain_id: TEST_CHAIN,
                ..ChainParams::default()
            },
            timestamp_ms: 1_000,
            alloc: BTreeMap::from([
                (
                    Key::new(1).address(),
                    GenesisAccount {
                        balance: U256::from(10u128.pow(21)),
                    },
                ),
                (
                    Key::new(2).address(),
                    GenesisAccount {
                        balance: U256::from(10u128.pow(21)),
                    },
                ),
            ]),
            validators: vec![GenesisValidator {
                fee_recipient,
                keys: keys.public(&ns),
                stake: crate::genesis::default_stake(),
                commission_bps: 1_000,
            }],
            epoch_length: crate::genesis::DEFAULT_EPOCH_LENGTH,
            governance: Default::default(),
        };
        Fixture {
            identity: keys.identity_hex(),
            genesis,
            fee_recipient,
        }
    }

    fn app(f: &Fixture, dir: &std::path::Path) -> (App, Arc<Shared>, Arc<Store>) {
        let executor = crate::modules::executor(&f.genesis).unwrap();
        let store = Arc::new(Store::open(&dir.join("chain.redb")).unwrap());
        let genesis = init_store(&store, &executor, &f.genesis).unwrap();
        let head = store
            .block(store.head().unwrap().unwrap())
            .unwrap()
            .unwrap();
        let shared = Arc::new(Shared::new(Mempool::new(Limits::default()), head));
        let app = App::new(
            executor,
            store.clone(),
            shared.clone(),
            genesis,
            Some(f.identity.clone()),
            0,
        )
        .unwrap();
        (app, shared, store)
    }

    fn ctx(f: &Fixture, now_ms: u64) -> ProposalCtx {
        ProposalCtx {
            epoch: 0,
            view: 1,
            leader: f.identity.clone(),
            now_ms,
        }
    }

    fn balance(store: &Store, a: Address) -> U256 {
        store.account(&a).unwrap().map_or(U256::ZERO, |a| a.balance)
    }

    #[test]
    fn built_block_verifies_elsewhere_and_finalizes_identically() {
        let f = fixture();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut a, shared_a, store_a) = app(&f, dir_a.path());
        let (mut b, _, store_b) = app(&f, dir_b.path());
        let genesis = a.genesis();
        assert_eq!(genesis, b.genesis());

        let alice = Key::new(1);
        let tx = signed_transfer(&alice, 0, 3 * GWEI, 2 * GWEI);
        shared_a.mempool.lock().insert(tx.clone(), 0).unwrap();
        let block = a.build(&genesis, &ctx(&f, 5_000)).unwrap();
        assert_eq!(block.transactions.len(), 1);
        assert_eq!(block.header.number, 1);
        assert_eq!(block.header.timestamp_ms, 5_000);
        assert_eq!(block.header.gas_used, 21_000);
        assert_eq!(b.verify(&genesis, &block, &ctx(&f, 5_000)), Verdict::Valid);

        // Any field that execution derives is checked.
        let mut bad = block.clone();
        bad.header.state_root = B256::repeat_byte(1);
        assert!(matches!(
            b.verify(&genesis, &bad, &ctx(&f, 5_000)),
            Verdict::Invalid(_)
        ));
        let mut bad = block.clone();
        bad.header.gas_used = 21_001;
        assert!(matches!(
            b.verify(&genesis, &bad, &ctx(&f, 5_000)),
            Verdict::Invalid(_)
        ));
        // A block from the future waits for our clock instead of being refused.
        assert_eq!(
            b.verify(&genesis, &block, &ctx(&f, 4_000)),
            Verdict::RetryAt { now_ms: 4_500 }
        );

        a.finalized(&block).unwrap();
        b.finalized(&block).unwrap();
        a.finalized(&block).unwrap(); // idempotent
        assert!(shared_a.mempool.lock().is_empty());
        for store in [&store_a, &store_b] {
            assert_eq!(store.head().unwrap(), Some(1));
            // 1 wei moved; the sender paid 21000 gas at base fee (1 gwei) + tip (2 gwei).
            let fee = U256::from(21_000u128 * 3 * GWEI);
            assert_eq!(
                balance(store, alice.address()),
                U256::from(10u128.pow(21)) - fee - U256::from(1)
            );
            assert_eq!(balance(store, Address::repeat_byte(0x35)), U256::from(1));
            // The tip goes to the staking module's reward pool with the block's emission, for
            // the validators and delegators; the proposer's account gets nothing directly.
            assert_eq!(balance(store, f.fee_recipient), U256::ZERO);
            let emission = chain_state::Param::EmissionPerBlock.default_value();
            assert_eq!(
                chain_state::staking_totals(&**store).unwrap().pool,
                U256::from(21_000u128 * 2 * GWEI) + emission
            );
        }
        drop((a, b, store_a, store_b));
        // Reopening checks the stored state against the head's state root.
        let (a, _, _) = app(&f, dir_a.path());
        assert_eq!(a.finalized, (1, block.hash()));
    }

    #[test]
    fn builds_on_unfinalized_parents() {
        let f = fixture();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut a, shared_a, store_a) = app(&f, dir_a.path());
        let (mut b, _, _) = app(&f, dir_b.path());
        let alice = Key::new(1);
        let genesis = a.genesis();
        shared_a
            .mempool
            .lock()
            .insert(signed_transfer(&alice, 0, 3 * GWEI, GWEI), 0)
            .unwrap();
        let b1 = a.build(&genesis, &ctx(&f, 2_000)).unwrap();
        shared_a
            .mempool
            .lock()
            .insert(signed_transfer(&alice, 1, 3 * GWEI, GWEI), 0)
            .unwrap();
        // Block 2 is built before block 1 is finalized: nonce 1 follows from block 1's state.
        let b2 = a.build(&b1, &ctx(&f, 3_000)).unwrap();
        assert_eq!(b2.transactions.len(), 1);
        assert_eq!(b.verify(&genesis, &b1, &ctx(&f, 3_000)), Verdict::Valid);
        assert_eq!(b.verify(&b1, &b2, &ctx(&f, 3_000)), Verdict::Valid);
        for block in [&b1, &b2] {
            a.finalized(block).unwrap();
        }
        b.finalized(&b1).unwrap();
        b.finalized(&b2).unwrap();
        assert_eq!(store_a.head().unwrap(), Some(2));
        assert_eq!(store_a.account(&alice.address()).unwrap().unwrap().nonce, 2);
        assert_eq!(a.commitment.root(), b2.header.state_root);
        assert_eq!(b.commitment.root(), b2.header.state_root);
    }

    #[test]
    fn a_restarted_node_replays_blocks_it_never_saw() {
        let f = fixture();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut a, shared_a, _) = app(&f, dir_a.path());
        let (mut b, _, store_b) = app(&f, dir_b.path());
        let genesis = a.genesis();
        shared_a
            .mempool
            .lock()
            .insert(signed_transfer(&Key::new(2), 0, 3 * GWEI, GWEI), 0)
            .unwrap();
        let b1 = a.build(&genesis, &ctx(&f, 2_000)).unwrap();
        // B finalizes a block it never verified (what marshal does while catching up).
        b.finalized(&b1).unwrap();
        assert_eq!(store_b.head().unwrap(), Some(1));
        assert_eq!(b.commitment.root(), b1.header.state_root);
        // A block that does not execute to its header is refused, and nothing is written.
        let mut bad = a.build(&b1, &ctx(&f, 3_000)).unwrap();
        bad.header.state_root = B256::repeat_byte(9);
        assert!(b.finalized(&bad).is_err());
        assert_eq!(store_b.head().unwrap(), Some(1));
    }
}
