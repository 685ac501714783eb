//! Chain parameters and the EIP-1559 base fee rule.

use serde::{Deserialize, Serialize};

/// One gwei in wei.
pub const GWEI: u64 = 1_000_000_000;

/// The devnet chain id.
pub const DEVNET_CHAIN_ID: u64 = 7215;

/// Where the base fee of every transaction goes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeeMode {
    /// Destroyed, as on Ethereum: total supply shrinks by `base_fee * gas_used`.
    #[default]
    Burn,
    /// Credited to the bank module's account (the fee pool); total supply is unchanged.
    Pool,
}

impl FeeMode {
    /// The ABI code used by the bank module's `chainParams()` view: 0 = burn, 1 = pool.
    pub const fn code(self) -> u8 {
        match self {
            Self::Burn => 0,
            Self::Pool => 1,
        }
    }
}

/// Consensus parameters of execution. Every validator must use the same values; they are part of
/// the genesis configuration.
///
/// Defaults (a devnet): chain id 7215, a 30M gas block limit, a 1 gwei starting and minimum base
/// fee, Ethereum's elasticity of 2 (target 15M gas) and change denominator of 8 (at most ±12.5 %
/// per block), base fees burned. The 1 gwei floor keeps spam from becoming free on an idle chain,
/// where the base fee would otherwise decay to zero in a few hundred blocks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ChainParams {
    /// EIP-155 chain id; transactions signed for another chain are refused.
    pub chain_id: u64,
    /// Most gas one block may use (and one transaction may ask for).
    pub gas_limit: u64,
    /// The base fee of the genesis block, in wei per gas.
    pub initial_base_fee: u64,
    /// The base fee never falls below this, in wei per gas.
    pub min_base_fee: u64,
    /// `gas_limit / elasticity_multiplier` is the gas target (EIP-1559 uses 2).
    pub elasticity_multiplier: u64,
    /// The base fee moves by at most `1 / base_fee_change_denominator` per block (EIP-1559 uses 8).
    pub base_fee_change_denominator: u64,
    /// Whether base fees are burned or pooled.
    pub fee_mode: FeeMode,
}

impl Default for ChainParams {
    fn default() -> Self {
        Self {
            chain_id: DEVNET_CHAIN_ID,
            gas_limit: 30_000_000,
            initial_base_fee: GWEI,
            min_base_fee: GWEI,
            elasticity_multiplier: 2,
            base_fee_change_denominator: 8,
            fee_mode: FeeMode::Burn,
        }
    }
}

impl ChainParams {
    /// The gas target of a block with `gas_limit`: `gas_limit / elasticity_multiplier`
    /// (a zero multiplier is read as 1).
    pub const fn gas_target(&self, gas_limit: u64) -> u64 {
        gas_limit
            / if self.elasticity_multiplier == 0 {
                1
            } else {
                self.elasticity_multiplier
            }
    }
}

/// The base fee of the child of `parent`, per EIP-1559, in exact integer arithmetic:
///
/// - `target = parent.gas_limit / elasticity_multiplier`;
/// - used == target: unchanged;
/// - used > target: `+ max(1, base * (used - target) / target / denominator)`;
/// - used < target: `- base * (target - used) / target / denominator`;
///
/// then raised to at least `min_base_fee` and capped at `u64::MAX`. A zero target or denominator
/// (misconfiguration) leaves the fee unchanged.
pub fn next_base_fee(params: &ChainParams, parent: &chain_types::Header) -> u64 {
    let base = u128::from(parent.base_fee_per_gas);
    let target = u128::from(params.gas_target(parent.gas_limit));
    let used = u128::from(parent.gas_used);
    let denominator = u128::from(params.base_fee_change_denominator);
    let next = if target == 0 || denominator == 0 || used == target {
        base
    } else if used > target {
        let delta = (base * (used - target) / target / denominator).max(1);
        base + delta
    } else {
        let delta = base * (target - used) / target / denominator;
        base - delta
    };
    u64::try_from(next)
        .unwrap_or(u64::MAX)
        .max(params.min_base_fee)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(gas_limit: u64, gas_used: u64, base_fee_per_gas: u64) -> chain_types::Header {
        chain_types::Header {
            gas_limit,
            gas_used,
            base_fee_per_gas,
            ..Default::default()
        }
    }

    fn no_floor() -> ChainParams {
        ChainParams {
            min_base_fee: 0,
            ..ChainParams::default()
        }
    }

    /// go-ethereum's `TestCalcBaseFee` vectors (consensus/misc/eip1559).
    #[test]
    fn geth_vectors() {
        let p = no_floor();
        for (limit, used, base, want) in [
            (20_000_000, 10_000_000, 1_000_000_000, 1_000_000_000),
            (20_000_000, 9_000_000, 1_000_000_000, 987_500_000),
            (20_000_000, 11_000_000, 1_000_000_000, 1_012_500_000),
        ] {
            assert_eq!(next_base_fee(&p, &header(limit, used, base)), want);
        }
    }

    #[test]
    fn extremes() {
        let p = no_floor();
        // Full block: +12.5 %.
        assert_eq!(
            next_base_fee(&p, &header(30_000_000, 30_000_000, 8_000_000_000)),
            9_000_000_000
        );
        // Empty block: -12.5 %.
        assert_eq!(
            next_base_fee(&p, &header(30_000_000, 0, 8_000_000_000)),
            7_000_000_000
        );
        // Tiny base fee above target still rises by at least 1 wei.
        assert_eq!(next_base_fee(&p, &header(30_000_000, 15_000_001, 7)), 8);
        // Empty block at 7 wei: 7 * 1 / 8 rounds to 0, so it stays.
        assert_eq!(next_base_fee(&p, &header(30_000_000, 0, 7)), 7);
        // No overflow at the top of the range.
        assert_eq!(
            next_base_fee(&p, &header(30_000_000, 30_000_000, u64::MAX)),
            u64::MAX
        );
    }

    #[test]
    fn floor_and_degenerate_params() {
        let p = ChainParams::default();
        assert_eq!(next_base_fee(&p, &header(30_000_000, 0, GWEI)), GWEI);
        assert_eq!(next_base_fee(&p, &header(30_000_000, 0, 0)), GWEI);
        let zero_denominator = ChainParams {
            base_fee_change_denominator: 0,
            ..no_floor()
        };
        assert_eq!(
            next_base_fee(&zero_denominator, &header(30_000_000, 0, 5)),
            5
        );
        assert_eq!(next_base_fee(&no_floor(), &header(1, 1, 5)), 5);
    }

    #[test]
    fn serde_defaults_and_names() {
        let p: ChainParams =
            serde_json::from_str(r#"{"chain_id": 9, "fee_mode": "pool"}"#).unwrap();
        assert_eq!(p.chain_id, 9);
        assert_eq!(p.fee_mode, FeeMode::Pool);
        assert_eq!(p.gas_limit, 30_000_000);
        assert!(serde_json::from_str::<ChainParams>(r#"{"gas_limt": 1}"#).is_err());
        let json = serde_json::to_string(&ChainParams::default()).unwrap();
        assert_eq!(
            json,
            r#"{"chain_id":7215,"gas_limit":30000000,"initial_base_fee":1000000000,"min_base_fee":1000000000,"elasticity_multiplier":2,"base_fee_change_denominator":8,"fee_mode":"burn"}"#
        );
    }
}
