//! The governance module (`0x…b77002`): proposals, stake-weighted votes, a treasury, and the
//! governed parameters.
//!
//! Anyone submits a proposal with a deposit of at least [`Param::MinDeposit`]: a parameter
//! change, a text (signalling only), or a spend from the treasury. Holders of bonded stake vote
//! on it from the block it was submitted in through `votingEnd = submitHeight +
//! VotingPeriodBlocks` (inclusive); a voter may change its vote while voting is open. At the end
//! of block `votingEnd` the module tallies it with the stake as it is then.
//!
//! # Tally
//! Weights come from the [`StakeView`] at tally time. A voter's own delegations count for its
//! option (a validator operator's self-bond excepted, see below). A validator operator that
//! voted also carries its validator's bonded tokens minus the delegations of delegators that
//! voted themselves: delegators inherit their validator's vote unless they vote themselves.
//! Delegators of a validator whose operator did not vote, and who did not vote, count nowhere.
//!
//! With `voted = yes + no + abstain + noWithVeto` and `total` the bonded tokens of all
//! validators, in this order:
//! 1. `total == 0` or `voted · 10⁴ < QuorumBps · total`: RejectedNoQuorum, deposit burned.
//! 2. `noWithVeto · 10⁴ ≥ VetoBps · voted`: RejectedVeto, deposit burned.
//! 3. `yes · 10⁴ > ThresholdBps · (yes + no)` (strictly more): Passed, deposit refunded.
//! 4. Otherwise (also when everyone abstained): Rejected, deposit refunded.
//!
//! A passed TreasurySpend is paid in the same end of block (Executed), or marked Failed without
//! any payment when the treasury holds less. A passed ParamChange writes its value at
//! [`param_slot`] (encoded with [`encode_param`], so zero is a value like any other) at the end
//! of block `effectiveHeight − 1` (Executed), so readers, who read
//! the parent state of the block they build, see it from block `effectiveHeight` on. A passed
//! Text proposal stays Passed.
//!
//! # Money
//! Deposits of proposals still voting are *held*: their sum is kept in one slot. The treasury is
//! the rest of the module's balance, so `balance == treasury + Σ held deposits` holds at every
//! block by construction, also for value that arrives without a call (a `SELFDESTRUCT`
//! beneficiary): it becomes treasury. A held deposit leaves only by refund or burn at its tally.
//!
//! # Storage
//! Every slot but the parameters' ([`param_slot`]) is `keccak256("btt.gov." ‖ tag ‖ key)` plus
//! an offset, keys big-endian:
//! - `count`: the number of proposals (ids are `1..=count`); `held`: the held deposits.
//! - `proposal ‖ id` + 0 proposer, + 1 deposit, + 2 meta (kind in bits 0..8, status 8..16,
//!   submit height 64..128, voting end 128..192, effective height 192..256), + 3..7 the Yes,
//!   No, Abstain and NoWithVeto tallies (written at the tally).
//! - `payload ‖ id`, `description ‖ id`: length, then the bytes in 32-byte words.
//! - `vote ‖ id ‖ voter`: the option (0 = none); `voters ‖ id`: count, then the voters.
//! - `tally ‖ height`, `exec ‖ height`: count, then the proposal ids whose voting ends, or whose
//!   parameter change takes effect, at the end of that block. Entries are queued at submission
//!   and cleared when processed, so no step ever scans all proposals.
//!
//! Every check of a call runs before its first write; a refused call reverts and changes
//! nothing.

use std::fmt;
use std::sync::Arc;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent, SolInterface, SolValue};

use crate::governed::{
    encode_param, governance_address, param, param_slot, GovernedParams, Param, StakeView,
};
use crate::modules::{ModuleCall, ModuleContext, ModuleError, NativeModule};

/// Longest proposal description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Most distinct voters one proposal records.
pub const MAX_VOTERS_PER_PROPOSAL: u64 = 10_000;
/// Most proposals whose voting may end (or whose parameter change may take effect) at one
/// height, so one end of block does bounded work.
pub const MAX_PROPOSALS_PER_HEIGHT: u64 = 64;

/// Basis points in one.
const BPS: u64 = 10_000;

/// The ABI of the governance module, generated with `sol!`.
#[allow(missing_docs)]
pub(crate) mod abi {
    alloy_sol_types::sol! {
        /// The governance module at `0x…b77002`. Amounts in wei, heights in blocks. Kinds:
        /// 1 ParamChange, 2 Text, 3 TreasurySpend. Options: 1 Yes, 2 No, 3 Abstain,
        /// 4 NoWithVeto. Statuses: 1 Voting, 2 Passed, 3 Rejected, 4 RejectedVeto,
        /// 5 RejectedNoQuorum, 6 Executed, 7 Failed.
        interface IGovernance {
            /// A proposal was submitted with `deposit` (the call's value).
            event ProposalSubmitted(
                uint64 indexed id,
                address indexed proposer,
                uint8 kind,
                uint256 deposit,
                uint64 votingEnd
            );
            /// `voter` voted (or changed its vote to) `option`.
            event Voted(uint64 indexed id, address indexed voter, uint8 option);
            /// The proposal was tallied with these weights and got `status`.
            event ProposalTallied(
                uint64 indexed id,
                uint8 status,
                uint256 yes,
                uint256 no,
                uint256 abstain,
                uint256 noWithVeto
            );
            /// A passed proposal was carried out (status 6 Executed) or could not be (7 Failed).
            event ProposalExecuted(uint64 indexed id, uint8 status);
            /// `from` added `amount` to the treasury.
            event TreasuryFunded(address indexed from, uint256 amount);

            /// Submits a proposal; the call's value is the deposit (at least `min_deposit`).
            /// Payload: kind 1 `abi.encode(uint8 paramId, uint256 value, uint64
            /// effectiveHeight)`, kind 2 empty, kind 3 `abi.encode(address to, uint256 amount)`.
            function submitProposal(uint8 kind, bytes payload, string description)
                external payable returns (uint64 id);
            /// Votes on an open proposal (stakers only); a later vote replaces an earlier one.
            function vote(uint64 id, uint8 option) external;
            /// Adds the call's value to the treasury.
            function fundTreasury() external payable;
            /// A proposal; the tallies are zero until it is tallied. Reverts for an unknown id.
            function proposal(uint64 id) external view returns (
                uint8 kind,
                address proposer,
                uint256 deposit,
                uint64 submitHeight,
                uint64 votingEnd,
                uint64 effectiveHeight,
                uint8 status,
                uint256 yes,
                uint256 no,
                uint256 abstain,
                uint256 noWithVeto,
                bytes payload,
                string description
            );
            /// The number of proposals so far (ids are 1 to this).
            function proposalCount() external view returns (uint64);
            /// How `voter` voted on proposal `id` (0 = not at all).
            function vote(uint64 id, address voter) external view returns (uint8 option);
            /// The value of parameter `id` now.
            function param(uint8 id) external view returns (uint256);
            /// Every parameter's value now, in id order (index 0 is parameter 1).
            function params() external view returns (uint256[] values);
            /// The treasury: the module's balance minus the deposits it holds.
            function treasury() external view returns (uint256);
            /// The deposits held for proposals still voting.
            function heldDeposits() external view returns (uint256);
        }
    }
}

use abi::IGovernance;

/// What a proposal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProposalKind {
    /// Set one governed parameter from a height on.
    ParamChange,
    /// Signalling only; nothing is executed.
    Text,
    /// Pay an amount from the treasury to an account.
    TreasurySpend,
}

impl ProposalKind {
    /// The code in calldata and storage.
    pub fn code(self) -> u8 {
        match self {
            Self::ParamChange => 1,
            Self::Text => 2,
            Self::TreasurySpend => 3,
        }
    }

    /// The kind with `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::ParamChange),
            2 => Some(Self::Text),
            3 => Some(Self::TreasurySpend),
            _ => None,
        }
    }
}

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProposalStatus {
    /// Open for votes until the end of its voting end block.
    Voting,
    /// Passed; a ParamChange waits for its effective height, a Text stays here.
    Passed,
    /// Not enough Yes; the deposit was refunded.
    Rejected,
    /// Vetoed; the deposit was burned.
    RejectedVeto,
    /// Too little stake voted; the deposit was burned.
    RejectedNoQuorum,
    /// Passed and carried out.
    Executed,
    /// Passed but could not be carried out (a treasury too short to pay).
    Failed,
}

impl ProposalStatus {
    /// The code in storage and in the `proposal` view.
    pub fn code(self) -> u8 {
        match self {
            Self::Voting => 1,
            Self::Passed => 2,
            Self::Rejected => 3,
            Self::RejectedVeto => 4,
            Self::RejectedNoQuorum => 5,
            Self::Executed => 6,
            Self::Failed => 7,
        }
    }

    /// The status with `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Voting),
            2 => Some(Self::Passed),
            3 => Some(Self::Rejected),
            4 => Some(Self::RejectedVeto),
            5 => Some(Self::RejectedNoQuorum),
            6 => Some(Self::Executed),
            7 => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoteOption {
    /// For.
    Yes,
    /// Against.
    No,
    /// Counts toward quorum only.
    Abstain,
    /// Against, and burns the deposit when it reaches [`Param::VetoBps`] of the votes.
    NoWithVeto,
}

impl VoteOption {
    /// The code in calldata and storage.
    pub fn code(self) -> u8 {
        match self {
            Self::Yes => 1,
            Self::No => 2,
            Self::Abstain => 3,
            Self::NoWithVeto => 4,
        }
    }

    /// The option with `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Yes),
            2 => Some(Self::No),
            3 => Some(Self::Abstain),
            4 => Some(Self::NoWithVeto),
            _ => None,
        }
    }
}

/// Why a governance call was refused. The call reverts with this text as its `Error(string)`
/// reason and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    /// The calldata matches no function of `IGovernance`.
    #[error("governance: unknown function selector {0} or bad arguments: see IGovernance for the interface")]
    BadCall(String),
    /// Value was sent to a function that does not take any.
    #[error("governance: this function does not accept value: send 0")]
    NotPayable,
    /// The deposit is below [`Param::MinDeposit`].
    #[error("governance: deposit {deposit} wei is below the minimum {min} wei: send at least the minimum as the call's value")]
    LowDeposit {
        /// The call's value.
        deposit: U256,
        /// The minimum deposit now.
        min: U256,
    },
    /// The proposal kind is not 1, 2 or 3.
    #[error("governance: unknown proposal kind {0}: use 1 (param change), 2 (text) or 3 (treasury spend)")]
    BadKind(u8),
    /// The payload is not the canonical encoding the kind needs.
    #[error("governance: malformed payload for a {kind} proposal: {expected}")]
    BadPayload {
        /// The kind's name.
        kind: &'static str,
        /// What the payload must be.
        expected: &'static str,
    },
    /// The description is too long.
    #[error("governance: description of {0} bytes is too long: keep it to {MAX_DESCRIPTION_BYTES} bytes and link to the rest")]
    DescriptionTooLong(usize),
    /// No governed parameter has this id.
    #[error("governance: unknown parameter id {0}: use 1 to 15 (see Param)")]
    UnknownParam(u8),
    /// The new value is outside the parameter's bounds.
    #[error("governance: {0}: propose a value within the bounds")]
    OutOfBounds(String),
    /// The change would take effect before voting ends.
    #[error("governance: effective height {effective} must be after the voting end {voting_end}: choose {min} or later", min = voting_end + 1)]
    EffectiveTooEarly {
        /// The requested effective height.
        effective: u64,
        /// The proposal's last voting block.
        voting_end: u64,
    },
    /// A treasury spend to the zero address or to the module itself.
    #[error("governance: a treasury spend must pay a real account other than the governance module: name the recipient")]
    BadRecipient,
    /// A treasury spend of nothing.
    #[error("governance: a treasury spend of 0 wei does nothing: name an amount")]
    ZeroAmount,
    /// Too many proposals already end (or take effect) at this height.
    #[error("governance: {MAX_PROPOSALS_PER_HEIGHT} proposals already {what} at height {height}: submit in a later block or choose another effective height")]
    HeightFull {
        /// "end voting" or "take effect".
        what: &'static str,
        /// The height.
        height: u64,
    },
    /// No proposal has this id.
    #[error("governance: unknown proposal {0}: check the id (see proposalCount)")]
    UnknownProposal(u64),
    /// The vote option is not 1..=4.
    #[error(
        "governance: unknown vote option {0}: use 1 (yes), 2 (no), 3 (abstain) or 4 (no with veto)"
    )]
    BadOption(u8),
    /// The proposal is not open for votes.
    #[error("governance: proposal {id} is not open for votes (voting ended at height {voting_end}, now {now}): vote on an open proposal")]
    VotingClosed {
        /// The proposal.
        id: u64,
        /// Its last voting block.
        voting_end: u64,
        /// The current height.
        now: u64,
    },
    /// The voter has no bonded stake.
    #[error("governance: {0} has no bonded stake: delegate to a validator before voting")]
    NoStake(Address),
    /// The proposal has as many voters as it can record.
    #[error("governance: proposal {0} already has {MAX_VOTERS_PER_PROPOSAL} voters: delegators may rely on their validator's vote")]
    TooManyVoters(u64),
    /// `fundTreasury` without value.
    #[error("governance: nothing to fund: send the amount as the call's value")]
    NoFunds,
    /// Arithmetic would overflow.
    #[error("governance: amount overflow")]
    Overflow,
    /// A stored record is not one this module writes (a bug or corrupt state).
    #[error("governance: corrupt record: {0}")]
    Corrupt(String),
}

impl From<GovernanceError> for ModuleError {
    fn from(e: GovernanceError) -> Self {
        ModuleError::reason(e.to_string())
    }
}

/// Opens a [`StakeView`] inside a module call: how governance weighs votes. Production uses the
/// staking module's view ([`Governance::with_staking`]); tests inject their own.
#[derive(Clone)]
pub struct StakeSource(Arc<StakeFn>);

type StakeFn = dyn for<'a> Fn(&'a mut dyn ModuleContext) -> Result<Box<dyn StakeView + 'a>, ModuleError>
    + Send
    + Sync;

impl StakeSource {
    /// A source that opens views with `open`.
    pub fn new<F>(open: F) -> Self
    where
        F: for<'a> Fn(&'a mut dyn ModuleContext) -> Result<Box<dyn StakeView + 'a>, ModuleError>
            + Send
            + Sync
            + 'static,
    {
        Self(Arc::new(open))
    }

    /// A view over the stake as seen by `ctx`.
    pub fn view<'a>(
        &self,
        ctx: &'a mut dyn ModuleContext,
    ) -> Result<Box<dyn StakeView + 'a>, ModuleError> {
        (self.0)(ctx)
    }
}

impl fmt::Debug for StakeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StakeSource")
    }
}

// --- Storage ---------------------------------------------------------------------------------

fn slot(tag: &[u8], keys: &[&[u8]]) -> U256 {
    let mut data = Vec::with_capacity(8 + tag.len() + 52);
    data.extend_from_slice(b"btt.gov.");
    data.extend_from_slice(tag);
    for k in keys {
        data.extend_from_slice(k);
    }
    U256::from_be_bytes(keccak256(data).0)
}

fn count_slot() -> U256 {
    slot(b"count", &[])
}

fn held_slot() -> U256 {
    slot(b"held", &[])
}

const PROPOSER: u64 = 0;
const DEPOSIT: u64 = 1;
const META: u64 = 2;
const TALLY: u64 = 3;

fn record_slot(id: u64, field: u64) -> U256 {
    slot(b"proposal", &[&id.to_be_bytes()]).wrapping_add(U256::from(field))
}

fn vote_slot(id: u64, voter: Address) -> U256 {
    slot(b"vote", &[&id.to_be_bytes(), voter.as_slice()])
}

fn voters_slot(id: u64) -> U256 {
    slot(b"voters", &[&id.to_be_bytes()])
}

fn payload_slot(id: u64) -> U256 {
    slot(b"payload", &[&id.to_be_bytes()])
}

fn description_slot(id: u64) -> U256 {
    slot(b"description", &[&id.to_be_bytes()])
}

/// A per-height queue of proposal ids.
#[derive(Clone, Copy)]
enum Queue {
    /// Voting ends at the end of this block.
    Tally,
    /// The parameter change is written at the end of this block.
    Exec,
}

impl Queue {
    fn base(self, height: u64) -> U256 {
        let tag: &[u8] = match self {
            Self::Tally => b"tally",
            Self::Exec => b"exec",
        };
        slot(tag, &[&height.to_be_bytes()])
    }

    fn what(self) -> &'static str {
        match self {
            Self::Tally => "end voting",
            Self::Exec => "take effect",
        }
    }
}

fn word_to_address(word: U256) -> Address {
    Address::from_word(B256::from(word))
}

fn address_to_word(address: Address) -> U256 {
    U256::from_be_bytes(address.into_word().0)
}

fn to_u64(word: U256, what: &str) -> Result<u64, GovernanceError> {
    u64::try_from(word).map_err(|_| GovernanceError::Corrupt(format!("{what} {word}")))
}

/// A proposal's record as stored (payload and description apart).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Proposal {
    kind: ProposalKind,
    status: ProposalStatus,
    proposer: Address,
    deposit: U256,
    submit_height: u64,
    voting_end: u64,
    effective_height: u64,
}

impl Proposal {
    fn meta(&self) -> U256 {
        U256::from(self.kind.code())
            | (U256::from(self.status.code()) << 8)
            | (U256::from(self.submit_height) << 64)
            | (U256::from(self.voting_end) << 128)
            | (U256::from(self.effective_height) << 192)
    }
}

/// The tallied weights, in option order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    yes: U256,
    no: U256,
    abstain: U256,
    veto: U256,
}

impl Tally {
    fn add(&mut self, option: VoteOption, weight: U256) {
        let w = match option {
            VoteOption::Yes => &mut self.yes,
            VoteOption::No => &mut self.no,
            VoteOption::Abstain => &mut self.abstain,
            VoteOption::NoWithVeto => &mut self.veto,
        };
        *w = w.saturating_add(weight);
    }

    fn voted(&self) -> U256 {
        self.yes
            .saturating_add(self.no)
            .saturating_add(self.abstain)
            .saturating_add(self.veto)
    }

    fn words(&self) -> [U256; 4] {
        [self.yes, self.no, self.abstain, self.veto]
    }
}

/// The outcome of a tally under the rules in the module docs.
fn outcome(
    tally: &Tally,
    total: U256,
    quorum: U256,
    threshold: U256,
    veto: U256,
) -> ProposalStatus {
    let bps = U256::from(BPS);
    let voted = tally.voted();
    if total.is_zero() || voted.saturating_mul(bps) < quorum.saturating_mul(total) {
        return ProposalStatus::RejectedNoQuorum;
    }
    if tally.veto.saturating_mul(bps) >= veto.saturating_mul(voted) {
        return ProposalStatus::RejectedVeto;
    }
    let decided = tally.yes.saturating_add(tally.no);
    if tally.yes.saturating_mul(bps) > threshold.saturating_mul(decided) {
        ProposalStatus::Passed
    } else {
        ProposalStatus::Rejected
    }
}

/// A decoded, checked payload.
enum Payload {
    Param { param: Param, value: U256 },
    Text,
    Spend { to: Address, amount: U256 },
}

/// Decodes `payload` for `kind`; only the canonical encoding is accepted.
fn decode_payload(kind: ProposalKind, payload: &[u8]) -> Result<(Payload, u64), GovernanceError> {
    match kind {
        ProposalKind::ParamChange => {
            let bad = GovernanceError::BadPayload {
                kind: "param change",
                expected: "abi.encode(uint8 paramId, uint256 value, uint64 effectiveHeight)",
            };
            // `uint8` is decoded as a word and range-checked: dirty high bits are refused.
            let (id, value, effective) = <(U256, U256, u64)>::abi_decode_params_validate(payload)
                .map_err(|_| bad.clone())?;
            if (id, value, effective).abi_encode_params() != payload {
                return Err(bad);
            }
            let id = u8::try_from(id).map_err(|_| bad)?;
            let param = Param::from_id(id).ok_or(GovernanceError::UnknownParam(id))?;
            Ok((Payload::Param { param, value }, effective))
        }
        ProposalKind::Text => {
            if !payload.is_empty() {
                return Err(GovernanceError::BadPayload {
                    kind: "text",
                    expected: "the payload must be empty",
                });
            }
            Ok((Payload::Text, 0))
        }
        ProposalKind::TreasurySpend => {
            let bad = GovernanceError::BadPayload {
                kind: "treasury spend",
                expected: "abi.encode(address to, uint256 amount)",
            };
            let (to, amount) =
                <(Address, U256)>::abi_decode_params_validate(payload).map_err(|_| bad.clone())?;
            if (to, amount).abi_encode_params() != payload {
                return Err(bad);
            }
            Ok((Payload::Spend { to, amount }, 0))
        }
    }
}

/// The governance native module. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Governance {
    genesis: GovernedParams,
    stake: StakeSource,
}

impl Governance {
    /// The module writing `genesis` at genesis and weighing votes with views from `stake`.
    pub fn new(genesis: GovernedParams, stake: StakeSource) -> Self {
        Self { genesis, stake }
    }

    /// The module as the chain runs it: votes are weighed with the staking module's
    /// [`stake_view`](crate::staking::stake_view).
    pub fn with_staking(genesis: GovernedParams) -> Self {
        Self::new(
            genesis,
            StakeSource::new(|ctx| Ok(Box::new(crate::staking::stake_view(ctx)))),
        )
    }

    fn emit<E: SolEvent>(ctx: &mut dyn ModuleContext, event: &E) -> Result<(), ModuleError> {
        let log = event.encode_log_data();
        ctx.emit(log.topics().to_vec(), log.data)
    }

    fn load(ctx: &mut dyn ModuleContext, id: u64) -> Result<Option<Proposal>, ModuleError> {
        let meta = ctx.sload(record_slot(id, META))?;
        if meta.is_zero() {
            return Ok(None);
        }
        let low = |shift: usize, bits: usize| {
            (meta >> shift) & ((U256::from(1u8) << bits) - U256::from(1u8))
        };
        let kind_code = low(0, 8).to::<u8>();
        let status_code = low(8, 8).to::<u8>();
        let kind = ProposalKind::from_code(kind_code)
            .ok_or_else(|| GovernanceError::Corrupt(format!("proposal {id} kind {kind_code}")))?;
        let status = ProposalStatus::from_code(status_code).ok_or_else(|| {
            GovernanceError::Corrupt(format!("proposal {id} status {status_code}"))
        })?;
        Ok(Some(Proposal {
            kind,
            status,
            proposer: word_to_address(ctx.sload(record_slot(id, PROPOSER))?),
            deposit: ctx.sload(record_slot(id, DEPOSIT))?,
            submit_height: low(64, 64).to::<u64>(),
            voting_end: low(128, 64).to::<u64>(),
            effective_height: low(192, 64).to::<u64>(),
        }))
    }

    fn load_known(ctx: &mut dyn ModuleContext, id: u64) -> Result<Proposal, ModuleError> {
        Self::load(ctx, id)?.ok_or_else(|| GovernanceError::UnknownProposal(id).into())
    }

    fn write_bytes(
        ctx: &mut dyn ModuleContext,
        base: U256,
        data: &[u8],
    ) -> Result<(), ModuleError> {
        if data.is_empty() {
            return Ok(());
        }
        ctx.sstore(base, U256::from(data.len()))?;
        for (i, chunk) in data.chunks(32).enumerate() {
            let mut word = [0u8; 32];
            word[..chunk.len()].copy_from_slice(chunk);
            ctx.sstore(
                base.wrapping_add(U256::from(i + 1)),
                U256::from_be_bytes(word),
            )?;
        }
        Ok(())
    }

    fn read_bytes(ctx: &mut dyn ModuleContext, base: U256) -> Result<Vec<u8>, ModuleError> {
        let len = ctx.sload(base)?;
        // Never allocate from a stored length beyond what submission accepts.
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_DESCRIPTION_BYTES.max(96))
            .ok_or_else(|| GovernanceError::Corrupt(format!("byte string length {len}")))?;
        let mut out = Vec::with_capacity(len);
        for i in 0..len.div_ceil(32) {
            let word = ctx.sload(base.wrapping_add(U256::from(i + 1)))?;
            let bytes = word.to_be_bytes::<32>();
            let take = (len - out.len()).min(32);
            out.extend_from_slice(&bytes[..take]);
        }
        Ok(out)
    }

    fn queue_len(
        ctx: &mut dyn ModuleContext,
        queue: Queue,
        height: u64,
    ) -> Result<u64, ModuleError> {
        Ok(to_u64(ctx.sload(queue.base(height))?, "queue length")?)
    }

    fn queue_push(
        ctx: &mut dyn ModuleContext,
        queue: Queue,
        height: u64,
        len: u64,
        id: u64,
    ) -> Result<(), ModuleError> {
        let base = queue.base(height);
        ctx.sstore(base.wrapping_add(U256::from(len + 1)), U256::from(id))?;
        ctx.sstore(base, U256::from(len + 1))
    }

    /// Takes (and clears) the queue at `height`.
    fn queue_take(
        ctx: &mut dyn ModuleContext,
        queue: Queue,
        height: u64,
    ) -> Result<Vec<u64>, ModuleError> {
        let len = Self::queue_len(ctx, queue, height)?.min(MAX_PROPOSALS_PER_HEIGHT);
        let base = queue.base(height);
        let mut ids = Vec::new();
        for i in 1..=len {
            let at = base.wrapping_add(U256::from(i));
            ids.push(to_u64(ctx.sload(at)?, "queued id")?);
            ctx.sstore(at, U256::ZERO)?;
        }
        if len > 0 {
            ctx.sstore(base, U256::ZERO)?;
        }
        Ok(ids)
    }

    fn submit(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
        args: IGovernance::submitProposalCall,
    ) -> Result<u64, ModuleError> {
        let now = ctx.block_number();
        let min = param(ctx, Param::MinDeposit)?;
        if call.value < min {
            return Err(GovernanceError::LowDeposit {
                deposit: call.value,
                min,
            }
            .into());
        }
        let kind = ProposalKind::from_code(args.kind).ok_or(GovernanceError::BadKind(args.kind))?;
        if args.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(GovernanceError::DescriptionTooLong(args.description.len()).into());
        }
        let period = param(ctx, Param::VotingPeriodBlocks)?.saturating_to::<u64>();
        let voting_end = now.checked_add(period).ok_or(GovernanceError::Overflow)?;
        let (payload, effective) = decode_payload(kind, &args.payload)?;
        match payload {
            Payload::Param { param, value } => {
                param.check(value).map_err(GovernanceError::OutOfBounds)?;
                if effective <= voting_end {
                    return Err(GovernanceError::EffectiveTooEarly {
                        effective,
                        voting_end,
                    }
                    .into());
                }
            }
            Payload::Text => {}
            Payload::Spend { to, amount } => {
                if to.is_zero() || to == ctx.address() {
                    return Err(GovernanceError::BadRecipient.into());
                }
                if amount.is_zero() {
                    return Err(GovernanceError::ZeroAmount.into());
                }
            }
        }
        let tally_len = Self::queue_len(ctx, Queue::Tally, voting_end)?;
        if tally_len >= MAX_PROPOSALS_PER_HEIGHT {
            return Err(GovernanceError::HeightFull {
                what: Queue::Tally.what(),
                height: voting_end,
            }
            .into());
        }
        let exec = if kind == ProposalKind::ParamChange {
            // Written at the end of the block before the effective height.
            let at = effective - 1;
            let len = Self::queue_len(ctx, Queue::Exec, at)?;
            if len >= MAX_PROPOSALS_PER_HEIGHT {
                return Err(GovernanceError::HeightFull {
                    what: Queue::Exec.what(),
                    height: effective,
                }
                .into());
            }
            Some((at, len))
        } else {
            None
        };
        let count = to_u64(ctx.sload(count_slot())?, "proposal count")?;
        let id = count.checked_add(1).ok_or(GovernanceError::Overflow)?;
        let held = ctx
            .sload(held_slot())?
            .checked_add(call.value)
            .ok_or(GovernanceError::Overflow)?;

        // Checked; now write.
        let p = Proposal {
            kind,
            status: ProposalStatus::Voting,
            proposer: call.caller,
            deposit: call.value,
            submit_height: now,
            voting_end,
            effective_height: effective,
        };
        ctx.sstore(count_slot(), U256::from(id))?;
        ctx.sstore(held_slot(), held)?;
        ctx.sstore(record_slot(id, PROPOSER), address_to_word(p.proposer))?;
        ctx.sstore(record_slot(id, DEPOSIT), p.deposit)?;
        ctx.sstore(record_slot(id, META), p.meta())?;
        Self::write_bytes(ctx, payload_slot(id), &args.payload)?;
        Self::write_bytes(ctx, description_slot(id), args.description.as_bytes())?;
        Self::queue_push(ctx, Queue::Tally, voting_end, tally_len, id)?;
        if let Some((at, len)) = exec {
            Self::queue_push(ctx, Queue::Exec, at, len, id)?;
        }
        Self::emit(
            ctx,
            &IGovernance::ProposalSubmitted {
                id,
                proposer: p.proposer,
                kind: kind.code(),
                deposit: p.deposit,
                votingEnd: voting_end,
            },
        )?;
        Ok(id)
    }

    /// Whether `who` has bonded stake: a delegation (an operator's self-bond is one) or, should
    /// the view list none, a bonded validator of its own.
    fn has_stake(&self, ctx: &mut dyn ModuleContext, who: Address) -> Result<bool, ModuleError> {
        let mut view = self.stake.view(ctx)?;
        if view.delegations(who)?.iter().any(|(_, t)| !t.is_zero()) {
            return Ok(true);
        }
        Ok(view
            .validators()?
            .iter()
            .any(|(v, t)| *v == who && !t.is_zero()))
    }

    fn vote(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
        id: u64,
        option: u8,
    ) -> Result<(), ModuleError> {
        let now = ctx.block_number();
        let choice = VoteOption::from_code(option).ok_or(GovernanceError::BadOption(option))?;
        let p = Self::load_known(ctx, id)?;
        if p.status != ProposalStatus::Voting || now > p.voting_end {
            return Err(GovernanceError::VotingClosed {
                id,
                voting_end: p.voting_end,
                now,
            }
            .into());
        }
        if !self.has_stake(ctx, call.caller)? {
            return Err(GovernanceError::NoStake(call.caller).into());
        }
        let previous = ctx.sload(vote_slot(id, call.caller))?;
        let new_voter = if previous.is_zero() {
            let n = to_u64(ctx.sload(voters_slot(id))?, "voter count")?;
            if n >= MAX_VOTERS_PER_PROPOSAL {
                return Err(GovernanceError::TooManyVoters(id).into());
            }
            Some(n)
        } else {
            None
        };
        ctx.sstore(vote_slot(id, call.caller), U256::from(choice.code()))?;
        if let Some(n) = new_voter {
            let base = voters_slot(id);
            ctx.sstore(
                base.wrapping_add(U256::from(n + 1)),
                address_to_word(call.caller),
            )?;
            ctx.sstore(base, U256::from(n + 1))?;
        }
        Self::emit(
            ctx,
            &IGovernance::Voted {
                id,
                voter: call.caller,
                option: choice.code(),
            },
        )
    }

    /// The voters of `id` with their options, in voting order.
    fn votes(
        ctx: &mut dyn ModuleContext,
        id: u64,
    ) -> Result<Vec<(Address, VoteOption)>, ModuleError> {
        let base = voters_slot(id);
        let n = to_u64(ctx.sload(base)?, "voter count")?.min(MAX_VOTERS_PER_PROPOSAL);
        let mut out = Vec::new();
        for i in 1..=n {
            let voter = word_to_address(ctx.sload(base.wrapping_add(U256::from(i)))?);
            let code = ctx.sload(vote_slot(id, voter))?;
            let option = u8::try_from(code)
                .ok()
                .and_then(VoteOption::from_code)
                .ok_or_else(|| GovernanceError::Corrupt(format!("vote option {code}")))?;
            out.push((voter, option));
        }
        Ok(out)
    }

    /// Weighs the votes with the stake as it is now; returns the tally and the total bonded.
    fn weigh(
        &self,
        ctx: &mut dyn ModuleContext,
        votes: &[(Address, VoteOption)],
    ) -> Result<(Tally, U256), ModuleError> {
        let mut view = self.stake.view(ctx)?;
        let validators = view.validators()?;
        let total = validators
            .iter()
            .fold(U256::ZERO, |acc, (_, t)| acc.saturating_add(*t));
        let mut tally = Tally::default();
        // Per validator: the delegations whose owners voted themselves.
        let mut overridden: std::collections::BTreeMap<Address, U256> = Default::default();
        for (voter, option) in votes {
            for (validator, tokens) in view.delegations(*voter)? {
                // An operator's self-bond is part of its validator's bonded tokens, counted below.
                if validator == *voter {
                    continue;
                }
                tally.add(*option, tokens);
                let o = overridden.entry(validator).or_default();
                *o = o.saturating_add(tokens);
            }
        }
        for (voter, option) in votes {
            if let Some((_, bonded)) = validators.iter().find(|(v, _)| v == voter) {
                let minus = overridden.get(voter).copied().unwrap_or_default();
                tally.add(*option, bonded.saturating_sub(minus));
            }
        }
        Ok((tally, total))
    }

    /// Releases a held deposit: refunds it to the proposer or burns it.
    fn release(ctx: &mut dyn ModuleContext, p: &Proposal, burn: bool) -> Result<(), ModuleError> {
        let held = ctx
            .sload(held_slot())?
            .checked_sub(p.deposit)
            .ok_or_else(|| GovernanceError::Corrupt("held deposits below a deposit".into()))?;
        ctx.sstore(held_slot(), held)?;
        if burn {
            ctx.burn(p.deposit)
        } else {
            ctx.transfer(p.proposer, p.deposit)
        }
    }

    fn set_status(
        ctx: &mut dyn ModuleContext,
        id: u64,
        p: &mut Proposal,
        status: ProposalStatus,
    ) -> Result<(), ModuleError> {
        p.status = status;
        ctx.sstore(record_slot(id, META), p.meta())
    }

    fn tally(&self, ctx: &mut dyn ModuleContext, id: u64) -> Result<(), ModuleError> {
        let Some(mut p) = Self::load(ctx, id)? else {
            return Ok(());
        };
        if p.status != ProposalStatus::Voting {
            return Ok(());
        }
        let votes = Self::votes(ctx, id)?;
        let (tally, total) = self.weigh(ctx, &votes)?;
        let status = outcome(
            &tally,
            total,
            param(ctx, Param::QuorumBps)?,
            param(ctx, Param::ThresholdBps)?,
            param(ctx, Param::VetoBps)?,
        );
        for (i, w) in (0u64..).zip(tally.words()) {
            ctx.sstore(record_slot(id, TALLY + i), w)?;
        }
        Self::set_status(ctx, id, &mut p, status)?;
        let burn = matches!(
            status,
            ProposalStatus::RejectedVeto | ProposalStatus::RejectedNoQuorum
        );
        Self::release(ctx, &p, burn)?;
        Self::emit(
            ctx,
            &IGovernance::ProposalTallied {
                id,
                status: status.code(),
                yes: tally.yes,
                no: tally.no,
                abstain: tally.abstain,
                noWithVeto: tally.veto,
            },
        )?;
        if status == ProposalStatus::Passed && p.kind == ProposalKind::TreasurySpend {
            let payload = Self::read_bytes(ctx, payload_slot(id))?;
            let (Payload::Spend { to, amount }, _) = decode_payload(p.kind, &payload)? else {
                return Err(GovernanceError::Corrupt(format!("proposal {id} payload")).into());
            };
            let treasury = Self::treasury(ctx)?;
            let done = if treasury >= amount {
                ctx.transfer(to, amount)?;
                ProposalStatus::Executed
            } else {
                ProposalStatus::Failed
            };
            Self::set_status(ctx, id, &mut p, done)?;
            Self::emit(
                ctx,
                &IGovernance::ProposalExecuted {
                    id,
                    status: done.code(),
                },
            )?;
        }
        Ok(())
    }

    fn execute_param(ctx: &mut dyn ModuleContext, id: u64) -> Result<(), ModuleError> {
        let Some(mut p) = Self::load(ctx, id)? else {
            return Ok(());
        };
        if p.status != ProposalStatus::Passed || p.kind != ProposalKind::ParamChange {
            return Ok(());
        }
        let payload = Self::read_bytes(ctx, payload_slot(id))?;
        let (Payload::Param { param, value }, _) = decode_payload(p.kind, &payload)? else {
            return Err(GovernanceError::Corrupt(format!("proposal {id} payload")).into());
        };
        // Bounds are fixed, so a value checked at submission still fits.
        let done = if param.check(value).is_ok() {
            ctx.sstore(param_slot(param), encode_param(value))?;
            ProposalStatus::Executed
        } else {
            ProposalStatus::Failed
        };
        Self::set_status(ctx, id, &mut p, done)?;
        Self::emit(
            ctx,
            &IGovernance::ProposalExecuted {
                id,
                status: done.code(),
            },
        )
    }

    fn treasury(ctx: &mut dyn ModuleContext) -> Result<U256, ModuleError> {
        let me = ctx.address();
        let balance = ctx.balance(me)?;
        let held = ctx.sload(held_slot())?;
        Ok(balance
            .checked_sub(held)
            .ok_or_else(|| GovernanceError::Corrupt("balance below held deposits".into()))?)
    }

    fn proposal_view(
        ctx: &mut dyn ModuleContext,
        id: u64,
    ) -> Result<IGovernance::proposalReturn, ModuleError> {
        let p = Self::load_known(ctx, id)?;
        let t: Vec<U256> = (0..4)
            .map(|i| ctx.sload(record_slot(id, TALLY + i)))
            .collect::<Result<_, _>>()?;
        let payload = Self::read_bytes(ctx, payload_slot(id))?;
        let description = Self::read_bytes(ctx, description_slot(id))?;
        Ok(IGovernance::proposalReturn {
            kind: p.kind.code(),
            proposer: p.proposer,
            deposit: p.deposit,
            submitHeight: p.submit_height,
            votingEnd: p.voting_end,
            effectiveHeight: p.effective_height,
            status: p.status.code(),
            yes: t[0],
            no: t[1],
            abstain: t[2],
            noWithVeto: t[3],
            payload: payload.into(),
            description: String::from_utf8_lossy(&description).into_owned(),
        })
    }
}

impl NativeModule for Governance {
    fn address(&self) -> Address {
        governance_address()
    }

    fn name(&self) -> &'static str {
        "governance"
    }

    fn handle(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
    ) -> Result<Bytes, ModuleError> {
        use IGovernance::IGovernanceCalls as C;
        let decoded = C::abi_decode(call.input).map_err(|_| {
            let selector = call.selector_hex();
            GovernanceError::BadCall(selector)
        })?;
        let payable = matches!(decoded, C::submitProposal(_) | C::fundTreasury(_));
        if !payable && !call.value.is_zero() {
            return Err(GovernanceError::NotPayable.into());
        }
        let out = match decoded {
            C::submitProposal(args) => {
                let id = self.submit(call, ctx, args)?;
                IGovernance::submitProposalCall::abi_encode_returns(&id)
            }
            C::vote_0(args) => {
                self.vote(call, ctx, args.id, args.option)?;
                Vec::new()
            }
            C::fundTreasury(_) => {
                if call.value.is_zero() {
                    return Err(GovernanceError::NoFunds.into());
                }
                Self::emit(
                    ctx,
                    &IGovernance::TreasuryFunded {
                        from: call.caller,
                        amount: call.value,
                    },
                )?;
                Vec::new()
            }
            C::proposal(args) => {
                IGovernance::proposalCall::abi_encode_returns(&Self::proposal_view(ctx, args.id)?)
            }
            C::proposalCount(_) => IGovernance::proposalCountCall::abi_encode_returns(&to_u64(
                ctx.sload(count_slot())?,
                "proposal count",
            )?),
            C::vote_1(args) => {
                let code = ctx.sload(vote_slot(args.id, args.voter))?;
                IGovernance::vote_1Call::abi_encode_returns(&code.saturating_to::<u8>())
            }
            C::param(args) => {
                let p = Param::from_id(args.id).ok_or(GovernanceError::UnknownParam(args.id))?;
                IGovernance::paramCall::abi_encode_returns(&param(ctx, p)?)
            }
            C::params(_) => {
                let values = Param::ALL
                    .into_iter()
                    .map(|p| param(ctx, p))
                    .collect::<Result<Vec<_>, _>>()?;
                IGovernance::paramsCall::abi_encode_returns(&values)
            }
            C::treasury(_) => IGovernance::treasuryCall::abi_encode_returns(&Self::treasury(ctx)?),
            C::heldDeposits(_) => {
                IGovernance::heldDepositsCall::abi_encode_returns(&ctx.sload(held_slot())?)
            }
        };
        Ok(Bytes::from(out))
    }

    fn genesis(&self, ctx: &mut dyn ModuleContext) -> Result<(), ModuleError> {
        self.genesis
            .check()
            .map_err(|e| ModuleError::reason(format!("governance: {e}: fix the genesis file")))?;
        for p in Param::ALL {
            ctx.sstore(param_slot(p), encode_param(self.genesis.get(p)))?;
        }
        Ok(())
    }

    fn end_block(&self, ctx: &mut dyn ModuleContext) -> Result<(), ModuleError> {
        let height = ctx.block_number();
        for id in Self::queue_take(ctx, Queue::Tally, height)? {
            self.tally(ctx, id)?;
        }
        for id in Self::queue_take(ctx, Queue::Exec, height)? {
            Self::execute_param(ctx, id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(yes: u64, no: u64, abstain: u64, veto: u64) -> Tally {
        Tally {
            yes: U256::from(yes),
            no: U256::from(no),
            abstain: U256::from(abstain),
            veto: U256::from(veto),
        }
    }

    #[test]
    fn outcome_boundaries() {
        let n = U256::from;
        let rule = |tally: Tally, total: u64| {
            outcome(&tally, n(total), n(3_340u64), n(5_000u64), n(3_340u64))
        };
        // Quorum: 334 of 1000 is exactly 33.4 %.
        assert_eq!(rule(t(334, 0, 0, 0), 1000), ProposalStatus::Passed);
        assert_eq!(
            rule(t(333, 0, 0, 0), 1000),
            ProposalStatus::RejectedNoQuorum
        );
        assert_eq!(rule(t(0, 0, 0, 0), 0), ProposalStatus::RejectedNoQuorum);
        // Threshold is strict: half Yes is not enough.
        assert_eq!(rule(t(200, 200, 600, 0), 1000), ProposalStatus::Rejected);
        assert_eq!(rule(t(201, 200, 599, 0), 1000), ProposalStatus::Passed);
        // Abstain only: rejected, not vetoed.
        assert_eq!(rule(t(0, 0, 1000, 0), 1000), ProposalStatus::Rejected);
        // Veto at exactly 33.4 % of the votes.
        assert_eq!(rule(t(666, 0, 0, 334), 1000), ProposalStatus::RejectedVeto);
        assert_eq!(rule(t(667, 0, 0, 333), 1000), ProposalStatus::Passed);
    }

    #[test]
    fn codes_round_trip() {
        for c in 0..=255u8 {
            if let Some(k) = ProposalKind::from_code(c) {
                assert_eq!(k.code(), c);
            }
            if let Some(s) = ProposalStatus::from_code(c) {
                assert_eq!(s.code(), c);
            }
            if let Some(o) = VoteOption::from_code(c) {
                assert_eq!(o.code(), c);
            }
        }
        assert_eq!(ProposalKind::from_code(4), None);
        assert_eq!(ProposalStatus::from_code(8), None);
        assert_eq!(VoteOption::from_code(0), None);
    }

    #[test]
    fn payloads_must_be_canonical() {
        let good = (U256::from(1u8), U256::from(40_000_000u64), 100u64).abi_encode_params();
        assert!(decode_payload(ProposalKind::ParamChange, &good).is_ok());
        let mut long = good.clone();
        long.push(0);
        assert!(decode_payload(ProposalKind::ParamChange, &long).is_err());
        let mut dirty = good.clone();
        dirty[0] = 1; // high bits of the uint8 word
        assert!(decode_payload(ProposalKind::ParamChange, &dirty).is_err());
        assert!(decode_payload(ProposalKind::ParamChange, &good[..95]).is_err());
        assert!(decode_payload(ProposalKind::Text, &[0]).is_err());
        let spend = (Address::repeat_byte(1), U256::from(5u8)).abi_encode_params();
        assert!(decode_payload(ProposalKind::TreasurySpend, &spend).is_ok());
        assert!(decode_payload(ProposalKind::TreasurySpend, &good).is_err());
    }
}
