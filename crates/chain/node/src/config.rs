//! The node's configuration file (TOML).
//!
//! A validator names its consensus key file (`validator_key`) and may list the full nodes it
//! accepts (`p2p.followers`):
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
//! followers = [{ identity = "0x…", address = "127.0.0.1:30310" }]
//! ```
//! A full node names its p2p identity key file (`node_key`) instead, and lists every validator
//! under `p2p.peers`.

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

/// One node of a chain: a validator (with `validator_key`) or a full node (with `node_key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its database and consensus journal.
    pub data_dir: PathBuf,
    /// The chain's genesis file.
    pub genesis: PathBuf,
    /// A validator's consensus key file (hex, as `btt chain init` writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_key: Option<PathBuf>,
    /// A full node's p2p identity key file (hex, as `btt chain init --full-nodes` writes it).
    /// A full node follows and verifies the chain and serves JSON-RPC, but does not vote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<PathBuf>,
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
    /// Test networks only, never read from a file: besides each honest vote, also sign a
    /// conflicting one, so the other validators see equivocation and the slashing path can be
    /// exercised (the `btt-equivocator` test binary sets it).
    #[serde(skip)]
    pub equivocate: bool,
}

/// JSON-RPC server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// Address to serve JSON-RPC on.
    pub listen: SocketAddr,
}

/// Consensus network settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    /// Address to accept connections on.
    pub listen: SocketAddr,
    /// Where the (other) validators are.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Full nodes this validator accepts connections from (they dial in from the address's
    /// IP); they receive consensus traffic and forward transactions. Ignored on a full node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<PeerConfig>,
}

/// A node's consensus identity and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its identity key (`0x` hex: as in the genesis file for a validator, as the node key
    /// prints it for a full node).
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
        match (&config.validator_key, &config.node_key) {
            (Some(_), None) | (None, Some(_)) => {}
            (Some(_), Some(_)) => {
                return Err(Error::Config {
                    path: path.to_owned(),
                    reason: "both validator_key and node_key are set: keep validator_key for a \
                             validator or node_key for a full node"
                        .into(),
                })
            }
            (None, None) => {
                return Err(Error::Config {
                    path: path.to_owned(),
                    reason: "neither validator_key nor node_key is set: a validator needs \
                             validator_key, a full node needs node_key"
                        .into(),
                })
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut config.data_dir, &mut config.genesis]
            .into_iter()
            .chain(config.validator_key.as_mut())
            .chain(config.node_key.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Whether this is a full node (it has a `node_key`, no `validator_key`).
    pub fn is_full_node(&self) -> bool {
        self.validator_key.is_none()
    }

    /// The file text (paths as given).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    const REST: &str = r#"
[rpc]
listen = "127.0.0.1:8545"

[p2p]
listen = "127.0.0.1:30300"
"#;

    #[test]
    fn full_node_config_round_trips_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data_dir = \"data\"\ngenesis = \"../genesis.json\"\nnode_key = \"node.key\"\n{REST}"
        );
        let config = NodeConfig::load(&write(dir.path(), &text)).unwrap();
        assert!(config.is_full_node());
        assert_eq!(config.validator_key, None);
        assert_eq!(config.node_key, Some(dir.path().join("node.key")));
        assert!(config.p2p.followers.is_empty());
        // What is written is what is read (no validator_key, no empty followers list).
        let written = config.to_toml();
        assert!(!written.contains("validator_key"));
        assert!(!written.contains("followers"));
        let again: NodeConfig = toml::from_str(&written).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn a_node_is_a_validator_or_a_full_node() {
        let dir = tempfile::tempdir().unwrap();
        let both = format!(
            "data_dir = \"d\"\ngenesis = \"g\"\nvalidator_key = \"v\"\nnode_key = \"n\"\n{REST}"
        );
        let err = NodeConfig::load(&write(dir.path(), &both)).unwrap_err();
        assert!(
            err.to_string().contains("both validator_key and node_key"),
            "{err}"
        );
        let neither = format!("data_dir = \"d\"\ngenesis = \"g\"\n{REST}");
        let err = NodeConfig::load(&write(dir.path(), &neither)).unwrap_err();
        assert!(
            err.to_string()
                .contains("neither validator_key nor node_key"),
            "{err}"
        );

        let validator = format!(
            "data_dir = \"d\"\ngenesis = \"g\"\nvalidator_key = \"v\"\n{REST}\nfollowers = [{{ identity = \"0x01\", address = \"127.0.0.1:30310\" }}]\n"
        );
        let config = NodeConfig::load(&write(dir.path(), &validator)).unwrap();
        assert!(!config.is_full_node());
        assert_eq!(config.p2p.followers.len(), 1);
        assert_eq!(config.p2p.followers[0].address.port(), 30310);
    }
}
