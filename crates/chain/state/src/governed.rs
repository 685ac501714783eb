//! Parameters that governance can change, where they live in state, and their bounds.
//!
//! Each [`Param`] has a fixed id; its value is a `uint256` in the governance module's storage at
//! [`param_slot`]. Genesis writes every value ([`GovernedParams`], defaults for a devnet);
//! a passed ParamChange proposal overwrites one. Readers take the value at the parent state of
//! the block they build or check, so a change is in force from the block after the one that
//! wrote it.
//!
//! # Encoding
//! A value `v` is stored as `v + 1` ([`encode_param`]), so that a word of zero means "never
//! written" and reads as the default, while zero itself stays a value governance can choose
//! (a slash of 0 bps, no emission). Every writer goes through [`encode_param`] and every reader
//! through [`decode_param`]; the bounds keep `v + 1` far below 2²⁵⁶.
//!
//! The epoch length is not here: consensus must agree on it before it can read any state, so it
//! is fixed at genesis.

use std::collections::BTreeMap;

use alloy_primitives::{keccak256, Address, U256};
use serde::{Deserialize, Serialize};

use crate::modules::{module_address, ModuleContext, ModuleError};
use crate::state::{StateReader, StoreError};

/// The staking module (`0x…b77001`).
pub fn staking_address() -> Address {
    module_address(1)
}

/// The governance module (`0x…b77002`), which also stores the governed parameters.
pub fn governance_address() -> Address {
    module_address(2)
}

/// One governed parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// Most gas per block.
    GasLimit,
    /// The base fee floor, in wei per gas.
    MinBaseFee,
    /// Blocks an undelegation waits before its tokens are paid out.
    UnbondingBlocks,
    /// Fraction of a validator's stake (and its delegators') slashed for double signing, in
    /// basis points.
    SlashDoubleSignBps,
    /// Fraction slashed for downtime, in basis points.
    SlashDowntimeBps,
    /// Blocks a jailed validator waits before it may unjail.
    JailBlocks,
    /// Size of the active validator set.
    MaxValidators,
    /// Least self-bond of a validator, in wei.
    MinSelfBond,
    /// New BTT minted per block for validators and delegators, in wei.
    EmissionPerBlock,
    /// Most a validator may change its commission in one call, in basis points (and at most
    /// once per epoch).
    MaxCommissionChangeBps,
    /// Blocks a proposal is open for votes.
    VotingPeriodBlocks,
    /// Least deposit of a proposal, in wei.
    MinDeposit,
    /// Share of all bonded stake that must vote for a tally to count, in basis points.
    QuorumBps,
    /// Share of Yes among Yes + No needed to pass, in basis points.
    ThresholdBps,
    /// Share of NoWithVeto among all votes that rejects a proposal and burns its deposit, in
    /// basis points.
    VetoBps,
    /// Blocks an active validator may go without proposing before it is slashed
    /// [`Param::SlashDowntimeBps`] and jailed (checked at each epoch's end).
    DowntimeWindowBlocks,
}

impl Param {
    /// Every parameter, in id order.
    pub const ALL: [Self; 16] = [
        Self::GasLimit,
        Self::MinBaseFee,
        Self::UnbondingBlocks,
        Self::SlashDoubleSignBps,
        Self::SlashDowntimeBps,
        Self::JailBlocks,
        Self::MaxValidators,
        Self::MinSelfBond,
        Self::EmissionPerBlock,
        Self::MaxCommissionChangeBps,
        Self::VotingPeriodBlocks,
        Self::MinDeposit,
        Self::QuorumBps,
        Self::ThresholdBps,
        Self::VetoBps,
        Self::DowntimeWindowBlocks,
    ];

    /// The id used in calldata and storage (1-based, stable).
    pub fn id(self) -> u8 {
        // ALL is in id order and short.
        Self::ALL
            .iter()
            .position(|p| *p == self)
            .map_or(0, |i| u8::try_from(i + 1).unwrap_or(0))
    }

    /// The parameter with `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.get(usize::from(id).checked_sub(1)?).copied()
    }

    /// The snake_case name (as in genesis files and `btt gov propose --param`).
    pub fn name(self) -> &'static str {
        match self {
            Self::GasLimit => "gas_limit",
            Self::MinBaseFee => "min_base_fee",
            Self::UnbondingBlocks => "unbonding_blocks",
            Self::SlashDoubleSignBps => "slash_double_sign_bps",
            Self::SlashDowntimeBps => "slash_downtime_bps",
            Self::JailBlocks => "jail_blocks",
            Self::MaxValidators => "max_validators",
            Self::MinSelfBond => "min_self_bond",
            Self::EmissionPerBlock => "emission_per_block",
            Self::MaxCommissionChangeBps => "max_commission_change_bps",
            Self::VotingPeriodBlocks => "voting_period_blocks",
            Self::MinDeposit => "min_deposit",
            Self::QuorumBps => "quorum_bps",
            Self::ThresholdBps => "threshold_bps",
            Self::VetoBps => "veto_bps",
            Self::DowntimeWindowBlocks => "downtime_window_blocks",
        }
    }

    /// The parameter called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The inclusive range a value must be in (genesis and proposals are checked against it).
    pub fn bounds(self) -> (U256, U256) {
        let n = U256::from;
        let btt = U256::from(10u64).pow(U256::from(18));
        match self {
            Self::GasLimit => (n(1_000_000u64), n(1_000_000_000u64)),
            Self::MinBaseFee => (U256::ZERO, n(1_000_000_000_000u64)),
            Self::UnbondingBlocks => (n(1u64), n(10_000_000u64)),
            Self::SlashDoubleSignBps | Self::SlashDowntimeBps => (U256::ZERO, n(10_000u64)),
            Self::JailBlocks => (n(1u64), n(10_000_000u64)),
            Self::MaxValidators => (n(1u64), n(1_000u64)),
            Self::MinSelfBond => (n(1u64), btt * n(1_000_000_000u64)),
            Self::EmissionPerBlock => (U256::ZERO, btt * n(1_000u64)),
            Self::MaxCommissionChangeBps => (n(1u64), n(10_000u64)),
            Self::VotingPeriodBlocks => (n(2u64), n(10_000_000u64)),
            Self::MinDeposit => (n(1u64), btt * n(1_000_000_000u64)),
            Self::QuorumBps | Self::ThresholdBps | Self::VetoBps => (n(1u64), n(10_000u64)),
            Self::DowntimeWindowBlocks => (n(10u64), n(10_000_000u64)),
        }
    }

    /// Whether `value` is within [`Param::bounds`].
    pub fn check(self, value: U256) -> Result<(), String> {
        let (low, high) = self.bounds();
        if value < low || value > high {
            return Err(format!(
                "{} must be between {low} and {high}, not {value}",
                self.name()
            ));
        }
        Ok(())
    }

    /// The devnet default.
    pub fn default_value(self) -> U256 {
        let n = U256::from;
        let btt = U256::from(10u64).pow(U256::from(18));
        match self {
            Self::GasLimit => n(30_000_000u64),
            Self::MinBaseFee => n(crate::params::GWEI),
            Self::UnbondingBlocks => n(100u64),
            Self::SlashDoubleSignBps => n(500u64),
            Self::SlashDowntimeBps => n(1u64),
            Self::JailBlocks => n(100u64),
            Self::MaxValidators => n(100u64),
            Self::MinSelfBond => btt * n(1_000u64),
            Self::EmissionPerBlock => btt / n(10u64),
            Self::MaxCommissionChangeBps => n(100u64),
            Self::VotingPeriodBlocks => n(50u64),
            Self::MinDeposit => btt * n(100u64),
            Self::QuorumBps => n(3_340u64),
            Self::ThresholdBps => n(5_000u64),
            Self::VetoBps => n(3_340u64),
            Self::DowntimeWindowBlocks => n(200u64),
        }
    }
}

/// The storage slot of `param` in the governance module.
pub fn param_slot(param: Param) -> U256 {
    U256::from_be_bytes(keccak256([b"btt.param.".as_slice(), &[param.id()]].concat()).0)
}

/// The storage word of the value `value` (`value + 1`, see the module docs' encoding). The
/// bounds keep every value far below `U256::MAX`; it saturates there anyway.
pub fn encode_param(value: U256) -> U256 {
    value.saturating_add(U256::from(1u64))
}

/// The value of `param` stored as `word`: the default for zero (never written), else
/// `word − 1`.
pub fn decode_param(param: Param, word: U256) -> U256 {
    word.checked_sub(U256::from(1u64))
        .unwrap_or_else(|| param.default_value())
}

/// The genesis values of the governed parameters: defaults, overridden by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GovernedParams(pub BTreeMap<Param, U256>);

impl GovernedParams {
    /// The value of `param`: the override, else the default.
    pub fn get(&self, param: Param) -> U256 {
        self.0
            .get(&param)
            .copied()
            .unwrap_or_else(|| param.default_value())
    }

    /// Checks every override against its bounds.
    pub fn check(&self) -> Result<(), String> {
        self.0.iter().try_for_each(|(p, v)| p.check(*v))
    }
}

/// Reads `param` from a state (never written reads as the default).
pub fn read_param(state: &impl StateReader, param: Param) -> Result<U256, StoreError> {
    let word = state.storage(&governance_address(), &param_slot(param))?;
    Ok(decode_param(param, word))
}

/// Reads `param` as a `u64`, saturating.
pub fn read_param_u64(state: &impl StateReader, param: Param) -> Result<u64, StoreError> {
    Ok(read_param(state, param)?.saturating_to())
}

/// Reads `param` from inside a module call.
pub fn param(ctx: &mut dyn ModuleContext, param: Param) -> Result<U256, ModuleError> {
    let word = ctx.sload_at(governance_address(), param_slot(param))?;
    Ok(decode_param(param, word))
}

/// Bonded stake as governance weighs votes: implemented by the staking module over its storage
/// (read with [`ModuleContext::sload_at`], so it works from any module's call).
pub trait StakeView {
    /// Every validator with bonded tokens: (validator address, bonded tokens), in address order.
    fn validators(&mut self) -> Result<Vec<(Address, U256)>, ModuleError>;
    /// `delegator`'s bonded delegations: (validator address, tokens), in validator order. A
    /// validator operator's self-bond is its delegation to itself.
    fn delegations(&mut self, delegator: Address) -> Result<Vec<(Address, U256)>, ModuleError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_defaults() {
        for (i, p) in Param::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(p.id()), i + 1);
            assert_eq!(Param::from_id(p.id()), Some(p));
            assert_eq!(Param::from_name(p.name()), Some(p));
            assert_eq!(p.check(p.default_value()), Ok(()), "{}", p.name());
        }
        assert_eq!(Param::from_id(0), None);
        assert_eq!(Param::ALL.len(), 16);
        assert_eq!(Param::DowntimeWindowBlocks.id(), 16);
        assert_eq!(Param::from_id(17), None);
        assert_eq!(
            Param::from_name("downtime_window_blocks"),
            Some(Param::DowntimeWindowBlocks)
        );
        assert_eq!(
            Param::DowntimeWindowBlocks.default_value(),
            U256::from(200u64)
        );
        assert!(Param::DowntimeWindowBlocks.check(U256::from(9u64)).is_err());
        assert!(Param::DowntimeWindowBlocks
            .check(U256::from(10_000_001u64))
            .is_err());
        assert!(Param::GasLimit.check(U256::from(999_999u64)).is_err());
        let json = r#"{"gas_limit":"0x1c9c380","max_validators":"0x4"}"#;
        let g: GovernedParams = serde_json::from_str(json).unwrap();
        assert_eq!(g.get(Param::MaxValidators), U256::from(4u64));
        assert_eq!(g.get(Param::QuorumBps), U256::from(3_340u64));
        assert_eq!(
            address_hex(governance_address()),
            "0x0000000000000000000000000000000000b77002"
        );
    }

    #[test]
    fn values_are_stored_plus_one_so_zero_is_a_value() {
        let p = Param::EmissionPerBlock;
        // Never written: the default.
        assert_eq!(decode_param(p, U256::ZERO), p.default_value());
        assert_eq!(encode_param(U256::ZERO), U256::from(1u64));
        assert_eq!(decode_param(p, encode_param(U256::ZERO)), U256::ZERO);
        for q in Param::ALL {
            let (low, high) = q.bounds();
            for v in [low, high, q.default_value()] {
                assert_eq!(decode_param(q, encode_param(v)), v, "{}", q.name());
            }
        }
        assert_eq!(encode_param(U256::MAX), U256::MAX);
    }

    fn address_hex(a: Address) -> String {
        format!("{a:#x}")
    }
}
