//! The deterministic executor of the BTT chain: EVM execution with revm, EIP-1559 fees, native
//! modules, and the bucketed state commitment. Sans-IO: no files, sockets, clocks or async; the
//! node hands in a [`StateReader`] and gets back [`StateChanges`].
//!
//! # Layout
//! - Parameters ([`ChainParams`], [`FeeMode`], [`next_base_fee`]): the consensus constants and
//!   Ethereum's base fee rule with a floor.
//! - State ([`Account`], [`StateReader`], [`StateChanges`], [`Overlay`], [`MemoryState`]): what
//!   the executor reads, the sorted change set it returns, and a reader that stacks unfinalized
//!   blocks over the store.
//! - Execution ([`Executor`]): `execute` checks a proposed block (any invalid transaction makes
//!   it invalid), `build` fills a block from mempool candidates, `call` / `estimate_gas` answer
//!   `eth_call` / `eth_estimateGas`, and [`check_admission`] is the mempool's stateful pre-check.
//!   BTT (18 decimals) is the native token; tips go to the proposer, base fees are burned or
//!   pooled, and the bank module keeps the total supply equal to the sum of all balances.
//! - Native modules ([`NativeModule`], [`Bank`], [`Channels`]): Rust code at `0x…b77000 + n`,
//!   called with ABI calldata through revm as precompiles, so their writes are journaled and
//!   revert like a contract's. [`Channels`] (`0x…b77003`) holds payment channels settled with
//!   EIP-712 vouchers ([`voucher_digest`]).
//! - Commitment ([`leaf_updates`], [`bucket_of`], [`bucket_hash`], [`BucketTree`],
//!   [`verify_proof`]): the pure math of the state root; the format is documented and frozen in
//!   the `commitment` module docs.
//!
//! # Dependencies
//! revm (the EVM of reth and foundry) executes transactions; alloy-sol-types gives native
//! modules the Solidity ABI every tool speaks; alloy-primitives and chain-types are the shared
//! types.
//!
//! ```
//! use alloy_primitives::{address, U256};
//! use chain_state::{BlockEnv, ChainParams, Executor, MemoryState, StateReader, abi::IBank};
//! use chain_state::{CallRequest, BANK_ADDRESS};
//! use alloy_sol_types::SolCall;
//!
//! let executor = Executor::new(ChainParams::default());
//! let alice = address!("00000000000000000000000000000000000a11ce");
//! let mut state = MemoryState::new();
//! state.apply(&executor.genesis(&[(alice, U256::from(10u64).pow(U256::from(18)))]).unwrap());
//! assert_eq!(state.account(&alice).unwrap().unwrap().balance, U256::from(10u64).pow(U256::from(18)));
//!
//! // Ask the bank module for the total supply, as `cast call` would.
//! let env = BlockEnv { number: 1, timestamp_ms: 1_000, proposer: alice, base_fee: 1_000_000_000, gas_limit: 30_000_000 };
//! let req = CallRequest { to: Some(BANK_ADDRESS), input: Some(IBank::totalSupplyCall {}.abi_encode().into()), ..Default::default() };
//! let out = executor.call(&state, &env, &req).unwrap();
//! assert_eq!(IBank::totalSupplyCall::abi_decode_returns(&out.output).unwrap(), U256::from(10u64).pow(U256::from(18)));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod channels;
mod commitment;
mod crypto;
mod executor;
mod governance;
mod governed;
mod modules;
mod params;
mod staking;
mod state;

#[cfg(test)]
mod channels_tests;
#[cfg(test)]
mod governance_tests;
#[cfg(test)]
mod staking_tests;
#[cfg(test)]
mod tests;

pub use channels::{
    abi::IChannels, channel_id, domain_separator, recover_signer, voucher_digest, ChannelError,
    Channels, CHANNELS_ADDRESS, VOUCHER_DOMAIN_NAME, VOUCHER_DOMAIN_TYPE, VOUCHER_DOMAIN_VERSION,
    VOUCHER_RECOVER_GAS, VOUCHER_TYPE,
};
pub use commitment::{
    account_leaf_hash, account_leaf_key, bucket_hash, bucket_of, leaf_updates, root_of_leaves,
    storage_leaf_hash, storage_leaf_key, verify_proof, BucketProof, BucketTree, BUCKETS,
    TREE_DEPTH,
};
pub use crypto::{ConsensusCrypto, ConsensusKey, Offence};
pub use executor::{
    check_admission, BlockEnv, BuiltBlock, CallError, CallOutcome, CallRequest, CheckError,
    ExecError, Executed, Executor, GenesisError, TxInvalid, MODULE_ACCOUNT_CODE, SPEC,
};
pub use governance::{
    abi::IGovernance, Governance, GovernanceError, ProposalKind, ProposalStatus, StakeSource,
    VoteOption, MAX_DESCRIPTION_BYTES, MAX_PROPOSALS_PER_HEIGHT, MAX_VOTERS_PER_PROPOSAL,
};
pub use governed::{
    decode_param, encode_param, governance_address, param, param_slot, read_param, read_param_u64,
    staking_address, GovernedParams, Param, StakeView,
};
pub use modules::{
    abi, module_address, Bank, ModuleCall, ModuleContext, ModuleError, NativeModule, BANK_ADDRESS,
    BANK_BURNED_SLOT, BANK_TOTAL_SUPPLY_SLOT, MODULE_BALANCE_GAS, MODULE_BASE, MODULE_CALL_GAS,
    MODULE_SLOAD_GAS, MODULE_SSTORE_GAS, MODULE_TRANSFER_GAS,
};
pub use params::{next_base_fee, ChainParams, FeeMode, DEVNET_CHAIN_ID, GWEI};
pub use staking::{
    abi::IStaking, committee_of, delegations_of, stake_view, staking_totals, unbondings_of,
    validator_info, validators, DelegationRecord, GenesisStake, Staking, StakingError,
    StakingTotals, UnbondingRecord, ValidatorRecord, ValidatorStatus, BLS_KEY_LEN,
    EVIDENCE_CHECK_GAS, KEY_CHECK_GAS, MAX_COMMISSION_BPS, POP_LEN, REWARD_SCALE,
};
pub use state::{
    Account, MemoryState, Overlay, StateChanges, StateReader, StoreError, KECCAK_EMPTY,
};
