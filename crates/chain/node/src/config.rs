//! The node's configuration file (TOML).
//!
//! ```toml
//! # Paths are relative to this file.
//! data_dir = "node-0"
//! genesis = "genesis.json"
//! validator_key = "node-0/validator.key"
//! block_interval_ms = 100
//!
//! [rpc]
//! listen = "127.0.0.1:8545"
//!
//! [p2p]
//! listen = "127.0.0.1:30300"
//! peers = [{ identity = "0x…", address = "127.0.0.1:30301" }]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Default proposer pacing: at most ten blocks a second.
pub const DEFAULT_BLOCK_INTERVAL_MS: u64 = 100;
/// Default wait for a leader's block before the view is skipped.
pub const DEFAULT_LEADER_TIMEOUT_MS: u64 = 1_000;
/// Default largest block, in encoded bytes.
pub const DEFAULT_MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;

/// One node (validator) of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its database and consensus journal.
    pub data_dir: PathBuf,
    /// The chain's genesis file.
    pub genesis: PathBuf,
    /// This validator's consensus key file (hex, as `btt chain init` writes it).
    pub validator_key: PathBuf,
    /// Proposers wait at least this long after the parent block's timestamp.
    #[serde(default = "default_block_interval_ms")]
    pub block_interval_ms: u64,
    /// How long to wait for a leader's block before voting to skip its view.
    #[serde(default = "default_leader_timeout_ms")]
    pub leader_timeout_ms: u64,
    /// JSON-RPC server.
    pub rpc: RpcConfig,
    /// Validator network.
    pub p2p: P2pConfig,
}

/// JSON-RPC server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// Address to serve JSON-RPC on.
    pub listen: SocketAddr,
}

/// Validator network settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    /// Address to accept validator connections on.
    pub listen: SocketAddr,
    /// Where the other validators are.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
}

/// Another validator's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its consensus identity key (`0x` hex, as in the genesis file).
    pub identity: String,
    /// Where to dial it.
    pub address: SocketAddr,
}

const fn default_block_interval_ms() -> u64 {
    DEFAULT_BLOCK_INTERVAL_MS
}

const fn default_leader_timeout_ms() -> u64 {
    DEFAULT_LEADER_TIMEOUT_MS
}

impl NodeConfig {
    /// Reads a config file; relative paths in it are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: Self = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.data_dir,
            &mut config.genesis,
            &mut config.validator_key,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// The file text (paths as given).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}
