//! The staking module (`0x…b77001`): validators, delegations, rewards, slashing and the
//! active set of each epoch.
//!
//! A validator is an operator address with consensus keys ([`ConsensusKey`]) and a self-bond.
//! Anyone may delegate BTT to a validator; undelegated BTT waits
//! [`Param::UnbondingBlocks`] blocks in an unbonding queue and is then paid out by the module
//! at the end of the maturity block. Priority fees (the executor's fee collector is this
//! module) and [`Param::EmissionPerBlock`] collect in an epoch reward pool that is shared at
//! the last block of each epoch among that epoch's active set, pro rata to bonded tokens, less
//! each validator's commission. Verified double-sign evidence slashes
//! [`Param::SlashDoubleSignBps`] of a validator's tokens (burned), jails and tombstones it.
//! Downtime (see below) slashes [`Param::SlashDowntimeBps`] and jails without a tombstone.
//!
//! # End of block
//! In this order: the block's unaccounted inflow (priority fees) and the emission join the
//! pool; last block's slashes are burned; the block's proposer is recorded; unbonding entries
//! maturing at this height are paid. At the last block of an epoch then: downtime is punished,
//! the pool is shared over the ending epoch's set, and the next epoch's set is elected.
//!
//! # Downtime
//! Consensus does not tell the chain who signed a block, but every block names its proposer
//! (`BlockEnv::proposer`, see [`ModuleContext::block_proposer`]) and leaders rotate
//! round-robin over the epoch's committee, so a validator that is online proposes regularly.
//! Each block's end records `lastProposed = h` for its proposer (one write). At the end of the
//! last block `h` of an epoch, before the pool is shared and the next set elected, every
//! member of the ending set that is still bonded is checked: with `W =`
//! [`Param::DowntimeWindowBlocks`] and `activeSince` the first height of its current
//! uninterrupted membership (written when it enters the set), it is down when
//! `h − max(lastProposed, activeSince) ≥ W`: it has been in the set for the whole window and
//! proposed none of its blocks. It then loses [`Param::SlashDowntimeBps`] of its tokens
//! (burned at the next block's end, like evidence slashing; every delegator falls by the same
//! fraction), is jailed until `h + 1 +` [`Param::JailBlocks`] (not tombstoned), earns nothing
//! from the ending epoch's pool and is not elected. From `jailedUntil` on it may `unjail()`;
//! it is then a candidate at the next boundary again, and its `activeSince` restarts when it
//! re-enters, so it has a full window before it can be punished again. The check costs
//! O(set size) per epoch.
//!
//! A member of an `n`-validator committee leads about one block in `n`, so `W` must be well
//! above [`Param::MaxValidators`] (the defaults give every member about two turns per
//! window); below that, online validators would be punished for not getting a turn. With
//! `W` above it, a member goes a window without proposing only if the chain skipped its
//! views, which the rule cannot tell apart from a crash and which is what it punishes: with
//! very small committees and windows, a few timed-out turns in a row are enough.
//!
//! # Accounting
//! Each validator has tokens `T` and shares `S`; a delegation holding `s` shares is worth
//! `⌊s·T/S⌋`. Delegating mints `⌊amount·S/T⌋` shares (1:1 for the first); undelegating burns
//! `⌈amount·S/T⌉` shares (or all of them when the whole value is taken), so rounding always
//! favours the shares that stay. A slash lowers `T` alone: every delegator falls by the same
//! fraction, in O(1), without touching a delegation. Rewards use a per-validator accumulator
//! `acc` (reward per share scaled by [`REWARD_SCALE`]); a delegation snapshots `acc` and is
//! settled (`owed += s·(acc − snapshot)/scale`) before any change to its shares. Nothing in
//! the module ever loops over delegations.
//!
//! # Invariants
//! After every block's end, exactly:
//! `balance(module) = totalBonded + unbonding + rewardReserve + commission + pool + pendingBurn`
//! where `totalBonded = Σ T`, `unbonding = Σ` unbonding entries, `commission = Σ` unpaid
//! commission, and `rewardReserve = Σ` delegators' pending rewards plus rounding dust (a few
//! wei per distribution and settlement that belong to nobody and stay in the module). Any
//! balance above the accounted sum (the block's priority fees) joins the pool at the block's
//! end, together with the minted emission.
//!
//! # Storage
//! Globals at small slots: 0 validator count, 1 total bonded, 2 unbonding, 3 reward reserve,
//! 4 commission, 5 pool, 6 pending burn, 7 next unbonding id. Maps live at
//! `keccak256("btt.staking" ‖ tag ‖ key)` (+ a field offset for records):
//! - tag 1 validator record by operator: `+0` meta (commission bps bits 0..16, status 16..24,
//!   epoch of the last commission edit + 1 at 24..88, jailed-until height 88..152), `+1` T,
//!   `+2` S, `+3` acc, `+4` unpaid commission, `+5` Σ unbonding from it, `+6` identity,
//!   `+7..+8` BLS key (48 bytes), `+9..+11` proof of possession (96 bytes), `+12` the last
//!   height it proposed a block (0: never), `+13` the first height of its current run in the
//!   active set (written when it enters). Keys are written once, never changed, and a record
//!   is never deleted;
//! - tag 2 identity → operator; tag 3 validator list `index → operator` (registration order);
//! - tag 4 delegation by `delegator ‖ validator`: `+0` shares, `+1` acc snapshot, `+2` owed
//!   rewards, `+3` position in the delegator's list + 1; tags 5/6 the delegator's list (length,
//!   `delegator ‖ index → validator`): validators with shares or owed rewards;
//! - tag 7 unbonding entry by id: `+0` delegator, `+1` validator, `+2` amount, `+3` maturity
//!   (bits 0..64) and position in the delegator's list + 1 (64..96); tags 8/9 the delegator's
//!   entries, tags 10/11 the queue of entries maturing at a height (cleared when paid);
//! - tag 12 active set length + 1 by epoch, tag 13 `epoch ‖ index → operator` (ordered by
//!   tokens, then address); the keys of a member are its record's (written once), so the
//!   history costs one word per member and epoch;
//! - tag 14 punished offences: `keccak256(evidence)` and `keccak256(validator ‖ epoch ‖ view)`.

use std::collections::BTreeSet;
use std::sync::Arc;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent, SolInterface};

use crate::crypto::{ConsensusCrypto, ConsensusKey};
use crate::governed::{param, staking_address, Param, StakeView};
use crate::modules::{ModuleCall, ModuleContext, ModuleError, NativeModule};
use crate::state::{StateReader, StoreError};

/// The reward accumulator's fixed-point scale (1e27).
pub const REWARD_SCALE: U256 = U256::from_limbs([0x9fd0_803c_e800_0000, 0x033b_2e3c, 0, 0]);

/// Gas a key check (`createValidator`: a proof-of-possession pairing) costs.
pub const KEY_CHECK_GAS: u64 = 100_000;
/// Gas an evidence check (two vote signatures) costs, before the committee reads.
pub const EVIDENCE_CHECK_GAS: u64 = 200_000;
/// Length of a BLS12-381 G1 public key.
pub const BLS_KEY_LEN: usize = 48;
/// Length of a proof of possession (a G2 signature).
pub const POP_LEN: usize = 96;
/// The largest commission, 100 %.
pub const MAX_COMMISSION_BPS: u16 = 10_000;

/// The ABI of the staking module, generated with `sol!`.
#[allow(missing_docs)]
pub(crate) mod abi {
    alloy_sol_types::sol! {
        /// The staking module at `0x…b77001`. Amounts in wei, heights in blocks. Unbonding
        /// entries are paid at the end of their maturity block without a log: follow them with
        /// `unbonding(address)` and the delegator's balance.
        interface IStaking {
            /// One pending undelegation.
            struct Unbonding {
                address validator;
                uint256 amount;
                uint64 maturity;
            }

            /// A validator registered with `selfBond` (the call's value).
            event ValidatorCreated(
                address indexed validator,
                bytes32 indexed identity,
                uint256 selfBond,
                uint16 commissionBps
            );
            /// `amount` was bonded to `validator`, minting `shares`.
            event Delegated(
                address indexed delegator,
                address indexed validator,
                uint256 amount,
                uint256 shares
            );
            /// `amount` left `validator` (burning `shares`); it is paid at `maturity`.
            event Undelegated(
                address indexed delegator,
                address indexed validator,
                uint256 amount,
                uint256 shares,
                uint64 maturity
            );
            /// `amount` moved from one validator to another at once.
            event Redelegated(
                address indexed delegator,
                address indexed from,
                address indexed to,
                uint256 amount
            );
            /// Rewards (and, for the operator, commission) were paid.
            event RewardsWithdrawn(
                address indexed delegator,
                address indexed validator,
                uint256 rewards,
                uint256 commission
            );
            /// The commission changed.
            event CommissionEdited(address indexed validator, uint16 oldBps, uint16 newBps);
            /// The validator left jail.
            event Unjailed(address indexed validator);
            /// Double signing in `epoch`/`view` was punished: `amount` will be burned at the
            /// block's end and the validator is jailed and tombstoned.
            event Slashed(
                address indexed validator,
                uint64 epoch,
                uint64 view,
                uint256 amount,
                bytes32 evidenceHash
            );
            /// `validator` proposed no block in the last `downtime_window_blocks` blocks up to
            /// `height` (the last block of an epoch): `amount` will be burned at the next
            /// block's end and the validator is jailed (not tombstoned).
            event DowntimeSlashed(address indexed validator, uint64 height, uint256 amount);

            /// Registers the caller as a validator bonding the call's value (at least the
            /// `min_self_bond` parameter) with ed25519 `identity`, BLS key `bls` (48 bytes) and
            /// its proof of possession `pop` (96 bytes).
            function createValidator(bytes32 identity, bytes bls, bytes pop, uint16 commissionBps)
                external payable;
            /// Bonds the call's value to `validator`.
            function delegate(address validator) external payable;
            /// Starts unbonding `amount` wei of the caller's delegation to `validator`.
            function undelegate(address validator, uint256 amount) external;
            /// Moves `amount` wei of the caller's delegation from one validator to another.
            function redelegate(address from, address to, uint256 amount) external;
            /// Pays the caller's pending rewards on `validator` (and the accrued commission when
            /// the caller is its operator).
            function withdrawRewards(address validator) external;
            /// Changes the caller's commission (by at most `max_commission_change_bps`, once
            /// per epoch).
            function editCommission(uint16 bps) external;
            /// Leaves jail from `jailedUntil` on (never after a tombstone).
            function unjail() external;
            /// Punishes double signing proven by `evidence` (anyone may submit it).
            function submitEvidence(bytes evidence) external;

            /// A validator's record; `status` 0 unknown, 1 bonded, 2 jailed, 3 tombstoned.
            function validator(address validator) external view returns (
                uint8 status,
                bytes32 identity,
                bytes bls,
                uint256 tokens,
                uint256 shares,
                uint16 commissionBps,
                uint64 jailedUntil,
                uint256 selfBond,
                uint256 commissionUnpaid,
                uint256 unbonding
            );
            /// A delegation's shares and their value in wei.
            function delegation(address delegator, address validator)
                external view returns (uint256 shares, uint256 tokens);
            /// What `withdrawRewards(validator)` would pay `delegator` as rewards.
            function pendingRewards(address delegator, address validator)
                external view returns (uint256);
            /// The active set of the current block's epoch, in committee order.
            function activeSet() external view returns (address[] memory);
            /// The active set stored for `epoch` (`stored` false when not elected yet).
            function epochSet(uint64 epoch) external view returns (bool stored, address[] memory validators);
            /// Σ tokens of all validators.
            function totalBonded() external view returns (uint256);
            /// The pending undelegations of `delegator`.
            function unbonding(address delegator) external view returns (Unbonding[] memory);
            /// The reward pool of the current epoch and the slashed amount awaiting its burn.
            function rewardPool() external view returns (uint256 pool, uint256 pendingBurn);
            /// The current block's epoch and the epoch length.
            function epoch() external view returns (uint64 current, uint64 length);
        }
    }
}

use abi::IStaking;

/// Why a staking call was refused. The call reverts with this text as its `Error(string)`
/// reason and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakingError {
    /// The calldata matches no function of `IStaking`.
    #[error(
        "staking: unknown function selector {0} or bad arguments: see IStaking for the interface"
    )]
    BadCall(String),
    /// Value was sent to a function that does not take any.
    #[error("staking: this function does not accept value: send 0")]
    NotPayable,
    /// `createValidator` or `delegate` without value.
    #[error("staking: no value: send the amount to bond as the call's value")]
    NoValue,
    /// An amount of zero.
    #[error("staking: the amount is zero: name a positive amount in wei")]
    ZeroAmount,
    /// The caller already runs a validator.
    #[error("staking: {0} is already a validator: use delegate to add to its self-bond")]
    AlreadyValidator(Address),
    /// The identity key is zero or used by another validator.
    #[error(
        "staking: identity {0} is zero or already registered: use the node's own identity key"
    )]
    IdentityTaken(B256),
    /// The self-bond is below the `min_self_bond` parameter.
    #[error(
        "staking: self-bond {bond} wei is below the minimum {min} wei: send at least the minimum"
    )]
    SelfBondTooLow {
        /// The value sent.
        bond: U256,
        /// The minimum.
        min: U256,
    },
    /// A commission above 100 %.
    #[error("staking: commission {0} bps is above 10000 (100 %): choose at most 10000")]
    CommissionTooHigh(u16),
    /// A key of the wrong length.
    #[error("staking: the {what} is {len} bytes, expected {want}: pass the raw key bytes")]
    BadKeyLength {
        /// Which key.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The required length.
        want: usize,
    },
    /// The keys do not parse or the proof of possession is invalid.
    #[error(
        "staking: consensus keys refused: {0}: regenerate the proof of possession for this chain"
    )]
    BadKeys(String),
    /// No validator at this address.
    #[error("staking: {0} is not a validator: check the operator address")]
    UnknownValidator(Address),
    /// The validator was tombstoned for double signing.
    #[error("staking: validator {0} is tombstoned for double signing: choose another validator")]
    Tombstoned(Address),
    /// The validator has no tokens left to price shares against.
    #[error("staking: validator {0} has no bonded tokens left: choose another validator")]
    Empty(Address),
    /// The amount is so small it buys no share.
    #[error("staking: {0} wei buys no share of this validator: bond more")]
    TooSmall(U256),
    /// More than the delegation is worth.
    #[error("staking: {amount} wei exceeds the delegation's {available} wei: ask for at most the delegation's value")]
    Exceeds {
        /// The amount asked for.
        amount: U256,
        /// The delegation's value.
        available: U256,
    },
    /// `redelegate` to the same validator.
    #[error("staking: redelegation from a validator to itself: name two different validators")]
    SameValidator,
    /// Nothing to withdraw.
    #[error(
        "staking: no rewards to withdraw from {0}: rewards are shared at the end of each epoch"
    )]
    NoRewards(Address),
    /// The commission change is larger than allowed.
    #[error("staking: commission change from {from} to {to} bps exceeds the limit of {max} bps: change it in steps, one per epoch")]
    CommissionStep {
        /// The current commission.
        from: u16,
        /// The requested one.
        to: u16,
        /// `max_commission_change_bps`.
        max: U256,
    },
    /// The commission equals the current one.
    #[error("staking: the commission is already {0} bps: name a different value")]
    CommissionUnchanged(u16),
    /// A second commission edit in one epoch.
    #[error("staking: the commission was already changed in epoch {0}: wait for the next epoch")]
    CommissionEditedThisEpoch(u64),
    /// `unjail` by a validator that is not jailed.
    #[error("staking: validator {0} is not jailed: nothing to do")]
    NotJailed(Address),
    /// `unjail` before the jail time is over.
    #[error("staking: jailed until block {until} (now {now}): unjail at or after block {until}")]
    StillJailed {
        /// First height at which unjailing is allowed.
        until: u64,
        /// The current height.
        now: u64,
    },
    /// The evidence does not decode or does not prove an offence.
    #[error(
        "staking: evidence refused: {0}: submit two conflicting signed votes of one validator"
    )]
    BadEvidence(String),
    /// No committee is stored for the evidence's epoch.
    #[error("staking: no active set is stored for epoch {0}: evidence must be from a past or current epoch")]
    NoCommittee(u64),
    /// The offender's identity is not a registered validator.
    #[error("staking: identity {0} belongs to no validator: check the evidence")]
    UnknownIdentity(B256),
    /// This evidence, or another for the same validator, epoch and view, was already punished;
    /// or the validator is already tombstoned.
    #[error("staking: already punished: {0} was slashed for this offence or is tombstoned: nothing to do")]
    AlreadyPunished(Address),
    /// Arithmetic would overflow.
    #[error("staking: amount overflow: use smaller amounts")]
    Overflow,
}

impl From<StakingError> for ModuleError {
    fn from(e: StakingError) -> Self {
        ModuleError::reason(e.to_string())
    }
}

/// A genesis validator: registered with its self-bond minted into the module at genesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisStake {
    /// The operator (validator) address.
    pub operator: Address,
    /// Its consensus keys (checked with [`ConsensusCrypto::check_keys`]).
    pub key: ConsensusKey,
    /// The self-bond in wei, created at genesis (part of the genesis supply).
    pub self_bond: U256,
    /// Commission in basis points.
    pub commission_bps: u16,
}

/// A validator's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidatorStatus {
    /// May be elected.
    Bonded,
    /// Excluded from elections and rewards until it unjails.
    Jailed,
    /// Jailed for ever after double signing.
    Tombstoned,
}

impl ValidatorStatus {
    /// The ABI code: 1 bonded, 2 jailed, 3 tombstoned (0 is "no validator").
    pub fn code(self) -> u8 {
        match self {
            Self::Bonded => STATUS_BONDED,
            Self::Jailed => STATUS_JAILED,
            Self::Tombstoned => STATUS_TOMBSTONED,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            STATUS_BONDED => Some(Self::Bonded),
            STATUS_JAILED => Some(Self::Jailed),
            STATUS_TOMBSTONED => Some(Self::Tombstoned),
            _ => None,
        }
    }
}

/// A validator as the node and RPC see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorRecord {
    /// The operator address.
    pub address: Address,
    /// Consensus keys.
    pub key: ConsensusKey,
    /// Bonded tokens `T`, wei.
    pub tokens: U256,
    /// Shares `S` outstanding.
    pub shares: U256,
    /// Commission, basis points.
    pub commission_bps: u16,
    /// Standing.
    pub status: ValidatorStatus,
    /// First height at which a jailed validator may unjail.
    pub jailed_until: u64,
    /// The value of the operator's own delegation, wei.
    pub self_bond: U256,
    /// Commission earned and not withdrawn, wei.
    pub commission_unpaid: U256,
    /// Σ of unbonding entries taken from this validator, wei.
    pub unbonding: U256,
    /// The epoch of the last commission edit.
    pub commission_edited_epoch: Option<u64>,
    /// The last height at which it proposed a block (0: never).
    pub last_proposed: u64,
    /// The first height of its latest uninterrupted run in the active set (meaningful while it
    /// is in the set; 0 for a genesis member that never left).
    pub active_since: u64,
}

/// One delegation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegationRecord {
    /// The validator.
    pub validator: Address,
    /// Shares held.
    pub shares: U256,
    /// Their value, wei (`⌊shares·T/S⌋`).
    pub tokens: U256,
    /// Rewards `withdrawRewards` would pay now, wei.
    pub pending_rewards: U256,
}

/// One pending undelegation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnbondingRecord {
    /// Its id.
    pub id: u64,
    /// The validator it left.
    pub validator: Address,
    /// Wei paid at maturity.
    pub amount: U256,
    /// The height at whose end it is paid.
    pub maturity: u64,
}

/// The module's global counters (see the module docs' invariant).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StakingTotals {
    /// Σ validator tokens.
    pub total_bonded: U256,
    /// Σ unbonding entries.
    pub unbonding: U256,
    /// Σ delegators' pending rewards plus rounding dust.
    pub reward_reserve: U256,
    /// Σ unpaid commission.
    pub commission: U256,
    /// The current epoch's reward pool.
    pub pool: U256,
    /// Slashed tokens to burn at the block's end.
    pub pending_burn: U256,
}

impl StakingTotals {
    /// The balance the module accounts for.
    pub fn accounted(&self) -> Option<U256> {
        self.total_bonded
            .checked_add(self.unbonding)?
            .checked_add(self.reward_reserve)?
            .checked_add(self.commission)?
            .checked_add(self.pool)?
            .checked_add(self.pending_burn)
    }
}

// --- Storage layout --------------------------------------------------------------------------

const STATUS_BONDED: u8 = 1;
const STATUS_JAILED: u8 = 2;
const STATUS_TOMBSTONED: u8 = 3;

const G_VALIDATOR_COUNT: U256 = U256::from_limbs([0, 0, 0, 0]);
const G_TOTAL_BONDED: U256 = U256::from_limbs([1, 0, 0, 0]);
const G_UNBONDING: U256 = U256::from_limbs([2, 0, 0, 0]);
const G_REWARD_RESERVE: U256 = U256::from_limbs([3, 0, 0, 0]);
const G_COMMISSION: U256 = U256::from_limbs([4, 0, 0, 0]);
const G_POOL: U256 = U256::from_limbs([5, 0, 0, 0]);
const G_PENDING_BURN: U256 = U256::from_limbs([6, 0, 0, 0]);
const G_NEXT_UNBOND_ID: U256 = U256::from_limbs([7, 0, 0, 0]);

const T_VALIDATOR: u8 = 1;
const T_IDENTITY: u8 = 2;
const T_VLIST: u8 = 3;
const T_DELEGATION: u8 = 4;
const T_DLIST_LEN: u8 = 5;
const T_DLIST_ITEM: u8 = 6;
const T_UNBOND: u8 = 7;
const T_ULIST_LEN: u8 = 8;
const T_ULIST_ITEM: u8 = 9;
const T_QUEUE_LEN: u8 = 10;
const T_QUEUE_ITEM: u8 = 11;
const T_SET_LEN: u8 = 12;
const T_SET_ITEM: u8 = 13;
const T_PUNISHED: u8 = 14;

// Validator record fields.
const V_META: u64 = 0;
const V_TOKENS: u64 = 1;
const V_SHARES: u64 = 2;
const V_ACC: u64 = 3;
const V_COMMISSION: u64 = 4;
const V_UNBONDING: u64 = 5;
const V_IDENTITY: u64 = 6;
const V_BLS: u64 = 7;
const V_POP: u64 = 9;
const V_LAST_PROPOSED: u64 = 12;
const V_ACTIVE_SINCE: u64 = 13;

// Delegation fields.
const D_SHARES: u64 = 0;
const D_SNAPSHOT: u64 = 1;
const D_OWED: u64 = 2;
const D_INDEX: u64 = 3;

// Unbonding entry fields.
const U_DELEGATOR: u64 = 0;
const U_VALIDATOR: u64 = 1;
const U_AMOUNT: u64 = 2;
const U_META: u64 = 3;

fn slot(tag: u8, key: &[&[u8]]) -> U256 {
    let mut data = Vec::with_capacity(12 + key.iter().map(|k| k.len()).sum::<usize>());
    data.extend_from_slice(b"btt.staking");
    data.push(tag);
    for part in key {
        data.extend_from_slice(part);
    }
    U256::from_be_bytes(keccak256(data).0)
}

fn field(base: U256, offset: u64) -> U256 {
    base.wrapping_add(U256::from(offset))
}

fn validator_base(v: Address) -> U256 {
    slot(T_VALIDATOR, &[v.as_slice()])
}

fn delegation_base(delegator: Address, validator: Address) -> U256 {
    slot(T_DELEGATION, &[delegator.as_slice(), validator.as_slice()])
}

fn unbond_base(id: u64) -> U256 {
    slot(T_UNBOND, &[&id.to_be_bytes()])
}

fn word_to_address(word: U256) -> Address {
    Address::from_word(B256::from(word))
}

fn address_to_word(address: Address) -> U256 {
    U256::from_be_bytes(address.into_word().0)
}

fn low_u64(word: U256, shift: usize) -> u64 {
    (word >> shift).as_limbs()[0]
}

/// Read access to the module's storage: its own (in a call), another module's view of it
/// ([`ModuleContext::sload_at`]), or a node's [`StateReader`].
trait Slots {
    fn get(&mut self, slot: U256) -> Result<U256, ModuleError>;
}

impl Slots for dyn ModuleContext + '_ {
    fn get(&mut self, slot: U256) -> Result<U256, ModuleError> {
        self.sload(slot)
    }
}

/// Reads the staking storage from another module's call.
struct Remote<'a> {
    ctx: &'a mut dyn ModuleContext,
}

impl Slots for Remote<'_> {
    fn get(&mut self, slot: U256) -> Result<U256, ModuleError> {
        self.ctx.sload_at(staking_address(), slot)
    }
}

/// Reads the staking storage from a state; keeps the store's own error.
struct Reader<'a, R> {
    state: &'a R,
    error: Option<StoreError>,
}

impl<R: StateReader> Slots for Reader<'_, R> {
    fn get(&mut self, slot: U256) -> Result<U256, ModuleError> {
        self.state.storage(&staking_address(), &slot).map_err(|e| {
            let text = e.0.clone();
            self.error = Some(e);
            ModuleError::Fatal(text)
        })
    }
}

/// The packed first word of a validator record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    commission_bps: u16,
    status: u8,
    /// Epoch of the last commission edit + 1 (0: never).
    edit_epoch: u64,
    jailed_until: u64,
}

impl Meta {
    fn decode(word: U256) -> Self {
        Self {
            commission_bps: (low_u64(word, 0) & 0xffff) as u16,
            status: ((low_u64(word, 16)) & 0xff) as u8,
            edit_epoch: low_u64(word, 24),
            jailed_until: low_u64(word, 88),
        }
    }

    fn encode(self) -> U256 {
        U256::from(self.commission_bps)
            | (U256::from(self.status) << 16)
            | (U256::from(self.edit_epoch) << 24)
            | (U256::from(self.jailed_until) << 88)
    }
}

/// A validator's numbers (the keys are read separately).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Validator {
    address: Address,
    meta: Meta,
    tokens: U256,
    shares: U256,
    acc: U256,
    commission: U256,
    unbonding: U256,
}

impl Validator {
    fn status(&self) -> Option<ValidatorStatus> {
        ValidatorStatus::from_code(self.meta.status)
    }

    /// The value of `shares` of this validator, rounded down.
    fn value(&self, shares: U256) -> Result<U256, StakingError> {
        if self.shares.is_zero() {
            return Ok(U256::ZERO);
        }
        mul_div(shares, self.tokens, self.shares)
    }
}

fn mul_div(a: U256, b: U256, c: U256) -> Result<U256, StakingError> {
    a.checked_mul(b)
        .and_then(|p| p.checked_div(c))
        .ok_or(StakingError::Overflow)
}

fn add(a: U256, b: U256) -> Result<U256, StakingError> {
    a.checked_add(b).ok_or(StakingError::Overflow)
}

fn sub(a: U256, b: U256) -> Result<U256, StakingError> {
    a.checked_sub(b).ok_or(StakingError::Overflow)
}

fn load_validator<S: Slots + ?Sized>(
    s: &mut S,
    address: Address,
) -> Result<Option<Validator>, ModuleError> {
    let base = validator_base(address);
    let meta = Meta::decode(s.get(field(base, V_META))?);
    if meta.status == 0 {
        return Ok(None);
    }
    Ok(Some(Validator {
        address,
        meta,
        tokens: s.get(field(base, V_TOKENS))?,
        shares: s.get(field(base, V_SHARES))?,
        acc: s.get(field(base, V_ACC))?,
        commission: s.get(field(base, V_COMMISSION))?,
        unbonding: s.get(field(base, V_UNBONDING))?,
    }))
}

fn load_key<S: Slots + ?Sized>(s: &mut S, address: Address) -> Result<ConsensusKey, ModuleError> {
    let base = validator_base(address);
    let identity = s.get(field(base, V_IDENTITY))?.to_be_bytes::<32>();
    let mut bls = Vec::with_capacity(64);
    for i in 0..2 {
        bls.extend_from_slice(&s.get(field(base, V_BLS + i))?.to_be_bytes::<32>());
    }
    bls.truncate(BLS_KEY_LEN);
    let mut pop = Vec::with_capacity(POP_LEN);
    for i in 0..3 {
        pop.extend_from_slice(&s.get(field(base, V_POP + i))?.to_be_bytes::<32>());
    }
    Ok(ConsensusKey { identity, bls, pop })
}

/// One delegation as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Delegation {
    shares: U256,
    snapshot: U256,
    owed: U256,
    /// Position in the delegator's list + 1 (0: not listed).
    index: u64,
}

impl Delegation {
    /// Rewards accrued since the snapshot, rounded down.
    fn accrued(&self, v: &Validator) -> Result<U256, StakingError> {
        let delta = v.acc.checked_sub(self.snapshot).unwrap_or_default();
        if delta.is_zero() || self.shares.is_zero() {
            return Ok(U256::ZERO);
        }
        mul_div(self.shares, delta, REWARD_SCALE)
    }

    fn pending(&self, v: &Validator) -> Result<U256, StakingError> {
        add(self.owed, self.accrued(v)?)
    }
}

fn load_delegation<S: Slots + ?Sized>(
    s: &mut S,
    delegator: Address,
    validator: Address,
) -> Result<Delegation, ModuleError> {
    let base = delegation_base(delegator, validator);
    Ok(Delegation {
        shares: s.get(field(base, D_SHARES))?,
        snapshot: s.get(field(base, D_SNAPSHOT))?,
        owed: s.get(field(base, D_OWED))?,
        index: low_u64(s.get(field(base, D_INDEX))?, 0),
    })
}

fn list_len<S: Slots + ?Sized>(s: &mut S, len_slot: U256) -> Result<u64, ModuleError> {
    Ok(low_u64(s.get(len_slot)?, 0))
}

fn dlist_len_slot(delegator: Address) -> U256 {
    slot(T_DLIST_LEN, &[delegator.as_slice()])
}

fn dlist_item_slot(delegator: Address, i: u64) -> U256 {
    slot(T_DLIST_ITEM, &[delegator.as_slice(), &i.to_be_bytes()])
}

fn ulist_len_slot(delegator: Address) -> U256 {
    slot(T_ULIST_LEN, &[delegator.as_slice()])
}

fn ulist_item_slot(delegator: Address, i: u64) -> U256 {
    slot(T_ULIST_ITEM, &[delegator.as_slice(), &i.to_be_bytes()])
}

fn queue_len_slot(height: u64) -> U256 {
    slot(T_QUEUE_LEN, &[&height.to_be_bytes()])
}

fn queue_item_slot(height: u64, i: u64) -> U256 {
    slot(T_QUEUE_ITEM, &[&height.to_be_bytes(), &i.to_be_bytes()])
}

fn set_len_slot(epoch: u64) -> U256 {
    slot(T_SET_LEN, &[&epoch.to_be_bytes()])
}

fn set_item_slot(epoch: u64, i: u64) -> U256 {
    slot(T_SET_ITEM, &[&epoch.to_be_bytes(), &i.to_be_bytes()])
}

fn vlist_item_slot(i: u64) -> U256 {
    slot(T_VLIST, &[&i.to_be_bytes()])
}

fn identity_slot(identity: &[u8; 32]) -> U256 {
    slot(T_IDENTITY, &[identity])
}

fn punished_slot(key: B256) -> U256 {
    slot(T_PUNISHED, &[key.as_slice()])
}

fn load_set<S: Slots + ?Sized>(s: &mut S, epoch: u64) -> Result<Option<Vec<Address>>, ModuleError> {
    let len = list_len(s, set_len_slot(epoch))?;
    let Some(len) = len.checked_sub(1) else {
        return Ok(None);
    };
    (0..len)
        .map(|i| Ok(word_to_address(s.get(set_item_slot(epoch, i))?)))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn load_validator_list<S: Slots + ?Sized>(s: &mut S) -> Result<Vec<Address>, ModuleError> {
    let n = list_len(s, G_VALIDATOR_COUNT)?;
    (0..n)
        .map(|i| Ok(word_to_address(s.get(vlist_item_slot(i))?)))
        .collect()
}

fn load_dlist<S: Slots + ?Sized>(
    s: &mut S,
    delegator: Address,
) -> Result<Vec<Address>, ModuleError> {
    let n = list_len(s, dlist_len_slot(delegator))?;
    (0..n)
        .map(|i| Ok(word_to_address(s.get(dlist_item_slot(delegator, i))?)))
        .collect()
}

fn load_unbond<S: Slots + ?Sized>(
    s: &mut S,
    id: u64,
) -> Result<(Address, UnbondingRecord, u64), ModuleError> {
    let base = unbond_base(id);
    let meta = s.get(field(base, U_META))?;
    Ok((
        word_to_address(s.get(field(base, U_DELEGATOR))?),
        UnbondingRecord {
            id,
            validator: word_to_address(s.get(field(base, U_VALIDATOR))?),
            amount: s.get(field(base, U_AMOUNT))?,
            maturity: low_u64(meta, 0),
        },
        low_u64(meta, 64) & u64::from(u32::MAX),
    ))
}

fn load_unbondings<S: Slots + ?Sized>(
    s: &mut S,
    delegator: Address,
) -> Result<Vec<UnbondingRecord>, ModuleError> {
    let n = list_len(s, ulist_len_slot(delegator))?;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(1024));
    for i in 0..n {
        let id = low_u64(s.get(ulist_item_slot(delegator, i))?, 0);
        out.push(load_unbond(s, id)?.1);
    }
    out.sort_by_key(|u| (u.maturity, u.id));
    Ok(out)
}

fn load_totals<S: Slots + ?Sized>(s: &mut S) -> Result<StakingTotals, ModuleError> {
    Ok(StakingTotals {
        total_bonded: s.get(G_TOTAL_BONDED)?,
        unbonding: s.get(G_UNBONDING)?,
        reward_reserve: s.get(G_REWARD_RESERVE)?,
        commission: s.get(G_COMMISSION)?,
        pool: s.get(G_POOL)?,
        pending_burn: s.get(G_PENDING_BURN)?,
    })
}

fn record_of<S: Slots + ?Sized>(s: &mut S, v: Validator) -> Result<ValidatorRecord, ModuleError> {
    let own = load_delegation(s, v.address, v.address)?;
    let self_bond = v.value(own.shares)?;
    let base = validator_base(v.address);
    let last_proposed = low_u64(s.get(field(base, V_LAST_PROPOSED))?, 0);
    let active_since = low_u64(s.get(field(base, V_ACTIVE_SINCE))?, 0);
    Ok(ValidatorRecord {
        address: v.address,
        key: load_key(s, v.address)?,
        tokens: v.tokens,
        shares: v.shares,
        commission_bps: v.meta.commission_bps,
        status: v.status().unwrap_or(ValidatorStatus::Bonded),
        jailed_until: v.meta.jailed_until,
        self_bond,
        commission_unpaid: v.commission,
        unbonding: v.unbonding,
        commission_edited_epoch: v.meta.edit_epoch.checked_sub(1),
        last_proposed,
        active_since,
    })
}

fn delegations_in<S: Slots + ?Sized>(
    s: &mut S,
    delegator: Address,
) -> Result<Vec<DelegationRecord>, ModuleError> {
    let mut out = Vec::new();
    for validator in load_dlist(s, delegator)? {
        let Some(v) = load_validator(s, validator)? else {
            continue;
        };
        let d = load_delegation(s, delegator, validator)?;
        out.push(DelegationRecord {
            validator,
            shares: d.shares,
            tokens: v.value(d.shares)?,
            pending_rewards: d.pending(&v)?,
        });
    }
    out.sort_by_key(|d| d.validator);
    Ok(out)
}

// --- Readers for the node ----------------------------------------------------------------------

fn read<R: StateReader, T>(
    state: &R,
    f: impl FnOnce(&mut Reader<'_, R>) -> Result<T, ModuleError>,
) -> Result<T, StoreError> {
    let mut reader = Reader { state, error: None };
    f(&mut reader).map_err(|e| match reader.error.take() {
        Some(store) => store,
        None => StoreError(format!("staking storage is inconsistent: {e:?}")),
    })
}

/// The active set stored for `epoch` with each member's keys, in committee order: `Some` for
/// epoch 0 (from genesis) and for every epoch whose previous epoch's last block is applied.
pub fn committee_of(
    state: &impl StateReader,
    epoch: u64,
) -> Result<Option<Vec<(Address, ConsensusKey)>>, StoreError> {
    read(state, |s| {
        let Some(set) = load_set(s, epoch)? else {
            return Ok(None);
        };
        set.into_iter()
            .map(|a| Ok((a, load_key(s, a)?)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    })
}

/// A validator's record, `None` if `validator` never registered.
pub fn validator_info(
    state: &impl StateReader,
    validator: Address,
) -> Result<Option<ValidatorRecord>, StoreError> {
    read(state, |s| match load_validator(s, validator)? {
        None => Ok(None),
        Some(v) => record_of(s, v).map(Some),
    })
}

/// Every validator ever registered, in registration order.
pub fn validators(state: &impl StateReader) -> Result<Vec<ValidatorRecord>, StoreError> {
    read(state, |s| {
        let mut out = Vec::new();
        for a in load_validator_list(s)? {
            if let Some(v) = load_validator(s, a)? {
                out.push(record_of(s, v)?);
            }
        }
        Ok(out)
    })
}

/// `delegator`'s delegations (those with shares or unwithdrawn rewards), in validator order.
pub fn delegations_of(
    state: &impl StateReader,
    delegator: Address,
) -> Result<Vec<DelegationRecord>, StoreError> {
    read(state, |s| delegations_in(s, delegator))
}

/// `delegator`'s pending undelegations, by maturity.
pub fn unbondings_of(
    state: &impl StateReader,
    delegator: Address,
) -> Result<Vec<UnbondingRecord>, StoreError> {
    read(state, |s| load_unbondings(s, delegator))
}

/// The module's global counters.
pub fn staking_totals(state: &impl StateReader) -> Result<StakingTotals, StoreError> {
    read(state, |s| load_totals(s))
}

/// Bonded stake for governance, read from any module's call with
/// [`ModuleContext::sload_at`].
pub fn stake_view(ctx: &mut dyn ModuleContext) -> impl StakeView + '_ {
    ModuleStakeView {
        remote: Remote { ctx },
    }
}

struct ModuleStakeView<'a> {
    remote: Remote<'a>,
}

impl StakeView for ModuleStakeView<'_> {
    fn validators(&mut self) -> Result<Vec<(Address, U256)>, ModuleError> {
        let s = &mut self.remote;
        let mut out = Vec::new();
        for a in load_validator_list(s)? {
            if let Some(v) = load_validator(s, a)? {
                if !v.tokens.is_zero() {
                    out.push((a, v.tokens));
                }
            }
        }
        out.sort_by_key(|(a, _)| *a);
        Ok(out)
    }

    fn delegations(&mut self, delegator: Address) -> Result<Vec<(Address, U256)>, ModuleError> {
        Ok(delegations_in(&mut self.remote, delegator)?
            .into_iter()
            .filter(|d| !d.tokens.is_zero())
            .map(|d| (d.validator, d.tokens))
            .collect())
    }
}

// --- The module --------------------------------------------------------------------------------

/// The staking native module. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Staking {
    epoch_length: u64,
    genesis: Vec<GenesisStake>,
    crypto: Arc<dyn ConsensusCrypto>,
}

impl Staking {
    /// The module with epochs of `epoch_length` blocks (0 is read as 1), the genesis
    /// validators, and the node's consensus cryptography.
    pub fn new(
        epoch_length: u64,
        genesis: Vec<GenesisStake>,
        crypto: Arc<dyn ConsensusCrypto>,
    ) -> Self {
        Self {
            epoch_length: epoch_length.max(1),
            genesis,
            crypto,
        }
    }

    /// Blocks per epoch.
    pub fn epoch_length(&self) -> u64 {
        self.epoch_length
    }

    /// The epoch of height `h`: epoch `e` is heights `e·L ..= e·L + L − 1`.
    pub fn epoch_of(&self, h: u64) -> u64 {
        h / self.epoch_length
    }

    /// Whether `h` is the last block of its epoch (rewards are shared and the next set elected
    /// at its end).
    pub fn is_epoch_end(&self, h: u64) -> bool {
        h.checked_add(1)
            .is_some_and(|next| next % self.epoch_length == 0)
    }

    fn emit<E: SolEvent>(ctx: &mut dyn ModuleContext, event: &E) -> Result<(), ModuleError> {
        let log = event.encode_log_data();
        ctx.emit(log.topics().to_vec(), log.data)
    }

    fn require_validator(
        ctx: &mut dyn ModuleContext,
        address: Address,
    ) -> Result<Validator, ModuleError> {
        load_validator(ctx, address)?.ok_or_else(|| StakingError::UnknownValidator(address).into())
    }

    fn store_validator_numbers(
        ctx: &mut dyn ModuleContext,
        v: &Validator,
    ) -> Result<(), ModuleError> {
        let base = validator_base(v.address);
        ctx.sstore(field(base, V_TOKENS), v.tokens)?;
        ctx.sstore(field(base, V_SHARES), v.shares)
    }

    fn store_meta(ctx: &mut dyn ModuleContext, v: &Validator) -> Result<(), ModuleError> {
        ctx.sstore(field(validator_base(v.address), V_META), v.meta.encode())
    }

    fn add_global(
        ctx: &mut dyn ModuleContext,
        slot: U256,
        amount: U256,
    ) -> Result<(), ModuleError> {
        if amount.is_zero() {
            return Ok(());
        }
        let value = add(ctx.sload(slot)?, amount)?;
        ctx.sstore(slot, value)
    }

    fn sub_global(
        ctx: &mut dyn ModuleContext,
        slot: U256,
        amount: U256,
    ) -> Result<(), ModuleError> {
        if amount.is_zero() {
            return Ok(());
        }
        let value = sub(ctx.sload(slot)?, amount)?;
        ctx.sstore(slot, value)
    }

    /// Loads a delegation and settles its accrued rewards into `owed` (in memory; the caller
    /// stores it with [`Self::store_delegation`]).
    fn settled(
        ctx: &mut dyn ModuleContext,
        delegator: Address,
        v: &Validator,
    ) -> Result<Delegation, ModuleError> {
        let mut d = load_delegation(ctx, delegator, v.address)?;
        d.owed = d.pending(v)?;
        d.snapshot = v.acc;
        Ok(d)
    }

    /// Stores a delegation, keeping the delegator's list to the delegations with shares or
    /// owed rewards (swap-remove: O(1)).
    fn store_delegation(
        ctx: &mut dyn ModuleContext,
        delegator: Address,
        validator: Address,
        mut d: Delegation,
    ) -> Result<(), ModuleError> {
        let base = delegation_base(delegator, validator);
        let live = !d.shares.is_zero() || !d.owed.is_zero();
        let len_slot = dlist_len_slot(delegator);
        if live && d.index == 0 {
            let len = list_len(ctx, len_slot)?;
            ctx.sstore(dlist_item_slot(delegator, len), address_to_word(validator))?;
            ctx.sstore(len_slot, U256::from(len + 1))?;
            d.index = len + 1;
        } else if !live && d.index != 0 {
            let len = list_len(ctx, len_slot)?;
            let last = len.saturating_sub(1);
            let pos = d.index - 1;
            if pos != last {
                let moved = word_to_address(ctx.sload(dlist_item_slot(delegator, last))?);
                ctx.sstore(dlist_item_slot(delegator, pos), address_to_word(moved))?;
                ctx.sstore(
                    field(delegation_base(delegator, moved), D_INDEX),
                    U256::from(d.index),
                )?;
            }
            ctx.sstore(dlist_item_slot(delegator, last), U256::ZERO)?;
            ctx.sstore(len_slot, U256::from(last))?;
            d.index = 0;
        }
        if !live {
            // Nothing left: clear the record.
            d.snapshot = U256::ZERO;
        }
        let old = load_delegation(ctx, delegator, validator)?;
        let words = [
            (D_SHARES, old.shares, d.shares),
            (D_SNAPSHOT, old.snapshot, d.snapshot),
            (D_OWED, old.owed, d.owed),
            (D_INDEX, U256::from(old.index), U256::from(d.index)),
        ];
        for (offset, before, after) in words {
            if before != after {
                ctx.sstore(field(base, offset), after)?;
            }
        }
        Ok(())
    }

    /// Bonds `amount` (already in the module's balance) from `delegator` to `validator`;
    /// returns the shares minted. Checks before any write.
    fn bond(
        ctx: &mut dyn ModuleContext,
        delegator: Address,
        validator: Address,
        amount: U256,
    ) -> Result<(Validator, U256), ModuleError> {
        if amount.is_zero() {
            return Err(StakingError::ZeroAmount.into());
        }
        let mut v = Self::require_validator(ctx, validator)?;
        if v.status() == Some(ValidatorStatus::Tombstoned) {
            return Err(StakingError::Tombstoned(validator).into());
        }
        let shares = if v.shares.is_zero() {
            amount
        } else if v.tokens.is_zero() {
            return Err(StakingError::Empty(validator).into());
        } else {
            mul_div(amount, v.shares, v.tokens)?
        };
        if shares.is_zero() {
            return Err(StakingError::TooSmall(amount).into());
        }
        let mut d = Self::settled(ctx, delegator, &v)?;
        d.shares = add(d.shares, shares)?;
        v.tokens = add(v.tokens, amount)?;
        v.shares = add(v.shares, shares)?;
        Self::store_delegation(ctx, delegator, validator, d)?;
        Self::store_validator_numbers(ctx, &v)?;
        Self::add_global(ctx, G_TOTAL_BONDED, amount)?;
        Ok((v, shares))
    }

    /// Takes `amount` wei out of `delegator`'s delegation to `validator`; returns the shares
    /// burned. The tokens leave the validator and the bonded total; the caller decides where
    /// they go. Checks before any write.
    fn unbond(
        ctx: &mut dyn ModuleContext,
        delegator: Address,
        validator: Address,
        amount: U256,
    ) -> Result<(Validator, U256), ModuleError> {
        if amount.is_zero() {
            return Err(StakingError::ZeroAmount.into());
        }
        let mut v = Self::require_validator(ctx, validator)?;
        let mut d = Self::settled(ctx, delegator, &v)?;
        let available = v.value(d.shares)?;
        if amount > available {
            return Err(StakingError::Exceeds { amount, available }.into());
        }
        let shares = if amount == available {
            d.shares
        } else {
            // ⌈amount·S/T⌉ ≤ s because amount < ⌊s·T/S⌋ + 1; T > 0 since available > 0.
            let num = amount.checked_mul(v.shares).ok_or(StakingError::Overflow)?;
            let q = num / v.tokens;
            let shares = if q * v.tokens == num {
                q
            } else {
                add(q, U256::from(1u64))?
            };
            shares.min(d.shares)
        };
        d.shares = sub(d.shares, shares)?;
        v.shares = sub(v.shares, shares)?;
        v.tokens = sub(v.tokens, amount)?;
        Self::store_delegation(ctx, delegator, validator, d)?;
        Self::store_validator_numbers(ctx, &v)?;
        Self::sub_global(ctx, G_TOTAL_BONDED, amount)?;
        Ok((v, shares))
    }

    /// Registers a validator whose self-bond is already in the module's balance.
    fn register(
        &self,
        ctx: &mut dyn ModuleContext,
        operator: Address,
        key: &ConsensusKey,
        commission_bps: u16,
        self_bond: U256,
    ) -> Result<(), ModuleError> {
        if self_bond.is_zero() {
            return Err(StakingError::NoValue.into());
        }
        if load_validator(ctx, operator)?.is_some() {
            return Err(StakingError::AlreadyValidator(operator).into());
        }
        let id_slot = identity_slot(&key.identity);
        if key.identity == [0u8; 32] || !ctx.sload(id_slot)?.is_zero() {
            return Err(StakingError::IdentityTaken(B256::from(key.identity)).into());
        }
        if commission_bps > MAX_COMMISSION_BPS {
            return Err(StakingError::CommissionTooHigh(commission_bps).into());
        }
        if key.bls.len() != BLS_KEY_LEN {
            return Err(StakingError::BadKeyLength {
                what: "BLS key",
                len: key.bls.len(),
                want: BLS_KEY_LEN,
            }
            .into());
        }
        if key.pop.len() != POP_LEN {
            return Err(StakingError::BadKeyLength {
                what: "proof of possession",
                len: key.pop.len(),
                want: POP_LEN,
            }
            .into());
        }
        let min = param(ctx, Param::MinSelfBond)?;
        if self_bond < min {
            return Err(StakingError::SelfBondTooLow {
                bond: self_bond,
                min,
            }
            .into());
        }
        ctx.charge(KEY_CHECK_GAS)?;
        self.crypto.check_keys(key).map_err(StakingError::BadKeys)?;

        let base = validator_base(operator);
        let meta = Meta {
            commission_bps,
            status: STATUS_BONDED,
            edit_epoch: 0,
            jailed_until: 0,
        };
        ctx.sstore(field(base, V_META), meta.encode())?;
        ctx.sstore(field(base, V_IDENTITY), U256::from_be_bytes(key.identity))?;
        let mut bls = [0u8; 64];
        bls[..BLS_KEY_LEN].copy_from_slice(&key.bls);
        for (i, chunk) in bls.chunks(32).enumerate() {
            ctx.sstore(field(base, V_BLS + i as u64), U256::from_be_slice(chunk))?;
        }
        for (i, chunk) in key.pop.chunks(32).enumerate() {
            ctx.sstore(field(base, V_POP + i as u64), U256::from_be_slice(chunk))?;
        }
        ctx.sstore(id_slot, address_to_word(operator))?;
        let n = list_len(ctx, G_VALIDATOR_COUNT)?;
        ctx.sstore(vlist_item_slot(n), address_to_word(operator))?;
        ctx.sstore(G_VALIDATOR_COUNT, U256::from(n + 1))?;
        Self::bond(ctx, operator, operator, self_bond)?;
        Self::emit(
            ctx,
            &IStaking::ValidatorCreated {
                validator: operator,
                identity: B256::from(key.identity),
                selfBond: self_bond,
                commissionBps: commission_bps,
            },
        )
    }

    fn undelegate(
        &self,
        ctx: &mut dyn ModuleContext,
        delegator: Address,
        validator: Address,
        amount: U256,
    ) -> Result<(), ModuleError> {
        let (mut v, shares) = Self::unbond(ctx, delegator, validator, amount)?;
        let blocks = param(ctx, Param::UnbondingBlocks)?.saturating_to::<u64>();
        let maturity = ctx.block_number().saturating_add(blocks.max(1));
        let id = low_u64(ctx.sload(G_NEXT_UNBOND_ID)?, 0).max(1);
        ctx.sstore(G_NEXT_UNBOND_ID, U256::from(id + 1))?;
        let ulen = list_len(ctx, ulist_len_slot(delegator))?;
        ctx.sstore(ulist_item_slot(delegator, ulen), U256::from(id))?;
        ctx.sstore(ulist_len_slot(delegator), U256::from(ulen + 1))?;
        let qlen = list_len(ctx, queue_len_slot(maturity))?;
        ctx.sstore(queue_item_slot(maturity, qlen), U256::from(id))?;
        ctx.sstore(queue_len_slot(maturity), U256::from(qlen + 1))?;
        let base = unbond_base(id);
        ctx.sstore(field(base, U_DELEGATOR), address_to_word(delegator))?;
        ctx.sstore(field(base, U_VALIDATOR), address_to_word(validator))?;
        ctx.sstore(field(base, U_AMOUNT), amount)?;
        ctx.sstore(
            field(base, U_META),
            U256::from(maturity) | (U256::from(ulen + 1) << 64),
        )?;
        v.unbonding = add(v.unbonding, amount)?;
        ctx.sstore(field(validator_base(validator), V_UNBONDING), v.unbonding)?;
        Self::add_global(ctx, G_UNBONDING, amount)?;
        Self::emit(
            ctx,
            &IStaking::Undelegated {
                delegator,
                validator,
                amount,
                shares,
                maturity,
            },
        )
    }

    fn redelegate(
        &self,
        ctx: &mut dyn ModuleContext,
        delegator: Address,
        from: Address,
        to: Address,
        amount: U256,
    ) -> Result<(), ModuleError> {
        if from == to {
            return Err(StakingError::SameValidator.into());
        }
        // Check the destination before moving anything (the journal would undo it anyway).
        let target = Self::require_validator(ctx, to)?;
        if target.status() == Some(ValidatorStatus::Tombstoned) {
            return Err(StakingError::Tombstoned(to).into());
        }
        Self::unbond(ctx, delegator, from, amount)?;
        Self::bond(ctx, delegator, to, amount)?;
        Self::emit(
            ctx,
            &IStaking::Redelegated {
                delegator,
                from,
                to,
                amount,
            },
        )
    }

    fn withdraw_rewards(
        &self,
        ctx: &mut dyn ModuleContext,
        delegator: Address,
        validator: Address,
    ) -> Result<(), ModuleError> {
        let v = Self::require_validator(ctx, validator)?;
        let mut d = Self::settled(ctx, delegator, &v)?;
        let rewards = d.owed;
        let commission = if delegator == validator {
            v.commission
        } else {
            U256::ZERO
        };
        if rewards.is_zero() && commission.is_zero() {
            return Err(StakingError::NoRewards(validator).into());
        }
        d.owed = U256::ZERO;
        Self::store_delegation(ctx, delegator, validator, d)?;
        Self::sub_global(ctx, G_REWARD_RESERVE, rewards)?;
        if !commission.is_zero() {
            ctx.sstore(field(validator_base(validator), V_COMMISSION), U256::ZERO)?;
            Self::sub_global(ctx, G_COMMISSION, commission)?;
        }
        ctx.transfer(delegator, add(rewards, commission)?)?;
        Self::emit(
            ctx,
            &IStaking::RewardsWithdrawn {
                delegator,
                validator,
                rewards,
                commission,
            },
        )
    }

    fn edit_commission(
        &self,
        ctx: &mut dyn ModuleContext,
        operator: Address,
        bps: u16,
    ) -> Result<(), ModuleError> {
        let mut v = Self::require_validator(ctx, operator)?;
        if bps > MAX_COMMISSION_BPS {
            return Err(StakingError::CommissionTooHigh(bps).into());
        }
        let old = v.meta.commission_bps;
        if bps == old {
            return Err(StakingError::CommissionUnchanged(bps).into());
        }
        let max = param(ctx, Param::MaxCommissionChangeBps)?;
        if U256::from(old.abs_diff(bps)) > max {
            return Err(StakingError::CommissionStep {
                from: old,
                to: bps,
                max,
            }
            .into());
        }
        let epoch = self.epoch_of(ctx.block_number());
        if v.meta.edit_epoch == epoch + 1 {
            return Err(StakingError::CommissionEditedThisEpoch(epoch).into());
        }
        v.meta.commission_bps = bps;
        v.meta.edit_epoch = epoch + 1;
        Self::store_meta(ctx, &v)?;
        Self::emit(
            ctx,
            &IStaking::CommissionEdited {
                validator: operator,
                oldBps: old,
                newBps: bps,
            },
        )
    }

    fn unjail(&self, ctx: &mut dyn ModuleContext, operator: Address) -> Result<(), ModuleError> {
        let mut v = Self::require_validator(ctx, operator)?;
        match v.status() {
            Some(ValidatorStatus::Tombstoned) => {
                return Err(StakingError::Tombstoned(operator).into())
            }
            Some(ValidatorStatus::Jailed) => {}
            _ => return Err(StakingError::NotJailed(operator).into()),
        }
        let now = ctx.block_number();
        if now < v.meta.jailed_until {
            return Err(StakingError::StillJailed {
                until: v.meta.jailed_until,
                now,
            }
            .into());
        }
        v.meta.status = STATUS_BONDED;
        Self::store_meta(ctx, &v)?;
        Self::emit(
            ctx,
            &IStaking::Unjailed {
                validator: operator,
            },
        )
    }

    fn submit_evidence(
        &self,
        ctx: &mut dyn ModuleContext,
        evidence: &[u8],
    ) -> Result<(), ModuleError> {
        ctx.charge(EVIDENCE_CHECK_GAS)?;
        let epoch = self
            .crypto
            .evidence_epoch(evidence)
            .map_err(StakingError::BadEvidence)?;
        let set = load_set(ctx, epoch)?.ok_or(StakingError::NoCommittee(epoch))?;
        let mut keys = Vec::with_capacity(set.len());
        for a in &set {
            keys.push(load_key(ctx, *a)?);
        }
        let offence = self
            .crypto
            .check_evidence(&keys, evidence)
            .map_err(StakingError::BadEvidence)?;
        if offence.epoch != epoch {
            return Err(StakingError::BadEvidence(format!(
                "the evidence claims epoch {epoch} but proves epoch {}",
                offence.epoch
            ))
            .into());
        }
        let operator = word_to_address(ctx.sload(identity_slot(&offence.identity))?);
        let mut v = match load_validator(ctx, operator)? {
            Some(v) if !operator.is_zero() => v,
            _ => return Err(StakingError::UnknownIdentity(B256::from(offence.identity)).into()),
        };
        let evidence_hash = keccak256(evidence);
        let mut offence_key = Vec::with_capacity(36);
        offence_key.extend_from_slice(operator.as_slice());
        offence_key.extend_from_slice(&offence.epoch.to_be_bytes());
        offence_key.extend_from_slice(&offence.view.to_be_bytes());
        let offence_hash = keccak256(offence_key);
        if v.status() == Some(ValidatorStatus::Tombstoned)
            || !ctx.sload(punished_slot(evidence_hash))?.is_zero()
            || !ctx.sload(punished_slot(offence_hash))?.is_zero()
        {
            return Err(StakingError::AlreadyPunished(operator).into());
        }
        let bps = param(ctx, Param::SlashDoubleSignBps)?.min(U256::from(MAX_COMMISSION_BPS));
        let amount = mul_div(v.tokens, bps, U256::from(MAX_COMMISSION_BPS))?;
        let jail = param(ctx, Param::JailBlocks)?.saturating_to::<u64>();
        v.tokens = sub(v.tokens, amount)?;
        v.meta.status = STATUS_TOMBSTONED;
        v.meta.jailed_until = ctx.block_number().saturating_add(jail);
        Self::store_validator_numbers(ctx, &v)?;
        Self::store_meta(ctx, &v)?;
        Self::sub_global(ctx, G_TOTAL_BONDED, amount)?;
        Self::add_global(ctx, G_PENDING_BURN, amount)?;
        ctx.sstore(punished_slot(evidence_hash), U256::from(1u64))?;
        ctx.sstore(punished_slot(offence_hash), U256::from(1u64))?;
        Self::emit(
            ctx,
            &IStaking::Slashed {
                validator: operator,
                epoch: offence.epoch,
                view: offence.view,
                amount,
                evidenceHash: evidence_hash,
            },
        )
    }

    /// Pays the unbonding entries maturing at `height` and clears its queue: O(entries).
    fn pay_matured(ctx: &mut dyn ModuleContext, height: u64) -> Result<(), ModuleError> {
        let qlen = list_len(ctx, queue_len_slot(height))?;
        if qlen == 0 {
            return Ok(());
        }
        let mut paid = U256::ZERO;
        for i in 0..qlen {
            let item = queue_item_slot(height, i);
            let id = low_u64(ctx.sload(item)?, 0);
            ctx.sstore(item, U256::ZERO)?;
            let (delegator, entry, index) = load_unbond(ctx, id)?;
            // Remove from the delegator's list (swap-remove).
            let len_slot = ulist_len_slot(delegator);
            let len = list_len(ctx, len_slot)?;
            let last = len.saturating_sub(1);
            if let Some(pos) = index.checked_sub(1) {
                if pos != last {
                    let moved = low_u64(ctx.sload(ulist_item_slot(delegator, last))?, 0);
                    ctx.sstore(ulist_item_slot(delegator, pos), U256::from(moved))?;
                    let moved_meta = field(unbond_base(moved), U_META);
                    let m = ctx.sload(moved_meta)?;
                    let maturity = U256::from(low_u64(m, 0));
                    ctx.sstore(moved_meta, maturity | (U256::from(index) << 64))?;
                }
            }
            ctx.sstore(ulist_item_slot(delegator, last), U256::ZERO)?;
            ctx.sstore(len_slot, U256::from(last))?;
            let base = unbond_base(id);
            for offset in [U_DELEGATOR, U_VALIDATOR, U_AMOUNT, U_META] {
                ctx.sstore(field(base, offset), U256::ZERO)?;
            }
            let v_slot = field(validator_base(entry.validator), V_UNBONDING);
            let left = sub(ctx.sload(v_slot)?, entry.amount)?;
            ctx.sstore(v_slot, left)?;
            ctx.transfer(delegator, entry.amount)?;
            paid = add(paid, entry.amount)?;
        }
        ctx.sstore(queue_len_slot(height), U256::ZERO)?;
        Self::sub_global(ctx, G_UNBONDING, paid)
    }

    /// Shares the pool over `epoch`'s active set pro rata to tokens (jailed members get
    /// nothing); the division remainder stays in the pool. O(set size).
    fn distribute(ctx: &mut dyn ModuleContext, epoch: u64) -> Result<(), ModuleError> {
        let pool = ctx.sload(G_POOL)?;
        if pool.is_zero() {
            return Ok(());
        }
        let set = load_set(ctx, epoch)?.unwrap_or_default();
        let mut members = Vec::with_capacity(set.len());
        let mut total = U256::ZERO;
        for a in set {
            if let Some(v) = load_validator(ctx, a)? {
                if v.status() == Some(ValidatorStatus::Bonded) && !v.tokens.is_zero() {
                    total = add(total, v.tokens)?;
                    members.push(v);
                }
            }
        }
        if total.is_zero() {
            return Ok(());
        }
        let (mut to_delegators, mut to_commission) = (U256::ZERO, U256::ZERO);
        for mut v in members {
            let share = mul_div(pool, v.tokens, total)?;
            let mut commission = mul_div(
                share,
                U256::from(v.meta.commission_bps),
                U256::from(MAX_COMMISSION_BPS),
            )?;
            let mut rest = sub(share, commission)?;
            let increment = if v.shares.is_zero() {
                U256::ZERO
            } else {
                mul_div(rest, REWARD_SCALE, v.shares)?
            };
            if increment.is_zero() {
                // Too little to raise the accumulator: the operator keeps it.
                commission = share;
                rest = U256::ZERO;
            }
            let base = validator_base(v.address);
            if !increment.is_zero() {
                v.acc = add(v.acc, increment)?;
                ctx.sstore(field(base, V_ACC), v.acc)?;
            }
            if !commission.is_zero() {
                v.commission = add(v.commission, commission)?;
                ctx.sstore(field(base, V_COMMISSION), v.commission)?;
            }
            to_delegators = add(to_delegators, rest)?;
            to_commission = add(to_commission, commission)?;
        }
        Self::add_global(ctx, G_REWARD_RESERVE, to_delegators)?;
        Self::add_global(ctx, G_COMMISSION, to_commission)?;
        ctx.sstore(G_POOL, sub(pool, add(to_delegators, to_commission)?)?)
    }

    /// Records the block's proposer: `lastProposed = h` when it is a registered validator.
    /// One read and at most one write.
    fn record_proposer(ctx: &mut dyn ModuleContext, h: u64) -> Result<(), ModuleError> {
        let proposer = ctx.block_proposer();
        if proposer.is_zero() {
            return Ok(());
        }
        let base = validator_base(proposer);
        if Meta::decode(ctx.sload(field(base, V_META))?).status == 0 {
            return Ok(());
        }
        ctx.sstore(field(base, V_LAST_PROPOSED), U256::from(h))
    }

    /// Slashes and jails every bonded member of `epoch`'s set that proposed nothing in the
    /// downtime window ending at `h` (see the module docs). O(set size).
    fn punish_downtime(ctx: &mut dyn ModuleContext, epoch: u64, h: u64) -> Result<(), ModuleError> {
        let window = param(ctx, Param::DowntimeWindowBlocks)?
            .saturating_to::<u64>()
            .max(1);
        if h < window {
            return Ok(());
        }
        let set = load_set(ctx, epoch)?.unwrap_or_default();
        let mut terms = None;
        for a in set {
            let Some(mut v) = load_validator(ctx, a)? else {
                continue;
            };
            if v.status() != Some(ValidatorStatus::Bonded) {
                continue;
            }
            let base = validator_base(a);
            let last = low_u64(ctx.sload(field(base, V_LAST_PROPOSED))?, 0);
            let since = low_u64(ctx.sload(field(base, V_ACTIVE_SINCE))?, 0);
            if h.saturating_sub(last.max(since)) < window {
                continue;
            }
            let (bps, jail) = match terms {
                Some(t) => t,
                None => {
                    let bps =
                        param(ctx, Param::SlashDowntimeBps)?.min(U256::from(MAX_COMMISSION_BPS));
                    let jail = param(ctx, Param::JailBlocks)?.saturating_to::<u64>();
                    *terms.insert((bps, jail))
                }
            };
            let amount = mul_div(v.tokens, bps, U256::from(MAX_COMMISSION_BPS))?;
            v.tokens = sub(v.tokens, amount)?;
            v.meta.status = STATUS_JAILED;
            v.meta.jailed_until = h.saturating_add(1).saturating_add(jail);
            Self::store_validator_numbers(ctx, &v)?;
            Self::store_meta(ctx, &v)?;
            Self::sub_global(ctx, G_TOTAL_BONDED, amount)?;
            Self::add_global(ctx, G_PENDING_BURN, amount)?;
            Self::emit(
                ctx,
                &IStaking::DowntimeSlashed {
                    validator: a,
                    height: h,
                    amount,
                },
            )?;
        }
        Ok(())
    }

    /// Elects and stores the active set of `epoch`: the top `max_validators` bonded validators
    /// by tokens (ties by address) whose operator's self-bond is at least `min_self_bond`.
    /// A member that was not in the previous epoch's set gets `activeSince` = the epoch's
    /// first height. O(validators).
    fn elect(&self, ctx: &mut dyn ModuleContext, epoch: u64) -> Result<(), ModuleError> {
        let max = param(ctx, Param::MaxValidators)?.saturating_to::<usize>();
        let min = param(ctx, Param::MinSelfBond)?;
        let mut candidates = Vec::new();
        for a in load_validator_list(ctx)? {
            let Some(v) = load_validator(ctx, a)? else {
                continue;
            };
            if v.status() != Some(ValidatorStatus::Bonded) || v.tokens.is_zero() {
                continue;
            }
            let own = load_delegation(ctx, a, a)?;
            if v.value(own.shares)? < min {
                continue;
            }
            candidates.push((v.tokens, a));
        }
        candidates.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        candidates.truncate(max);
        let previous: BTreeSet<Address> = match epoch.checked_sub(1) {
            Some(e) => load_set(ctx, e)?.unwrap_or_default().into_iter().collect(),
            None => BTreeSet::new(),
        };
        let first = epoch.saturating_mul(self.epoch_length);
        for (i, (_, a)) in candidates.iter().enumerate() {
            ctx.sstore(set_item_slot(epoch, i as u64), address_to_word(*a))?;
            if !previous.contains(a) {
                ctx.sstore(field(validator_base(*a), V_ACTIVE_SINCE), U256::from(first))?;
            }
        }
        ctx.sstore(set_len_slot(epoch), U256::from(candidates.len() + 1))
    }

    fn views(
        &self,
        ctx: &mut dyn ModuleContext,
        call: IStaking::IStakingCalls,
    ) -> Result<Vec<u8>, ModuleError> {
        use IStaking::IStakingCalls as C;
        Ok(match call {
            C::validator(args) => {
                let ret = match load_validator(ctx, args.validator)? {
                    None => IStaking::validatorReturn {
                        status: 0,
                        identity: B256::ZERO,
                        bls: Bytes::new(),
                        tokens: U256::ZERO,
                        shares: U256::ZERO,
                        commissionBps: 0,
                        jailedUntil: 0,
                        selfBond: U256::ZERO,
                        commissionUnpaid: U256::ZERO,
                        unbonding: U256::ZERO,
                    },
                    Some(v) => {
                        let r = record_of(ctx, v)?;
                        IStaking::validatorReturn {
                            status: r.status.code(),
                            identity: B256::from(r.key.identity),
                            bls: Bytes::from(r.key.bls),
                            tokens: r.tokens,
                            shares: r.shares,
                            commissionBps: r.commission_bps,
                            jailedUntil: r.jailed_until,
                            selfBond: r.self_bond,
                            commissionUnpaid: r.commission_unpaid,
                            unbonding: r.unbonding,
                        }
                    }
                };
                IStaking::validatorCall::abi_encode_returns(&ret)
            }
            C::delegation(args) => {
                let d = load_delegation(ctx, args.delegator, args.validator)?;
                let tokens = match load_validator(ctx, args.validator)? {
                    Some(v) => v.value(d.shares)?,
                    None => U256::ZERO,
                };
                IStaking::delegationCall::abi_encode_returns(&IStaking::delegationReturn {
                    shares: d.shares,
                    tokens,
                })
            }
            C::pendingRewards(args) => {
                let d = load_delegation(ctx, args.delegator, args.validator)?;
                let pending = match load_validator(ctx, args.validator)? {
                    Some(v) => d.pending(&v)?,
                    None => U256::ZERO,
                };
                IStaking::pendingRewardsCall::abi_encode_returns(&pending)
            }
            C::activeSet(_) => {
                let epoch = self.epoch_of(ctx.block_number());
                let set = load_set(ctx, epoch)?.unwrap_or_default();
                IStaking::activeSetCall::abi_encode_returns(&set)
            }
            C::epochSet(args) => {
                let set = load_set(ctx, args.epoch)?;
                IStaking::epochSetCall::abi_encode_returns(&IStaking::epochSetReturn {
                    stored: set.is_some(),
                    validators: set.unwrap_or_default(),
                })
            }
            C::totalBonded(_) => {
                IStaking::totalBondedCall::abi_encode_returns(&ctx.sload(G_TOTAL_BONDED)?)
            }
            C::unbonding(args) => {
                let list: Vec<IStaking::Unbonding> = load_unbondings(ctx, args.delegator)?
                    .into_iter()
                    .map(|u| IStaking::Unbonding {
                        validator: u.validator,
                        amount: u.amount,
                        maturity: u.maturity,
                    })
                    .collect();
                IStaking::unbondingCall::abi_encode_returns(&list)
            }
            C::rewardPool(_) => {
                IStaking::rewardPoolCall::abi_encode_returns(&IStaking::rewardPoolReturn {
                    pool: ctx.sload(G_POOL)?,
                    pendingBurn: ctx.sload(G_PENDING_BURN)?,
                })
            }
            C::epoch(_) => IStaking::epochCall::abi_encode_returns(&IStaking::epochReturn {
                current: self.epoch_of(ctx.block_number()),
                length: self.epoch_length,
            }),
            _ => Vec::new(),
        })
    }
}

impl NativeModule for Staking {
    fn address(&self) -> Address {
        staking_address()
    }

    fn name(&self) -> &'static str {
        "staking"
    }

    fn handle(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
    ) -> Result<Bytes, ModuleError> {
        use IStaking::IStakingCalls as C;
        let decoded = C::abi_decode(call.input).map_err(|_| {
            let selector = call.selector_hex();
            StakingError::BadCall(selector)
        })?;
        let payable = matches!(decoded, C::createValidator(_) | C::delegate(_));
        if !payable && !call.value.is_zero() {
            return Err(StakingError::NotPayable.into());
        }
        let caller = call.caller;
        match decoded {
            C::createValidator(args) => {
                let key = ConsensusKey {
                    identity: args.identity.0,
                    bls: args.bls.to_vec(),
                    pop: args.pop.to_vec(),
                };
                if call.value.is_zero() {
                    return Err(StakingError::NoValue.into());
                }
                self.register(ctx, caller, &key, args.commissionBps, call.value)?;
            }
            C::delegate(args) => {
                if call.value.is_zero() {
                    return Err(StakingError::NoValue.into());
                }
                let (_, shares) = Self::bond(ctx, caller, args.validator, call.value)?;
                Self::emit(
                    ctx,
                    &IStaking::Delegated {
                        delegator: caller,
                        validator: args.validator,
                        amount: call.value,
                        shares,
                    },
                )?;
            }
            C::undelegate(args) => self.undelegate(ctx, caller, args.validator, args.amount)?,
            C::redelegate(args) => self.redelegate(ctx, caller, args.from, args.to, args.amount)?,
            C::withdrawRewards(args) => self.withdraw_rewards(ctx, caller, args.validator)?,
            C::editCommission(args) => self.edit_commission(ctx, caller, args.bps)?,
            C::unjail(_) => self.unjail(ctx, caller)?,
            C::submitEvidence(args) => self.submit_evidence(ctx, &args.evidence)?,
            view => return Ok(Bytes::from(self.views(ctx, view)?)),
        }
        Ok(Bytes::new())
    }

    fn genesis(&self, ctx: &mut dyn ModuleContext) -> Result<(), ModuleError> {
        for g in &self.genesis {
            ctx.mint(g.self_bond)?;
            self.register(ctx, g.operator, &g.key, g.commission_bps, g.self_bond)?;
        }
        self.elect(ctx, 0)
    }

    fn end_block(&self, ctx: &mut dyn ModuleContext) -> Result<(), ModuleError> {
        let h = ctx.block_number();
        let me = ctx.address();
        // Whatever arrived without a call (the block's priority fees) joins the pool, with
        // the emission.
        let totals = load_totals(ctx)?;
        let accounted = totals.accounted().ok_or(StakingError::Overflow)?;
        let balance = ctx.balance(me)?;
        let inflow = balance.checked_sub(accounted).ok_or_else(|| {
            ModuleError::Fatal(format!(
                "staking: module balance {balance} wei is below the accounted {accounted} wei"
            ))
        })?;
        let emission = param(ctx, Param::EmissionPerBlock)?;
        ctx.mint(emission)?;
        let pool = add(add(totals.pool, inflow)?, emission)?;
        if pool != totals.pool {
            ctx.sstore(G_POOL, pool)?;
        }
        if !totals.pending_burn.is_zero() {
            ctx.burn(totals.pending_burn)?;
            ctx.sstore(G_PENDING_BURN, U256::ZERO)?;
        }
        Self::record_proposer(ctx, h)?;
        Self::pay_matured(ctx, h)?;
        if self.is_epoch_end(h) {
            let epoch = self.epoch_of(h);
            // Before the pool is shared, so a validator that was down earns nothing for it.
            Self::punish_downtime(ctx, epoch, h)?;
            Self::distribute(ctx, epoch)?;
            self.elect(ctx, epoch + 1)?;
        }
        Ok(())
    }
}
