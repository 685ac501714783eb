//! What the node shows of the chain and the wallet.
//!
//! The node reads the chain through its JSON-RPC, whether the chain runs in-process (the
//! single-validator local chain of `btt node`) or elsewhere, so both look the same here and the
//! swarm never waits on chain internals. Reads carry a short deadline: a slow or absent chain
//! makes the chain panel say so, it never stalls the API.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

/// How long one chain read may take before the view reports the chain as unreachable.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where chain data comes from.
#[derive(Debug, Clone)]
pub struct ChainSource {
    mode: &'static str,
    client: Option<std::sync::Arc<wallet::RpcClient>>,
}

/// The chain panel.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainView {
    /// `local` (in-process single validator), `remote` (a configured RPC) or `off`.
    pub mode: &'static str,
    /// The JSON-RPC URL.
    pub rpc: Option<String>,
    /// EIP-155 chain id.
    pub chain_id: Option<u64>,
    /// Latest finalized height.
    pub height: Option<u64>,
    /// The finalized head's timestamp, ms since the Unix epoch.
    pub block_time_ms: Option<u64>,
    /// Proposal-to-finalization latency of the head, ms.
    pub finality_ms: Option<u64>,
    /// Validator identities.
    pub validators: Vec<String>,
    /// Whether the node is catching up.
    pub syncing: Option<bool>,
    /// Why the chain could not be read.
    pub error: Option<String>,
}

/// One wallet account.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccountView {
    /// 0x address (checksummed).
    pub address: String,
    /// Balance in base units, when the chain answered.
    pub balance_wei: Option<String>,
}

impl ChainSource {
    /// No chain: the panels say so.
    pub fn off() -> Self {
        Self {
            mode: "off",
            client: None,
        }
    }

    /// The in-process chain, read through its RPC at `rpc_url`.
    pub fn local(rpc_url: &str) -> Result<Self, wallet::ClientError> {
        Self::over_rpc("local", rpc_url)
    }

    /// A chain node elsewhere.
    pub fn remote(rpc_url: &str) -> Result<Self, wallet::ClientError> {
        Self::over_rpc("remote", rpc_url)
    }

    fn over_rpc(mode: &'static str, rpc_url: &str) -> Result<Self, wallet::ClientError> {
        let client = wallet::RpcClient::new(rpc_url)?.with_timeout(CHAIN_TIMEOUT);
        Ok(Self {
            mode,
            client: Some(std::sync::Arc::new(client)),
        })
    }

    /// The RPC URL, if any.
    pub fn rpc_url(&self) -> Option<&str> {
        self.client.as_ref().map(|c| c.url())
    }

    /// An account's balance in wei, or why it could not be read.
    pub async fn balance(&self, who: wallet::Address) -> Result<u128, String> {
        let Some(client) = &self.client else {
            return Err("the node runs without a chain (--chain off)".into());
        };
        let wei = client.balance(who).await.map_err(|e| e.to_string())?;
        u128::try_from(wei.0).map_err(|_| "the balance does not fit in 128 bits".into())
    }

    /// Reads the chain's status (`btt_status`).
    pub async fn status(&self) -> ChainView {
        let mut view = ChainView {
            mode: self.mode,
            rpc: self.rpc_url().map(str::to_string),
            chain_id: None,
            height: None,
            block_time_ms: None,
            finality_ms: None,
            validators: Vec::new(),
            syncing: None,
            error: None,
        };
        let Some(client) = &self.client else {
            return view;
        };
        match client.request("btt_status", json!([])).await {
            Ok(v) => match serde_json::from_value::<chain_rpc::NodeStatus>(v) {
                Ok(s) => {
                    view.chain_id = Some(s.chain_id);
                    view.height = Some(s.height);
                    view.block_time_ms = Some(s.finalized_timestamp_ms);
                    view.finality_ms = s.last_finality_latency_ms;
                    view.validators = s.validators;
                    view.syncing = Some(s.syncing);
                }
                Err(e) => view.error = Some(format!("unexpected btt_status reply: {e}")),
            },
            Err(e) => view.error = Some(e.to_string()),
        }
        view
    }

    /// The keystore's addresses with their balances. Only addresses: keys never leave the
    /// keystore through the API.
    pub async fn accounts(&self, keystore: Option<&Path>) -> Vec<AccountView> {
        let Some(dir) = keystore else {
            return Vec::new();
        };
        let addresses = match wallet::Keystore::open(dir).and_then(|k| k.list()) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("keystore {}: {e}", dir.display());
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(addresses.len());
        for a in addresses {
            let balance = match &self.client {
                // Base units, not the BTT display form of `Wei`'s `Display`.
                Some(c) => c.balance(a).await.ok().map(|w| w.0.to_string()),
                None => None,
            };
            out.push(AccountView {
                address: a.to_string(),
                balance_wei: balance,
            });
        }
        out
    }
}

/// The market panel of a node that runs no market.
pub fn market_view() -> Value {
    crate::node_market::disabled_view()
}
