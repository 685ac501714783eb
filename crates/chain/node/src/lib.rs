//! The BTT chain node: the chain behind consensus, its storage and its JSON-RPC surface.
//!
//! # Layout
//! - [`Genesis`] (`genesis.rs`): the genesis file and the block derived from it.
//! - [`NodeConfig`] (`config.rs`): one node's TOML config.
//! - [`Store`] (`store.rs`): redb tables for finalized blocks, receipts, indexes, flat state and
//!   the state commitment's leaves; one write transaction per finalized block.
//! - [`Mempool`] (`mempool.rs`): pending transactions per sender in nonce order, replacement
//!   rules, and the tip-ordered candidate list a proposer builds from.
//! - `commitment.rs`: the bucketed Merkle state commitment as the node maintains it (finalized
//!   tree in memory, overrides for unfinalized blocks).
//! - [`App`] (`app.rs`): the [`chain_consensus::ChainApp`]: builds blocks from the mempool,
//!   verifies proposals by re-executing them, and writes finalized blocks to the store.
//! - [`NodeBackend`] (`backend.rs`): the node as [`chain_rpc::Backend`] for the JSON-RPC server.
//! - `gossip.rs`: batches of transactions admitted through RPC, sent to the other validators
//!   (and from a full node to the validators) over the consensus network so every leader can
//!   include them.
//! - [`Node`] (`node.rs`): starts the store, RPC server and consensus from a config, as a
//!   validator or as a full node (follows and verifies the validators' certificates, executes
//!   and stores every finalized block, serves RPC, forwards transactions to the validators).
//!
//! Finality is deterministic: a block is executed when proposed or verified, and written to the
//! store only once consensus finalizes it, so everything the RPC serves is final.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod app;
mod backend;
mod commitment;
mod config;
mod genesis;
mod gossip;
mod mempool;
mod modules;
mod node;
mod shared;
mod store;
#[cfg(test)]
mod testkit;
mod views;

use std::path::{Path, PathBuf};

pub use app::{init_store, App};
pub use backend::NodeBackend;
pub use config::{
    NodeConfig, P2pConfig, PeerConfig, RpcConfig, DEFAULT_BLOCK_INTERVAL_MS,
    DEFAULT_LEADER_TIMEOUT_MS, DEFAULT_MAX_BLOCK_BYTES,
};
pub use genesis::{default_stake, Genesis, GenesisAccount, GenesisValidator, DEFAULT_EPOCH_LENGTH};
pub use mempool::{Limits, Mempool};
pub use modules::{committee, consensus_key, executor, validator_info};
pub use node::Node;
pub use shared::Shared;
pub use store::{write_atomic, FinalizedBlock, Store};

/// Why the node cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A config or genesis file is invalid.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The database failed.
    #[error("database {path}: {reason}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Stored data contradicts itself or the chain.
    #[error("{0}")]
    Corrupt(String),
    /// A component (RPC server, consensus) failed to start or stop.
    #[error("{0}")]
    Start(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn store(path: &Path, e: impl std::fmt::Display) -> Self {
        Self::Store {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
