//! How the staking module's epoch end scales with the number of delegations.
//!
//! For N = 1,000, 10,000 and 100,000 delegations over 100 genesis validators, builds the state
//! with the module's own calls (`delegate` through [`NativeModule::handle`] on an in-memory
//! context, the value moved as revm would move it), then executes the epoch's last block (empty:
//! only the modules' end of block runs, which shares the reward pool and elects the next set)
//! five times and prints a markdown table of the median time and the storage writes it made.
//!
//! ```text
//! cargo run --release -p chain-state --example epoch_bench
//! ```

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use chain_state::{
    committee_of, BlockEnv, ChainParams, ConsensusCrypto, ConsensusKey, Executor, GenesisStake,
    IStaking, MemoryState, ModuleCall, ModuleContext, ModuleError, NativeModule, Offence, Staking,
    StateChanges, StateReader, BLS_KEY_LEN, POP_LEN,
};

const VALIDATORS: u64 = 100;
const EPOCH: u64 = 100;

/// Accepts every key; no evidence is submitted here.
#[derive(Debug)]
struct AcceptAll;

impl ConsensusCrypto for AcceptAll {
    fn check_keys(&self, _key: &ConsensusKey) -> Result<(), String> {
        Ok(())
    }
    fn evidence_epoch(&self, _evidence: &[u8]) -> Result<u64, String> {
        Err("no evidence in this benchmark".into())
    }
    fn check_evidence(&self, _c: &[ConsensusKey], _e: &[u8]) -> Result<Offence, String> {
        Err("no evidence in this benchmark".into())
    }
}

/// A transaction-like [`ModuleContext`] over a state plus pending writes.
struct Ctx<'a> {
    state: &'a MemoryState,
    changes: &'a mut StateChanges,
    module: Address,
    number: u64,
}

impl Ctx<'_> {
    fn storage_at(&self, a: Address, slot: U256) -> U256 {
        self.changes
            .storage_slot(&a, &slot)
            .unwrap_or_else(|| self.state.storage(&a, &slot).unwrap())
    }

    fn account(&self, a: Address) -> chain_state::Account {
        match self.changes.account(&a) {
            Some(acc) => acc.cloned().unwrap_or_default(),
            None => self.state.account(&a).unwrap().unwrap_or_default(),
        }
    }

    fn add_balance(&mut self, a: Address, amount: U256, credit: bool) {
        let mut acc = self.account(a);
        acc.balance = if credit {
            acc.balance + amount
        } else {
            acc.balance - amount
        };
        self.changes.set_account(a, acc);
    }
}

impl ModuleContext for Ctx<'_> {
    fn address(&self) -> Address {
        self.module
    }
    fn gas_left(&self) -> u64 {
        u64::MAX
    }
    fn block_timestamp(&self) -> u64 {
        self.number
    }
    fn block_number(&self) -> u64 {
        self.number
    }
    fn block_proposer(&self) -> Address {
        Address::ZERO
    }
    fn is_system(&self) -> bool {
        false
    }
    fn charge(&mut self, _gas: u64) -> Result<(), ModuleError> {
        Ok(())
    }
    fn sload(&mut self, slot: U256) -> Result<U256, ModuleError> {
        Ok(self.storage_at(self.module, slot))
    }
    fn sstore(&mut self, slot: U256, value: U256) -> Result<(), ModuleError> {
        self.changes.set_storage(self.module, slot, value);
        Ok(())
    }
    fn sload_at(&mut self, address: Address, slot: U256) -> Result<U256, ModuleError> {
        Ok(self.storage_at(address, slot))
    }
    fn balance(&mut self, address: Address) -> Result<U256, ModuleError> {
        Ok(self.account(address).balance)
    }
    fn transfer(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        self.add_balance(self.module, amount, false);
        self.add_balance(to, amount, true);
        Ok(())
    }
    fn emit(&mut self, _topics: Vec<B256>, _data: Bytes) -> Result<(), ModuleError> {
        Ok(())
    }
    fn mint(&mut self, _amount: U256) -> Result<(), ModuleError> {
        Err(ModuleError::reason("not in a transaction"))
    }
    fn burn(&mut self, _amount: U256) -> Result<(), ModuleError> {
        Err(ModuleError::reason("not in a transaction"))
    }
}

fn btt(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn addr(tag: u8, i: u64) -> Address {
    let mut b = [0u8; 20];
    b[0] = tag;
    b[12..].copy_from_slice(&i.to_be_bytes());
    Address::from(b)
}

/// `(median ms, storage writes, account writes)` of the epoch's last block.
fn run(delegations: u64) -> (f64, usize, usize) {
    let genesis: Vec<GenesisStake> = (0..VALIDATORS)
        .map(|i| {
            let mut identity = [0u8; 32];
            identity[24..].copy_from_slice(&(i + 1).to_be_bytes());
            GenesisStake {
                operator: addr(0xaa, i),
                key: ConsensusKey {
                    identity,
                    bls: vec![7; BLS_KEY_LEN],
                    pop: vec![7; POP_LEN],
                },
                self_bond: btt(10_000 + i),
                commission_bps: 500,
            }
        })
        .collect();
    let staking = Arc::new(Staking::new(EPOCH, genesis, Arc::new(AcceptAll)));
    let ex = Executor::new(ChainParams::default())
        .with_module(staking.clone())
        .with_fee_collector(chain_state::staking_address());
    let alloc: Vec<_> = (0..delegations)
        .map(|i| (addr(0xdd, i), btt(100)))
        .collect();
    let mut state = MemoryState::new();
    state.apply(&ex.genesis(&alloc).unwrap());

    // Delegations, made during block 1 through the module's own `delegate`.
    let mut changes = StateChanges::new();
    for i in 0..delegations {
        let delegator = addr(0xdd, i);
        let validator = addr(0xaa, i % VALIDATORS);
        let value = btt(1) + U256::from(i);
        let input = IStaking::delegateCall { validator }.abi_encode();
        let mut ctx = Ctx {
            state: &state,
            changes: &mut changes,
            module: staking.address(),
            number: 1,
        };
        // revm moves the call's value before the module runs.
        ctx.add_balance(delegator, value, false);
        ctx.add_balance(staking.address(), value, true);
        let call = ModuleCall {
            caller: delegator,
            value,
            input: &input,
            is_static: false,
        };
        staking.handle(&call, &mut ctx).unwrap();
    }
    state.apply(&changes);

    // Blocks 1..=EPOCH-2 only add emission to the pool; run a few so the pool is realistic.
    let env = |number: u64| BlockEnv {
        number,
        timestamp_ms: 1_700_000_000_000 + number * 1000,
        proposer: Address::ZERO,
        base_fee: 1_000_000_000,
        gas_limit: 30_000_000,
    };
    for number in EPOCH - 4..EPOCH - 1 {
        let executed = ex.execute(&state, &env(number), &[]).unwrap();
        state.apply(&executed.changes);
    }

    // The epoch's last block.
    let mut times = Vec::new();
    let mut writes = (0, 0);
    for _ in 0..5 {
        let start = Instant::now();
        let executed = ex.execute(&state, &env(EPOCH - 1), &[]).unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        writes = (
            executed.changes.storage().count(),
            executed.changes.accounts().count(),
        );
        let mut next = state.clone();
        next.apply(&executed.changes);
        assert_eq!(
            committee_of(&next, 1).unwrap().map(|c| c.len()),
            Some(VALIDATORS as usize)
        );
    }
    times.sort_by(f64::total_cmp);
    (times[2], writes.0, writes.1)
}

fn main() {
    println!(
        "| delegations | epoch end_block ms (median of 5) | storage writes | account writes |"
    );
    println!("|---:|---:|---:|---:|");
    for n in [1_000u64, 10_000, 100_000] {
        let (ms, storage, accounts) = run(n);
        println!("| {n} | {ms:.3} | {storage} | {accounts} |");
    }
}
