//! Running a node: open the store, start the JSON-RPC server and the consensus engine, and stop
//! both cleanly. A validator votes and proposes; a full node (a `node_key` instead of a
//! `validator_key`) follows the validators' certificates, executes and stores every finalized
//! block, serves JSON-RPC, and forwards the transactions it receives to the validators over
//! the same gossip channel validators use among themselves.

use std::sync::Arc;

use chain_consensus::{NodeKey, Role, ValidatorKeys};
use chain_rpc::Server;

use crate::app::{init_store, App};
use crate::backend::NodeBackend;
use crate::config::{NodeConfig, DEFAULT_MAX_BLOCK_BYTES};
use crate::genesis::Genesis;
use crate::gossip;
use crate::mempool::{Limits, Mempool};
use crate::shared::Shared;
use crate::store::Store;
use crate::Error;

/// Reads the node's key file: a validator's consensus keys (with its fee recipient from the
/// genesis file) or a full node's identity.
fn load_role(config: &NodeConfig, genesis: &Genesis) -> Result<Role, Error> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .map_err(|e| Error::io(path, e))
    };
    let invalid = |path: &std::path::Path, reason: String| Error::Config {
        path: path.to_owned(),
        reason,
    };
    match (&config.validator_key, &config.node_key) {
        (Some(path), _) => {
            // A validator outside the genesis set follows the chain until it stakes and the
            // staking module puts it in an epoch's committee.
            let keys =
                ValidatorKeys::from_hex(&read(path)?).map_err(|e| invalid(path, e.to_string()))?;
            Ok(Role::Validator(keys))
        }
        (None, Some(path)) => {
            let key = NodeKey::from_hex(&read(path)?).map_err(|e| invalid(path, e.to_string()))?;
            let identity = key.identity_hex();
            if genesis.validator(&identity).is_some() {
                return Err(invalid(
                    path,
                    format!(
                        "node key {identity} is a genesis validator's identity: \
                         give the full node its own key"
                    ),
                ));
            }
            Ok(Role::Follower(key))
        }
        (None, None) => Err(invalid(
            &config.genesis,
            "the node config sets neither validator_key nor node_key".into(),
        )),
    }
}

/// A running node.
pub struct Node {
    consensus: chain_consensus::Handle,
    rpc: Server,
    backend: Arc<NodeBackend>,
}

impl Node {
    /// Starts a validator or a full node from its config. Must be called inside a tokio runtime
    /// (the RPC server runs on it; consensus runs on its own thread).
    pub async fn start(config: &NodeConfig) -> Result<Self, Error> {
        let genesis = Genesis::load(&config.genesis)?;
        let role = load_role(config, &genesis)?;
        let validator_identity = match &role {
            Role::Validator(keys) => Some(keys.identity_hex()),
            Role::Follower(_) => None,
        };

        let executor = Arc::new(crate::modules::executor(&genesis)?);
        let store = Arc::new(Store::open(&config.data_dir.join("chain.redb"))?);
        let genesis_block = init_store(&store, &executor, &genesis)?;
        let head = store.head()?.unwrap_or(0);
        let head = store
            .block(head)?
            .ok_or_else(|| Error::Corrupt(format!("head block {head} is missing")))?;
        let shared = Arc::new(Shared::new(Mempool::new(Limits::default()), head));

        let (gossip_out_tx, gossip_out_rx) = tokio::sync::mpsc::unbounded_channel();
        let (gossip_in_tx, gossip_in_rx) = tokio::sync::mpsc::unbounded_channel();
        let backend = Arc::new(NodeBackend {
            executor: executor.clone(),
            store: store.clone(),
            shared: shared.clone(),
            validators: genesis
                .validators
                .iter()
                .map(|v| v.keys.identity.clone())
                .collect(),
            configured_peers: configured_peers(&genesis, config, validator_identity.is_some()),
            identity: validator_identity.clone(),
            gossip: Some(gossip_out_tx),
            epoch_length: genesis.epoch_length,
        });
        let rpc = Server::start(
            config.rpc.listen,
            backend.clone(),
            chain_rpc::Config::default(),
        )
        .await
        .map_err(|e| Error::Start(e.to_string()))?;

        let app = App::new(
            (*executor).clone(),
            store,
            shared,
            genesis_block,
            validator_identity.clone(),
            config.block_interval_ms,
        )?;
        let consensus = chain_consensus::start(
            chain_consensus::Config {
                chain_id: genesis.params.chain_id,
                validators: genesis.validators.iter().map(|v| v.keys.clone()).collect(),
                me: role,
                listen: config.p2p.listen,
                peers: config
                    .p2p
                    .peers
                    .iter()
                    .map(|p| (p.identity.clone(), p.address))
                    .collect(),
                followers: config
                    .p2p
                    .followers
                    .iter()
                    .map(|p| (p.identity.clone(), p.address))
                    .collect(),
                storage_dir: config.data_dir.join("consensus"),
                epoch_length: genesis.epoch_length,
                equivocate: config.equivocate,
                leader_timeout_ms: config.leader_timeout_ms,
                max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
                on_gossip: Some(chain_consensus::GossipHandler(Arc::new(move |batch| {
                    let _ = gossip_in_tx.send(batch);
                }))),
            },
            app,
        )
        .map_err(|e| Error::Start(e.to_string()))?;
        tokio::spawn(gossip::send_loop(gossip_out_rx, consensus.gossiper()));
        tokio::spawn(gossip::receive_loop(gossip_in_rx, backend.clone()));
        tracing::info!(
            rpc = %rpc.local_addr(),
            full_node = config.is_full_node(),
            "chain node started"
        );
        Ok(Self {
            consensus,
            rpc,
            backend,
        })
    }

    /// Where JSON-RPC is served.
    pub fn rpc_addr(&self) -> std::net::SocketAddr {
        self.rpc.local_addr()
    }

    /// The node's RPC backend (for in-process callers such as the daemon's HTTP API).
    pub fn backend(&self) -> Arc<NodeBackend> {
        self.backend.clone()
    }

    /// Stops consensus, then the RPC server.
    pub async fn stop(self) -> Result<(), Error> {
        let consensus = self.consensus;
        tokio::task::spawn_blocking(move || consensus.stop())
            .await
            .map_err(|e| Error::Start(e.to_string()))?;
        self.rpc
            .stop()
            .await
            .map_err(|e| Error::Start(e.to_string()))
    }
}

/// How many consensus peers the node dials or accepts: every other validator, plus the
/// followers a validator serves.
fn configured_peers(genesis: &Genesis, config: &NodeConfig, validator: bool) -> u64 {
    let validators = genesis.validators.len() - usize::from(validator);
    let followers = if validator {
        config.p2p.followers.len()
    } else {
        0
    };
    (validators + followers) as u64
}
