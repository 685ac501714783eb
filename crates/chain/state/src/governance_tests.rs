//! Governance module tests: real signed transactions through [`Executor`] over [`MemoryState`],
//! with a stake table the tests write into the storage of a plain account and a [`StakeView`]
//! that reads it back with `sload_at`. Every block checks that the module's balance is exactly
//! its treasury plus the deposits of the proposals still voting, and that the total supply is
//! the sum of all balances.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_consensus::crypto::secp256k1::sign_message;
use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{address, keccak256, Address, Log, TxKind, B256, U256};
use alloy_sol_types::{SolCall, SolEvent, SolValue};
use chain_types::{recover_tx, RecoveredTx, TxEnvelope, TxRules};

use crate::*;

const GAS: u64 = 2_000_000;
const PROPOSER_ADDRESS: Address = address!("00000000000000000000000000000000000b10c0");
/// The account whose storage holds the test stake table.
const STAKE_TABLE: Address = address!("0000000000000000000000000000000000005a4e");
/// Voting period of the test chains.
const PERIOD: u64 = 5;

fn key(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn btt(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn sign_tx(k: B256, tx: TxEip1559) -> RecoveredTx {
    let sig = sign_message(k, tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    recover_tx(envelope, &TxRules::new(DEVNET_CHAIN_ID, 30_000_000)).unwrap()
}

fn address_of(k: u8) -> Address {
    let tx = TxEip1559 {
        chain_id: DEVNET_CHAIN_ID,
        to: TxKind::Call(Address::ZERO),
        gas_limit: 21_000,
        ..Default::default()
    };
    sign_tx(key(k), tx).sender()
}

// --- The test stake table --------------------------------------------------------------------
//
// Slot 0: the number of validators n; slot 1 + i: validator i; slot 1_001 + i: its bonded
// tokens. Delegator d: at `keccak256(d)` the number of its delegations k, then (validator,
// tokens) pairs.

fn delegator_base(d: Address) -> U256 {
    U256::from_be_bytes(keccak256(d).0)
}

struct TableView<'a> {
    ctx: &'a mut dyn ModuleContext,
}

impl StakeView for TableView<'_> {
    fn validators(&mut self) -> Result<Vec<(Address, U256)>, ModuleError> {
        let n = self
            .ctx
            .sload_at(STAKE_TABLE, U256::ZERO)?
            .saturating_to::<u64>();
        (0..n.min(100))
            .map(|i| {
                let v = self.ctx.sload_at(STAKE_TABLE, U256::from(1 + i))?;
                let bonded = self.ctx.sload_at(STAKE_TABLE, U256::from(1_001 + i))?;
                Ok((Address::from_word(B256::from(v)), bonded))
            })
            .collect()
    }

    fn delegations(&mut self, delegator: Address) -> Result<Vec<(Address, U256)>, ModuleError> {
        let base = delegator_base(delegator);
        let k = self.ctx.sload_at(STAKE_TABLE, base)?.saturating_to::<u64>();
        (0..k.min(100))
            .map(|j| {
                let v = self
                    .ctx
                    .sload_at(STAKE_TABLE, base + U256::from(1 + 2 * j))?;
                let t = self
                    .ctx
                    .sload_at(STAKE_TABLE, base + U256::from(2 + 2 * j))?;
                Ok((Address::from_word(B256::from(v)), t))
            })
            .collect()
    }
}

fn table_source() -> StakeSource {
    StakeSource::new(|ctx| Ok(Box::new(TableView { ctx })))
}

/// The changes that make the table hold `delegations` (delegator, validator, tokens); every
/// validator's bonded tokens are the sum delegated to it. `previous` delegators are cleared.
fn stake_changes(delegations: &[(Address, Address, U256)], previous: &[Address]) -> StateChanges {
    let mut c = StateChanges::new();
    c.set_account(
        STAKE_TABLE,
        Account {
            nonce: 1,
            ..Account::default()
        },
    );
    for d in previous {
        c.set_storage(STAKE_TABLE, delegator_base(*d), U256::ZERO);
    }
    let mut bonded: BTreeMap<Address, U256> = BTreeMap::new();
    let mut by_delegator: BTreeMap<Address, Vec<(Address, U256)>> = BTreeMap::new();
    for (d, v, t) in delegations {
        *bonded.entry(*v).or_default() += *t;
        by_delegator.entry(*d).or_default().push((*v, *t));
    }
    c.set_storage(STAKE_TABLE, U256::ZERO, U256::from(bonded.len()));
    for (i, (v, t)) in (0u64..).zip(&bonded) {
        c.set_storage(
            STAKE_TABLE,
            U256::from(1 + i),
            U256::from_be_bytes(v.into_word().0),
        );
        c.set_storage(STAKE_TABLE, U256::from(1_001 + i), *t);
    }
    for (d, list) in by_delegator {
        let base = delegator_base(d);
        c.set_storage(STAKE_TABLE, base, U256::from(list.len()));
        for (j, (v, t)) in (0u64..).zip(list) {
            c.set_storage(
                STAKE_TABLE,
                base + U256::from(1 + 2 * j),
                U256::from_be_bytes(v.into_word().0),
            );
            c.set_storage(STAKE_TABLE, base + U256::from(2 + 2 * j), t);
        }
    }
    c
}

// --- The chain -------------------------------------------------------------------------------

#[derive(Debug)]
struct Sent {
    success: bool,
    fee: U256,
    logs: Vec<Log>,
}

/// A chain with governance (voting period [`PERIOD`], minimum deposit 10 BTT) and funded
/// accounts `1..=n` (1,000 BTT each). `number` is the height of the next block.
struct Chain {
    ex: Executor,
    state: MemoryState,
    nonces: Vec<u64>,
    number: u64,
}

fn test_params() -> GovernedParams {
    let mut g = GovernedParams::default();
    g.0.insert(Param::VotingPeriodBlocks, U256::from(PERIOD));
    g.0.insert(Param::MinDeposit, btt(10));
    g
}

impl Chain {
    fn new(n: u8) -> Self {
        let ex = Executor::new(ChainParams::default())
            .with_module(Arc::new(Governance::new(test_params(), table_source())));
        Self::with_executor(ex, n, btt(1_000))
    }

    fn with_executor(ex: Executor, n: u8, funds: U256) -> Self {
        let alloc: Vec<_> = (1..=n).map(|i| (address_of(i), funds)).collect();
        let mut state = MemoryState::new();
        state.apply(&ex.genesis(&alloc).unwrap());
        Self {
            ex,
            state,
            nonces: vec![0; usize::from(n) + 1],
            number: 1,
        }
    }

    fn set_stake(&mut self, delegations: &[(Address, Address, U256)], previous: &[Address]) {
        self.state.apply(&stake_changes(delegations, previous));
    }

    fn env(&self) -> BlockEnv {
        BlockEnv {
            number: self.number,
            timestamp_ms: 1_700_000_000_000 + self.number * 1000,
            proposer: PROPOSER_ADDRESS,
            base_fee: GWEI,
            gas_limit: 30_000_000,
        }
    }

    fn tx(&mut self, from: u8, value: U256, input: Vec<u8>) -> RecoveredTx {
        self.tx_to(from, governance_address(), value, input)
    }

    fn tx_to(&mut self, from: u8, to: Address, value: U256, input: Vec<u8>) -> RecoveredTx {
        let nonce = &mut self.nonces[usize::from(from)];
        let tx = TxEip1559 {
            chain_id: DEVNET_CHAIN_ID,
            nonce: *nonce,
            gas_limit: GAS,
            max_fee_per_gas: u128::from(GWEI),
            max_priority_fee_per_gas: 0,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input: input.into(),
        };
        *nonce += 1;
        sign_tx(key(from), tx)
    }

    /// Executes `txs` as one block (built, then re-executed as a validator would), applies it,
    /// and checks the money invariants.
    fn block(&mut self, txs: Vec<RecoveredTx>) -> Vec<Sent> {
        let env = self.env();
        let n = txs.len();
        let built = self.ex.build(&self.state, &env, txs).unwrap();
        assert!(built.rejected.is_empty(), "rejected: {:?}", built.rejected);
        assert_eq!(built.txs.len(), n);
        let executed = self.ex.execute(&self.state, &env, &built.txs).unwrap();
        assert_eq!(executed, built.executed);
        self.state.apply(&executed.changes);
        self.number += 1;
        self.check_invariants();
        let mut previous = 0;
        executed
            .receipts
            .iter()
            .map(|r| {
                let gas = r.cumulative_gas_used() - previous;
                previous = r.cumulative_gas_used();
                Sent {
                    success: r.success(),
                    fee: U256::from(gas) * U256::from(GWEI),
                    logs: r.logs().to_vec(),
                }
            })
            .collect()
    }

    /// Empty blocks until the next block is `height`.
    fn advance_to(&mut self, height: u64) {
        while self.number < height {
            self.block(Vec::new());
        }
    }

    fn send<C: SolCall>(&mut self, from: u8, value: U256, call: C) -> Sent {
        let tx = self.tx(from, value, call.abi_encode());
        self.block(vec![tx]).pop().unwrap()
    }

    /// The revert reason of `call` from `from` as `eth_call` gives it, `None` on success.
    fn dry_run<C: SolCall>(&self, from: u8, value: U256, call: &C) -> Option<String> {
        let req = CallRequest {
            from: Some(address_of(from)),
            to: Some(governance_address()),
            value: Some(value),
            input: Some(call.abi_encode().into()),
            ..Default::default()
        };
        match self.ex.call(&self.state, &self.env(), &req) {
            Ok(_) => None,
            Err(e) => Some(e.revert_reason().unwrap_or_else(|| e.to_string())),
        }
    }

    fn view<C: SolCall>(&self, call: C) -> C::Return {
        let req = CallRequest {
            to: Some(governance_address()),
            input: Some(call.abi_encode().into()),
            ..Default::default()
        };
        let out = self.ex.call(&self.state, &self.env(), &req).unwrap();
        C::abi_decode_returns(&out.output).unwrap()
    }

    fn proposal(&self, id: u64) -> IGovernance::proposalReturn {
        self.view(IGovernance::proposalCall { id })
    }

    fn balance(&self, a: Address) -> U256 {
        self.state
            .account(&a)
            .unwrap()
            .map(|a| a.balance)
            .unwrap_or_default()
    }

    fn bank(&self, slot: U256) -> U256 {
        self.state.storage(&BANK_ADDRESS, &slot).unwrap()
    }

    /// Every storage slot and the balance of the governance module.
    fn governance_snapshot(&self) -> (Vec<(U256, U256)>, U256) {
        let gov = governance_address();
        let slots = self
            .state
            .storage_slots()
            .filter(|(a, _, _)| **a == gov)
            .map(|(_, s, v)| (*s, *v))
            .collect();
        (slots, self.balance(gov))
    }

    fn check_invariants(&self) {
        let count = self.view(IGovernance::proposalCountCall {});
        let voting_deposits = (1..=count)
            .map(|id| self.proposal(id))
            .filter(|p| p.status == ProposalStatus::Voting.code())
            .fold(U256::ZERO, |acc, p| acc + p.deposit);
        let treasury = self.view(IGovernance::treasuryCall {});
        assert_eq!(
            self.balance(governance_address()),
            treasury + voting_deposits,
            "balance == treasury + held deposits at height {}",
            self.number - 1
        );
        assert_eq!(self.view(IGovernance::heldDepositsCall {}), voting_deposits);
        let sum = self
            .state
            .accounts()
            .fold(U256::ZERO, |acc, (_, a)| acc + a.balance);
        assert_eq!(sum, self.bank(BANK_TOTAL_SUPPLY_SLOT));
    }
}

fn param_change(param: Param, value: U256, effective: u64) -> Vec<u8> {
    (U256::from(param.id()), value, effective).abi_encode_params()
}

fn submit(
    kind: ProposalKind,
    payload: Vec<u8>,
    description: &str,
) -> IGovernance::submitProposalCall {
    IGovernance::submitProposalCall {
        kind: kind.code(),
        payload: payload.into(),
        description: description.to_owned(),
    }
}

fn vote(id: u64, option: VoteOption) -> IGovernance::vote_0Call {
    IGovernance::vote_0Call {
        id,
        option: option.code(),
    }
}

fn reason(e: GovernanceError) -> Option<String> {
    Some(format!("revert: {e}"))
}

// Accounts: 1 the proposer (no stake), 2 and 3 validator operators, 4 and 5 delegators,
// 6 a recipient, 7 an account without stake.
const PROPOSER: u8 = 1;
const VAL_A: u8 = 2;
const VAL_B: u8 = 3;
const DEL_D: u8 = 4;
const DEL_E: u8 = 5;
const RECIPIENT: u8 = 6;
const NOBODY: u8 = 7;

/// A chain where A has a self-bond of 300 and D delegates 300 to A (A bonded 600), and B has a
/// self-bond of 300 and E delegates 100 to B (B bonded 400): 1,000 bonded in all.
fn staked() -> Chain {
    let mut chain = Chain::new(7);
    let (a, b, d, e) = (
        address_of(VAL_A),
        address_of(VAL_B),
        address_of(DEL_D),
        address_of(DEL_E),
    );
    chain.set_stake(
        &[
            (a, a, btt(300)),
            (d, a, btt(300)),
            (b, b, btt(300)),
            (e, b, btt(100)),
        ],
        &[],
    );
    chain
}

// --- Genesis ---------------------------------------------------------------------------------

#[test]
fn genesis_writes_every_param_and_refuses_bad_values() {
    let chain = Chain::new(1);
    let g = test_params();
    for p in Param::ALL {
        let stored = chain
            .state
            .storage(&governance_address(), &param_slot(p))
            .unwrap();
        assert_eq!(stored, encode_param(g.get(p)), "{}", p.name());
        assert_eq!(chain.view(IGovernance::paramCall { id: p.id() }), g.get(p));
    }
    assert_eq!(
        read_param(&chain.state, Param::MinDeposit).unwrap(),
        btt(10)
    );
    let all = chain.view(IGovernance::paramsCall {});
    assert_eq!(all, Param::ALL.map(|p| g.get(p)).to_vec());
    assert_eq!(chain.view(IGovernance::proposalCountCall {}), 0);
    assert_eq!(chain.view(IGovernance::treasuryCall {}), U256::ZERO);
    assert_eq!(
        chain.dry_run(1, U256::ZERO, &IGovernance::paramCall { id: 17 }),
        reason(GovernanceError::UnknownParam(17))
    );

    let genesis_with = |p: Param, v: U256| {
        let mut g = GovernedParams::default();
        g.0.insert(p, v);
        Executor::new(ChainParams::default())
            .with_module(Arc::new(Governance::new(g, table_source())))
            .genesis(&[])
            .map(|_| ())
    };
    let err = genesis_with(Param::GasLimit, U256::from(999_999u64)).unwrap_err();
    assert_eq!(err.module, "governance");
    assert_eq!(
        err.reason,
        "revert: governance: gas_limit must be between 1000000 and 1000000000, not 999999: fix the genesis file"
    );
    // Zero is a value like any other where the bounds allow it, and the top of the range
    // round-trips.
    let genesis_state = |p: Param, v: U256| {
        let mut g = GovernedParams::default();
        g.0.insert(p, v);
        let ex = Executor::new(ChainParams::default())
            .with_module(Arc::new(Governance::new(g, table_source())));
        let mut state = MemoryState::new();
        state.apply(&ex.genesis(&[]).unwrap());
        state
    };
    for p in [
        Param::MinBaseFee,
        Param::EmissionPerBlock,
        Param::SlashDowntimeBps,
    ] {
        let state = genesis_state(p, U256::ZERO);
        assert_eq!(read_param(&state, p).unwrap(), U256::ZERO, "{}", p.name());
        assert_eq!(read_param_u64(&state, p).unwrap(), 0);
    }
    for p in Param::ALL {
        let high = p.bounds().1;
        let state = genesis_state(p, high);
        assert_eq!(read_param(&state, p).unwrap(), high, "{}", p.name());
    }
    // Zero where the bounds refuse it is still refused.
    let err = genesis_with(Param::GasLimit, U256::ZERO).unwrap_err();
    assert_eq!(
        err.reason,
        "revert: governance: gas_limit must be between 1000000 and 1000000000, not 0: fix the genesis file"
    );
    assert!(genesis_with(Param::GasLimit, U256::from(1_000_000u64)).is_ok());
}

// --- A parameter change ----------------------------------------------------------------------

#[test]
fn gas_limit_change_passes_and_is_read_from_the_effective_height() {
    let mut chain = staked();
    let proposer = address_of(PROPOSER);
    let new_limit = U256::from(40_000_000u64);
    // Submitted in block 1: voting through block 6, effective from block 8.
    let effective = 1 + PERIOD + 2;
    let before = chain.balance(proposer);
    let sent = chain.send(
        PROPOSER,
        btt(10),
        submit(
            ProposalKind::ParamChange,
            param_change(Param::GasLimit, new_limit, effective),
            "raise the gas limit",
        ),
    );
    assert!(sent.success);
    assert_eq!(chain.balance(proposer), before - btt(10) - sent.fee);
    assert_eq!(chain.balance(governance_address()), btt(10));
    assert_eq!(sent.logs.len(), 1);
    let ev = IGovernance::ProposalSubmitted::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!(
        (ev.id, ev.proposer, ev.kind, ev.deposit, ev.votingEnd),
        (1, proposer, 1, btt(10), 1 + PERIOD)
    );
    let p = chain.proposal(1);
    assert_eq!(
        (
            p.kind,
            p.proposer,
            p.deposit,
            p.submitHeight,
            p.votingEnd,
            p.effectiveHeight,
            p.status
        ),
        (
            1,
            proposer,
            btt(10),
            1,
            6,
            effective,
            ProposalStatus::Voting.code()
        )
    );
    assert_eq!(
        p.payload.to_vec(),
        param_change(Param::GasLimit, new_limit, effective)
    );
    assert_eq!(p.description, "raise the gas limit");

    // A votes yes (600 with D's inherited 300), B votes no in the last voting block (400).
    let sent = chain.send(VAL_A, U256::ZERO, vote(1, VoteOption::Yes));
    assert!(sent.success);
    let ev = IGovernance::Voted::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!((ev.id, ev.voter, ev.option), (1, address_of(VAL_A), 1));
    assert_eq!(
        chain.view(IGovernance::vote_1Call {
            id: 1,
            voter: address_of(VAL_A)
        }),
        1
    );
    chain.advance_to(6);
    let supply = chain.bank(BANK_TOTAL_SUPPLY_SLOT);
    let before = chain.balance(proposer);
    let sent = chain.send(VAL_B, U256::ZERO, vote(1, VoteOption::No));
    assert!(sent.success);
    // Block 6 tallied it: passed, deposit back in full, no money created or destroyed but fees.
    let p = chain.proposal(1);
    assert_eq!(p.status, ProposalStatus::Passed.code());
    assert_eq!(
        (p.yes, p.no, p.abstain, p.noWithVeto),
        (btt(600), btt(400), U256::ZERO, U256::ZERO)
    );
    assert_eq!(chain.balance(proposer), before + btt(10));
    assert_eq!(chain.balance(governance_address()), U256::ZERO);
    assert_eq!(chain.bank(BANK_TOTAL_SUPPLY_SLOT), supply - sent.fee);

    // The state block 7 reads still has the old limit.
    assert_eq!(
        read_param(&chain.state, Param::GasLimit).unwrap(),
        U256::from(30_000_000u64)
    );
    chain.block(Vec::new()); // block 7 writes it
                             // The state block 8 (the effective height) reads has the new one.
    assert_eq!(chain.number, effective);
    assert_eq!(
        read_param(&chain.state, Param::GasLimit).unwrap(),
        new_limit
    );
    assert_eq!(
        chain.view(IGovernance::paramCall {
            id: Param::GasLimit.id()
        }),
        new_limit
    );
    assert_eq!(chain.proposal(1).status, ProposalStatus::Executed.code());
    // Voting is over.
    assert_eq!(
        chain.dry_run(VAL_A, U256::ZERO, &vote(1, VoteOption::No)),
        reason(GovernanceError::VotingClosed {
            id: 1,
            voting_end: 6,
            now: 8
        })
    );
}

// --- Quorum and veto -------------------------------------------------------------------------

/// Submits a text proposal in the next block, runs `votes` in the block after, and advances
/// through its tally. Returns the proposal id, the submission's fee, and the burned counter and
/// supply just before the tally block and just after it.
fn run_text(chain: &mut Chain, votes: &[(u8, VoteOption)]) -> (u64, U256, [U256; 4]) {
    let sent = chain.send(
        PROPOSER,
        btt(10),
        submit(ProposalKind::Text, Vec::new(), "signal"),
    );
    assert!(sent.success);
    let id = chain.view(IGovernance::proposalCountCall {});
    let end = chain.proposal(id).votingEnd;
    let txs: Vec<_> = votes
        .iter()
        .map(|(who, option)| chain.tx(*who, U256::ZERO, vote(id, *option).abi_encode()))
        .collect();
    assert!(chain.block(txs).iter().all(|s| s.success));
    chain.advance_to(end);
    let burned = chain.bank(BANK_BURNED_SLOT);
    let supply = chain.bank(BANK_TOTAL_SUPPLY_SLOT);
    chain.block(Vec::new()); // the tally block, without transactions
    (
        id,
        sent.fee,
        [
            burned,
            supply,
            chain.bank(BANK_BURNED_SLOT),
            chain.bank(BANK_TOTAL_SUPPLY_SLOT),
        ],
    )
}

#[test]
fn below_quorum_burns_the_deposit_and_changes_nothing() {
    let mut chain = staked();
    let proposer = address_of(PROPOSER);
    // D alone: 300 of 1,000 is below 33.4 %.
    let before = chain.balance(proposer);
    let params_before = chain.view(IGovernance::paramsCall {});
    let (id, fee, [burned0, supply0, burned1, supply1]) =
        run_text(&mut chain, &[(DEL_D, VoteOption::Yes)]);
    let p = chain.proposal(id);
    assert_eq!(p.status, ProposalStatus::RejectedNoQuorum.code());
    assert_eq!((p.yes, p.no), (btt(300), U256::ZERO));
    assert_eq!(burned1 - burned0, btt(10));
    assert_eq!(supply0 - supply1, btt(10));
    assert_eq!(chain.balance(governance_address()), U256::ZERO);
    // The proposer paid the deposit and one fee, and got nothing back.
    assert_eq!(chain.balance(proposer), before - btt(10) - fee);
    assert_eq!(chain.view(IGovernance::paramsCall {}), params_before);

    // One more token of stake voting reaches quorum exactly: 334 of 1,000.
    let (a, b, d, e) = (
        address_of(VAL_A),
        address_of(VAL_B),
        address_of(DEL_D),
        address_of(DEL_E),
    );
    chain.set_stake(
        &[
            (a, a, btt(300)),
            (d, a, btt(334)),
            (b, b, btt(266)),
            (e, b, btt(100)),
        ],
        &[],
    );
    let (id, _, [burned0, _, burned1, _]) = run_text(&mut chain, &[(DEL_D, VoteOption::Yes)]);
    assert_eq!(chain.proposal(id).status, ProposalStatus::Passed.code());
    assert_eq!(burned1, burned0);
}

#[test]
fn a_param_change_below_quorum_burns_and_never_takes_effect() {
    let mut chain = staked();
    let effective = 1 + PERIOD + 1;
    let sent = chain.send(
        PROPOSER,
        btt(10),
        submit(
            ProposalKind::ParamChange,
            param_change(Param::GasLimit, U256::from(40_000_000u64), effective),
            "raise the gas limit",
        ),
    );
    assert!(sent.success);
    // E alone: 100 of 1,000.
    assert!(
        chain
            .send(DEL_E, U256::ZERO, vote(1, VoteOption::Yes))
            .success
    );
    chain.advance_to(1 + PERIOD);
    let burned = chain.bank(BANK_BURNED_SLOT);
    let supply = chain.bank(BANK_TOTAL_SUPPLY_SLOT);
    let params_before = chain.view(IGovernance::paramsCall {});
    // The tally block, which is also the block before the effective height.
    chain.block(Vec::new());
    assert_eq!(chain.number, effective);
    let p = chain.proposal(1);
    assert_eq!(p.status, ProposalStatus::RejectedNoQuorum.code());
    assert_eq!((p.yes, p.no), (btt(100), U256::ZERO));
    assert_eq!(chain.bank(BANK_BURNED_SLOT), burned + btt(10));
    assert_eq!(chain.bank(BANK_TOTAL_SUPPLY_SLOT), supply - btt(10));
    chain.advance_to(effective + 2);
    assert_eq!(chain.view(IGovernance::paramsCall {}), params_before);
    assert_eq!(
        read_param(&chain.state, Param::GasLimit).unwrap(),
        U256::from(30_000_000u64)
    );
    assert_eq!(
        chain.proposal(1).status,
        ProposalStatus::RejectedNoQuorum.code()
    );
}

#[test]
fn veto_burns_the_deposit() {
    let mut chain = staked();
    // Yes 600, NoWithVeto 400: 40 % veto of the votes ≥ 33.4 %.
    let (id, _, [burned0, supply0, burned1, supply1]) = run_text(
        &mut chain,
        &[(VAL_A, VoteOption::Yes), (VAL_B, VoteOption::NoWithVeto)],
    );
    let p = chain.proposal(id);
    assert_eq!(p.status, ProposalStatus::RejectedVeto.code());
    assert_eq!((p.yes, p.noWithVeto), (btt(600), btt(400)));
    assert_eq!(burned1 - burned0, btt(10));
    assert_eq!(supply0 - supply1, btt(10));

    // Only E (100) vetoes while B votes yes: 100 of 1,000 is below the veto share, and the
    // delegator's tokens leave its validator's vote.
    let before = chain.balance(address_of(PROPOSER));
    let (id, fee, [burned0, _, burned1, _]) = run_text(
        &mut chain,
        &[
            (VAL_A, VoteOption::Yes),
            (VAL_B, VoteOption::Yes),
            (DEL_E, VoteOption::NoWithVeto),
        ],
    );
    let p = chain.proposal(id);
    assert_eq!(p.status, ProposalStatus::Passed.code());
    assert_eq!((p.yes, p.noWithVeto), (btt(900), btt(100)));
    assert_eq!(burned1, burned0);
    // Deposit refunded: the proposer is down only the submission fee.
    assert_eq!(chain.balance(address_of(PROPOSER)), before - fee);
}

// --- Delegators override their validator -----------------------------------------------------

#[test]
fn a_delegator_vote_overrides_its_validator_and_changes_the_outcome() {
    let mut chain = staked();
    let gov_text = |c: &mut Chain| {
        assert!(
            c.send(
                PROPOSER,
                btt(10),
                submit(ProposalKind::Text, Vec::new(), "t")
            )
            .success
        );
    };
    gov_text(&mut chain); // 1: D does not vote
    gov_text(&mut chain); // 2: D votes itself
    let txs = vec![
        chain.tx(VAL_A, U256::ZERO, vote(1, VoteOption::Yes).abi_encode()),
        chain.tx(VAL_B, U256::ZERO, vote(1, VoteOption::No).abi_encode()),
        chain.tx(VAL_A, U256::ZERO, vote(2, VoteOption::Yes).abi_encode()),
        chain.tx(VAL_B, U256::ZERO, vote(2, VoteOption::No).abi_encode()),
        // D first follows A, then changes its mind: the last vote counts.
        chain.tx(DEL_D, U256::ZERO, vote(2, VoteOption::Yes).abi_encode()),
        chain.tx(DEL_D, U256::ZERO, vote(2, VoteOption::No).abi_encode()),
    ];
    assert!(chain.block(txs).iter().all(|s| s.success));
    assert_eq!(
        chain.view(IGovernance::vote_1Call {
            id: 2,
            voter: address_of(DEL_D)
        }),
        VoteOption::No.code()
    );
    chain.advance_to(chain.proposal(2).votingEnd + 1);
    let p1 = chain.proposal(1);
    let p2 = chain.proposal(2);
    // 1: A carries D's 300 (600 yes against 400): passes.
    assert_eq!(p1.status, ProposalStatus::Passed.code());
    assert_eq!((p1.yes, p1.no), (btt(600), btt(400)));
    // 2: D's 300 leave A for No (300 yes against 700): rejected, deposit refunded.
    assert_eq!(p2.status, ProposalStatus::Rejected.code());
    assert_eq!((p2.yes, p2.no), (btt(300), btt(700)));
    assert_eq!(chain.balance(governance_address()), U256::ZERO);
}

#[test]
fn weights_are_the_stake_at_tally_time() {
    let mut chain = staked();
    let (a, b, d, e) = (
        address_of(VAL_A),
        address_of(VAL_B),
        address_of(DEL_D),
        address_of(DEL_E),
    );
    assert!(
        chain
            .send(
                PROPOSER,
                btt(10),
                submit(ProposalKind::Text, Vec::new(), "t")
            )
            .success
    );
    let txs = vec![
        chain.tx(VAL_A, U256::ZERO, vote(1, VoteOption::Yes).abi_encode()),
        chain.tx(VAL_B, U256::ZERO, vote(1, VoteOption::No).abi_encode()),
    ];
    assert!(chain.block(txs).iter().all(|s| s.success));
    // D moves its 300 from A to B before the tally: B now outweighs A.
    chain.set_stake(
        &[
            (a, a, btt(300)),
            (d, b, btt(300)),
            (b, b, btt(300)),
            (e, b, btt(100)),
        ],
        &[d],
    );
    chain.advance_to(chain.proposal(1).votingEnd + 1);
    let p = chain.proposal(1);
    assert_eq!((p.yes, p.no), (btt(300), btt(700)));
    assert_eq!(p.status, ProposalStatus::Rejected.code());
}

// --- Treasury --------------------------------------------------------------------------------

#[test]
fn treasury_spend_pays_exactly_and_a_short_treasury_pays_nothing() {
    let mut chain = staked();
    let recipient = address_of(RECIPIENT);
    let sent = chain.send(NOBODY, btt(50), IGovernance::fundTreasuryCall {});
    assert!(sent.success);
    let ev = IGovernance::TreasuryFunded::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!((ev.from, ev.amount), (address_of(NOBODY), btt(50)));
    assert_eq!(chain.view(IGovernance::treasuryCall {}), btt(50));

    let spend = |amount: U256| {
        submit(
            ProposalKind::TreasurySpend,
            (recipient, amount).abi_encode_params(),
            "pay",
        )
    };
    // Two spends of 30 end in the same block; a text proposal ending later keeps its 10 BTT
    // deposit held meanwhile, which must not be spent.
    let txs = vec![
        chain.tx(PROPOSER, btt(10), spend(btt(30)).abi_encode()),
        chain.tx(PROPOSER, btt(10), spend(btt(30)).abi_encode()),
    ];
    assert!(chain.block(txs).iter().all(|s| s.success));
    assert!(
        chain
            .send(
                PROPOSER,
                btt(10),
                submit(ProposalKind::Text, Vec::new(), "later")
            )
            .success
    );
    assert_eq!(chain.view(IGovernance::treasuryCall {}), btt(50));
    assert_eq!(chain.view(IGovernance::heldDepositsCall {}), btt(30));
    let txs = vec![
        chain.tx(VAL_A, U256::ZERO, vote(1, VoteOption::Yes).abi_encode()),
        chain.tx(VAL_A, U256::ZERO, vote(2, VoteOption::Yes).abi_encode()),
    ];
    assert!(chain.block(txs).iter().all(|s| s.success));
    let end = chain.proposal(1).votingEnd;
    chain.advance_to(end);
    let recipient_before = chain.balance(recipient);
    let proposer_before = chain.balance(address_of(PROPOSER));
    chain.block(Vec::new());
    // The first pays 30 exactly; the second finds 20 and pays nothing at all.
    assert_eq!(chain.proposal(1).status, ProposalStatus::Executed.code());
    assert_eq!(chain.proposal(2).status, ProposalStatus::Failed.code());
    assert_eq!(chain.balance(recipient), recipient_before + btt(30));
    assert_eq!(chain.view(IGovernance::treasuryCall {}), btt(20));
    // Both deposits came back; the text proposal's is still held.
    assert_eq!(
        chain.balance(address_of(PROPOSER)),
        proposer_before + btt(20)
    );
    assert_eq!(chain.balance(governance_address()), btt(30));
    assert_eq!(chain.view(IGovernance::heldDepositsCall {}), btt(10));
}

// --- Refusals --------------------------------------------------------------------------------

#[test]
fn bad_calls_revert_and_change_nothing() {
    let mut chain = staked();
    // One open proposal (1) and one whose voting has ended (2 is opened first, then time runs).
    assert!(
        chain
            .send(
                PROPOSER,
                btt(10),
                submit(ProposalKind::Text, Vec::new(), "old")
            )
            .success
    );
    chain.advance_to(1 + PERIOD + 1);
    assert!(
        chain
            .send(
                PROPOSER,
                btt(10),
                submit(ProposalKind::Text, Vec::new(), "open")
            )
            .success
    );
    let now = chain.number;
    let end = now + PERIOD;
    let gas = |v: u64, eff: u64| param_change(Param::GasLimit, U256::from(v), eff);
    let cases: Vec<(u8, U256, Vec<u8>, GovernanceError)> = vec![
        (
            PROPOSER,
            btt(10),
            IGovernance::submitProposalCall {
                kind: 0,
                payload: Default::default(),
                description: String::new(),
            }
            .abi_encode(),
            GovernanceError::BadKind(0),
        ),
        (
            PROPOSER,
            btt(10),
            IGovernance::submitProposalCall {
                kind: 4,
                payload: Default::default(),
                description: String::new(),
            }
            .abi_encode(),
            GovernanceError::BadKind(4),
        ),
        (
            PROPOSER,
            btt(10),
            submit(ProposalKind::ParamChange, gas(999_999, end + 1), "x").abi_encode(),
            GovernanceError::OutOfBounds(
                "gas_limit must be between 1000000 and 1000000000, not 999999".into(),
            ),
        ),
        (
            PROPOSER,
            btt(10),
            submit(
                ProposalKind::ParamChange,
                (U256::from(17u8), U256::from(1u8), end + 1).abi_encode_params(),
                "x",
            )
            .abi_encode(),
            GovernanceError::UnknownParam(17),
        ),
        (
            PROPOSER,
            btt(10),
            submit(
                ProposalKind::ParamChange,
                param_change(Param::GasLimit, U256::ZERO, end + 1),
                "x",
            )
            .abi_encode(),
            GovernanceError::OutOfBounds(
                "gas_limit must be between 1000000 and 1000000000, not 0".into(),
            ),
        ),
        (
            PROPOSER,
            btt(10),
            submit(ProposalKind::ParamChange, gas(40_000_000, end), "x").abi_encode(),
            GovernanceError::EffectiveTooEarly {
                effective: end,
                voting_end: end,
            },
        ),
        (
            PROPOSER,
            btt(10),
            submit(ProposalKind::ParamChange, vec![1, 2, 3], "x").abi_encode(),
            GovernanceError::BadPayload {
                kind: "param change",
                expected: "abi.encode(uint8 paramId, uint256 value, uint64 effectiveHeight)",
            },
        ),
        (
            PROPOSER,
            btt(10),
            submit(ProposalKind::Text, vec![0], "x").abi_encode(),
            GovernanceError::BadPayload {
                kind: "text",
                expected: "the payload must be empty",
            },
        ),
        (
            PROPOSER,
            btt(10),
            submit(
                ProposalKind::TreasurySpend,
                (Address::ZERO, btt(1)).abi_encode_params(),
                "x",
            )
            .abi_encode(),
            GovernanceError::BadRecipient,
        ),
        (
            PROPOSER,
            btt(10),
            submit(
                ProposalKind::TreasurySpend,
                (address_of(RECIPIENT), U256::ZERO).abi_encode_params(),
                "x",
            )
            .abi_encode(),
            GovernanceError::ZeroAmount,
        ),
        (
            PROPOSER,
            btt(10) - U256::from(1u8),
            submit(ProposalKind::Text, Vec::new(), "x").abi_encode(),
            GovernanceError::LowDeposit {
                deposit: btt(10) - U256::from(1u8),
                min: btt(10),
            },
        ),
        (
            PROPOSER,
            btt(10),
            submit(ProposalKind::Text, Vec::new(), &"d".repeat(1025)).abi_encode(),
            GovernanceError::DescriptionTooLong(1025),
        ),
        (
            VAL_A,
            U256::ZERO,
            vote(1, VoteOption::Yes).abi_encode(),
            GovernanceError::VotingClosed {
                id: 1,
                voting_end: 1 + PERIOD,
                now,
            },
        ),
        (
            VAL_A,
            U256::ZERO,
            IGovernance::vote_0Call { id: 2, option: 0 }.abi_encode(),
            GovernanceError::BadOption(0),
        ),
        (
            VAL_A,
            U256::ZERO,
            IGovernance::vote_0Call { id: 2, option: 5 }.abi_encode(),
            GovernanceError::BadOption(5),
        ),
        (
            NOBODY,
            U256::ZERO,
            vote(2, VoteOption::Yes).abi_encode(),
            GovernanceError::NoStake(address_of(NOBODY)),
        ),
        (
            VAL_A,
            U256::ZERO,
            vote(3, VoteOption::Yes).abi_encode(),
            GovernanceError::UnknownProposal(3),
        ),
        (
            VAL_A,
            U256::from(1u8),
            vote(2, VoteOption::Yes).abi_encode(),
            GovernanceError::NotPayable,
        ),
        (
            NOBODY,
            U256::ZERO,
            IGovernance::fundTreasuryCall {}.abi_encode(),
            GovernanceError::NoFunds,
        ),
        (
            NOBODY,
            U256::ZERO,
            vec![0xde, 0xad, 0xbe, 0xef],
            GovernanceError::BadCall("0xdeadbeef".into()),
        ),
    ];
    for (from, value, input, expected) in cases {
        assert_eq!(
            chain.number, now,
            "all refusals are checked in the same block"
        );
        let req = CallRequest {
            from: Some(address_of(from)),
            to: Some(governance_address()),
            value: Some(value),
            input: Some(input.clone().into()),
            ..Default::default()
        };
        let got = chain
            .ex
            .call(&chain.state, &chain.env(), &req)
            .unwrap_err()
            .revert_reason();
        assert_eq!(got, reason(expected.clone()), "{expected:?}");
        // The same call as a transaction: reverted, and only the fee was taken.
        let snapshot = chain.governance_snapshot();
        let sender = chain.balance(address_of(from));
        let tx = chain.tx(from, value, input);
        let env = chain.env();
        let executed = chain.ex.execute(&chain.state, &env, &[tx]).unwrap();
        assert!(!executed.receipts[0].success(), "{expected:?}");
        let fee = U256::from(executed.gas_used) * U256::from(GWEI);
        let mut after = chain.state.clone();
        after.apply(&executed.changes);
        let gov = governance_address();
        let slots: Vec<_> = after
            .storage_slots()
            .filter(|(a, _, _)| **a == gov)
            .map(|(_, s, v)| (*s, *v))
            .collect();
        let balance = after
            .account(&gov)
            .unwrap()
            .map(|a| a.balance)
            .unwrap_or_default();
        assert_eq!((slots, balance), snapshot, "{expected:?}");
        let sender_after = after
            .account(&address_of(from))
            .unwrap()
            .map(|a| a.balance)
            .unwrap_or_default();
        assert_eq!(sender_after, sender - fee, "{expected:?}");
        // Not applied: the next case runs on the same state.
        chain.nonces[usize::from(from)] -= 1;
    }
    // The boundary values are accepted.
    assert_eq!(
        chain.dry_run(
            PROPOSER,
            btt(10),
            &submit(ProposalKind::ParamChange, gas(40_000_000, end + 1), "x")
        ),
        None
    );
    assert_eq!(
        chain.dry_run(
            PROPOSER,
            btt(10),
            &submit(ProposalKind::Text, Vec::new(), &"d".repeat(1024))
        ),
        None
    );
    assert_eq!(
        chain.dry_run(DEL_E, U256::ZERO, &vote(2, VoteOption::NoWithVeto)),
        None
    );
}

#[test]
fn voting_is_open_through_the_voting_end_block() {
    let mut chain = staked();
    assert!(
        chain
            .send(
                PROPOSER,
                btt(10),
                submit(ProposalKind::Text, Vec::new(), "t")
            )
            .success
    );
    let end = chain.proposal(1).votingEnd;
    assert_eq!(end, 1 + PERIOD);
    chain.advance_to(end);
    // A vote in the last block counts at that block's tally.
    assert!(
        chain
            .send(VAL_A, U256::ZERO, vote(1, VoteOption::Yes))
            .success
    );
    let p = chain.proposal(1);
    assert_eq!(p.status, ProposalStatus::Passed.code());
    assert_eq!(p.yes, btt(600));
    // The queue entry was cleared: no tally slot is left behind.
    let count = chain.view(IGovernance::proposalCountCall {});
    assert_eq!(count, 1);
}

// --- With the staking module -----------------------------------------------------------------

/// Consensus cryptography that accepts every key (the staking module's own tests check keys).
#[derive(Debug)]
struct AnyKeys;

impl ConsensusCrypto for AnyKeys {
    fn check_keys(&self, _key: &ConsensusKey) -> Result<(), String> {
        Ok(())
    }

    fn evidence_epoch(&self, _evidence: &[u8]) -> Result<u64, String> {
        Err("no evidence in these tests".into())
    }

    fn check_evidence(
        &self,
        _committee: &[ConsensusKey],
        _evidence: &[u8],
    ) -> Result<Offence, String> {
        Err("no evidence in these tests".into())
    }
}

#[test]
fn with_staking_weighs_votes_with_the_staking_module() {
    let genesis = |n: u8, bond: U256| GenesisStake {
        operator: address_of(n),
        key: ConsensusKey {
            identity: [n; 32],
            bls: vec![n; BLS_KEY_LEN],
            pop: vec![n; POP_LEN],
        },
        self_bond: bond,
        commission_bps: 0,
    };
    let staking = Staking::new(
        1_000,
        vec![genesis(VAL_A, btt(6_000)), genesis(VAL_B, btt(4_000))],
        Arc::new(AnyKeys),
    );
    let ex = Executor::new(ChainParams::default())
        .with_module(Arc::new(staking))
        .with_module(Arc::new(Governance::with_staking(test_params())));
    let mut chain = Chain::with_executor(ex, 7, btt(10_000));
    // D delegates 3,000 to A: A is bonded with 9,000, B with 4,000.
    let delegate = IStaking::delegateCall {
        validator: address_of(VAL_A),
    }
    .abi_encode();
    let tx = chain.tx_to(DEL_D, staking_address(), btt(3_000), delegate);
    assert!(chain.block(vec![tx]).iter().all(|s| s.success));
    let text = submit(ProposalKind::Text, Vec::new(), "t").abi_encode();
    let txs = vec![
        chain.tx(PROPOSER, btt(10), text.clone()),
        chain.tx(PROPOSER, btt(10), text),
    ];
    assert!(chain.block(txs).iter().all(|s| s.success));
    let txs = vec![
        chain.tx(VAL_A, U256::ZERO, vote(1, VoteOption::Yes).abi_encode()),
        chain.tx(VAL_B, U256::ZERO, vote(1, VoteOption::No).abi_encode()),
        chain.tx(VAL_A, U256::ZERO, vote(2, VoteOption::Yes).abi_encode()),
        chain.tx(VAL_B, U256::ZERO, vote(2, VoteOption::No).abi_encode()),
        chain.tx(DEL_D, U256::ZERO, vote(2, VoteOption::No).abi_encode()),
    ];
    assert!(chain.block(txs).iter().all(|s| s.success));
    assert_eq!(
        chain.dry_run(NOBODY, U256::ZERO, &vote(1, VoteOption::Yes)),
        reason(GovernanceError::NoStake(address_of(NOBODY)))
    );
    chain.advance_to(chain.proposal(2).votingEnd + 1);
    let (p1, p2) = (chain.proposal(1), chain.proposal(2));
    assert_eq!((p1.yes, p1.no), (btt(9_000), btt(4_000)));
    assert_eq!(p1.status, ProposalStatus::Passed.code());
    assert_eq!((p2.yes, p2.no), (btt(6_000), btt(7_000)));
    assert_eq!(p2.status, ProposalStatus::Rejected.code());
}
