//! Staking module tests: scenarios through real signed transactions with exact amounts, refusals
//! that change nothing, the active set at epoch boundaries, the view governance reads, and a
//! seeded property test over random sequences that checks the money invariants at every block.

use std::sync::Arc;

use alloy_consensus::crypto::secp256k1::sign_message;
use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{keccak256, Address, Bytes, Log, TxKind, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use chain_types::{recover_tx, RecoveredTx, TxEnvelope, TxRules};

use crate::*;

const GAS: u64 = 3_000_000;
const T0: u64 = 1_700_000_000;
const EPOCH: u64 = 10;

fn key(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn btt(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// `n / 1000` BTT.
fn milli(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(15))
}

fn sign_tx(k: B256, tx: TxEip1559) -> RecoveredTx {
    let sig = sign_message(k, tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    recover_tx(envelope, &TxRules::new(DEVNET_CHAIN_ID, 30_000_000)).unwrap()
}

fn address_of(k: B256) -> Address {
    let tx = TxEip1559 {
        chain_id: DEVNET_CHAIN_ID,
        to: TxKind::Call(Address::ZERO),
        gas_limit: 21_000,
        ..Default::default()
    };
    sign_tx(k, tx).sender()
}

/// Consensus "cryptography" for tests: a proof of possession is the BLS key twice; evidence is
/// `epoch (8 bytes) ‖ view (8) ‖ identity (32) ‖ anything`, valid when the identity is in the
/// committee.
#[derive(Debug)]
struct FakeCrypto;

fn fake_pop(bls: &[u8]) -> Vec<u8> {
    [bls, bls].concat()
}

impl ConsensusCrypto for FakeCrypto {
    fn check_keys(&self, key: &ConsensusKey) -> Result<(), String> {
        if key.pop == fake_pop(&key.bls) {
            Ok(())
        } else {
            Err("bad proof of possession".into())
        }
    }

    fn evidence_epoch(&self, evidence: &[u8]) -> Result<u64, String> {
        let head: [u8; 8] = evidence
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or("evidence too short")?;
        Ok(u64::from_be_bytes(head))
    }

    fn check_evidence(
        &self,
        committee: &[ConsensusKey],
        evidence: &[u8],
    ) -> Result<Offence, String> {
        if evidence.len() < 48 {
            return Err("evidence too short".into());
        }
        let epoch = self.evidence_epoch(evidence)?;
        let view = u64::from_be_bytes(evidence[8..16].try_into().unwrap());
        let identity: [u8; 32] = evidence[16..48].try_into().unwrap();
        if !committee.iter().any(|k| k.identity == identity) {
            return Err("the signer is not in the committee".into());
        }
        Ok(Offence {
            epoch,
            view,
            identity,
        })
    }
}

fn consensus_key(n: u8) -> ConsensusKey {
    let bls = vec![n; BLS_KEY_LEN];
    ConsensusKey {
        identity: [n; 32],
        pop: fake_pop(&bls),
        bls,
    }
}

fn evidence(epoch: u64, view: u64, identity: u8, salt: u8) -> Bytes {
    let mut e = Vec::new();
    e.extend_from_slice(&epoch.to_be_bytes());
    e.extend_from_slice(&view.to_be_bytes());
    e.extend_from_slice(&[identity; 32]);
    e.push(salt);
    e.into()
}

#[derive(Debug)]
struct Sent {
    success: bool,
    gas: u64,
    logs: Vec<Log>,
}

/// Who proposes each block of a test chain.
#[derive(Clone, Debug)]
enum Leaders {
    /// Round-robin over the block's epoch set (the member at `height mod size` leads), skipping
    /// the `offline` members as consensus skips their views: the next online member leads. A
    /// non-validator proposes when every member is offline.
    RoundRobin { offline: Vec<Address> },
    /// Always this address.
    Fixed(Address),
}

/// A chain with the staking module, accounts `1..=n` holding 1,000,000 BTT each, base fee zero
/// (so balances move only by staking and by tips), and governed parameters set in state.
struct Chain {
    ex: Executor,
    state: MemoryState,
    nonces: Vec<u64>,
    number: u64,
    /// Tip per gas of the next transactions (paid to the staking module).
    tip: u128,
    leaders: Leaders,
    /// A funded address that is never a validator.
    nobody: Address,
}

impl Chain {
    fn new(n: u8, genesis: Vec<GenesisStake>, params: &[(Param, U256)]) -> Self {
        let staking = Staking::new(EPOCH, genesis, Arc::new(FakeCrypto));
        let ex = Executor::new(ChainParams {
            min_base_fee: 0,
            initial_base_fee: 0,
            ..ChainParams::default()
        })
        .with_module(Arc::new(staking))
        .with_fee_collector(staking_address());
        let alloc: Vec<_> = (1..=n)
            .map(|i| (address_of(key(i)), btt(1_000_000)))
            .collect();
        let mut state = MemoryState::new();
        state.apply(&ex.genesis(&alloc).unwrap());
        let mut changes = StateChanges::new();
        let code_hash = changes.insert_code(Bytes::from_static(&MODULE_ACCOUNT_CODE));
        changes.set_account(
            governance_address(),
            Account {
                nonce: 1,
                balance: U256::ZERO,
                code_hash,
            },
        );
        for (p, v) in params {
            changes.set_storage(governance_address(), param_slot(*p), encode_param(*v));
        }
        state.apply(&changes);
        Self {
            ex,
            state,
            nonces: vec![0; usize::from(n) + 1],
            number: 1,
            tip: 0,
            leaders: Leaders::RoundRobin {
                offline: Vec::new(),
            },
            nobody: address_of(key(200)),
        }
    }

    /// The proposer of the next block.
    fn proposer(&self) -> Address {
        match &self.leaders {
            Leaders::Fixed(a) => *a,
            Leaders::RoundRobin { offline } => {
                let set = committee_of(&self.state, self.number / EPOCH)
                    .unwrap()
                    .unwrap_or_default();
                let n = set.len();
                (0..n)
                    .map(|i| set[(self.number as usize + i) % n].0)
                    .find(|a| !offline.contains(a))
                    .unwrap_or(self.nobody)
            }
        }
    }

    /// Takes `a` offline (it stops proposing) or brings it back.
    fn set_offline(&mut self, a: Address, off: bool) {
        let Leaders::RoundRobin { offline } = &mut self.leaders else {
            panic!("fixed leader");
        };
        offline.retain(|x| *x != a);
        if off {
            offline.push(a);
        }
    }

    fn env(&self) -> BlockEnv {
        BlockEnv {
            number: self.number,
            timestamp_ms: (T0 + self.number) * 1000,
            proposer: self.proposer(),
            base_fee: 0,
            gas_limit: 30_000_000,
        }
    }

    fn tx<C: SolCall>(&mut self, from: u8, value: U256, call: C) -> RecoveredTx {
        let nonce = &mut self.nonces[usize::from(from)];
        let tx = TxEip1559 {
            chain_id: DEVNET_CHAIN_ID,
            nonce: *nonce,
            gas_limit: GAS,
            max_fee_per_gas: self.tip,
            max_priority_fee_per_gas: self.tip,
            to: TxKind::Call(staking_address()),
            value,
            access_list: Default::default(),
            input: call.abi_encode().into(),
        };
        *nonce += 1;
        sign_tx(key(from), tx)
    }

    /// Builds, re-executes and applies one block.
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
        let mut previous = 0;
        executed
            .receipts
            .iter()
            .map(|r| {
                let gas = r.cumulative_gas_used() - previous;
                previous = r.cumulative_gas_used();
                Sent {
                    success: r.success(),
                    gas,
                    logs: r.logs().to_vec(),
                }
            })
            .collect()
    }

    fn send<C: SolCall>(&mut self, from: u8, value: U256, call: C) -> Sent {
        let tx = self.tx(from, value, call);
        self.block(vec![tx]).pop().unwrap()
    }

    /// Executes empty blocks until the next block is `number`.
    fn advance_to(&mut self, number: u64) {
        while self.number < number {
            self.block(Vec::new());
        }
    }

    fn dry_run<C: SolCall>(&self, from: u8, value: U256, call: &C) -> Option<String> {
        let req = CallRequest {
            from: Some(address_of(key(from))),
            to: Some(staking_address()),
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
            to: Some(staking_address()),
            input: Some(call.abi_encode().into()),
            ..Default::default()
        };
        let out = self.ex.call(&self.state, &self.env(), &req).unwrap();
        C::abi_decode_returns(&out.output).unwrap()
    }

    fn balance(&self, a: Address) -> U256 {
        self.state
            .account(&a)
            .unwrap()
            .map(|a| a.balance)
            .unwrap_or_default()
    }

    fn supply(&self) -> U256 {
        self.state
            .storage(&BANK_ADDRESS, &BANK_TOTAL_SUPPLY_SLOT)
            .unwrap()
    }

    fn sum_of_balances(&self) -> U256 {
        self.state
            .accounts()
            .fold(U256::ZERO, |acc, (_, a)| acc + a.balance)
    }

    fn value_of(&self, delegator: Address, validator: Address) -> U256 {
        self.view(IStaking::delegationCall {
            delegator,
            validator,
        })
        .tokens
    }

    fn pending(&self, delegator: Address, validator: Address) -> U256 {
        self.view(IStaking::pendingRewardsCall {
            delegator,
            validator,
        })
    }

    fn set(&self, epoch: u64) -> Option<Vec<Address>> {
        let r = self.view(IStaking::epochSetCall { epoch });
        r.stored.then_some(r.validators)
    }

    fn staking_storage(&self) -> Vec<(U256, U256)> {
        self.state
            .storage_slots()
            .filter(|(a, _, _)| **a == staking_address())
            .map(|(_, s, v)| (*s, *v))
            .collect()
    }

    /// The exact money invariant of the module (see the module docs) and the supply identity.
    fn check_accounting(&self) {
        let totals = staking_totals(&self.state).unwrap();
        assert_eq!(
            self.balance(staking_address()),
            totals.accounted().unwrap(),
            "module balance vs {totals:?}"
        );
        let vals = validators(&self.state).unwrap();
        let tokens = vals.iter().fold(U256::ZERO, |a, v| a + v.tokens);
        assert_eq!(tokens, totals.total_bonded);
        let commission = vals.iter().fold(U256::ZERO, |a, v| a + v.commission_unpaid);
        assert_eq!(commission, totals.commission);
        let unbonding = vals.iter().fold(U256::ZERO, |a, v| a + v.unbonding);
        assert_eq!(unbonding, totals.unbonding);
        assert_eq!(self.sum_of_balances(), self.supply());
    }
}

fn genesis_stake(n: u8, bond: U256, commission_bps: u16) -> GenesisStake {
    GenesisStake {
        operator: address_of(key(n)),
        key: consensus_key(n),
        self_bond: bond,
        commission_bps,
    }
}

fn create_call(n: u8, commission: u16) -> IStaking::createValidatorCall {
    let k = consensus_key(n);
    IStaking::createValidatorCall {
        identity: B256::from(k.identity),
        bls: k.bls.into(),
        pop: k.pop.into(),
        commissionBps: commission,
    }
}

fn reason(e: StakingError) -> Option<String> {
    Some(format!("revert: {e}"))
}

fn emission() -> U256 {
    Param::EmissionPerBlock.default_value()
}

// --- Genesis and registration ---------------------------------------------------------------

#[test]
fn reward_scale_is_1e27_and_the_module_lives_at_module_1() {
    assert_eq!(REWARD_SCALE, U256::from(10u64).pow(U256::from(27)));
    let chain = Chain::new(1, Vec::new(), &[]);
    assert!(chain.ex.module_addresses().any(|a| a == staking_address()));
    assert_eq!(staking_address(), module_address(1));
    let e = chain.view(IStaking::epochCall {});
    assert_eq!((e.current, e.length), (0, EPOCH));
    // An empty genesis stores an empty epoch-0 set.
    assert_eq!(committee_of(&chain.state, 0).unwrap(), Some(Vec::new()));
    assert_eq!(committee_of(&chain.state, 1).unwrap(), None);
}

#[test]
fn genesis_mints_self_bonds_and_stores_the_epoch_zero_set() {
    let genesis = vec![
        genesis_stake(11, btt(1_000), 500),
        genesis_stake(12, btt(3_000), 0),
        genesis_stake(13, btt(3_000), 10_000),
    ];
    let chain = Chain::new(2, genesis, &[]);
    // Two funded accounts plus 7,000 BTT of genesis stake.
    assert_eq!(chain.supply(), btt(2_000_000) + btt(7_000));
    assert_eq!(chain.balance(staking_address()), btt(7_000));
    chain.check_accounting();
    let (a, b, c) = (
        address_of(key(11)),
        address_of(key(12)),
        address_of(key(13)),
    );
    // Ordered by tokens, ties by address.
    let mut tied = [b, c];
    tied.sort();
    let committee = committee_of(&chain.state, 0).unwrap().unwrap();
    assert_eq!(
        committee.iter().map(|(x, _)| *x).collect::<Vec<_>>(),
        vec![tied[0], tied[1], a]
    );
    assert_eq!(committee[2].1, consensus_key(11));
    let info = validator_info(&chain.state, a).unwrap().unwrap();
    assert_eq!(
        (
            info.tokens,
            info.shares,
            info.self_bond,
            info.commission_bps,
            info.status
        ),
        (
            btt(1_000),
            btt(1_000),
            btt(1_000),
            500,
            ValidatorStatus::Bonded
        )
    );
    assert_eq!(info.key, consensus_key(11));
    assert_eq!(chain.view(IStaking::totalBondedCall {}), btt(7_000));
    assert_eq!(
        chain.view(IStaking::activeSetCall {}),
        vec![tied[0], tied[1], a]
    );
    let d = delegations_of(&chain.state, a).unwrap();
    assert_eq!(
        d,
        vec![DelegationRecord {
            validator: a,
            shares: btt(1_000),
            tokens: btt(1_000),
            pending_rewards: U256::ZERO
        }]
    );
}

#[test]
fn genesis_elects_with_the_governed_parameters_of_genesis() {
    // Governance writes its parameters before staking elects the epoch-0 set, so a genesis
    // that caps the set at 2 gets 2 validators, the two largest.
    let governed = GovernedParams(std::collections::BTreeMap::from([(
        Param::MaxValidators,
        U256::from(2u64),
    )]));
    let ex = Executor::new(ChainParams::default())
        .with_module(Arc::new(Staking::new(
            EPOCH,
            vec![
                genesis_stake(11, btt(1_000), 0),
                genesis_stake(12, btt(3_000), 0),
                genesis_stake(13, btt(2_000), 0),
            ],
            Arc::new(FakeCrypto),
        )))
        .with_module(Arc::new(Governance::with_staking(governed)));
    let mut state = MemoryState::new();
    state.apply(&ex.genesis(&[]).unwrap());
    assert_eq!(
        read_param(&state, Param::MaxValidators).unwrap(),
        U256::from(2u64)
    );
    let set: Vec<Address> = committee_of(&state, 0)
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(set, vec![address_of(key(12)), address_of(key(13))]);
}

#[test]
fn genesis_refuses_bad_validators() {
    let bad_pop = GenesisStake {
        key: ConsensusKey {
            pop: vec![0; POP_LEN],
            ..consensus_key(11)
        },
        ..genesis_stake(11, btt(1_000), 0)
    };
    let cases = [
        (vec![genesis_stake(11, btt(999), 0)], "below the minimum"),
        (vec![bad_pop], "consensus keys refused"),
        (
            vec![
                genesis_stake(11, btt(1_000), 0),
                genesis_stake(11, btt(1_000), 0),
            ],
            "already a validator",
        ),
        (vec![genesis_stake(11, btt(1_000), 10_001)], "above 10000"),
    ];
    for (genesis, want) in cases {
        let ex = Executor::new(ChainParams::default()).with_module(Arc::new(Staking::new(
            EPOCH,
            genesis,
            Arc::new(FakeCrypto),
        )));
        let err = ex.genesis(&[]).unwrap_err();
        assert!(err.reason.contains(want), "{err}");
    }
}

#[test]
fn create_delegate_undelegate_paid_exactly_at_maturity() {
    let unbonding_blocks = 5u64;
    let mut chain = Chain::new(
        3,
        vec![genesis_stake(11, btt(1_000), 0)],
        &[(Param::UnbondingBlocks, U256::from(unbonding_blocks))],
    );
    let (op, del) = (address_of(key(1)), address_of(key(2)));
    let before = chain.balance(op);
    let sent = chain.send(1, btt(2_000), create_call(1, 700));
    assert!(sent.success);
    let ev = IStaking::ValidatorCreated::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!(
        (ev.validator, ev.identity, ev.selfBond, ev.commissionBps),
        (op, B256::repeat_byte(1), btt(2_000), 700)
    );
    assert_eq!(chain.balance(op), before - btt(2_000));
    let v = chain.view(IStaking::validatorCall { validator: op });
    assert_eq!(
        (v.status, v.tokens, v.shares, v.selfBond, v.commissionBps),
        (1, btt(2_000), btt(2_000), btt(2_000), 700)
    );
    assert_eq!(v.bls.as_ref(), &[1u8; 48][..]);

    // Delegate 500, then undelegate 200.
    let sent = chain.send(2, btt(500), IStaking::delegateCall { validator: op });
    assert!(sent.success);
    let ev = IStaking::Delegated::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!((ev.amount, ev.shares), (btt(500), btt(500)));
    assert_eq!(chain.value_of(del, op), btt(500));
    let del_before = chain.balance(del);
    let at = chain.number;
    let sent = chain.send(
        2,
        U256::ZERO,
        IStaking::undelegateCall {
            validator: op,
            amount: btt(200),
        },
    );
    assert!(sent.success);
    let maturity = at + unbonding_blocks;
    let ev = IStaking::Undelegated::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!(
        (ev.amount, ev.shares, ev.maturity),
        (btt(200), btt(200), maturity)
    );
    assert_eq!(chain.value_of(del, op), btt(300));
    assert_eq!(chain.view(IStaking::totalBondedCall {}), btt(3_300));
    let entries = chain.view(IStaking::unbondingCall { delegator: del });
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].validator, entries[0].amount, entries[0].maturity),
        (op, btt(200), maturity)
    );
    assert_eq!(
        unbondings_of(&chain.state, del).unwrap()[0].maturity,
        maturity
    );
    chain.check_accounting();
    // Not paid before the maturity block…
    chain.advance_to(maturity);
    assert_eq!(chain.balance(del), del_before);
    assert_eq!(unbondings_of(&chain.state, del).unwrap().len(), 1);
    // …and exactly at its end.
    chain.block(Vec::new());
    assert_eq!(chain.balance(del), del_before + btt(200));
    assert!(unbondings_of(&chain.state, del).unwrap().is_empty());
    assert_eq!(
        validator_info(&chain.state, op).unwrap().unwrap().unbonding,
        U256::ZERO
    );
    chain.check_accounting();
}

#[test]
fn redelegate_moves_stake_at_once() {
    let mut chain = Chain::new(
        3,
        vec![
            genesis_stake(11, btt(1_000), 0),
            genesis_stake(12, btt(1_000), 0),
        ],
        &[],
    );
    let (a, b, del) = (address_of(key(11)), address_of(key(12)), address_of(key(2)));
    assert!(
        chain
            .send(2, btt(400), IStaking::delegateCall { validator: a })
            .success
    );
    let balance = chain.balance(del);
    let sent = chain.send(
        2,
        U256::ZERO,
        IStaking::redelegateCall {
            from: a,
            to: b,
            amount: btt(150),
        },
    );
    assert!(sent.success);
    let ev = IStaking::Redelegated::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!((ev.from, ev.to, ev.amount), (a, b, btt(150)));
    assert_eq!(chain.value_of(del, a), btt(250));
    assert_eq!(chain.value_of(del, b), btt(150));
    assert_eq!(chain.balance(del), balance);
    assert_eq!(chain.view(IStaking::totalBondedCall {}), btt(2_400));
    let listed: Vec<_> = delegations_of(&chain.state, del)
        .unwrap()
        .into_iter()
        .map(|d| (d.validator, d.tokens))
        .collect();
    let mut want = vec![(a, btt(250)), (b, btt(150))];
    want.sort();
    assert_eq!(listed, want);
    // Moving the rest empties the first delegation, which leaves the list.
    assert!(
        chain
            .send(
                2,
                U256::ZERO,
                IStaking::redelegateCall {
                    from: a,
                    to: b,
                    amount: btt(250),
                },
            )
            .success
    );
    let listed = delegations_of(&chain.state, del).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].validator, listed[0].tokens), (b, btt(400)));
    chain.check_accounting();
}

// --- Rewards ---------------------------------------------------------------------------------

#[test]
fn rewards_with_commission_and_fees_are_exact() {
    // A: 1,000 BTT self-bond, 10 % commission; B: 3,000 BTT, no commission.
    let mut chain = Chain::new(
        3,
        vec![
            genesis_stake(11, btt(1_000), 1_000),
            genesis_stake(12, btt(3_000), 0),
        ],
        &[],
    );
    let (a, b, del) = (address_of(key(11)), address_of(key(12)), address_of(key(2)));
    let supply0 = chain.supply();
    // Block 1: the delegator bonds 1,000 BTT to A, paying a 2 gwei tip per gas.
    chain.tip = 2_000_000_000;
    let sent = chain.send(2, btt(1_000), IStaking::delegateCall { validator: a });
    assert!(sent.success);
    chain.tip = 0;
    let fees = U256::from(sent.gas) * U256::from(2_000_000_000u64);
    assert_eq!(
        chain.view(IStaking::rewardPoolCall {}).pool,
        fees + emission()
    );
    chain.check_accounting();
    // Blocks 2..=8: emission only. The pool is shared at the end of block 9.
    chain.advance_to(EPOCH - 1);
    assert_eq!(chain.pending(del, a), U256::ZERO);
    chain.block(Vec::new());
    let pool = fees + emission() * U256::from(EPOCH - 1);
    assert_eq!(chain.supply(), supply0 + emission() * U256::from(EPOCH - 1));
    // A holds 2,000 of 5,000 bonded tokens.
    let share_a = pool * btt(2_000) / btt(5_000);
    let share_b = pool * btt(3_000) / btt(5_000);
    let commission_a = share_a * U256::from(1_000u64) / U256::from(10_000u64);
    let per_share = (share_a - commission_a) * REWARD_SCALE / btt(2_000);
    let del_reward = btt(1_000) * per_share / REWARD_SCALE;
    let op_reward = del_reward;
    assert_eq!(chain.pending(del, a), del_reward);
    assert_eq!(chain.pending(a, a), op_reward);
    assert_eq!(
        chain.pending(b, b),
        share_b * REWARD_SCALE / btt(3_000) * btt(3_000) / REWARD_SCALE
    );
    let info_a = validator_info(&chain.state, a).unwrap().unwrap();
    assert_eq!(info_a.commission_unpaid, commission_a);
    let left = pool - share_a - share_b;
    assert_eq!(chain.view(IStaking::rewardPoolCall {}).pool, left);
    chain.check_accounting();
    // With the numbers of this test nothing rounds: the fee is 2 gwei × gas.
    assert_eq!(
        (pool, del_reward),
        (
            fees + milli(900),
            (fees + milli(900)) * U256::from(2u64) / U256::from(5u64) * U256::from(9u64)
                / U256::from(20u64)
        )
    );

    // The delegator withdraws exactly the pending rewards.
    let before = chain.balance(del);
    let sent = chain.send(
        2,
        U256::ZERO,
        IStaking::withdrawRewardsCall { validator: a },
    );
    assert!(sent.success);
    let ev = IStaking::RewardsWithdrawn::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!((ev.rewards, ev.commission), (del_reward, U256::ZERO));
    assert_eq!(chain.balance(del), before + del_reward);
    assert_eq!(chain.pending(del, a), U256::ZERO);
    // The operator's withdrawal pays its rewards and the commission.
    let before = chain.balance(a);
    chain.nonces.resize(12, 0);
    assert!(
        chain
            .send(
                11,
                U256::ZERO,
                IStaking::withdrawRewardsCall { validator: a }
            )
            .success
    );
    assert_eq!(chain.balance(a), before + op_reward + commission_a);
    assert_eq!(
        validator_info(&chain.state, a)
            .unwrap()
            .unwrap()
            .commission_unpaid,
        U256::ZERO
    );
    // Nothing more to withdraw.
    assert_eq!(
        chain.dry_run(
            2,
            U256::ZERO,
            &IStaking::withdrawRewardsCall { validator: a }
        ),
        reason(StakingError::NoRewards(a))
    );
    chain.check_accounting();
}

#[test]
fn rewards_settle_before_a_share_change() {
    let mut chain = Chain::new(3, vec![genesis_stake(11, btt(1_000), 0)], &[]);
    let (a, del) = (address_of(key(11)), address_of(key(2)));
    assert!(
        chain
            .send(2, btt(1_000), IStaking::delegateCall { validator: a })
            .success
    );
    chain.advance_to(EPOCH);
    // Epoch 0's pool (9 blocks of emission) went half to the delegator.
    let first = emission() * U256::from(9u64) / U256::from(2u64);
    assert_eq!(chain.pending(del, a), first);
    // Doubling the delegation must not earn the new shares the old rewards.
    assert!(
        chain
            .send(2, btt(1_000), IStaking::delegateCall { validator: a })
            .success
    );
    assert_eq!(chain.pending(del, a), first);
    chain.advance_to(2 * EPOCH);
    // Epoch 1 had 10 blocks; the delegator holds 2/3 now.
    let second = emission() * U256::from(10u64) * U256::from(2u64) / U256::from(3u64);
    let got = chain.pending(del, a);
    assert!(
        got <= first + second && first + second - got <= U256::from(2u64),
        "{got}"
    );
    chain.check_accounting();
}

// --- Commission -------------------------------------------------------------------------------

#[test]
fn edit_commission_limits() {
    let mut chain = Chain::new(2, Vec::new(), &[]);
    let op = address_of(key(1));
    assert!(chain.send(1, btt(1_000), create_call(1, 500)).success);
    let too_far = IStaking::editCommissionCall { bps: 601 };
    assert_eq!(
        chain.dry_run(1, U256::ZERO, &too_far),
        reason(StakingError::CommissionStep {
            from: 500,
            to: 601,
            max: U256::from(100u64)
        })
    );
    assert_eq!(
        chain.dry_run(1, U256::ZERO, &IStaking::editCommissionCall { bps: 500 }),
        reason(StakingError::CommissionUnchanged(500))
    );
    assert_eq!(
        chain.dry_run(2, U256::ZERO, &IStaking::editCommissionCall { bps: 550 }),
        reason(StakingError::UnknownValidator(address_of(key(2))))
    );
    let sent = chain.send(1, U256::ZERO, IStaking::editCommissionCall { bps: 600 });
    assert!(sent.success);
    let ev = IStaking::CommissionEdited::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!((ev.oldBps, ev.newBps), (500, 600));
    // Once per epoch.
    assert_eq!(
        chain.dry_run(1, U256::ZERO, &IStaking::editCommissionCall { bps: 650 }),
        reason(StakingError::CommissionEditedThisEpoch(0))
    );
    chain.advance_to(EPOCH);
    assert!(
        chain
            .send(1, U256::ZERO, IStaking::editCommissionCall { bps: 500 })
            .success
    );
    let info = validator_info(&chain.state, op).unwrap().unwrap();
    assert_eq!(
        (info.commission_bps, info.commission_edited_epoch),
        (500, Some(1))
    );
}

// --- Slashing ---------------------------------------------------------------------------------

#[test]
fn evidence_slashes_exactly_tombstones_and_is_refused_twice() {
    let mut chain = Chain::new(
        3,
        vec![
            genesis_stake(11, btt(1_000), 0),
            genesis_stake(12, btt(1_000), 0),
        ],
        &[],
    );
    let (a, b, del) = (address_of(key(11)), address_of(key(12)), address_of(key(2)));
    assert!(
        chain
            .send(2, btt(333), IStaking::delegateCall { validator: a })
            .success
    );
    let value_before = chain.value_of(del, a);
    let supply = chain.supply();
    let ev = evidence(0, 7, 11, 0);
    let sent = chain.send(
        3,
        U256::ZERO,
        IStaking::submitEvidenceCall {
            evidence: ev.clone(),
        },
    );
    assert!(sent.success);
    // 5 % of 1,333 BTT.
    let slashed = btt(1_333) * U256::from(500u64) / U256::from(10_000u64);
    let log = IStaking::Slashed::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!(
        (
            log.validator,
            log.epoch,
            log.view,
            log.amount,
            log.evidenceHash
        ),
        (a, 0, 7, slashed, keccak256(&ev))
    );
    // Burned at the block's end; emission still minted.
    assert_eq!(chain.supply(), supply + emission() - slashed);
    assert_eq!(
        chain.view(IStaking::rewardPoolCall {}).pendingBurn,
        U256::ZERO
    );
    // Delegators fell by exactly 5 %.
    assert_eq!(
        chain.value_of(del, a),
        value_before * U256::from(95u64) / U256::from(100u64)
    );
    assert_eq!(chain.value_of(a, a), btt(950));
    let info = validator_info(&chain.state, a).unwrap().unwrap();
    assert_eq!(info.status, ValidatorStatus::Tombstoned);
    assert_eq!(info.tokens, btt(1_333) - slashed);
    chain.check_accounting();

    // The same evidence, and another proof of the same offence, are refused.
    for e in [ev, evidence(0, 7, 11, 1), evidence(0, 8, 11, 0)] {
        assert_eq!(
            chain.dry_run(
                3,
                U256::ZERO,
                &IStaking::submitEvidenceCall {
                    evidence: e.clone()
                }
            ),
            reason(StakingError::AlreadyPunished(a))
        );
        assert!(
            !chain
                .send(3, U256::ZERO, IStaking::submitEvidenceCall { evidence: e })
                .success
        );
    }
    // Bad evidence.
    assert_eq!(
        chain.dry_run(
            3,
            U256::ZERO,
            &IStaking::submitEvidenceCall {
                evidence: evidence(5, 1, 12, 0)
            }
        ),
        reason(StakingError::NoCommittee(5))
    );
    assert_eq!(
        chain.dry_run(
            3,
            U256::ZERO,
            &IStaking::submitEvidenceCall {
                evidence: evidence(0, 1, 99, 0)
            }
        ),
        reason(StakingError::BadEvidence(
            "the signer is not in the committee".into()
        ))
    );
    assert_eq!(
        chain.dry_run(
            3,
            U256::ZERO,
            &IStaking::submitEvidenceCall {
                evidence: Bytes::from_static(b"x")
            }
        ),
        reason(StakingError::BadEvidence("evidence too short".into()))
    );
    // A tombstoned validator never unjails and takes no new stake.
    chain.nonces.resize(12, 0);
    assert_eq!(
        chain.dry_run(11, U256::ZERO, &IStaking::unjailCall {}),
        reason(StakingError::Tombstoned(a))
    );
    assert_eq!(
        chain.dry_run(2, btt(1), &IStaking::delegateCall { validator: a }),
        reason(StakingError::Tombstoned(a))
    );
    assert_eq!(
        chain.dry_run(12, U256::ZERO, &IStaking::unjailCall {}),
        reason(StakingError::NotJailed(b))
    );
    // Pending burn had been burned: only the refused transactions' blocks minted emission.
    chain.advance_to(EPOCH);
    // It leaves the next set; its delegators may still leave with what is left.
    assert_eq!(chain.set(1), Some(vec![b]));
    assert!(
        chain
            .send(
                2,
                U256::ZERO,
                IStaking::undelegateCall {
                    validator: a,
                    amount: value_before * U256::from(95u64) / U256::from(100u64),
                },
            )
            .success
    );
    assert_eq!(chain.value_of(del, a), U256::ZERO);
    chain.check_accounting();
}

// --- Active set -------------------------------------------------------------------------------

// --- Downtime ---------------------------------------------------------------------------------

fn burned(chain: &Chain) -> U256 {
    chain
        .state
        .storage(&BANK_ADDRESS, &BANK_BURNED_SLOT)
        .unwrap()
}

fn info(chain: &Chain, a: Address) -> ValidatorRecord {
    validator_info(&chain.state, a).unwrap().unwrap()
}

#[test]
fn downtime_slashes_jails_and_unjail_brings_the_validator_back() {
    const WINDOW: u64 = 18;
    const JAIL: u64 = 5;
    let mut chain = Chain::new(
        13,
        vec![
            genesis_stake(11, btt(2_000), 0),
            genesis_stake(12, btt(1_500), 0),
            genesis_stake(13, btt(1_000), 0),
        ],
        &[
            (Param::DowntimeWindowBlocks, U256::from(WINDOW)),
            (Param::SlashDowntimeBps, U256::from(100u64)),
            (Param::JailBlocks, U256::from(JAIL)),
        ],
    );
    let (a, b, c, del) = (
        address_of(key(11)),
        address_of(key(12)),
        address_of(key(13)),
        address_of(key(1)),
    );
    assert_eq!(chain.set(0), Some(vec![a, b, c]));
    // Leaders go round-robin: block 1 is B's, block 2 C's.
    assert_eq!(chain.proposer(), b);
    assert!(
        chain
            .send(1, btt(300), IStaking::delegateCall { validator: b })
            .success
    );
    chain.block(Vec::new());
    assert_eq!(
        (info(&chain, b).last_proposed, info(&chain, c).last_proposed),
        (1, 2)
    );
    assert_eq!(info(&chain, a).last_proposed, 0);
    // B and C stop proposing; A leads every block.
    chain.set_offline(b, true);
    chain.set_offline(c, true);
    assert_eq!(chain.proposer(), a);
    chain.advance_to(2 * EPOCH - 1);
    // Block 9 (9 − 1 < 18) left everyone alone; both are still in epoch 1's set.
    assert_eq!(chain.set(1), Some(vec![a, b, c]));
    assert_eq!(info(&chain, b).status, ValidatorStatus::Bonded);
    assert_eq!(info(&chain, a).last_proposed, 2 * EPOCH - 2);
    let h = chain.number;
    let (bonded, b_rewards, burned_before) = (
        chain.view(IStaking::totalBondedCall {}),
        chain.pending(del, b),
        burned(&chain),
    );
    chain.block(Vec::new());
    // At the end of block 19 B has gone 18 blocks without proposing: 1 % of 1,800 BTT.
    let slashed = btt(18);
    let jailed = info(&chain, b);
    assert_eq!(
        (
            jailed.status,
            jailed.jailed_until,
            jailed.tokens,
            jailed.self_bond
        ),
        (
            ValidatorStatus::Jailed,
            h + 1 + JAIL,
            btt(1_800) - slashed,
            btt(1_485)
        )
    );
    assert_eq!(chain.value_of(del, b), btt(297));
    assert_eq!(chain.view(IStaking::totalBondedCall {}), bonded - slashed);
    assert_eq!(staking_totals(&chain.state).unwrap().pending_burn, slashed);
    // Jailed before the pool was shared: B's delegators earned nothing for epoch 1.
    assert_eq!(chain.pending(del, b), b_rewards);
    // C proposed at block 2, 17 blocks ago: untouched; so is A.
    assert_eq!(info(&chain, c).status, ValidatorStatus::Bonded);
    assert_eq!(info(&chain, c).tokens, btt(1_000));
    assert_eq!(info(&chain, a).tokens, btt(2_000));
    assert_eq!(chain.set(2), Some(vec![a, c]));
    chain.check_accounting();
    // The slash is burned at the next block's end.
    chain.set_offline(c, false);
    chain.block(Vec::new());
    assert_eq!(burned(&chain), burned_before + slashed);
    assert_eq!(
        staking_totals(&chain.state).unwrap().pending_burn,
        U256::ZERO
    );
    chain.check_accounting();

    // No unjailing before block h + 1 + JAIL.
    let until = h + 1 + JAIL;
    chain.advance_to(until - 1);
    assert_eq!(
        chain.dry_run(12, U256::ZERO, &IStaking::unjailCall {}),
        reason(StakingError::StillJailed {
            until,
            now: until - 1
        })
    );
    assert!(!chain.send(12, U256::ZERO, IStaking::unjailCall {}).success);
    assert_eq!(info(&chain, b).status, ValidatorStatus::Jailed);
    let sent = chain.send(12, U256::ZERO, IStaking::unjailCall {});
    assert!(sent.success);
    assert_eq!(
        IStaking::Unjailed::decode_log_data(&sent.logs[0].data)
            .unwrap()
            .validator,
        b
    );
    assert_eq!(info(&chain, b).status, ValidatorStatus::Bonded);
    assert_eq!(
        chain.dry_run(12, U256::ZERO, &IStaking::unjailCall {}),
        reason(StakingError::NotJailed(b))
    );
    // Not in epoch 2's set, elected again for epoch 3 with a fresh membership.
    assert_eq!(chain.view(IStaking::activeSetCall {}), vec![a, c]);
    chain.advance_to(3 * EPOCH);
    assert_eq!(chain.set(3), Some(vec![a, b, c]));
    assert_eq!(info(&chain, b).active_since, 3 * EPOCH);
    assert_eq!(info(&chain, a).active_since, 0);
    // Still offline, it is left alone until a full window of its new membership has passed:
    // at block 39 (39 − 30 < 18) and slashed at block 49 (49 − 30 ≥ 18).
    chain.advance_to(4 * EPOCH);
    assert_eq!(info(&chain, b).status, ValidatorStatus::Bonded);
    assert_eq!(chain.set(4), Some(vec![a, b, c]));
    chain.advance_to(5 * EPOCH);
    let again = info(&chain, b);
    let second = (btt(1_800) - slashed) / U256::from(100u64);
    assert_eq!(second, milli(17_820));
    assert_eq!(
        (again.status, again.jailed_until, again.tokens),
        (
            ValidatorStatus::Jailed,
            5 * EPOCH + JAIL,
            btt(1_800) - slashed - second
        )
    );
    assert_eq!(chain.set(5), Some(vec![a, c]));
    // The online validators were never touched.
    assert_eq!(
        (info(&chain, a).tokens, info(&chain, c).tokens),
        (btt(2_000), btt(1_000))
    );
    chain.check_accounting();
}

#[test]
fn a_new_member_gets_a_full_window_before_its_downtime_counts() {
    let mut chain = Chain::new(
        13,
        vec![genesis_stake(11, btt(2_000), 0)],
        &[
            (Param::DowntimeWindowBlocks, U256::from(18u64)),
            (Param::SlashDowntimeBps, U256::from(250u64)),
        ],
    );
    let (a, d) = (address_of(key(11)), address_of(key(2)));
    // D registers in epoch 0 and never proposes.
    chain.set_offline(d, true);
    assert!(chain.send(2, btt(1_000), create_call(2, 0)).success);
    chain.advance_to(EPOCH);
    assert_eq!(chain.set(1), Some(vec![a, d]));
    assert_eq!(info(&chain, d).active_since, EPOCH);
    assert_eq!(info(&chain, d).last_proposed, 0);
    // Block 19: only 9 blocks of membership.
    chain.advance_to(2 * EPOCH);
    assert_eq!(info(&chain, d).status, ValidatorStatus::Bonded);
    assert_eq!(chain.set(2), Some(vec![a, d]));
    // Block 29: 19 ≥ 18 blocks in the set without proposing; 2.5 % of 1,000 BTT.
    chain.advance_to(3 * EPOCH);
    let r = info(&chain, d);
    assert_eq!(
        (r.status, r.tokens, r.jailed_until),
        (
            ValidatorStatus::Jailed,
            btt(975),
            3 * EPOCH + Param::JailBlocks.default_value().to::<u64>()
        )
    );
    assert_eq!(chain.set(3), Some(vec![a]));
    assert_eq!(info(&chain, a).status, ValidatorStatus::Bonded);
    assert_eq!(
        IStaking::DowntimeSlashed::SIGNATURE,
        "DowntimeSlashed(address,uint64,uint256)"
    );
    chain.check_accounting();
}

#[test]
fn validators_that_lead_their_turns_are_never_down() {
    // Every member leads every third block: nobody is ever down.
    let mut chain = Chain::new(
        3,
        vec![
            genesis_stake(11, btt(2_000), 0),
            genesis_stake(12, btt(1_500), 0),
            genesis_stake(13, btt(1_000), 0),
        ],
        &[(Param::DowntimeWindowBlocks, U256::from(10u64))],
    );
    chain.advance_to(10 * EPOCH);
    for v in validators(&chain.state).unwrap() {
        assert_eq!(v.status, ValidatorStatus::Bonded);
        assert!(v.last_proposed >= 10 * EPOCH - 3, "{v:?}");
    }
    assert_eq!(chain.set(10).unwrap().len(), 3);
}

#[test]
fn active_set_changes_only_at_epoch_boundaries() {
    let mut chain = Chain::new(
        4,
        vec![
            genesis_stake(11, btt(2_000), 0),
            genesis_stake(12, btt(1_500), 0),
        ],
        &[(Param::MaxValidators, U256::from(2u64))],
    );
    let (a, b, c) = (address_of(key(11)), address_of(key(12)), address_of(key(1)));
    assert_eq!(chain.set(0), Some(vec![a, b]));
    // A bigger validator appears during epoch 0…
    assert!(chain.send(1, btt(3_000), create_call(1, 0)).success);
    assert_eq!(chain.view(IStaking::activeSetCall {}), vec![a, b]);
    assert_eq!(chain.set(1), None);
    // …and joins from epoch 1, pushing out the smallest.
    chain.advance_to(EPOCH - 1);
    assert_eq!(chain.set(1), None);
    chain.block(Vec::new());
    assert_eq!(chain.set(1), Some(vec![c, a]));
    assert_eq!(chain.view(IStaking::activeSetCall {}), vec![c, a]);
    let committee = committee_of(&chain.state, 1).unwrap().unwrap();
    assert_eq!(committee[0], (c, consensus_key(1)));
    assert_eq!(committee_of(&chain.state, 0).unwrap().unwrap().len(), 2);
    // C unbonds its self-bond below the minimum (delegated stake keeps its tokens high).
    assert!(
        chain
            .send(2, btt(5_000), IStaking::delegateCall { validator: c })
            .success
    );
    assert!(
        chain
            .send(
                1,
                U256::ZERO,
                IStaking::undelegateCall {
                    validator: c,
                    amount: btt(2_001),
                },
            )
            .success
    );
    let info = validator_info(&chain.state, c).unwrap().unwrap();
    assert_eq!((info.self_bond, info.tokens), (btt(999), btt(5_999)));
    // Still in the current set until the boundary, gone after it.
    assert_eq!(chain.view(IStaking::activeSetCall {}), vec![c, a]);
    chain.advance_to(2 * EPOCH);
    assert_eq!(chain.set(2), Some(vec![a, b]));
    // Delegating to it is still allowed; topping the self-bond up brings it back.
    assert!(
        chain
            .send(1, btt(1), IStaking::delegateCall { validator: c })
            .success
    );
    chain.advance_to(3 * EPOCH);
    assert_eq!(chain.set(3), Some(vec![c, a]));
    chain.check_accounting();
}

// --- Refusals -------------------------------------------------------------------------------

#[test]
fn bad_calls_revert_and_change_nothing() {
    let mut chain = Chain::new(3, vec![genesis_stake(11, btt(1_000), 100)], &[]);
    // The proposer's record would change at every block: lead with a non-validator (the test
    // stays far below a downtime window).
    chain.leaders = Leaders::Fixed(chain.nobody);
    let (a, me, nobody) = (address_of(key(11)), address_of(key(1)), address_of(key(99)));
    assert!(
        chain
            .send(1, btt(10), IStaking::delegateCall { validator: a })
            .success
    );
    let bad_bls = IStaking::createValidatorCall {
        bls: vec![1u8; 47].into(),
        ..create_call(1, 0)
    };
    let bad_pop = IStaking::createValidatorCall {
        pop: vec![0u8; 96].into(),
        ..create_call(1, 0)
    };
    let taken = IStaking::createValidatorCall {
        identity: B256::repeat_byte(11),
        ..create_call(1, 0)
    };
    type Case = (U256, Vec<u8>, StakingError);
    let cases: Vec<Case> = vec![
        // First, before any epoch end has paid rewards.
        (
            U256::ZERO,
            IStaking::withdrawRewardsCall { validator: a }.abi_encode(),
            StakingError::NoRewards(a),
        ),
        (
            U256::ZERO,
            vec![1, 2, 3, 4],
            StakingError::BadCall("0x01020304".into()),
        ),
        (
            U256::ZERO,
            create_call(1, 0).abi_encode(),
            StakingError::NoValue,
        ),
        (
            btt(999),
            create_call(1, 0).abi_encode(),
            StakingError::SelfBondTooLow {
                bond: btt(999),
                min: btt(1_000),
            },
        ),
        (
            btt(1_000),
            create_call(1, 10_001).abi_encode(),
            StakingError::CommissionTooHigh(10_001),
        ),
        (
            btt(1_000),
            bad_bls.abi_encode(),
            StakingError::BadKeyLength {
                what: "BLS key",
                len: 47,
                want: 48,
            },
        ),
        (
            btt(1_000),
            bad_pop.abi_encode(),
            StakingError::BadKeys("bad proof of possession".into()),
        ),
        (
            btt(1_000),
            taken.abi_encode(),
            StakingError::IdentityTaken(B256::repeat_byte(11)),
        ),
        (
            U256::ZERO,
            IStaking::delegateCall { validator: a }.abi_encode(),
            StakingError::NoValue,
        ),
        (
            btt(1),
            IStaking::delegateCall { validator: nobody }.abi_encode(),
            StakingError::UnknownValidator(nobody),
        ),
        (
            btt(1),
            IStaking::undelegateCall {
                validator: a,
                amount: btt(1),
            }
            .abi_encode(),
            StakingError::NotPayable,
        ),
        (
            U256::ZERO,
            IStaking::undelegateCall {
                validator: a,
                amount: btt(10) + U256::from(1u64),
            }
            .abi_encode(),
            StakingError::Exceeds {
                amount: btt(10) + U256::from(1u64),
                available: btt(10),
            },
        ),
        (
            U256::ZERO,
            IStaking::undelegateCall {
                validator: a,
                amount: U256::ZERO,
            }
            .abi_encode(),
            StakingError::ZeroAmount,
        ),
        (
            U256::ZERO,
            IStaking::redelegateCall {
                from: a,
                to: a,
                amount: btt(1),
            }
            .abi_encode(),
            StakingError::SameValidator,
        ),
        (
            U256::ZERO,
            IStaking::redelegateCall {
                from: a,
                to: nobody,
                amount: btt(1),
            }
            .abi_encode(),
            StakingError::UnknownValidator(nobody),
        ),
        (
            U256::ZERO,
            IStaking::unjailCall {}.abi_encode(),
            StakingError::UnknownValidator(me),
        ),
        (
            U256::ZERO,
            IStaking::editCommissionCall { bps: 1 }.abi_encode(),
            StakingError::UnknownValidator(me),
        ),
    ];
    for (value, input, want) in cases {
        // Keep epoch ends (which share the pool) out of the comparison.
        if (chain.number + 1).is_multiple_of(EPOCH) {
            chain.block(Vec::new());
        }
        let req = CallRequest {
            from: Some(me),
            to: Some(staking_address()),
            value: Some(value),
            input: Some(input.clone().into()),
            ..Default::default()
        };
        let got = chain
            .ex
            .call(&chain.state, &chain.env(), &req)
            .unwrap_err()
            .revert_reason();
        assert_eq!(got, reason(want.clone()));
        let storage = chain.staking_storage();
        let (mine, module) = (chain.balance(me), chain.balance(staking_address()));
        // The same call as a transaction: reverted, no log, nothing changed but the block's
        // emission landing in the pool.
        let nonce = &mut chain.nonces[1];
        let tx = sign_tx(
            key(1),
            TxEip1559 {
                chain_id: DEVNET_CHAIN_ID,
                nonce: *nonce,
                gas_limit: GAS,
                to: TxKind::Call(staking_address()),
                value,
                input: input.into(),
                ..Default::default()
            },
        );
        *nonce += 1;
        let sent = chain.block(vec![tx]).pop().unwrap();
        assert!(!sent.success, "{want}");
        assert!(sent.logs.is_empty());
        assert_eq!(chain.balance(me), mine);
        assert_eq!(chain.balance(staking_address()), module + emission());
        let pool_slot = U256::from(5u64);
        let changed: Vec<_> = chain
            .staking_storage()
            .into_iter()
            .filter(|kv| !storage.contains(kv))
            .collect();
        assert!(
            changed.iter().all(|(s, _)| *s == pool_slot),
            "{want}: {changed:?}"
        );
    }
    chain.check_accounting();
}

// --- Governance's view ------------------------------------------------------------------------

/// A module that answers with what [`stake_view`] sees: `validators()` for empty calldata,
/// `delegations(a)` for a 20-byte address.
#[derive(Debug)]
struct Probe;

impl NativeModule for Probe {
    fn address(&self) -> Address {
        module_address(9)
    }
    fn name(&self) -> &'static str {
        "probe"
    }
    fn handle(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
    ) -> Result<Bytes, ModuleError> {
        let mut view = stake_view(ctx);
        let list = if call.input.is_empty() {
            view.validators()?
        } else {
            view.delegations(Address::from_slice(call.input))?
        };
        let mut out = Vec::new();
        for (a, t) in list {
            out.extend_from_slice(a.as_slice());
            out.extend_from_slice(&t.to_be_bytes::<32>());
        }
        Ok(out.into())
    }
}

#[test]
fn stake_view_reads_staking_from_another_module() {
    let mut chain = Chain::new(
        3,
        vec![
            genesis_stake(11, btt(1_000), 0),
            genesis_stake(12, btt(2_000), 0),
        ],
        &[],
    );
    chain.ex = chain.ex.clone().with_module(Arc::new(Probe));
    let (a, b, del) = (address_of(key(11)), address_of(key(12)), address_of(key(2)));
    assert!(
        chain
            .send(2, btt(5), IStaking::delegateCall { validator: b })
            .success
    );
    let probe = |input: Vec<u8>| -> Vec<(Address, U256)> {
        let req = CallRequest {
            to: Some(module_address(9)),
            input: Some(input.into()),
            ..Default::default()
        };
        let out = chain
            .ex
            .call(&chain.state, &chain.env(), &req)
            .unwrap()
            .output;
        out.chunks(52)
            .map(|c| (Address::from_slice(&c[..20]), U256::from_be_slice(&c[20..])))
            .collect()
    };
    let mut want = vec![(a, btt(1_000)), (b, btt(2_005))];
    want.sort();
    assert_eq!(probe(Vec::new()), want);
    assert_eq!(probe(del.to_vec()), vec![(b, btt(5))]);
    assert_eq!(probe(b.to_vec()), vec![(b, btt(2_000))]);
}

// --- Property test ---------------------------------------------------------------------------

/// SplitMix64: every seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Actors: keys 1..=6 delegate; keys 11..=13 are genesis validators, key 7 creates a validator.
const DELEGATORS: [u8; 6] = [1, 2, 3, 4, 5, 6];
const OPERATORS: [u8; 4] = [11, 12, 13, 7];
const UNBONDING: u64 = 6;
const DOWNTIME_WINDOW: u64 = 30;
const DOWNTIME_JAIL: u64 = 15;

#[derive(Default)]
struct Tally {
    delegated: usize,
    undelegated: usize,
    redelegated: usize,
    withdrawn: usize,
    slashed: usize,
    refused: usize,
    matured: usize,
    down: usize,
    unjailed: usize,
}

/// The test's own account of who led each block and since when each validator is in the set,
/// to predict every downtime slash exactly.
struct DowntimeModel {
    window: u64,
    bps: u64,
    jail: u64,
    last: std::collections::BTreeMap<Address, u64>,
    since: std::collections::BTreeMap<Address, u64>,
    /// Slashed at the last block's end, burned at the next one's.
    pending: U256,
    slashed: usize,
}

impl DowntimeModel {
    /// The members the end of the next block will slash for downtime, with their tokens now.
    fn predict(&self, chain: &Chain) -> Vec<(Address, U256)> {
        let h = chain.number;
        if !(h + 1).is_multiple_of(EPOCH) {
            return Vec::new();
        }
        let proposer = chain.proposer();
        chain
            .set(h / EPOCH)
            .unwrap()
            .into_iter()
            .filter_map(|a| {
                let v = validator_info(&chain.state, a).unwrap()?;
                let last = if a == proposer {
                    h
                } else {
                    self.last.get(&a).copied().unwrap_or(0)
                };
                let since = self.since.get(&a).copied().unwrap_or(0);
                (v.status == ValidatorStatus::Bonded && h - last.max(since) >= self.window)
                    .then_some((a, v.tokens))
            })
            .collect()
    }

    /// Runs one block and checks its downtime slashes against the model; returns the block's
    /// results and the wei of earlier downtime slashes burned at its end. A block that slashes
    /// must carry no transaction (so the slashed tokens are known exactly).
    fn block(&mut self, chain: &mut Chain, txs: Vec<RecoveredTx>) -> (Vec<Sent>, U256) {
        let h = chain.number;
        let down = self.predict(chain);
        assert!(
            down.is_empty() || txs.is_empty(),
            "block {h}: a downtime slash is due, send nothing"
        );
        let proposer = chain.proposer();
        if validator_info(&chain.state, proposer).unwrap().is_some() {
            self.last.insert(proposer, h);
        }
        let sent = chain.block(txs);
        let burned_now = std::mem::take(&mut self.pending);
        for (a, tokens) in down {
            let amount = tokens * U256::from(self.bps) / U256::from(10_000u64);
            let v = validator_info(&chain.state, a).unwrap().unwrap();
            assert_eq!(
                (v.status, v.tokens, v.jailed_until),
                (ValidatorStatus::Jailed, tokens - amount, h + 1 + self.jail),
                "block {h} validator {a}"
            );
            self.pending += amount;
            self.slashed += 1;
        }
        assert_eq!(
            staking_totals(&chain.state).unwrap().pending_burn,
            self.pending,
            "block {h}"
        );
        if (h + 1).is_multiple_of(EPOCH) {
            let e = h / EPOCH;
            let old = chain.set(e).unwrap();
            for a in chain.set(e + 1).unwrap() {
                if !old.contains(&a) {
                    self.since.insert(a, (e + 1) * EPOCH);
                }
            }
        }
        // The module's records agree with the model.
        for (a, last) in &self.last {
            let v = validator_info(&chain.state, *a).unwrap().unwrap();
            assert_eq!(v.last_proposed, *last, "block {h} validator {a}");
        }
        for a in chain.set(chain.number / EPOCH).unwrap() {
            let v = validator_info(&chain.state, a).unwrap().unwrap();
            let since = self.since.get(&a).copied().unwrap_or(0);
            assert_eq!(v.active_since, since, "block {h} validator {a}");
        }
        (sent, burned_now)
    }
}

/// Checks everything the module promises after a block.
fn check_all(chain: &Chain, actors: &[Address], ops: &[Address]) {
    chain.check_accounting();
    let totals = staking_totals(&chain.state).unwrap();
    let mut pending = U256::ZERO;
    let mut by_validator: Vec<(U256, U256, usize)> = vec![(U256::ZERO, U256::ZERO, 0); ops.len()];
    for a in actors {
        for d in delegations_of(&chain.state, *a).unwrap() {
            pending += d.pending_rewards;
            let i = ops.iter().position(|o| *o == d.validator).unwrap();
            by_validator[i].0 += d.shares;
            by_validator[i].1 += d.tokens;
            by_validator[i].2 += 1;
            if chain.number.is_multiple_of(50) {
                assert_eq!(chain.pending(*a, d.validator), d.pending_rewards);
            }
        }
    }
    // Pending rewards are covered; the rest is rounding dust.
    assert!(pending <= totals.reward_reserve);
    for (i, op) in ops.iter().enumerate() {
        let Some(v) = validator_info(&chain.state, *op).unwrap() else {
            continue;
        };
        let (shares, value, n) = by_validator[i];
        assert_eq!(shares, v.shares, "Σ shares of {op}");
        assert!(value <= v.tokens);
        assert!(
            v.tokens - value <= U256::from(n),
            "rounding of {op}: {} vs {value}",
            v.tokens
        );
    }
}

fn random_run(seed: u64, steps: usize, tally: &mut Tally) {
    let mut rng = Rng(seed);
    let mut dt_rng = Rng(!seed);
    let genesis: Vec<_> = OPERATORS[..3]
        .iter()
        .map(|n| {
            genesis_stake(
                *n,
                btt(1_000 + 500 * u64::from(*n - 11)),
                500 * u16::from(*n - 11),
            )
        })
        .collect();
    let mut chain = Chain::new(
        13,
        genesis,
        &[
            (Param::UnbondingBlocks, U256::from(UNBONDING)),
            (Param::MaxValidators, U256::from(3u64)),
            (
                Param::SlashDoubleSignBps,
                U256::from(1_000u64 + 1_000 * (seed % 3)),
            ),
            (Param::DowntimeWindowBlocks, U256::from(DOWNTIME_WINDOW)),
            (Param::SlashDowntimeBps, U256::from(100 + 200 * (seed % 3))),
            (Param::JailBlocks, U256::from(DOWNTIME_JAIL)),
        ],
    );
    let mut dt = DowntimeModel {
        window: DOWNTIME_WINDOW,
        bps: 100 + 200 * (seed % 3),
        jail: DOWNTIME_JAIL,
        last: Default::default(),
        since: Default::default(),
        pending: U256::ZERO,
        slashed: 0,
    };
    let actors: Vec<Address> = DELEGATORS
        .iter()
        .chain(&OPERATORS)
        .map(|n| address_of(key(*n)))
        .collect();
    let ops: Vec<Address> = OPERATORS.iter().map(|n| address_of(key(*n))).collect();
    // The model: every actor's balance, and payouts due at each height.
    let mut expected: Vec<U256> = actors.iter().map(|a| chain.balance(*a)).collect();
    let mut due: std::collections::BTreeMap<u64, Vec<(usize, U256)>> = Default::default();
    let supply0 = chain.supply();
    let mut minted = U256::ZERO;
    let mut burned = U256::ZERO;
    let mut slashes = 0;
    let idx = |n: u8| {
        DELEGATORS
            .iter()
            .chain(&OPERATORS)
            .position(|x| *x == n)
            .unwrap()
    };

    for _ in 0..steps {
        chain.tip = if rng.chance(20) {
            1 + u128::from(rng.below(5))
        } else {
            0
        };
        let mut who = if rng.chance(25) {
            OPERATORS[rng.below(4) as usize]
        } else {
            DELEGATORS[rng.below(6) as usize]
        };
        let me = actors[idx(who)];
        // Mostly act on a validator the actor is bonded to, so most calls can succeed.
        let mine = delegations_of(&chain.state, me).unwrap();
        let v = if !mine.is_empty() && rng.chance(70) {
            mine[rng.below(mine.len() as u64) as usize].validator
        } else {
            ops[rng.below(4) as usize]
        };
        let info = validator_info(&chain.state, v).unwrap();
        let usable = info.as_ref().is_some_and(|i| {
            i.status != ValidatorStatus::Tombstoned
                && !(i.shares > U256::ZERO && i.tokens.is_zero())
        });
        let value = chain.value_of(me, v);
        // An operator (never validator 0, so one always leads) goes offline or comes back.
        // Downtime draws from its own generator so the other steps' draws stay as they were.
        if dt_rng.chance(5) {
            let live: Vec<Address> = ops[1..]
                .iter()
                .copied()
                .filter(|a| {
                    validator_info(&chain.state, *a)
                        .unwrap()
                        .is_some_and(|i| i.status != ValidatorStatus::Tombstoned)
                })
                .collect();
            if !live.is_empty() {
                let target = live[dt_rng.below(live.len() as u64) as usize];
                chain.set_offline(target, dt_rng.chance(50));
            }
        }
        // Half the time, a jailed operator (if any) may try to unjail in this step.
        let jailed = OPERATORS
            .iter()
            .zip(&ops)
            .filter_map(|(n, a)| {
                let i = validator_info(&chain.state, *a).unwrap()?;
                (i.status == ValidatorStatus::Jailed).then_some((*n, i.jailed_until))
            })
            .nth(dt_rng.below(4) as usize)
            .filter(|_| dt_rng.chance(50));
        // A block that slashes for downtime carries nothing, so the model knows the tokens.
        let quiet = !dt.predict(&chain).is_empty();
        let roll = rng.below(100);
        let roll = if quiet { 99 } else { roll };
        // Wei taken out of the (me, v) delegation by this step, if it succeeds.
        let mut taken = U256::ZERO;
        // (transaction, expected success, balance change of the sender before fees)
        let (tx, ok, credit, debit): (Option<RecoveredTx>, bool, U256, U256) = match roll {
            0..=29 => {
                let amount = milli(1 + rng.below(300_000));
                let tx = chain.tx(who, amount, IStaking::delegateCall { validator: v });
                (
                    Some(tx),
                    usable,
                    U256::ZERO,
                    if usable { amount } else { U256::ZERO },
                )
            }
            30..=49 => {
                let amount = if rng.chance(30) || value.is_zero() {
                    value
                } else {
                    value * U256::from(1 + rng.below(99)) / U256::from(100u64)
                };
                let amount = if rng.chance(5) {
                    amount + U256::from(1u64)
                } else {
                    amount
                };
                let ok = !amount.is_zero() && amount <= value;
                taken = amount;
                let tx = chain.tx(
                    who,
                    U256::ZERO,
                    IStaking::undelegateCall {
                        validator: v,
                        amount,
                    },
                );
                if ok {
                    due.entry(chain.number + UNBONDING)
                        .or_default()
                        .push((idx(who), amount));
                }
                (Some(tx), ok, U256::ZERO, U256::ZERO)
            }
            50..=61 => {
                let to = ops[rng.below(4) as usize];
                let to_usable = validator_info(&chain.state, to).unwrap().is_some_and(|i| {
                    i.status != ValidatorStatus::Tombstoned
                        && !(i.shares > U256::ZERO && i.tokens.is_zero())
                });
                let amount = if rng.chance(30) {
                    value
                } else {
                    value / U256::from(3u64)
                };
                taken = amount;
                // Too small an amount buys no share of a validator whose shares are worth more
                // than a wei each; allowed to fail then.
                let ok = to != v && to_usable && !amount.is_zero() && amount <= value;
                let tx = chain.tx(
                    who,
                    U256::ZERO,
                    IStaking::redelegateCall {
                        from: v,
                        to,
                        amount,
                    },
                );
                let dry = chain.dry_run(
                    who,
                    U256::ZERO,
                    &IStaking::redelegateCall {
                        from: v,
                        to,
                        amount,
                    },
                );
                let ok = ok
                    && (dry.is_none() || !dry.as_deref().unwrap_or("").contains("buys no share"));
                (Some(tx), ok, U256::ZERO, U256::ZERO)
            }
            62..=79 => {
                let pending = chain.pending(me, v);
                let commission = if me == v {
                    info.as_ref()
                        .map(|i| i.commission_unpaid)
                        .unwrap_or_default()
                } else {
                    U256::ZERO
                };
                let pay = pending + commission;
                let ok = info.is_some() && !pay.is_zero();
                let tx = chain.tx(
                    who,
                    U256::ZERO,
                    IStaking::withdrawRewardsCall { validator: v },
                );
                (Some(tx), ok, if ok { pay } else { U256::ZERO }, U256::ZERO)
            }
            80..=81 if slashes < 2 => {
                // Double signing by a member of the current set (never validator 0, so one
                // always survives).
                let epoch = (chain.number) / EPOCH;
                let set = chain.set(epoch).unwrap();
                let target = ops[1 + rng.below(3) as usize];
                let n = OPERATORS[ops.iter().position(|o| *o == target).unwrap()];
                let tomb = validator_info(&chain.state, target)
                    .unwrap()
                    .is_some_and(|i| i.status == ValidatorStatus::Tombstoned);
                let ok = set.contains(&target) && !tomb;
                if ok {
                    slashes += 1;
                }
                let ev = evidence(epoch, rng.below(3), n, 0);
                let tx = chain.tx(
                    who,
                    U256::ZERO,
                    IStaking::submitEvidenceCall { evidence: ev },
                );
                (Some(tx), ok, U256::ZERO, U256::ZERO)
            }
            82..=84 if who == 7 => {
                let exists = validator_info(&chain.state, me).unwrap().is_some();
                let tx = chain.tx(7, btt(1_000), create_call(7, 300));
                (
                    Some(tx),
                    !exists,
                    U256::ZERO,
                    if exists { U256::ZERO } else { btt(1_000) },
                )
            }
            85..=99 if !quiet && jailed.is_some() => {
                // A jailed operator tries to leave jail (refused before `jailedUntil`).
                let (n, until) = jailed.unwrap_or_default();
                who = n;
                let ok = chain.number >= until;
                if ok {
                    tally.unjailed += 1;
                }
                let tx = chain.tx(who, U256::ZERO, IStaking::unjailCall {});
                (Some(tx), ok, U256::ZERO, U256::ZERO)
            }
            _ => (None, true, U256::ZERO, U256::ZERO),
        };
        let tip = chain.tip;
        let height = chain.number;
        let (sent, burned_now) = dt.block(&mut chain, tx.into_iter().collect());
        burned += burned_now;
        if sent.first().is_some_and(|s| s.success) && !taken.is_zero() {
            // Rounding never favours the one who leaves.
            let after = chain.value_of(me, v);
            assert!(
                after + taken <= value,
                "seed {seed} block {height}: {after} + {taken} > {value}"
            );
        }
        minted += emission();
        if let Some(s) = sent.first() {
            assert_eq!(s.success, ok, "seed {seed} block {height} roll {roll}");
            let i = idx(who);
            let fee = U256::from(s.gas) * U256::from(tip);
            expected[i] = expected[i] + credit - debit - fee;
            for log in &s.logs {
                let topic = log.topics()[0];
                if topic == IStaking::Slashed::SIGNATURE_HASH {
                    burned += IStaking::Slashed::decode_log_data(&log.data)
                        .unwrap()
                        .amount;
                    tally.slashed += 1;
                }
                tally.delegated += usize::from(topic == IStaking::Delegated::SIGNATURE_HASH);
                tally.undelegated += usize::from(topic == IStaking::Undelegated::SIGNATURE_HASH);
                tally.redelegated += usize::from(topic == IStaking::Redelegated::SIGNATURE_HASH);
                tally.withdrawn += usize::from(topic == IStaking::RewardsWithdrawn::SIGNATURE_HASH);
            }
            tally.refused += usize::from(!s.success);
        }
        for (i, amount) in due.remove(&height).unwrap_or_default() {
            expected[i] += amount;
            tally.matured += 1;
        }
        for (i, a) in actors.iter().enumerate() {
            assert_eq!(
                chain.balance(*a),
                expected[i],
                "seed {seed} block {height} actor {i}"
            );
        }
        assert_eq!(
            chain.supply(),
            supply0 + minted - burned,
            "seed {seed} block {height}"
        );
        check_all(&chain, &actors, &ops);
    }

    // Everyone comes back online; after two epoch ends every member of the set has led a
    // block in the window, so nobody is down again.
    chain.leaders = Leaders::RoundRobin {
        offline: Vec::new(),
    };
    chain.tip = 0;
    let settled = (chain.number / EPOCH + 2) * EPOCH;
    while chain.number < settled {
        let h = chain.number;
        let (_, burned_now) = dt.block(&mut chain, Vec::new());
        burned += burned_now;
        minted += emission();
        for (i, amount) in due.remove(&h).unwrap_or_default() {
            expected[i] += amount;
        }
    }
    tally.down += dt.slashed;

    // Everyone leaves with exactly what the views say: first every undelegation (no stake is
    // left to earn), then every withdrawal.
    let keys: Vec<u8> = DELEGATORS.iter().chain(&OPERATORS).copied().collect();
    for (i, a) in actors.iter().enumerate() {
        for d in delegations_of(&chain.state, *a).unwrap() {
            if d.tokens.is_zero() {
                continue;
            }
            let call = IStaking::undelegateCall {
                validator: d.validator,
                amount: d.tokens,
            };
            let tx = chain.tx(keys[i], U256::ZERO, call);
            due.entry(chain.number + UNBONDING)
                .or_default()
                .push((i, d.tokens));
            let h = chain.number;
            let (sent, burned_now) = dt.block(&mut chain, vec![tx]);
            assert!(sent[0].success);
            burned += burned_now;
            minted += emission();
            for (j, amount) in due.remove(&h).unwrap_or_default() {
                expected[j] += amount;
            }
        }
    }
    assert_eq!(
        staking_totals(&chain.state).unwrap().total_bonded,
        U256::ZERO
    );
    for (i, a) in actors.iter().enumerate() {
        for v in &ops {
            let commission = match validator_info(&chain.state, *v).unwrap() {
                Some(info) if info.address == *a => info.commission_unpaid,
                _ => U256::ZERO,
            };
            let pay = chain.pending(*a, *v) + commission;
            if pay.is_zero() {
                continue;
            }
            let tx = chain.tx(
                keys[i],
                U256::ZERO,
                IStaking::withdrawRewardsCall { validator: *v },
            );
            let h = chain.number;
            let (sent, burned_now) = dt.block(&mut chain, vec![tx]);
            assert!(sent[0].success);
            burned += burned_now;
            minted += emission();
            expected[i] += pay;
            for (j, amount) in due.remove(&h).unwrap_or_default() {
                expected[j] += amount;
            }
        }
    }
    let last = chain.number + UNBONDING + 1;
    while chain.number < last {
        let h = chain.number;
        let (_, burned_now) = dt.block(&mut chain, Vec::new());
        burned += burned_now;
        minted += emission();
        for (i, amount) in due.remove(&h).unwrap_or_default() {
            expected[i] += amount;
        }
    }
    assert!(due.is_empty(), "unpaid entries: {due:?}");
    for (i, a) in actors.iter().enumerate() {
        assert_eq!(
            chain.balance(*a),
            expected[i],
            "seed {seed} final actor {i}"
        );
    }
    let totals = staking_totals(&chain.state).unwrap();
    assert_eq!(totals.total_bonded, U256::ZERO);
    assert_eq!(totals.unbonding, U256::ZERO);
    assert_eq!(totals.commission, U256::ZERO);
    assert_eq!(totals.pending_burn, U256::ZERO);
    // What stays: the undistributed pool and rounding dust of a few wei per settlement.
    assert!(
        totals.reward_reserve < U256::from(1_000_000u64),
        "{totals:?}"
    );
    assert!(delegations_of(&chain.state, actors[0]).unwrap().is_empty());
    assert_eq!(chain.supply(), supply0 + minted - burned);
    check_all(&chain, &actors, &ops);
}

#[test]
fn random_staking_sequences_keep_the_invariants() {
    let mut tally = Tally::default();
    for seed in 0..5u64 {
        random_run(seed, 2_000, &mut tally);
    }
    println!(
        "delegated {}, undelegated {}, redelegated {}, withdrawn {}, slashed {}, refused {}, matured {}, down {}, unjailed {}",
        tally.delegated,
        tally.undelegated,
        tally.redelegated,
        tally.withdrawn,
        tally.slashed,
        tally.refused,
        tally.matured,
        tally.down,
        tally.unjailed
    );
    assert!(tally.delegated > 500 && tally.undelegated > 300 && tally.redelegated > 100);
    assert!(
        tally.withdrawn > 200 && tally.slashed >= 4 && tally.refused > 50 && tally.matured > 300
    );
    assert!(tally.down >= 8 && tally.unjailed >= 5);
}
