//! Ethereum JSON-RPC server of the chain node: `eth_*`, `net_*`, `web3_*` and `btt_*` over HTTP.
//!
//! # Layout
//! - [`Backend`] (`backend.rs`): what the server asks the node, synchronously and in our own
//!   types ([`BlockData`], [`AccountView`], [`CallRequest`], [`NodeStatus`], …). The node keeps
//!   only the latest state, so state queries answer at the head and refuse older blocks with
//!   [`HISTORICAL_STATE`]. Finality is immediate: `latest` = `safe` = `finalized` = `pending`.
//! - `jsonrpc.rs`: JSON-RPC 2.0 framing without I/O (single and batch requests, notifications,
//!   ids echoed byte for byte, positional parameters decoded one by one so errors name them) and
//!   the error codes ([`PARSE_ERROR`] … [`EXECUTION_REVERTED`]).
//! - `methods.rs`: the method table; `convert.rs`: our blocks, transactions, receipts and logs
//!   in alloy's RPC types, so the JSON is exactly what viem, ethers and cast parse. Blocks report
//!   OUR header hash (the one `parentHash` links to), shown with an Ethereum-shaped header.
//! - `server.rs`: [`router`] (axum, `POST /`, permissive CORS for browser wallets), [`serve`]
//!   and [`Server`] with graceful shutdown; body and batch limits in [`Config`].
//!
//! # Methods
//! `eth_chainId`, `net_version`, `web3_clientVersion`, `net_listening`, `net_peerCount`,
//! `eth_accounts`, `eth_blockNumber`, `eth_syncing`, `eth_gasPrice`, `eth_maxPriorityFeePerGas`,
//! `eth_feeHistory`, `eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`,
//! `eth_getStorageAt`, `eth_call`, `eth_estimateGas`, `eth_sendRawTransaction`,
//! `eth_getBlockByNumber`, `eth_getBlockByHash`, `eth_getBlockTransactionCountByNumber`,
//! `eth_getBlockTransactionCountByHash`, `eth_getTransactionByHash`,
//! `eth_getTransactionByBlockNumberAndIndex`, `eth_getTransactionByBlockHashAndIndex`,
//! `eth_getTransactionReceipt`, `eth_getBlockReceipts`, `eth_getLogs`, `btt_status`,
//! `btt_nodeInfo`.
//!
//! # Dependencies
//! `alloy-rpc-types-eth` gives the exact JSON shapes Ethereum tooling expects; axum (on hyper and
//! tokio) is the HTTP server; `serde_json`'s raw values keep ids and parameters undecoded until
//! needed.
//!
//! ```no_run
//! use std::sync::Arc;
//! use chain_rpc::{Backend, Config, Server, ServerError, DEFAULT_ADDR};
//!
//! async fn run(node: Arc<dyn Backend>) -> Result<(), ServerError> {
//!     let server = Server::start(DEFAULT_ADDR, node, Config::default()).await?;
//!     println!("JSON-RPC on http://{}", server.local_addr());
//!     // … until the node shuts down; in-flight requests finish first.
//!     server.stop().await
//! }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod backend;
mod convert;
mod jsonrpc;
mod methods;
mod server;

#[cfg(test)]
mod tests;

pub use backend::{
    AccountView, Backend, BackendError, BlockData, CallError, ExtensionError, NodeStatus,
    SubmitError, SyncProgress,
};
pub use chain_types::CallRequest;
pub use jsonrpc::{
    ErrorObject, EXECUTION_REVERTED, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST,
    LIMIT_EXCEEDED, METHOD_NOT_FOUND, PARSE_ERROR, SERVER_ERROR,
};
pub use methods::HISTORICAL_STATE;
pub use server::{router, serve, Config, Server, ServerError, DEFAULT_ADDR};
