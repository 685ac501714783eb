//! Executor, module and commitment tests over an in-memory state.

use alloy_consensus::crypto::secp256k1::sign_message;
use alloy_consensus::transaction::RlpEcdsaEncodableTx;
use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxEip2930, TxLegacy};
use alloy_primitives::{
    address, b256, hex, keccak256, Address, Bytes, Signature, TxKind, B256, U256,
};
use alloy_sol_types::SolCall;
use chain_types::{recover_tx, AdmissionError, RecoveredTx, TxEnvelope, TxRules, TxType};
use rand::{Rng, SeedableRng};

use crate::*;

const GWEI_U: u128 = 1_000_000_000;
const PROPOSER: Address = address!("00000000000000000000000000000000000b10c0");

fn key(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn btt(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn params() -> ChainParams {
    ChainParams::default()
}

fn env(base_fee: u64) -> BlockEnv {
    BlockEnv {
        number: 1,
        timestamp_ms: 1_700_000_000_000,
        proposer: PROPOSER,
        base_fee,
        gas_limit: 30_000_000,
    }
}

fn sign<T>(k: B256, tx: T) -> RecoveredTx
where
    T: SignableTransaction<Signature> + RlpEcdsaEncodableTx,
    TxEnvelope: From<Signed<T>>,
{
    let sig = sign_message(k, tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    recover_tx(envelope, &TxRules::new(DEVNET_CHAIN_ID, 30_000_000)).unwrap()
}

fn addr(n: u8) -> Address {
    let tx = sign(
        key(n),
        eip1559(0, Some(Address::ZERO), U256::ZERO, 21_000, 1, 1, vec![]),
    );
    tx.sender()
}

#[allow(clippy::too_many_arguments)]
fn eip1559(
    nonce: u64,
    to: Option<Address>,
    value: U256,
    gas: u64,
    max_fee: u128,
    tip: u128,
    input: Vec<u8>,
) -> TxEip1559 {
    TxEip1559 {
        chain_id: DEVNET_CHAIN_ID,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: to.map_or(TxKind::Create, TxKind::Call),
        value,
        access_list: Default::default(),
        input: input.into(),
    }
}

fn transfer(from: u8, nonce: u64, to: Address, value: U256) -> RecoveredTx {
    sign(
        key(from),
        eip1559(nonce, Some(to), value, 21_000, 3 * GWEI_U, GWEI_U, vec![]),
    )
}

/// Genesis with accounts 1..=n holding 100 BTT each.
fn genesis(executor: &Executor, n: u8) -> MemoryState {
    let alloc: Vec<_> = (1..=n).map(|i| (addr(i), btt(100))).collect();
    let mut state = MemoryState::new();
    state.apply(&executor.genesis(&alloc).unwrap());
    state
}

fn balance(state: &impl StateReader, a: Address) -> U256 {
    state
        .account(&a)
        .unwrap()
        .map(|a| a.balance)
        .unwrap_or_default()
}

fn bank_view<C: SolCall>(executor: &Executor, state: &impl StateReader, call: C) -> C::Return {
    let req = CallRequest {
        to: Some(BANK_ADDRESS),
        input: Some(call.abi_encode().into()),
        ..Default::default()
    };
    let out = executor.call(state, &env(GWEI), &req).unwrap();
    C::abi_decode_returns(&out.output).unwrap()
}

fn assert_supply_invariant(executor: &Executor, state: &MemoryState) {
    let sum = state
        .accounts()
        .fold(U256::ZERO, |acc, (_, a)| acc + a.balance);
    let supply = state
        .storage(&BANK_ADDRESS, &BANK_TOTAL_SUPPLY_SLOT)
        .unwrap();
    assert_eq!(sum, supply, "total supply must equal the sum of balances");
    assert_eq!(
        bank_view(executor, state, abi::IBank::totalSupplyCall {}),
        supply
    );
}

#[test]
fn transfer_burn_exact_balances() {
    let ex = Executor::new(params());
    let mut state = genesis(&ex, 2);
    let (alice, bob) = (addr(1), addr(2));
    // Base fee 2 gwei, tip cap 1 gwei, fee cap 3 gwei: effective price 3 gwei.
    let tx = transfer(1, 0, bob, btt(1));
    let out = ex.execute(&state, &env(2 * GWEI), &[tx]).unwrap();
    assert_eq!(out.gas_used, 21_000);
    assert_eq!(out.receipts.len(), 1);
    assert!(out.receipts[0].success());
    assert_eq!(out.receipts[0].cumulative_gas_used(), 21_000);
    assert_eq!(out.receipts[0].tx_type(), TxType::Eip1559);
    state.apply(&out.changes);
    let gas = U256::from(21_000u64);
    let gwei = U256::from(GWEI);
    assert_eq!(balance(&state, alice), btt(99) - gas * gwei * U256::from(3));
    assert_eq!(balance(&state, bob), btt(101));
    assert_eq!(balance(&state, PROPOSER), gas * gwei);
    let burned = gas * gwei * U256::from(2);
    assert_eq!(bank_view(&ex, &state, abi::IBank::burnedCall {}), burned);
    assert_eq!(
        bank_view(&ex, &state, abi::IBank::totalSupplyCall {}),
        btt(200) - burned
    );
    assert_eq!(
        bank_view(&ex, &state, abi::IBank::feePoolCall {}),
        U256::ZERO
    );
    assert_eq!(state.account(&alice).unwrap().unwrap().nonce, 1);
    assert_supply_invariant(&ex, &state);
}

#[test]
fn transfer_pool_mode_credits_bank() {
    let ex = Executor::new(ChainParams {
        fee_mode: FeeMode::Pool,
        ..params()
    });
    let mut state = genesis(&ex, 2);
    let out = ex
        .execute(&state, &env(2 * GWEI), &[transfer(1, 0, addr(2), btt(1))])
        .unwrap();
    state.apply(&out.changes);
    let pooled = U256::from(21_000u64 * 2 * GWEI);
    assert_eq!(balance(&state, BANK_ADDRESS), pooled);
    assert_eq!(bank_view(&ex, &state, abi::IBank::feePoolCall {}), pooled);
    assert_eq!(
        bank_view(&ex, &state, abi::IBank::burnedCall {}),
        U256::ZERO
    );
    assert_eq!(
        bank_view(&ex, &state, abi::IBank::totalSupplyCall {}),
        btt(200)
    );
    assert_supply_invariant(&ex, &state);
}

#[test]
fn legacy_and_access_list_transactions() {
    let ex = Executor::new(params());
    let mut state = genesis(&ex, 2);
    let legacy = sign(
        key(1),
        TxLegacy {
            chain_id: Some(DEVNET_CHAIN_ID),
            nonce: 0,
            gas_price: 5 * GWEI_U,
            gas_limit: 21_000,
            to: TxKind::Call(addr(2)),
            value: U256::from(7),
            input: Bytes::new(),
        },
    );
    let typed1 = sign(
        key(1),
        TxEip2930 {
            chain_id: DEVNET_CHAIN_ID,
            nonce: 1,
            gas_price: 4 * GWEI_U,
            gas_limit: 30_000,
            to: TxKind::Call(addr(2)),
            value: U256::from(8),
            access_list: Default::default(),
            input: Bytes::new(),
        },
    );
    let out = ex.execute(&state, &env(GWEI), &[legacy, typed1]).unwrap();
    assert_eq!(out.receipts[0].tx_type(), TxType::Legacy);
    assert_eq!(out.receipts[1].tx_type(), TxType::Eip2930);
    assert_eq!(out.receipts[1].cumulative_gas_used(), 42_000);
    state.apply(&out.changes);
    let spent = U256::from(21_000u64 * 5 * GWEI + 21_000 * 4 * GWEI + 15);
    assert_eq!(balance(&state, addr(1)), btt(100) - spent);
    assert_eq!(
        balance(&state, PROPOSER),
        U256::from(21_000u64 * 4 * GWEI + 21_000 * 3 * GWEI)
    );
    assert_supply_invariant(&ex, &state);
}

/// Runtime: with calldata, stores word 0 in slot 0 and logs it under topic 0xaa; without,
/// returns slot 0.
const STORE_RUNTIME: &[u8] =
    &hex!("36600f576000546000526020 6000f35b60003580600055600052 60aa60206000a100");

/// Initcode that deploys `runtime`.
fn initcode(runtime: &[u8]) -> Vec<u8> {
    let len = u8::try_from(runtime.len()).unwrap();
    let mut code = vec![
        0x60, len, 0x80, 0x60, 11, 0x60, 0x00, 0x39, 0x60, 0x00, 0xf3,
    ];
    code.extend_from_slice(runtime);
    code
}

fn deploy(ex: &Executor, state: &mut MemoryState, from: u8, nonce: u64, runtime: &[u8]) -> Address {
    let tx = sign(
        key(from),
        eip1559(
            nonce,
            None,
            U256::ZERO,
            200_000,
            3 * GWEI_U,
            GWEI_U,
            initcode(runtime),
        ),
    );
    let created = tx.sender().create(nonce);
    let out = ex.execute(&*state, &env(GWEI), &[tx]).unwrap();
    assert!(out.receipts[0].success());
    assert_eq!(
        out.changes.code(&keccak256(runtime)).unwrap().as_ref(),
        runtime
    );
    state.apply(&out.changes);
    assert_eq!(
        state.account(&created).unwrap().unwrap().code_hash,
        keccak256(runtime)
    );
    created
}

#[test]
fn contract_deploy_store_log_and_read() {
    let ex = Executor::new(params());
    let mut state = genesis(&ex, 1);
    let contract = deploy(&ex, &mut state, 1, 0, STORE_RUNTIME);
    let value = B256::with_last_byte(42);
    let tx = sign(
        key(1),
        eip1559(
            1,
            Some(contract),
            U256::ZERO,
            100_000,
            3 * GWEI_U,
            GWEI_U,
            value.to_vec(),
        ),
    );
    let out = ex.execute(&state, &env(GWEI), &[tx]).unwrap();
    let receipt = &out.receipts[0];
    assert!(receipt.success());
    assert_eq!(receipt.logs().len(), 1);
    let log = &receipt.logs()[0];
    assert_eq!(log.address, contract);
    assert_eq!(log.data.topics(), &[B256::with_last_byte(0xaa)]);
    assert_eq!(log.data.data.as_ref(), value.as_slice());
    assert_eq!(
        out.changes.storage_slot(&contract, &U256::ZERO),
        Some(U256::from(42))
    );
    state.apply(&out.changes);
    // Read it back with eth_call.
    let req = CallRequest {
        to: Some(contract),
        ..Default::default()
    };
    let read = ex.call(&state, &env(GWEI), &req).unwrap();
    assert_eq!(read.output.as_ref(), value.as_slice());
    assert_supply_invariant(&ex, &state);
}

#[test]
fn out_of_gas_and_revert_fail_but_pay() {
    let ex = Executor::new(params());
    let mut state = genesis(&ex, 1);
    let contract = deploy(&ex, &mut state, 1, 0, STORE_RUNTIME);
    let reverter = deploy(&ex, &mut state, 1, 1, &hex!("60006000fd"));
    let before = balance(&state, addr(1));
    // Enough for the intrinsic cost (21000 + 32 bytes) but not for SSTORE.
    let oog = sign(
        key(1),
        eip1559(
            2,
            Some(contract),
            U256::ZERO,
            25_000,
            GWEI_U,
            0,
            B256::with_last_byte(1).to_vec(),
        ),
    );
    let rev = sign(
        key(1),
        eip1559(3, Some(reverter), U256::from(5), 50_000, GWEI_U, 0, vec![]),
    );
    let out = ex.execute(&state, &env(GWEI), &[oog, rev]).unwrap();
    assert!(!out.receipts[0].success());
    assert!(!out.receipts[1].success());
    assert_eq!(out.receipts[0].cumulative_gas_used(), 25_000);
    assert!(out.receipts[1].logs().is_empty());
    let rev_gas = out.gas_used - 25_000;
    assert!(rev_gas > 21_000 && rev_gas < 50_000);
    assert_eq!(out.changes.storage_slot(&contract, &U256::ZERO), None);
    state.apply(&out.changes);
    // Gas is paid, the value sent to the reverting contract is not.
    assert_eq!(
        balance(&state, addr(1)),
        before - U256::from(out.gas_used) * U256::from(GWEI)
    );
    assert_eq!(state.account(&addr(1)).unwrap().unwrap().nonce, 4);
    assert_supply_invariant(&ex, &state);

    let call = ex.call(
        &state,
        &env(GWEI),
        &CallRequest {
            to: Some(reverter),
            ..Default::default()
        },
    );
    assert_eq!(
        call.unwrap_err(),
        CallError::Reverted {
            output: Bytes::new()
        }
    );
}

#[test]
fn invalid_transactions_invalidate_the_block() {
    let ex = Executor::new(params());
    let state = genesis(&ex, 2);
    let alice = addr(1);
    let cases: Vec<(RecoveredTx, TxInvalid)> = vec![
        (
            transfer(1, 1, addr(2), U256::ZERO),
            TxInvalid::Admission(AdmissionError::NonceTooHigh {
                address: alice,
                tx_nonce: 1,
                state_nonce: 0,
            }),
        ),
        (
            transfer(1, 0, addr(2), btt(100)),
            TxInvalid::Admission(AdmissionError::InsufficientFunds {
                address: alice,
                // Bob's transfer earlier in the block added 1 wei.
                have: btt(100) + U256::ONE,
                want: btt(100) + U256::from(21_000u64 * 3 * GWEI),
            }),
        ),
        (
            sign(
                key(1),
                eip1559(0, Some(addr(2)), U256::ZERO, 21_000, GWEI_U / 2, 0, vec![]),
            ),
            TxInvalid::Admission(AdmissionError::FeeCapBelowBaseFee {
                max_fee_per_gas: GWEI_U / 2,
                base_fee: GWEI,
            }),
        ),
    ];
    for (tx, want) in cases {
        let hash = tx.hash();
        let err = ex
            .execute(&state, &env(GWEI), &[transfer(2, 0, alice, U256::ONE), tx])
            .unwrap_err();
        assert_eq!(
            err,
            ExecError::InvalidTx {
                index: 1,
                hash,
                reason: want
            }
        );
    }
    // Replaying a nonce within the block.
    let err = ex
        .execute(
            &state,
            &env(GWEI),
            &[
                transfer(1, 0, addr(2), U256::ONE),
                transfer(1, 0, addr(2), U256::ONE),
            ],
        )
        .unwrap_err();
    assert!(err.to_string().contains("nonce too low"), "{err}");
}

#[test]
fn block_gas_limit_and_build_skips() {
    let ex = Executor::new(params());
    let state = genesis(&ex, 3);
    let mut block_env = env(GWEI);
    block_env.gas_limit = 50_000;
    let txs = vec![
        transfer(1, 0, addr(3), U256::ONE),
        transfer(1, 5, addr(3), U256::ONE), // nonce gap: skipped
        transfer(2, 0, addr(3), U256::ONE),
        transfer(3, 0, addr(1), U256::ONE), // not tried: the block is full
    ];
    let built = ex.build(&state, &block_env, txs.clone()).unwrap();
    assert_eq!(
        built.txs.iter().map(|t| t.hash()).collect::<Vec<_>>(),
        vec![txs[0].hash(), txs[2].hash()]
    );
    assert_eq!(built.executed.gas_used, 42_000);
    assert_eq!(built.rejected.len(), 1);
    assert_eq!(built.rejected[0].0, txs[1].hash());
    assert!(built.rejected[0].1.starts_with("nonce too high"));
    // A transaction too large for the gas left is reported, smaller ones after it still fit.
    let big = sign(
        key(3),
        eip1559(
            0,
            Some(addr(1)),
            U256::ONE,
            40_000,
            3 * GWEI_U,
            GWEI_U,
            vec![],
        ),
    );
    let built = ex
        .build(
            &state,
            &block_env,
            vec![txs[0].clone(), big.clone(), txs[2].clone()],
        )
        .unwrap();
    assert_eq!(built.txs.len(), 2);
    assert_eq!(built.rejected.len(), 1);
    assert_eq!(built.rejected[0].0, big.hash());
    assert!(
        built.rejected[0].1.starts_with("gas limit reached"),
        "{}",
        built.rejected[0].1
    );
    // The built block verifies to the same result.
    let again = ex.execute(&state, &block_env, &built.txs).unwrap();
    assert_eq!(again, built.executed);
    // Three transfers do not fit in 50,000 gas.
    let err = ex
        .execute(
            &state,
            &block_env,
            &[txs[0].clone(), txs[2].clone(), txs[3].clone()],
        )
        .unwrap_err();
    assert!(matches!(
        err,
        ExecError::InvalidTx {
            index: 2,
            reason: TxInvalid::GasLimitReached {
                gas: 21_000,
                remaining: 8_000
            },
            ..
        }
    ));
}

#[test]
fn admission_precheck() {
    let ex = Executor::new(params());
    let state = genesis(&ex, 2);
    assert_eq!(
        check_admission(&state, &transfer(1, 3, addr(2), U256::ONE), GWEI),
        Ok(())
    );
    assert!(matches!(
        check_admission(&state, &transfer(1, 0, addr(2), btt(1000)), GWEI),
        Err(CheckError::Admission(
            AdmissionError::InsufficientFunds { .. }
        ))
    ));
    assert!(matches!(
        check_admission(&state, &transfer(1, 0, addr(2), U256::ONE), 10 * GWEI),
        Err(CheckError::Admission(
            AdmissionError::FeeCapBelowBaseFee { .. }
        ))
    ));
    let mut later = state.clone();
    later.apply(
        &ex.execute(&state, &env(GWEI), &[transfer(1, 0, addr(2), U256::ONE)])
            .unwrap()
            .changes,
    );
    assert!(matches!(
        check_admission(&later, &transfer(1, 0, addr(2), U256::ONE), GWEI),
        Err(CheckError::Admission(AdmissionError::NonceTooLow { .. }))
    ));
}

#[test]
fn bank_views_and_reverts() {
    let ex = Executor::new(params());
    let mut state = genesis(&ex, 1);
    let p = bank_view(&ex, &state, abi::IBank::chainParamsCall {});
    assert_eq!(p.chainId, DEVNET_CHAIN_ID);
    assert_eq!(p.gasLimit, 30_000_000);
    assert_eq!(p.feeMode, 0);
    // Unknown selector: a revert whose reason decodes.
    let req = CallRequest {
        to: Some(BANK_ADDRESS),
        input: Some(Bytes::from_static(&hex!("deadbeef"))),
        ..Default::default()
    };
    let err = ex.call(&state, &env(GWEI), &req).unwrap_err();
    let reason = err.revert_reason().unwrap();
    assert!(
        reason.contains("unknown function selector 0xdeadbeef"),
        "{reason}"
    );
    assert!(err.to_string().starts_with("execution reverted: "), "{err}");
    assert_eq!(chain_types::RpcError::rpc_code(&err), 3);
    // Value sent to a view reverts and is returned.
    let tx = sign(
        key(1),
        eip1559(
            0,
            Some(BANK_ADDRESS),
            btt(1),
            100_000,
            GWEI_U,
            0,
            abi::IBank::totalSupplyCall {}.abi_encode(),
        ),
    );
    let out = ex.execute(&state, &env(GWEI), &[tx]).unwrap();
    assert!(!out.receipts[0].success());
    state.apply(&out.changes);
    assert_eq!(balance(&state, BANK_ADDRESS), U256::ZERO);
    assert_eq!(
        balance(&state, addr(1)),
        btt(100) - U256::from(out.gas_used) * U256::from(GWEI)
    );
    assert_supply_invariant(&ex, &state);
    // The module account exists with code, so it is never pruned as empty.
    let bank = state.account(&BANK_ADDRESS).unwrap().unwrap();
    assert_eq!(bank.nonce, 1);
    assert_eq!(bank.code_hash, keccak256(MODULE_ACCOUNT_CODE));
}

/// A writing module: stores its input word in slot 0 and logs it, or reverts after writing when
/// sent value.
#[derive(Debug)]
struct Recorder;

impl NativeModule for Recorder {
    fn address(&self) -> Address {
        module_address(9)
    }
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn handle(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
    ) -> Result<Bytes, ModuleError> {
        let word = U256::from_be_slice(call.input.get(..32).unwrap_or(&[0u8; 32]));
        ctx.sstore(U256::ZERO, word)?;
        ctx.emit(
            vec![B256::with_last_byte(1)],
            Bytes::copy_from_slice(call.input),
        )?;
        if !call.value.is_zero() {
            return Err(ModuleError::reason("recorder: no value"));
        }
        Ok(Bytes::new())
    }
}

#[test]
fn module_writes_are_journaled() {
    let ex = Executor::new(params()).with_module(std::sync::Arc::new(Recorder));
    let rec = module_address(9);
    assert_eq!(rec, address!("0000000000000000000000000000000000b77009"));
    let mut alloc = vec![(addr(1), btt(10))];
    alloc.push((addr(2), btt(10)));
    let mut state = MemoryState::new();
    state.apply(&ex.genesis(&alloc).unwrap());
    let word = B256::with_last_byte(7);
    let ok = sign(
        key(1),
        eip1559(0, Some(rec), U256::ZERO, 100_000, GWEI_U, 0, word.to_vec()),
    );
    let bad = sign(
        key(2),
        eip1559(
            0,
            Some(rec),
            U256::ONE,
            100_000,
            GWEI_U,
            0,
            B256::with_last_byte(9).to_vec(),
        ),
    );
    let out = ex.execute(&state, &env(GWEI), &[ok, bad]).unwrap();
    assert!(out.receipts[0].success());
    assert_eq!(out.receipts[0].logs().len(), 1);
    assert_eq!(out.receipts[0].logs()[0].address, rec);
    assert!(!out.receipts[1].success());
    assert!(out.receipts[1].logs().is_empty());
    assert_eq!(
        out.changes.storage_slot(&rec, &U256::ZERO),
        Some(U256::from(7))
    );
    state.apply(&out.changes);
    assert_eq!(balance(&state, rec), U256::ZERO);
    // A static call cannot write.
    let err = ex
        .call(
            &state,
            &env(GWEI),
            &CallRequest {
                to: Some(rec),
                input: Some(word.to_vec().into()),
                ..Default::default()
            },
        )
        .map(|_| ());
    assert_eq!(err, Ok(()), "a plain eth_call is not static");
}

#[test]
fn estimate_gas_binary_search() {
    let ex = Executor::new(params());
    let mut state = genesis(&ex, 1);
    let contract = deploy(&ex, &mut state, 1, 0, STORE_RUNTIME);
    let transfer_req = CallRequest {
        from: Some(addr(1)),
        to: Some(addr(2)),
        value: Some(U256::ONE),
        ..Default::default()
    };
    assert_eq!(
        ex.estimate_gas(&state, &env(GWEI), &transfer_req).unwrap(),
        21_000
    );
    let store_req = CallRequest {
        from: Some(addr(1)),
        to: Some(contract),
        input: Some(B256::with_last_byte(5).to_vec().into()),
        ..Default::default()
    };
    let estimate = ex.estimate_gas(&state, &env(GWEI), &store_req).unwrap();
    let at = |gas| {
        ex.call(
            &state,
            &env(GWEI),
            &CallRequest {
                gas: Some(gas),
                ..store_req.clone()
            },
        )
    };
    assert!(at(estimate).is_ok());
    assert!(at(estimate - 1).is_err());
    // Real execution at the estimate succeeds.
    let tx = sign(
        key(1),
        eip1559(
            1,
            Some(contract),
            U256::ZERO,
            estimate,
            3 * GWEI_U,
            GWEI_U,
            B256::with_last_byte(5).to_vec(),
        ),
    );
    assert!(ex.execute(&state, &env(GWEI), &[tx]).unwrap().receipts[0].success());
    // A call that always reverts.
    let revert_req = CallRequest {
        to: Some(BANK_ADDRESS),
        input: Some(Bytes::from_static(&[1, 2, 3, 4])),
        ..Default::default()
    };
    assert!(matches!(
        ex.estimate_gas(&state, &env(GWEI), &revert_req),
        Err(CallError::Reverted { .. })
    ));
    // An infinite loop never succeeds.
    let looper = deploy(&ex, &mut state, 1, 1, &hex!("5b600056"));
    let loop_req = CallRequest {
        to: Some(looper),
        ..Default::default()
    };
    assert_eq!(
        ex.estimate_gas(&state, &env(GWEI), &loop_req),
        Err(CallError::GasTooHigh {
            allowance: 30_000_000
        })
    );
}

fn random_block(rng: &mut rand::rngs::StdRng, nonces: &mut [u64], n: u8) -> Vec<RecoveredTx> {
    (0..rng.gen_range(1..8))
        .map(|_| {
            let from = rng.gen_range(1..=n);
            let to = if rng.gen_bool(0.2) {
                // A fresh address, or the bank, or nowhere useful.
                Address::with_last_byte(rng.gen())
            } else {
                addr(rng.gen_range(1..=n))
            };
            let value = U256::from(rng.gen_range(0..5u64)) * btt(1) / U256::from(3);
            let tip = rng.gen_range(0..3u128) * GWEI_U;
            let nonce = &mut nonces[usize::from(from - 1)];
            let tx = sign(
                key(from),
                eip1559(*nonce, Some(to), value, 21_000, 5 * GWEI_U, tip, vec![]),
            );
            *nonce += 1;
            tx
        })
        .collect()
}

#[test]
fn supply_invariant_over_random_blocks() {
    for mode in [FeeMode::Burn, FeeMode::Pool] {
        let ex = Executor::new(ChainParams {
            fee_mode: mode,
            ..params()
        });
        let n = 5;
        let mut state = genesis(&ex, n);
        let mut nonces = vec![0u64; usize::from(n)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for number in 1..=20 {
            let base_fee = GWEI + (number % 4) * GWEI / 2;
            let txs = random_block(&mut rng, &mut nonces, n);
            let block_env = BlockEnv {
                number,
                base_fee,
                ..env(base_fee)
            };
            let out = ex.execute(&state, &block_env, &txs).unwrap();
            state.apply(&out.changes);
            assert_supply_invariant(&ex, &state);
        }
        let burned = bank_view(&ex, &state, abi::IBank::burnedCall {});
        match mode {
            FeeMode::Burn => assert!(!burned.is_zero()),
            FeeMode::Pool => assert!(burned.is_zero() && !balance(&state, BANK_ADDRESS).is_zero()),
        }
    }
}

#[test]
fn overlay_layers_and_extend() {
    let mut base = MemoryState::new();
    let a = address!("00000000000000000000000000000000000000aa");
    let mut genesis = StateChanges::new();
    genesis.set_account(
        a,
        Account {
            nonce: 1,
            ..Account::default()
        },
    );
    genesis.set_storage(a, U256::from(1), U256::from(10));
    base.apply(&genesis);
    let mut l1 = StateChanges::new();
    l1.set_account(
        a,
        Account {
            nonce: 2,
            ..Account::default()
        },
    );
    l1.set_storage(a, U256::from(2), U256::from(20));
    let mut l2 = StateChanges::new();
    l2.delete_account(a);
    l2.set_storage(a, U256::from(1), U256::ZERO);
    let code = l2.insert_code(Bytes::from_static(&[1, 2, 3]));

    let o1 = Overlay::new(&base, vec![&l1]);
    assert_eq!(o1.account(&a).unwrap().unwrap().nonce, 2);
    assert_eq!(o1.storage(&a, &U256::from(1)).unwrap(), U256::from(10));
    assert_eq!(o1.storage(&a, &U256::from(2)).unwrap(), U256::from(20));
    let o2 = Overlay::new(&base, vec![&l1, &l2]);
    assert_eq!(o2.account(&a).unwrap(), None);
    assert_eq!(o2.storage(&a, &U256::from(1)).unwrap(), U256::ZERO);
    assert_eq!(o2.code(&code).unwrap().unwrap().as_ref(), &[1, 2, 3]);

    // Extending equals applying in order.
    let mut merged = l1.clone();
    merged.extend(l2.clone());
    let mut stepwise = base.clone();
    stepwise.apply(&l1);
    stepwise.apply(&l2);
    let mut at_once = base.clone();
    at_once.apply(&merged);
    assert_eq!(stepwise, at_once);
    assert_eq!(stepwise.state_root(), at_once.state_root());
}

/// Keeps a bucket tree in step with a state the way the node's store would.
#[derive(Default)]
struct IncrementalCommitment {
    leaves: std::collections::BTreeMap<B256, B256>,
    tree: BucketTree,
}

impl IncrementalCommitment {
    fn apply(&mut self, changes: &StateChanges) {
        let mut touched = std::collections::BTreeSet::new();
        for (key, hash) in leaf_updates(changes) {
            match hash {
                Some(h) => self.leaves.insert(key, h),
                None => self.leaves.remove(&key),
            };
            touched.insert(bucket_of(&key));
        }
        for bucket in touched {
            self.tree.set(bucket, bucket_hash(&self.entries(bucket)));
        }
    }

    fn entries(&self, bucket: u16) -> Vec<(B256, B256)> {
        let lo = B256::from(U256::from(bucket) << 240);
        self.leaves
            .range(lo..)
            .take_while(|(k, _)| bucket_of(k) == bucket)
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

#[test]
fn commitment_incremental_matches_scratch_and_proofs_verify() {
    let ex = Executor::new(params());
    let mut state = MemoryState::new();
    let mut inc = IncrementalCommitment::default();
    assert_eq!(inc.tree.root(), B256::ZERO);
    assert_eq!(state.state_root(), B256::ZERO);
    let g = ex
        .genesis(&(1..=5).map(|i| (addr(i), btt(100))).collect::<Vec<_>>())
        .unwrap();
    state.apply(&g);
    inc.apply(&g);
    let mut roots = vec![state.state_root()];
    assert_eq!(inc.tree.root(), roots[0]);
    let mut nonces = vec![0u64; 5];
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..5 {
        let out = ex
            .execute(&state, &env(GWEI), &random_block(&mut rng, &mut nonces, 5))
            .unwrap();
        state.apply(&out.changes);
        inc.apply(&out.changes);
        let root = state.state_root();
        assert_eq!(inc.tree.root(), root);
        assert!(!roots.contains(&root), "every block changes the root");
        roots.push(root);
    }
    let root = inc.tree.root();
    for (key, _) in leaf_updates(&g) {
        let bucket = bucket_of(&key);
        let entries = inc.entries(bucket);
        let proof = inc.tree.proof(bucket);
        assert!(verify_proof(&root, bucket, &entries, &proof));
        // Tampering fails: a changed leaf, a missing leaf, another bucket, a bad sibling.
        let mut changed = entries.clone();
        changed[0].1 = B256::repeat_byte(1);
        assert!(!verify_proof(&root, bucket, &changed, &proof));
        assert!(!verify_proof(&root, bucket, &entries[1..], &proof));
        assert!(!verify_proof(&root, bucket ^ 1, &entries, &proof));
        let mut bad = proof;
        bad[15] = B256::repeat_byte(2);
        assert!(!verify_proof(&root, bucket, &entries, &bad));
    }
    // An empty bucket is proven by the empty entry list.
    let empty = (0..=u16::MAX).find(|b| inc.entries(*b).is_empty()).unwrap();
    assert!(verify_proof(&root, empty, &[], &inc.tree.proof(empty)));
}

#[test]
fn commitment_order_independent() {
    let leaves: Vec<(B256, B256)> = (0u64..300)
        .map(|i| {
            (
                keccak256(i.to_be_bytes()),
                keccak256((i + 1000).to_be_bytes()),
            )
        })
        .collect();
    let forward = root_of_leaves(leaves.clone());
    let mut reversed = leaves.clone();
    reversed.reverse();
    assert_eq!(root_of_leaves(reversed), forward);
    // Setting buckets in any order gives the same tree.
    let mut by_bucket = std::collections::BTreeMap::<u16, Vec<(B256, B256)>>::new();
    for (k, v) in &leaves {
        by_bucket.entry(bucket_of(k)).or_default().push((*k, *v));
    }
    let mut a = BucketTree::new();
    let mut b = BucketTree::new();
    for (bucket, mut entries) in by_bucket.clone() {
        entries.sort();
        a.set(bucket, bucket_hash(&entries));
    }
    for (bucket, mut entries) in by_bucket.into_iter().rev() {
        entries.sort();
        b.set(bucket, bucket_hash(&entries));
    }
    assert_eq!(a.root(), forward);
    assert_eq!(b.root(), forward);
}

#[test]
fn commitment_format_by_hand() {
    // One account: its bucket hash and the 16 levels above it, computed independently.
    let address = address!("00000000000000000000000000000000000000aa");
    let account = Account {
        nonce: 3,
        balance: U256::from(1000),
        code_hash: KECCAK_EMPTY,
    };
    let mut encoded = Vec::new();
    encoded.extend_from_slice(&3u64.to_be_bytes());
    encoded.extend_from_slice(&U256::from(1000).to_be_bytes::<32>());
    encoded.extend_from_slice(KECCAK_EMPTY.as_slice());
    let leaf = keccak256(&encoded);
    let key = keccak256(address);
    assert_eq!(account_leaf_hash(&account), leaf);
    assert_eq!(account_leaf_key(&address), key);
    let mut hash = keccak256([key.as_slice(), leaf.as_slice()].concat());
    let mut index = u16::from_be_bytes([key[0], key[1]]);
    for _ in 0..16 {
        hash = if index.is_multiple_of(2) {
            keccak256([hash.as_slice(), &[0u8; 32]].concat())
        } else {
            keccak256([&[0u8; 32], hash.as_slice()].concat())
        };
        index /= 2;
    }
    let mut changes = StateChanges::new();
    changes.set_account(address, account);
    let mut state = MemoryState::new();
    state.apply(&changes);
    assert_eq!(state.state_root(), hash);
    // Storage leaves: keccak(address ‖ slot) and keccak(value); zero deletes.
    let slot_key = keccak256([address.as_slice(), &U256::from(5).to_be_bytes::<32>()].concat());
    assert_eq!(storage_leaf_key(&address, &U256::from(5)), slot_key);
    changes.set_storage(address, U256::from(5), U256::from(9));
    changes.set_storage(address, U256::from(6), U256::ZERO);
    let updates = leaf_updates(&changes);
    assert_eq!(updates.len(), 3);
    assert!(updates.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(updates.contains(&(slot_key, Some(keccak256(U256::from(9).to_be_bytes::<32>())))));
    assert!(updates.contains(&(storage_leaf_key(&address, &U256::from(6)), None)));
}

/// Frozen: the root of the devnet genesis with two fixed allocations. If this changes, every
/// stored state root is invalidated.
#[test]
fn commitment_fixture_root() {
    let ex = Executor::new(params());
    let g = ex
        .genesis(&[
            (
                address!("1000000000000000000000000000000000000001"),
                btt(1_000_000),
            ),
            (
                address!("2000000000000000000000000000000000000002"),
                U256::from(1),
            ),
        ])
        .unwrap();
    let mut state = MemoryState::new();
    state.apply(&g);
    assert_eq!(
        state.state_root(),
        b256!("d770fd7f2a1c23e97b122f89d8b6e87750c0baa65440d7faa3c421da1200ac88")
    );
}
