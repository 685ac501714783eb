//! The genesis file: chain id, parameters, initial balances and the first validator set.
//!
//! The file is JSON (the format every Ethereum tool uses for genesis). Amounts are strings of
//! wei so they survive any JSON reader; the genesis block is derived from the file
//! deterministically, so every node that loads the same file starts from the same block hash.

use std::collections::BTreeMap;
use std::path::Path;

use chain_consensus::ValidatorInfo;
use chain_state::{ChainParams, Executor, GovernedParams, Param, StateChanges};
use chain_types::{Address, Block, Bloom, Bytes, Header, U256};
use serde::{Deserialize, Serialize};

use crate::commitment::Commitment;
use crate::Error;

/// What `btt chain init` writes and every node of the network loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain parameters (the chain id among them).
    pub params: ChainParams,
    /// Timestamp of the genesis block, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Initial balances in wei.
    pub alloc: BTreeMap<Address, GenesisAccount>,
    /// The validator set of epoch 0.
    pub validators: Vec<GenesisValidator>,
    /// Blocks per epoch: the validator set changes only at epoch boundaries. Fixed for the
    /// chain's life (consensus needs it before it can read any state).
    #[serde(default = "default_epoch_length")]
    pub epoch_length: u64,
    /// Governed parameters at genesis, by name (see `chain_state::Param`); any not named takes
    /// its default, except `gas_limit` and `min_base_fee`, which default to `params`.
    #[serde(default)]
    pub governance: GovernedParams,
}

/// Blocks per epoch when the genesis file does not say (100 s at the default block interval).
pub const DEFAULT_EPOCH_LENGTH: u64 = 1_000;

fn default_epoch_length() -> u64 {
    DEFAULT_EPOCH_LENGTH
}

/// A genesis validator's self-bond when the genesis file does not say: 100,000 BTT.
pub fn default_stake() -> U256 {
    U256::from(100_000u64) * U256::from(10u64).pow(U256::from(18))
}

fn default_commission() -> u16 {
    1_000
}

/// An initial balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// Balance in wei, as a decimal or `0x` hex string.
    #[serde(with = "u256_string")]
    pub balance: U256,
}

/// A validator of the first epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// The validator's operator account: named as the proposer of its blocks, receives its
    /// commission and rewards, and signs its staking transactions.
    pub fee_recipient: Address,
    /// Consensus keys and the proof of possession.
    #[serde(flatten)]
    pub keys: ValidatorInfo,
    /// Self-bond in wei, created at genesis and staked (default 100,000 BTT).
    #[serde(default = "default_stake", with = "u256_string")]
    pub stake: U256,
    /// Commission on its delegators' rewards, in basis points (default 1000, 10 %).
    #[serde(default = "default_commission")]
    pub commission_bps: u16,
}

/// Extra data of the genesis block.
const GENESIS_EXTRA: &[u8] = b"btt genesis";

impl Genesis {
    /// Reads and checks a genesis file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let genesis: Self = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        genesis.check().map_err(|reason| Error::Config {
            path: path.to_owned(),
            reason,
        })?;
        Ok(genesis)
    }

    /// Writes the file (pretty JSON).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        crate::store::write_atomic(path, text.as_bytes())
    }

    /// Consistency checks that do not need cryptography (the consensus engine checks the keys).
    pub fn check(&self) -> Result<(), String> {
        if self.validators.is_empty() {
            return Err("genesis has no validators; add at least one".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &self.validators {
            if !seen.insert(&v.keys.identity) {
                return Err(format!("validator {} appears twice", v.keys.identity));
            }
        }
        let mut total = U256::ZERO;
        for account in self.alloc.values() {
            total = total
                .checked_add(account.balance)
                .ok_or("genesis balances overflow 2^256 wei")?;
        }
        let p = &self.params;
        if p.chain_id == 0 {
            return Err("chain_id must not be 0".into());
        }
        if p.gas_limit < chain_types::TX_BASE_GAS {
            return Err(format!("gas_limit {} cannot fit a transfer", p.gas_limit));
        }
        if p.elasticity_multiplier == 0 || p.base_fee_change_denominator == 0 {
            return Err(
                "elasticity_multiplier and base_fee_change_denominator must be positive".into(),
            );
        }
        if self.epoch_length < 2 {
            return Err(format!(
                "epoch_length {} is too short: an epoch needs at least 2 blocks",
                self.epoch_length
            ));
        }
        let governed = self.governed();
        governed.check()?;
        let min_bond = governed.get(Param::MinSelfBond);
        for v in &self.validators {
            if v.stake < min_bond {
                return Err(format!(
                    "validator {} stakes {} wei, below min_self_bond {min_bond}",
                    v.keys.identity, v.stake
                ));
            }
            if v.commission_bps > 10_000 {
                return Err(format!(
                    "validator {} has commission_bps {} above 10000",
                    v.keys.identity, v.commission_bps
                ));
            }
        }
        Ok(())
    }

    /// The governed parameters at genesis: the file's, with `gas_limit` and `min_base_fee`
    /// taken from `params` unless named.
    pub fn governed(&self) -> GovernedParams {
        let mut governed = self.governance.clone();
        governed
            .0
            .entry(Param::GasLimit)
            .or_insert(U256::from(self.params.gas_limit));
        governed
            .0
            .entry(Param::MinBaseFee)
            .or_insert(U256::from(self.params.min_base_fee));
        governed
    }

    /// The initial state.
    pub fn state(&self, executor: &Executor) -> Result<StateChanges, Error> {
        let alloc: Vec<(Address, U256)> = self
            .alloc
            .iter()
            .map(|(a, acc)| (*a, acc.balance))
            .collect();
        executor
            .genesis(&alloc)
            .map_err(|e| Error::Corrupt(format!("genesis state: {e}")))
    }

    /// The genesis block, whose state root commits to [`Genesis::state`].
    pub fn block(&self, executor: &Executor) -> Result<Block, Error> {
        let changes = self.state(executor)?;
        let state_root = Commitment::root_of_changes(&changes);
        Ok(Block {
            header: Header {
                parent_hash: Default::default(),
                number: 0,
                timestamp_ms: self.timestamp_ms,
                proposer: Address::ZERO,
                epoch: 0,
                state_root,
                transactions_root: chain_types::transactions_root(&[]),
                receipts_root: chain_types::receipts_root(&[]),
                logs_bloom: Bloom::ZERO,
                gas_limit: self.params.gas_limit,
                gas_used: 0,
                base_fee_per_gas: self.params.initial_base_fee,
                extra_data: Bytes::from_static(GENESIS_EXTRA),
            },
            transactions: Vec::new(),
        })
    }

    /// The validator whose consensus identity is `identity`.
    pub fn validator(&self, identity: &str) -> Option<&GenesisValidator> {
        self.validators.iter().find(|v| v.keys.identity == identity)
    }
}

/// Serde for a [`U256`] as a decimal string (written) or decimal/`0x` hex (read).
mod u256_string {
    use chain_types::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = match text.strip_prefix("0x") {
            Some(hex) => U256::from_str_radix(hex, 16),
            None => U256::from_str_radix(&text, 10),
        };
        parsed.map_err(|_| serde::de::Error::custom(format!("{text:?} is not an amount in wei")))
    }
}
