//! The node as the JSON-RPC server sees it ([`chain_rpc::Backend`]).

use std::sync::Arc;

use chain_rpc::{
    AccountView, Backend, BackendError, BlockData, CallError, CallRequest, NodeStatus, SubmitError,
    SyncProgress,
};
use chain_state::{check_admission, next_base_fee, BlockEnv, Executor, StateReader};
use chain_types::{decode_and_recover, Address, Bytes, RecoveredTx, TxRules, B256, U256};

use crate::shared::Shared;
use crate::store::{FinalizedBlock, Store};

/// Tip suggested to wallets, in wei per gas (1 gwei).
const SUGGESTED_TIP: u128 = 1_000_000_000;

/// Serves RPC reads from the store and the shared head, and admits transactions to the mempool.
pub struct NodeBackend {
    /// Executes calls and gas estimates.
    pub executor: Arc<Executor>,
    /// Finalized blocks and state.
    pub store: Arc<Store>,
    /// Head and mempool.
    pub shared: Arc<Shared>,
    /// Identity keys of the validators.
    pub validators: Vec<String>,
    /// Our identity key, if we validate.
    pub identity: Option<String>,
    /// Consensus peers this node is configured to connect to (other validators and followers).
    pub configured_peers: u64,
    /// Raw transactions admitted through RPC, for gossip to the other validators.
    pub gossip: Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
    /// Blocks per epoch.
    pub epoch_length: u64,
}

fn backend_error(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(e.to_string())
}

fn block_data(f: FinalizedBlock) -> Arc<BlockData> {
    Arc::new(BlockData {
        block: (*f.block).clone(),
        senders: f.senders,
        receipts: f.receipts,
    })
}

impl NodeBackend {
    /// The stateless transaction rules of this chain (with the gas limit in force).
    pub fn rules(&self) -> TxRules {
        let p = self.params();
        TxRules::new(p.chain_id, p.gas_limit)
    }

    /// The parameters in force for the next block: the governed gas limit and base-fee floor
    /// from the finalized state (the genesis values if it cannot be read).
    fn params(&self) -> chain_state::ChainParams {
        let mut params = self.executor.params().clone();
        let store = &*self.store;
        if let Ok(limit) = chain_state::read_param_u64(store, chain_state::Param::GasLimit) {
            params.gas_limit = limit;
        }
        if let Ok(floor) = chain_state::read_param_u64(store, chain_state::Param::MinBaseFee) {
            params.min_base_fee = floor;
        }
        params
    }

    /// The environment of the next block, for calls and estimates.
    fn next_env(&self) -> BlockEnv {
        let head = self.shared.head();
        let header = &head.block.header;
        let params = self.params();
        BlockEnv {
            number: header.number + 1,
            timestamp_ms: crate::now_ms().max(header.timestamp_ms + 1),
            proposer: Address::ZERO,
            base_fee: next_base_fee(&params, header),
            gas_limit: params.gas_limit,
        }
    }

    fn state_nonce(&self, address: &Address) -> Result<u64, BackendError> {
        Ok(self
            .store
            .account(address)
            .map_err(backend_error)?
            .map_or(0, |a| a.nonce))
    }

    /// Checks and admits one recovered transaction.
    pub fn admit(&self, tx: RecoveredTx) -> Result<B256, SubmitError> {
        let hash = tx.hash();
        let base_fee = self.next_env().base_fee;
        check_admission(&*self.store, &tx, base_fee).map_err(|e| match e {
            chain_state::CheckError::Admission(e) => SubmitError::from(e),
            chain_state::CheckError::Store(e) => SubmitError {
                code: chain_rpc::INTERNAL_ERROR,
                message: e.0,
            },
        })?;
        let nonce = self.state_nonce(&tx.sender())?;
        self.shared.mempool.lock().insert(tx, nonce)?;
        Ok(hash)
    }
}

impl NodeBackend {
    /// The epoch of the block after the finalized head.
    pub(crate) fn next_epoch(&self) -> u64 {
        (self.shared.head_number() + 1) / self.epoch_length.max(1)
    }

    /// The identity keys of the committee that votes on the next block; the genesis set if the
    /// state cannot tell.
    fn committee_identities(&self) -> Vec<String> {
        let epoch = self.next_epoch();
        match crate::modules::committee(&*self.store, epoch) {
            Ok(Some(members)) => members.into_iter().map(|(_, i)| i.identity).collect(),
            _ => self.validators.clone(),
        }
    }
}

fn call_error(e: chain_state::CallError) -> CallError {
    match e {
        chain_state::CallError::Reverted { output } => CallError::Reverted { output },
        other => CallError::Other {
            code: chain_types::SERVER_ERROR,
            message: other.to_string(),
        },
    }
}

impl Backend for NodeBackend {
    fn chain_id(&self) -> u64 {
        self.executor.params().chain_id
    }

    fn client_version(&self) -> String {
        format!(
            "btt/v{}/{}-{}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    }

    fn head(&self) -> u64 {
        self.shared.head_number()
    }

    fn block_by_number(&self, number: u64) -> Result<Option<Arc<BlockData>>, BackendError> {
        if number > self.head() {
            return Ok(None);
        }
        Ok(self
            .store
            .block(number)
            .map_err(backend_error)?
            .map(block_data))
    }

    fn block_by_hash(&self, hash: B256) -> Result<Option<Arc<BlockData>>, BackendError> {
        match self.store.height_of(&hash).map_err(backend_error)? {
            Some(n) => self.block_by_number(n),
            None => Ok(None),
        }
    }

    fn tx_location(&self, hash: B256) -> Result<Option<(u64, usize)>, BackendError> {
        self.store.tx_location(&hash).map_err(backend_error)
    }

    fn pending_tx(&self, hash: B256) -> Option<RecoveredTx> {
        self.shared.mempool.lock().get(&hash).cloned()
    }

    fn account(&self, address: Address) -> Result<AccountView, BackendError> {
        Ok(match self.store.account(&address).map_err(backend_error)? {
            Some(a) => AccountView {
                nonce: a.nonce,
                balance: a.balance,
                code_hash: a.code_hash,
            },
            None => AccountView {
                code_hash: alloy_primitives::KECCAK256_EMPTY,
                ..AccountView::default()
            },
        })
    }

    fn pending_nonce(&self, address: Address) -> Result<u64, BackendError> {
        let nonce = self.state_nonce(&address)?;
        Ok(self.shared.mempool.lock().pending_nonce(&address, nonce))
    }

    fn code(&self, address: Address) -> Result<Bytes, BackendError> {
        let Some(account) = self.store.account(&address).map_err(backend_error)? else {
            return Ok(Bytes::new());
        };
        Ok(self
            .store
            .code(&account.code_hash)
            .map_err(backend_error)?
            .unwrap_or_default())
    }

    fn storage(&self, address: Address, slot: U256) -> Result<B256, BackendError> {
        let value = self.store.storage(&address, &slot).map_err(backend_error)?;
        Ok(B256::from(value.to_be_bytes::<32>()))
    }

    fn call(&self, request: CallRequest) -> Result<Bytes, CallError> {
        self.executor
            .call(&*self.store, &self.next_env(), &request)
            .map(|outcome| outcome.output)
            .map_err(call_error)
    }

    fn estimate_gas(&self, request: CallRequest) -> Result<u64, CallError> {
        self.executor
            .estimate_gas(&*self.store, &self.next_env(), &request)
            .map_err(call_error)
    }

    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, SubmitError> {
        let tx = decode_and_recover(&raw, &self.rules())?;
        let hash = self.admit(tx)?;
        if let Some(gossip) = &self.gossip {
            let _ = gossip.send(raw.to_vec());
        }
        Ok(hash)
    }

    fn next_base_fee(&self) -> u64 {
        self.next_env().base_fee
    }

    fn suggested_priority_fee(&self) -> u128 {
        SUGGESTED_TIP
    }

    fn syncing(&self) -> Option<SyncProgress> {
        let current = self.head();
        let highest = self
            .shared
            .finalized_tip
            .load(std::sync::atomic::Ordering::Relaxed);
        // A few blocks behind is normal pipelining, not catching up.
        (highest > current + 2).then_some(SyncProgress {
            starting_block: self.shared.start_height,
            current_block: current,
            highest_block: highest,
        })
    }

    fn status(&self) -> NodeStatus {
        let head = self.shared.head();
        let header = &head.block.header;
        NodeStatus {
            chain_id: self.chain_id(),
            client_version: self.client_version(),
            height: header.number,
            finalized_hash: head.block.hash(),
            finalized_timestamp_ms: header.timestamp_ms,
            epoch: header.epoch,
            validators: self.committee_identities(),
            validator_identity: self.identity.clone(),
            last_finality_latency_ms: self.shared.last_latency_ms(),
            peers: self.configured_peers,
            mempool_txs: self.shared.mempool.lock().len() as u64,
            syncing: self.syncing().is_some(),
        }
    }

    fn extension(
        &self,
        method: &str,
        params: &[serde_json::Value],
    ) -> Option<Result<serde_json::Value, chain_rpc::ExtensionError>> {
        crate::views::extension(self, method, params)
    }
}
