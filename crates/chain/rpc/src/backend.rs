//! What the server needs from the node: the [`Backend`] trait and the plain types it speaks.
//!
//! The trait is synchronous on purpose: the node answers from memory and redb in microseconds,
//! and the server calls it from a blocking thread, so a slow `eth_call` never stalls the async
//! runtime. Every type here is ours; conversion into alloy's RPC shapes happens in the server.

use std::sync::Arc;

use alloy_primitives::{Address, Bytes, B256, U256};
use chain_types::{Block, CallRequest, Receipt, RecoveredTx, RpcError};
use serde::{Deserialize, Serialize};

use crate::jsonrpc::{INTERNAL_ERROR, SERVER_ERROR};

/// The node behind the JSON-RPC server.
///
/// Heights: the node only serves finalized blocks, so `latest`, `safe`, `finalized` and `pending`
/// all mean [`Backend::head`] (except that `pending` nonces count the mempool), and `earliest`
/// means genesis (height 0).
pub trait Backend: Send + Sync + 'static {
    /// The EIP-155 chain id.
    fn chain_id(&self) -> u64;

    /// `web3_clientVersion`, e.g. `btt/0.1.0/linux-x86_64`.
    fn client_version(&self) -> String;

    /// Height of the latest finalized block.
    fn head(&self) -> u64;

    /// The finalized block at `number`, with its senders and receipts; `None` above the head or
    /// when the node no longer keeps it.
    fn block_by_number(&self, number: u64) -> Result<Option<Arc<BlockData>>, BackendError>;

    /// The finalized block with this header hash.
    fn block_by_hash(&self, hash: B256) -> Result<Option<Arc<BlockData>>, BackendError>;

    /// Where a finalized transaction is: its block height and its index in the block.
    fn tx_location(&self, hash: B256) -> Result<Option<(u64, usize)>, BackendError>;

    /// A transaction waiting in the mempool.
    fn pending_tx(&self, hash: B256) -> Option<RecoveredTx>;

    /// The account in the latest state (a default view for an account that does not exist).
    fn account(&self, address: Address) -> Result<AccountView, BackendError>;

    /// The next nonce for `address` counting its transactions in the mempool.
    fn pending_nonce(&self, address: Address) -> Result<u64, BackendError>;

    /// The contract code at `address` (empty for accounts without code).
    fn code(&self, address: Address) -> Result<Bytes, BackendError>;

    /// The value of storage `slot` of `address`.
    fn storage(&self, address: Address, slot: U256) -> Result<B256, BackendError>;

    /// Executes a call against the latest state without committing anything.
    fn call(&self, request: CallRequest) -> Result<Bytes, CallError>;

    /// The gas a transaction like `request` needs against the latest state.
    fn estimate_gas(&self, request: CallRequest) -> Result<u64, CallError>;

    /// Admits a raw signed transaction (EIP-2718 bytes) to the mempool and returns its hash.
    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, SubmitError>;

    /// The base fee per gas of the next block, in wei.
    fn next_base_fee(&self) -> u64;

    /// A priority fee per gas that gets a transaction into the next blocks, in wei.
    fn suggested_priority_fee(&self) -> u128;

    /// Catch-up progress while the node fetches finalized blocks; `None` when caught up.
    fn syncing(&self) -> Option<SyncProgress>;

    /// A summary for operators (`btt_status`, `btt_nodeInfo`, `net_peerCount`).
    fn status(&self) -> NodeStatus;

    /// Chain-specific methods the node adds (staking and governance views): `None` when the
    /// node has no method called `method` (answered "method not found"), else its result or a
    /// JSON-RPC error. `params` is the request's parameter array. The default has none.
    fn extension(
        &self,
        method: &str,
        params: &[serde_json::Value],
    ) -> Option<Result<serde_json::Value, ExtensionError>> {
        let _ = (method, params);
        None
    }
}

/// Why an [`Backend::extension`] method failed: a JSON-RPC error code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExtensionError {
    /// The JSON-RPC error code (-32602 for bad parameters, -32603 for the node's own failures).
    pub code: i32,
    /// What went wrong and what to do.
    pub message: String,
}

impl ExtensionError {
    /// Bad parameters (-32602).
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self {
            code: -32602,
            message: message.into(),
        }
    }

    /// The node could not answer (-32603).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: INTERNAL_ERROR,
            message: message.into(),
        }
    }
}

/// A finalized block with what execution derived from it.
///
/// Invariant: `senders` and `receipts` have one entry per transaction, in block order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockData {
    /// The block.
    pub block: Block,
    /// The recovered sender of each transaction.
    pub senders: Vec<Address>,
    /// The receipt of each transaction.
    pub receipts: Vec<Receipt>,
}

/// An account in the latest state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountView {
    /// Transactions sent so far (the next nonce).
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// keccak256 of the code (`KECCAK_EMPTY` for accounts without code).
    pub code_hash: B256,
}

/// Catch-up progress, reported by `eth_syncing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncProgress {
    /// Height the node had when catching up started.
    pub starting_block: u64,
    /// Height finalized locally so far.
    pub current_block: u64,
    /// Highest finalized height seen from peers.
    pub highest_block: u64,
}

/// The node's state for operators, the result of `btt_status` and `btt_nodeInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The EIP-155 chain id.
    pub chain_id: u64,
    /// The client name and version.
    pub client_version: String,
    /// Height of the latest finalized block.
    pub height: u64,
    /// Hash of the latest finalized block.
    pub finalized_hash: B256,
    /// Proposer timestamp of the latest finalized block, milliseconds since the Unix epoch.
    pub finalized_timestamp_ms: u64,
    /// The validator-set epoch of the latest finalized block.
    pub epoch: u64,
    /// The validators' identity keys (0x hex).
    pub validators: Vec<String>,
    /// This node's identity key if it is a validator.
    pub validator_identity: Option<String>,
    /// Time from proposal to finalization of the latest finalized block, in milliseconds.
    pub last_finality_latency_ms: Option<u64>,
    /// Consensus peers the node is configured to connect to (other validators and, on a
    /// validator, the full nodes it serves).
    pub peers: u64,
    /// Transactions waiting in the mempool.
    pub mempool_txs: u64,
    /// Whether the node is still catching up.
    pub syncing: bool,
}

/// Why a storage read failed inside the node. Answered as JSON-RPC internal error -32603.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// What went wrong, for the client and the log.
    pub message: String,
}

impl RpcError for BackendError {
    fn rpc_code(&self) -> i32 {
        INTERNAL_ERROR
    }
}

impl BackendError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Why `eth_call` or `eth_estimateGas` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The EVM reverted; answered with code 3, the revert data and its decoded reason.
    #[error("execution reverted")]
    Reverted {
        /// The revert data.
        output: Bytes,
    },
    /// Anything else (out of gas, insufficient funds, invalid request, storage failure).
    #[error("{message}")]
    Other {
        /// The JSON-RPC error code, usually -32000.
        code: i32,
        /// The message, in geth's wording where geth has one.
        message: String,
    },
}

impl<E: RpcError> From<E> for CallError {
    fn from(e: E) -> Self {
        Self::Other {
            code: e.rpc_code(),
            message: e.rpc_message(),
        }
    }
}

/// Why `eth_sendRawTransaction` refused a transaction: any [`RpcError`] of the node, as its code
/// and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SubmitError {
    /// The JSON-RPC error code (-32000 for transaction rejections).
    pub code: i32,
    /// The message, starting with geth's wording ("nonce too low", …).
    pub message: String,
}

impl<E: RpcError> From<E> for SubmitError {
    fn from(e: E) -> Self {
        Self {
            code: e.rpc_code(),
            message: e.rpc_message(),
        }
    }
}

impl SubmitError {
    /// A -32000 rejection with this message.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            code: SERVER_ERROR,
            message: message.into(),
        }
    }
}
