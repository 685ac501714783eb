//! Block execution with revm: proposed blocks ([`Executor::execute`]), block building
//! ([`Executor::build`]), `eth_call` ([`Executor::call`]) and `eth_estimateGas`
//! ([`Executor::estimate_gas`]).
//!
//! # Fees
//! A transaction pays `gas_used * effective_gas_price` plus its value. The proposer receives
//! `gas_used * (effective_gas_price - base_fee)`; the remaining `gas_used * base_fee` is burned
//! (total supply shrinks, [`FeeMode::Burn`]) or credited to the bank module's account
//! ([`FeeMode::Pool`]). After every transaction the executor compares the balances of every
//! account the transaction changed before and after, and lowers the bank's total supply (and
//! raises its burned counter) by the difference, so the total supply always equals the sum of all
//! balances, whatever destroyed the value.

use std::sync::Arc;

use alloy_primitives::{Address, Bytes, Log, TxKind, B256, U256};
use chain_types::{AdmissionError, Receipt, RecoveredTx, Transaction, TxType};
use revm::context::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::context::{BlockEnv as RevmBlockEnv, CfgEnv, Context, Evm, Journal, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::database_interface::Database;
use revm::handler::instructions::EthInstructions;
use revm::handler::EthFrame;
use revm::interpreter::interpreter::EthInterpreter;
use revm::primitives::hardfork::SpecId;
use revm::state::{AccountInfo, Bytecode, EvmState};
use revm::ExecuteEvm;

use crate::channels::Channels;
use crate::modules::{
    Bank, ChainPrecompiles, ModuleContext, ModuleError, ModuleMap, NativeModule, BANK_ADDRESS,
    BANK_BURNED_SLOT, BANK_TOTAL_SUPPLY_SLOT,
};
use crate::params::{ChainParams, FeeMode};
use crate::state::{Account, StateChanges, StateReader, StoreError, KECCAK_EMPTY};

/// The EVM rules: Prague (Cancun plus EIP-7623 calldata pricing and the BLS12-381
/// precompiles). Blob and set-code transactions never reach the executor (chain-types refuses
/// them), and the Prague system contracts (EIP-2935, EIP-4788, EIP-7002, EIP-7251) are not
/// deployed.
pub const SPEC: SpecId = SpecId::PRAGUE;

/// Code placed at every native module's account: a single `INVALID` opcode. It never runs (the
/// module answers first) but makes `EXTCODESIZE` non-zero, so Solidity's checks before a call
/// pass, and with the nonce of 1 the account is never empty under EIP-161.
pub const MODULE_ACCOUNT_CODE: [u8; 1] = [0xfe];

/// The environment of one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEnv {
    /// Height.
    pub number: u64,
    /// Block time in milliseconds since the Unix epoch; `TIMESTAMP` gives whole seconds.
    pub timestamp_ms: u64,
    /// Receives the priority fees (`COINBASE`).
    pub proposer: Address,
    /// The base fee per gas in wei (see [`crate::next_base_fee`]).
    pub base_fee: u64,
    /// Most gas the block's transactions may use together.
    pub gas_limit: u64,
}

/// The result of executing a block's transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// One receipt per transaction, in order.
    pub receipts: Vec<Receipt>,
    /// Gas used by all transactions (the last receipt's cumulative gas).
    pub gas_used: u64,
    /// Everything the block wrote.
    pub changes: StateChanges,
}

/// A block built from candidate transactions.
#[derive(Clone, Debug)]
pub struct BuiltBlock {
    /// The transactions included, in order.
    pub txs: Vec<RecoveredTx>,
    /// Their execution.
    pub executed: Executed,
    /// Candidates left out, with the reason (the [`TxInvalid`] text).
    pub rejected: Vec<(B256, String)>,
}

/// Why a transaction cannot be included in the block being executed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxInvalid {
    /// Nonce, balance or fee cap against the state.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The gas limit is more than the block has left.
    #[error("gas limit reached: transaction gas {gas}, block has {remaining} left: wait for the next block")]
    GasLimitReached {
        /// The transaction's gas limit.
        gas: u64,
        /// Gas left in the block.
        remaining: u64,
    },
    /// The EVM refused it before execution (for example the sender has code, EIP-3607).
    #[error("transaction refused by the evm: {0}")]
    Evm(String),
}

/// Why a block could not be executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// A transaction of a proposed block is not valid on its parent state: the block is invalid.
    #[error("block transaction {index} ({hash}) is invalid: {reason}")]
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// Transaction hash.
        hash: B256,
        /// What is wrong with it.
        reason: TxInvalid,
    },
    /// The state could not be read; the block's validity is unknown.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The EVM failed for a reason that is not the transaction's fault.
    #[error("evm failure: {0}: this is a bug in the node")]
    Internal(String),
    /// A module's end-of-block step failed: the block is invalid.
    #[error("end of block in module {module}: {reason}")]
    EndBlock {
        /// The module's name.
        module: &'static str,
        /// What failed.
        reason: String,
    },
}

/// Why a module could not write its genesis state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("genesis of module {module}: {reason}")]
pub struct GenesisError {
    /// The module's name.
    pub module: &'static str,
    /// What failed.
    pub reason: String,
}

/// A module error as text: the revert reason when there is one.
fn module_error_text(e: &ModuleError) -> String {
    match e {
        ModuleError::Revert(data) => alloy_sol_types::decode_revert_reason(data)
            .unwrap_or_else(|| format!("reverted with {data}")),
        ModuleError::OutOfGas => "out of gas".to_owned(),
        ModuleError::Fatal(e) => e.clone(),
    }
}

pub use chain_types::CallRequest;

/// A successful call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOutcome {
    /// Return data (the deployed code for a creation).
    pub output: Bytes,
    /// Gas used, as a transaction would be charged.
    pub gas_used: u64,
    /// Logs the call emitted.
    pub logs: Vec<Log>,
    /// The created contract, for a creation.
    pub created: Option<Address>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call reverted; `output` is the revert data (see [`CallError::revert_reason`]).
    #[error("execution reverted{}", revert_suffix(output))]
    Reverted {
        /// The revert data.
        output: Bytes,
    },
    /// The call halted (out of gas, invalid opcode, …).
    #[error("execution halted: {reason}")]
    Halted {
        /// What stopped it.
        reason: String,
    },
    /// Even the block gas limit (or the requested gas) is not enough.
    #[error("gas required exceeds allowance ({allowance})")]
    GasTooHigh {
        /// The largest gas limit tried.
        allowance: u64,
    },
    /// The request is not valid as a transaction (nonce, funds, fees).
    #[error("{0}")]
    Invalid(String),
    /// The state could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn revert_suffix(output: &Bytes) -> String {
    match alloy_sol_types::decode_revert_reason(output) {
        Some(reason) => format!(": {reason}"),
        None => String::new(),
    }
}

impl CallError {
    /// The decoded revert reason (`Error(string)`, `Panic(uint256)`, or readable text).
    pub fn revert_reason(&self) -> Option<String> {
        match self {
            Self::Reverted { output } => alloy_sol_types::decode_revert_reason(output),
            _ => None,
        }
    }
}

impl chain_types::RpcError for CallError {
    fn rpc_code(&self) -> i32 {
        match self {
            // geth answers a revert with code 3 and the revert data in `error.data`.
            Self::Reverted { .. } => 3,
            _ => chain_types::SERVER_ERROR,
        }
    }
}

/// The stateful checks a transaction must pass to enter the mempool: nonce not already used,
/// balance for the worst case `gas_limit * max_fee_per_gas + value`, fee cap at least
/// `base_fee`. Cheap: one account read.
pub fn check_admission(
    state: &impl StateReader,
    tx: &RecoveredTx,
    base_fee: u64,
) -> Result<(), CheckError> {
    let account = state.account(&tx.sender())?.unwrap_or_default();
    admission(&account, tx, base_fee, false).map_err(CheckError::Admission)
}

/// Why [`check_admission`] refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The transaction is refused.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The state could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn admission(
    account: &Account,
    tx: &RecoveredTx,
    base_fee: u64,
    exact_nonce: bool,
) -> Result<(), AdmissionError> {
    let env = tx.envelope();
    let address = tx.sender();
    if env.nonce() < account.nonce {
        return Err(AdmissionError::NonceTooLow {
            address,
            tx_nonce: env.nonce(),
            state_nonce: account.nonce,
        });
    }
    if exact_nonce && env.nonce() > account.nonce {
        return Err(AdmissionError::NonceTooHigh {
            address,
            tx_nonce: env.nonce(),
            state_nonce: account.nonce,
        });
    }
    if env.max_fee_per_gas() < u128::from(base_fee) {
        return Err(AdmissionError::FeeCapBelowBaseFee {
            max_fee_per_gas: env.max_fee_per_gas(),
            base_fee,
        });
    }
    let want = U256::from(env.gas_limit())
        .saturating_mul(U256::from(env.max_fee_per_gas()))
        .saturating_add(env.value());
    if account.balance < want {
        return Err(AdmissionError::InsufficientFunds {
            address,
            have: account.balance,
            want,
        });
    }
    Ok(())
}

/// The executor: stateless apart from its parameters and modules, so one instance serves every
/// block, call and estimate.
#[derive(Clone, Debug)]
pub struct Executor {
    params: ChainParams,
    modules: Arc<ModuleMap>,
    fee_collector: Option<Address>,
}

type ChainEvm<'a, R> = Evm<
    Context<RevmBlockEnv, TxEnv, CfgEnv, BlockDb<'a, R>, Journal<BlockDb<'a, R>>, ()>,
    (),
    EthInstructions<
        EthInterpreter,
        Context<RevmBlockEnv, TxEnv, CfgEnv, BlockDb<'a, R>, Journal<BlockDb<'a, R>>, ()>,
    >,
    ChainPrecompiles,
    EthFrame<EthInterpreter>,
>;

/// What one transaction did, before it is turned into a receipt.
struct TxOutcome {
    success: bool,
    gas_used: u64,
    logs: Vec<Log>,
}

enum TxFailure {
    Invalid(TxInvalid),
    Fatal(ExecError),
}

impl From<StoreError> for TxFailure {
    fn from(e: StoreError) -> Self {
        Self::Fatal(ExecError::Store(e))
    }
}

impl Executor {
    /// An executor with the bank and payment-channel modules.
    pub fn new(params: ChainParams) -> Self {
        let mut modules = ModuleMap::new();
        let bank: Arc<dyn NativeModule> = Arc::new(Bank::new(params.clone()));
        modules.insert(bank.address(), bank);
        let channels: Arc<dyn NativeModule> = Arc::new(Channels::new(params.chain_id));
        modules.insert(channels.address(), channels);
        Self {
            params,
            modules: Arc::new(modules),
            fee_collector: None,
        }
    }

    /// Sends every block's priority fees to `collector` (the staking module, which shares them
    /// among validators and delegators) instead of the block's proposer.
    pub fn with_fee_collector(mut self, collector: Address) -> Self {
        self.fee_collector = Some(collector);
        self
    }

    /// Adds (or replaces, at the same address) a native module.
    pub fn with_module(mut self, module: Arc<dyn NativeModule>) -> Self {
        Arc::make_mut(&mut self.modules).insert(module.address(), module);
        self
    }

    /// The parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The addresses of the registered modules.
    pub fn module_addresses(&self) -> impl Iterator<Item = Address> + '_ {
        self.modules.keys().copied()
    }

    /// The genesis state: the allocations (zero ones skipped, repeated addresses summed), every
    /// module's account (nonce 1, [`MODULE_ACCOUNT_CODE`]), the bank's total supply, and then
    /// every module's own [`NativeModule::genesis`], governance's (the parameters) first.
    pub fn genesis(&self, alloc: &[(Address, U256)]) -> Result<StateChanges, GenesisError> {
        let mut changes = StateChanges::new();
        let code_hash = changes.insert_code(Bytes::from_static(&MODULE_ACCOUNT_CODE));
        for address in self.modules.keys() {
            changes.set_account(
                *address,
                Account {
                    nonce: 1,
                    balance: U256::ZERO,
                    code_hash,
                },
            );
        }
        let mut supply = U256::ZERO;
        for (address, amount) in alloc {
            if amount.is_zero() {
                continue;
            }
            let mut account = match changes.account(address) {
                Some(Some(account)) => account.clone(),
                _ => Account::default(),
            };
            account.balance = account.balance.saturating_add(*amount);
            supply = supply.saturating_add(*amount);
            changes.set_account(*address, account);
        }
        changes.set_storage(BANK_ADDRESS, BANK_TOTAL_SUPPLY_SLOT, supply);
        let empty = crate::state::MemoryState::new();
        // Governance first: it stores the governed parameters, which the other modules read
        // when they write their genesis state (staking's first election, for one). The rest go
        // in address order.
        let mut order: Vec<&Arc<dyn NativeModule>> = self.modules.values().collect();
        order.sort_by_key(|m| m.address() != crate::governed::governance_address());
        for module in order {
            let mut ctx = SystemContext {
                reader: &empty,
                changes: &mut changes,
                address: module.address(),
                name: module.name(),
                number: 0,
                timestamp: 0,
                proposer: Address::ZERO,
            };
            module.genesis(&mut ctx).map_err(|e| GenesisError {
                module: module.name(),
                reason: module_error_text(&e),
            })?;
        }
        Ok(changes)
    }

    /// Runs every module's [`NativeModule::end_block`] on the block's writes so far.
    #[allow(clippy::result_large_err)]
    fn end_block<R: StateReader>(
        &self,
        reader: &R,
        changes: &mut StateChanges,
        env: &BlockEnv,
    ) -> Result<(), ExecError> {
        for module in self.modules.values() {
            let mut ctx = SystemContext {
                reader,
                changes: &mut *changes,
                address: module.address(),
                name: module.name(),
                number: env.number,
                timestamp: env.timestamp_ms / 1000,
                proposer: env.proposer,
            };
            module
                .end_block(&mut ctx)
                .map_err(|e| ExecError::EndBlock {
                    module: module.name(),
                    reason: module_error_text(&e),
                })?;
        }
        Ok(())
    }

    // The error is returned once per invalid block, so its size does not matter; keeping the
    // reason inline lets callers match on it directly.
    #[allow(clippy::result_large_err)]
    /// Executes a proposed block: every transaction must be valid in turn (nonce, funds, fee cap,
    /// remaining block gas), else the whole block is invalid.
    pub fn execute(
        &self,
        state: &impl StateReader,
        env: &BlockEnv,
        txs: &[RecoveredTx],
    ) -> Result<Executed, ExecError> {
        let mut evm = self.evm(state, env);
        let mut receipts = Vec::with_capacity(txs.len());
        let mut cumulative = 0u64;
        for (index, tx) in txs.iter().enumerate() {
            match self.run_tx(&mut evm, env, tx, cumulative) {
                Ok(outcome) => {
                    cumulative += outcome.gas_used;
                    receipts.push(receipt(tx, outcome, cumulative));
                }
                Err(TxFailure::Invalid(reason)) => {
                    return Err(ExecError::InvalidTx {
                        index,
                        hash: tx.hash(),
                        reason,
                    })
                }
                Err(TxFailure::Fatal(e)) => return Err(e),
            }
        }
        let mut changes = std::mem::take(&mut evm.ctx.journaled_state.database.changes);
        self.end_block(state, &mut changes, env)?;
        Ok(Executed {
            receipts,
            gas_used: cumulative,
            changes,
        })
    }

    /// Builds a block from `candidates` in the given (mempool) order, skipping those that are
    /// invalid now or do not fit in the gas left, and stopping once no transaction can fit
    /// (less than 21,000 gas left): candidates after that are neither included nor rejected.
    /// Fails only when the modules' end of block fails (the state could not be read, or a bug):
    /// no block can be built on this parent then.
    #[allow(clippy::result_large_err)]
    pub fn build(
        &self,
        state: &impl StateReader,
        env: &BlockEnv,
        candidates: impl IntoIterator<Item = RecoveredTx>,
    ) -> Result<BuiltBlock, ExecError> {
        let mut evm = self.evm(state, env);
        let mut included = Vec::new();
        let mut receipts = Vec::new();
        let mut rejected = Vec::new();
        let mut cumulative = 0u64;
        for tx in candidates {
            if env.gas_limit.saturating_sub(cumulative) < chain_types::TX_BASE_GAS {
                break;
            }
            match self.run_tx(&mut evm, env, &tx, cumulative) {
                Ok(outcome) => {
                    cumulative += outcome.gas_used;
                    receipts.push(receipt(&tx, outcome, cumulative));
                    included.push(tx);
                }
                Err(TxFailure::Invalid(reason)) => rejected.push((tx.hash(), reason.to_string())),
                // A failed read changed nothing: the transaction waits for a later block.
                Err(TxFailure::Fatal(e)) => rejected.push((tx.hash(), e.to_string())),
            }
        }
        let mut changes = std::mem::take(&mut evm.ctx.journaled_state.database.changes);
        self.end_block(state, &mut changes, env)?;
        Ok(BuiltBlock {
            txs: included,
            executed: Executed {
                receipts,
                gas_used: cumulative,
                changes,
            },
            rejected,
        })
    }

    /// Runs a call against `state` without keeping its effects (`eth_call`).
    pub fn call(
        &self,
        state: &impl StateReader,
        env: &BlockEnv,
        req: &CallRequest,
    ) -> Result<CallOutcome, CallError> {
        let gas = req.gas.unwrap_or(env.gas_limit).min(env.gas_limit);
        self.call_with_gas(state, env, req, gas)
    }

    /// The smallest gas limit with which the call succeeds (`eth_estimateGas`), by binary search
    /// between the gas the call uses and the requested gas (or the block gas limit). Fails like
    /// [`Executor::call`] when the call cannot succeed even with that much.
    pub fn estimate_gas(
        &self,
        state: &impl StateReader,
        env: &BlockEnv,
        req: &CallRequest,
    ) -> Result<u64, CallError> {
        let mut hi = req.gas.unwrap_or(env.gas_limit).min(env.gas_limit);
        let first = match self.call_with_gas(state, env, req, hi) {
            Ok(outcome) => outcome,
            Err(CallError::Halted { reason }) if reason.contains("OutOfGas") => {
                return Err(CallError::GasTooHigh { allowance: hi })
            }
            Err(e) => return Err(e),
        };
        if self.call_with_gas(state, env, req, first.gas_used).is_ok() {
            return Ok(first.gas_used);
        }
        // Fails at `lo`, succeeds at `hi`. Less than the gas used always fails: execution spent
        // at least that much before refunds.
        let mut lo = first.gas_used;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match self.call_with_gas(state, env, req, mid) {
                Ok(_) => hi = mid,
                Err(CallError::Store(e)) => return Err(CallError::Store(e)),
                Err(_) => lo = mid,
            }
        }
        Ok(hi)
    }

    fn call_with_gas(
        &self,
        state: &impl StateReader,
        env: &BlockEnv,
        req: &CallRequest,
        gas: u64,
    ) -> Result<CallOutcome, CallError> {
        let mut evm = self.evm(state, env);
        let cfg = &mut evm.ctx.cfg;
        // Like geth: calls may come from contracts, and skip the nonce check when none is given.
        cfg.disable_eip3607 = true;
        cfg.disable_nonce_check = req.nonce.is_none();
        let priced = req.gas_price.is_some()
            || req.max_fee_per_gas.is_some()
            || req.max_priority_fee_per_gas.is_some();
        // Unpriced calls pay nothing, whatever the base fee.
        cfg.disable_base_fee = !priced;
        let from = req.from.unwrap_or(Address::ZERO);
        let nonce = match req.nonce {
            Some(n) => n,
            None => evm
                .ctx
                .journaled_state
                .database
                .read_account(&from)?
                .map(|a| a.nonce)
                .unwrap_or(0),
        };
        let (tx_type, gas_price, gas_priority_fee) = match (req.gas_price, req.max_fee_per_gas) {
            (Some(price), None) if req.max_priority_fee_per_gas.is_none() => (0, price, None),
            _ if priced => {
                let max_fee = req.max_fee_per_gas.or(req.gas_price).unwrap_or(0);
                let tip = req.max_priority_fee_per_gas.unwrap_or(0).min(max_fee);
                (2, max_fee, Some(tip))
            }
            _ => (0, 0, None),
        };
        let access_list = req.access_list.clone().unwrap_or_default();
        // A legacy-priced call with an access list is an EIP-2930 transaction.
        let tx_type = if tx_type == 0 && !access_list.is_empty() {
            1
        } else {
            tx_type
        };
        let tx = TxEnv {
            tx_type,
            caller: from,
            gas_limit: gas,
            gas_price,
            kind: req.to.map_or(TxKind::Create, TxKind::Call),
            value: req.value.unwrap_or_default(),
            data: req.input.clone().unwrap_or_default(),
            nonce,
            chain_id: Some(self.params.chain_id),
            access_list,
            gas_priority_fee,
            blob_hashes: Vec::new(),
            max_fee_per_blob_gas: 0,
            authorization_list: Vec::new(),
        };
        let result = match evm.transact(tx) {
            Ok(r) => r.result,
            Err(EVMError::Database(e)) => return Err(CallError::Store(e)),
            Err(e) => return Err(CallError::Invalid(e.to_string())),
        };
        match result {
            ExecutionResult::Success {
                gas, logs, output, ..
            } => Ok(CallOutcome {
                created: output.address().copied(),
                output: output.into_data(),
                gas_used: gas.tx_gas_used(),
                logs,
            }),
            ExecutionResult::Revert { output, .. } => Err(CallError::Reverted { output }),
            ExecutionResult::Halt { reason, .. } => Err(CallError::Halted {
                reason: format!("{reason:?}"),
            }),
        }
    }

    fn evm<'a, R: StateReader>(&self, state: &'a R, env: &BlockEnv) -> ChainEvm<'a, R> {
        let mut cfg = CfgEnv::new_with_spec(SPEC);
        cfg.chain_id = self.params.chain_id;
        let block = RevmBlockEnv {
            number: U256::from(env.number),
            beneficiary: self.fee_collector.unwrap_or(env.proposer),
            timestamp: U256::from(env.timestamp_ms / 1000),
            gas_limit: env.gas_limit,
            basefee: env.base_fee,
            difficulty: U256::ZERO,
            // No randomness beacon: PREVRANDAO is zero.
            prevrandao: Some(B256::ZERO),
            blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new(
                0,
                revm::primitives::eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE,
            )),
            slot_num: 0,
        };
        let db = BlockDb {
            reader: state,
            changes: StateChanges::new(),
        };
        let ctx: Context<RevmBlockEnv, TxEnv, CfgEnv, BlockDb<'a, R>, Journal<BlockDb<'a, R>>, ()> =
            Context::<RevmBlockEnv, TxEnv, CfgEnv, BlockDb<'a, R>, Journal<BlockDb<'a, R>>, ()>::new(
                db, SPEC,
            )
            .with_cfg(cfg)
            .with_block(block);
        Evm::new(
            ctx,
            EthInstructions::new_mainnet_with_spec(SPEC),
            ChainPrecompiles::new(SPEC, self.modules.clone()),
        )
    }

    #[allow(clippy::result_large_err)]
    fn run_tx<R: StateReader>(
        &self,
        evm: &mut ChainEvm<'_, R>,
        env: &BlockEnv,
        tx: &RecoveredTx,
        cumulative: u64,
    ) -> Result<TxOutcome, TxFailure> {
        let envelope = tx.envelope();
        let remaining = env.gas_limit.saturating_sub(cumulative);
        if envelope.gas_limit() > remaining {
            return Err(TxFailure::Invalid(TxInvalid::GasLimitReached {
                gas: envelope.gas_limit(),
                remaining,
            }));
        }
        let db = &mut evm.ctx.journaled_state.database;
        let sender = db.read_account(&tx.sender())?.unwrap_or_default();
        admission(&sender, tx, env.base_fee, true)
            .map_err(|e| TxFailure::Invalid(TxInvalid::Admission(e)))?;

        let result = match evm.transact(tx_env(tx)) {
            Ok(r) => r,
            Err(EVMError::Database(e)) => return Err(e.into()),
            Err(EVMError::Transaction(e)) => return Err(TxFailure::Invalid(invalid(e))),
            Err(e) => return Err(TxFailure::Fatal(ExecError::Internal(e.to_string()))),
        };
        let gas_used = result.result.gas().tx_gas_used();
        let db = &mut evm.ctx.journaled_state.database;
        let (mut before, mut after) = db.commit(result.state)?;
        let base_fees = U256::from(gas_used) * U256::from(env.base_fee);
        if self.params.fee_mode == FeeMode::Pool && !base_fees.is_zero() {
            let mut bank = db.read_account(&BANK_ADDRESS)?.unwrap_or(Account {
                nonce: 1,
                ..Account::default()
            });
            before += bank.balance;
            bank.balance += base_fees;
            after += bank.balance;
            db.changes.set_account(BANK_ADDRESS, bank);
        }
        if before != after {
            let supply = db.read_storage(&BANK_ADDRESS, &BANK_TOTAL_SUPPLY_SLOT)?;
            let burned = db.read_storage(&BANK_ADDRESS, &BANK_BURNED_SLOT)?;
            let (supply, burned) = if before > after {
                let destroyed = before - after;
                (supply.saturating_sub(destroyed), burned + destroyed)
            } else {
                // Value cannot appear from nowhere in the EVM; kept exact all the same.
                (supply + (after - before), burned)
            };
            db.changes
                .set_storage(BANK_ADDRESS, BANK_TOTAL_SUPPLY_SLOT, supply);
            db.changes
                .set_storage(BANK_ADDRESS, BANK_BURNED_SLOT, burned);
        }
        let (success, logs) = match result.result {
            ExecutionResult::Success { logs, .. } => (true, logs),
            _ => (false, Vec::new()),
        };
        Ok(TxOutcome {
            success,
            gas_used,
            logs,
        })
    }
}

fn receipt(tx: &RecoveredTx, outcome: TxOutcome, cumulative: u64) -> Receipt {
    let tx_type = match tx.envelope().tx_type() {
        TxType::Eip2930 => TxType::Eip2930,
        TxType::Eip1559 => TxType::Eip1559,
        _ => TxType::Legacy,
    };
    Receipt::new(tx_type, outcome.success, cumulative, outcome.logs)
}

fn invalid(e: InvalidTransaction) -> TxInvalid {
    TxInvalid::Evm(e.to_string())
}

fn tx_env(tx: &RecoveredTx) -> TxEnv {
    let e = tx.envelope();
    TxEnv {
        tx_type: e.tx_type() as u8,
        caller: tx.sender(),
        gas_limit: e.gas_limit(),
        gas_price: e.max_fee_per_gas(),
        kind: e.kind(),
        value: e.value(),
        data: e.input().clone(),
        nonce: e.nonce(),
        chain_id: e.chain_id(),
        access_list: e.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: e.max_priority_fee_per_gas(),
        blob_hashes: Vec::new(),
        max_fee_per_blob_gas: 0,
        authorization_list: Vec::new(),
    }
}

/// revm's database during one block: the block's writes so far over the caller's reader.
struct BlockDb<'a, R> {
    reader: &'a R,
    changes: StateChanges,
}

impl<R: StateReader> BlockDb<'_, R> {
    fn read_account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        match self.changes.account(address) {
            Some(account) => Ok(account.cloned()),
            None => self.reader.account(address),
        }
    }

    fn read_storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError> {
        match self.changes.storage_slot(address, slot) {
            Some(value) => Ok(value),
            None => self.reader.storage(address, slot),
        }
    }

    /// Records one transaction's state; returns the sum of the changed accounts' balances
    /// before and after.
    fn commit(&mut self, state: EvmState) -> Result<(U256, U256), StoreError> {
        let mut before = U256::ZERO;
        let mut after = U256::ZERO;
        // Sorted so the work (and any error) does not depend on hash map order.
        let mut accounts: Vec<_> = state.into_iter().filter(|(_, a)| a.is_touched()).collect();
        accounts.sort_unstable_by_key(|(address, _)| *address);
        for (address, account) in accounts {
            let old = self.read_account(&address)?;
            before += old.as_ref().map(|a| a.balance).unwrap_or_default();
            if account.is_selfdestructed() || account.is_empty() {
                for (slot, value) in &account.storage {
                    if !value.original_value().is_zero() {
                        self.changes.set_storage(address, *slot, U256::ZERO);
                    }
                }
                if old.is_some() {
                    self.changes.delete_account(address);
                }
                continue;
            }
            let info = &account.info;
            if account.is_created() {
                if let Some(code) = &info.code {
                    if info.code_hash != KECCAK_EMPTY && !code.is_empty() {
                        self.changes.insert_code(code.original_bytes());
                    }
                }
            }
            let new = Account {
                nonce: info.nonce,
                balance: info.balance,
                code_hash: info.code_hash,
            };
            after += new.balance;
            if old.as_ref() != Some(&new) {
                self.changes.set_account(address, new);
            }
            for (slot, value) in &account.storage {
                if value.is_changed() {
                    self.changes
                        .set_storage(address, *slot, value.present_value());
                }
            }
        }
        Ok((before, after))
    }
}

impl<R: StateReader> Database for BlockDb<'_, R> {
    type Error = StoreError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, StoreError> {
        Ok(self.read_account(&address)?.map(|a| {
            let no_code = a.has_no_code();
            let mut info = AccountInfo::new(
                a.balance,
                a.nonce,
                if no_code { KECCAK_EMPTY } else { a.code_hash },
                Bytecode::default(),
            );
            if !no_code {
                // Loaded on demand through `code_by_hash`.
                info.code = None;
            }
            info
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StoreError> {
        if code_hash == KECCAK_EMPTY || code_hash == B256::ZERO {
            return Ok(Bytecode::default());
        }
        let code = match self.changes.code(&code_hash) {
            Some(code) => code.clone(),
            None => self
                .reader
                .code(&code_hash)?
                .ok_or_else(|| StoreError(format!("code {code_hash} is missing from the store")))?,
        };
        Ok(Bytecode::new_raw(code))
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, StoreError> {
        self.read_storage(&address, &index)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, StoreError> {
        Ok(self.reader.block_hash(number)?.unwrap_or_default())
    }
}

/// [`ModuleContext`] of a system call (genesis and the end of every block): reads the block's
/// writes so far over the reader, writes straight into the change set, charges no gas, may mint
/// and burn, and keeps the bank's supply counters exact. Logs are dropped (there is no receipt).
struct SystemContext<'a, R> {
    reader: &'a R,
    changes: &'a mut StateChanges,
    address: Address,
    name: &'static str,
    number: u64,
    timestamp: u64,
    /// The block's proposer ([`Address::ZERO`] at genesis).
    proposer: Address,
}

impl<R: StateReader> SystemContext<'_, R> {
    fn read_account(&self, address: &Address) -> Result<Option<Account>, ModuleError> {
        match self.changes.account(address) {
            Some(account) => Ok(account.cloned()),
            None => self.reader.account(address).map_err(store_fatal),
        }
    }

    fn read_storage(&self, address: &Address, slot: &U256) -> Result<U256, ModuleError> {
        match self.changes.storage_slot(address, slot) {
            Some(value) => Ok(value),
            None => self.reader.storage(address, slot).map_err(store_fatal),
        }
    }

    fn set_balance(&mut self, address: Address, balance: U256) -> Result<(), ModuleError> {
        let mut account = self.read_account(&address)?.unwrap_or_default();
        account.balance = balance;
        self.changes.set_account(address, account);
        Ok(())
    }

    /// Moves the bank's counters: `supply += minted - destroyed`, `burned += destroyed`.
    fn adjust_supply(&mut self, minted: U256, destroyed: U256) -> Result<(), ModuleError> {
        let supply = self.read_storage(&BANK_ADDRESS, &BANK_TOTAL_SUPPLY_SLOT)?;
        let supply = supply
            .checked_add(minted)
            .and_then(|s| s.checked_sub(destroyed))
            .ok_or_else(|| {
                ModuleError::Fatal(format!("{}: total supply out of range", self.name))
            })?;
        self.changes
            .set_storage(BANK_ADDRESS, BANK_TOTAL_SUPPLY_SLOT, supply);
        if !destroyed.is_zero() {
            let burned = self.read_storage(&BANK_ADDRESS, &BANK_BURNED_SLOT)?;
            self.changes.set_storage(
                BANK_ADDRESS,
                BANK_BURNED_SLOT,
                burned.saturating_add(destroyed),
            );
        }
        Ok(())
    }
}

fn store_fatal(e: StoreError) -> ModuleError {
    ModuleError::Fatal(e.to_string())
}

impl<R: StateReader> ModuleContext for SystemContext<'_, R> {
    fn address(&self) -> Address {
        self.address
    }

    fn gas_left(&self) -> u64 {
        u64::MAX
    }

    fn block_timestamp(&self) -> u64 {
        self.timestamp
    }

    fn block_number(&self) -> u64 {
        self.number
    }

    fn block_proposer(&self) -> Address {
        self.proposer
    }

    fn is_system(&self) -> bool {
        true
    }

    fn charge(&mut self, _gas: u64) -> Result<(), ModuleError> {
        Ok(())
    }

    fn sload(&mut self, slot: U256) -> Result<U256, ModuleError> {
        self.read_storage(&self.address, &slot)
    }

    fn sstore(&mut self, slot: U256, value: U256) -> Result<(), ModuleError> {
        self.changes.set_storage(self.address, slot, value);
        Ok(())
    }

    fn sload_at(&mut self, address: Address, slot: U256) -> Result<U256, ModuleError> {
        self.read_storage(&address, &slot)
    }

    fn balance(&mut self, address: Address) -> Result<U256, ModuleError> {
        Ok(self
            .read_account(&address)?
            .map(|a| a.balance)
            .unwrap_or_default())
    }

    fn transfer(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        if amount.is_zero() || to == self.address {
            return Ok(());
        }
        let from = self.balance(self.address)?;
        let left = from.checked_sub(amount).ok_or_else(|| {
            ModuleError::reason(format!(
                "{}: transfer of {amount} wei to {to} exceeds the module's {from} wei",
                self.name
            ))
        })?;
        let to_balance = self.balance(to)?;
        self.set_balance(self.address, left)?;
        self.set_balance(to, to_balance.saturating_add(amount))
    }

    fn emit(&mut self, _topics: Vec<B256>, _data: Bytes) -> Result<(), ModuleError> {
        Ok(())
    }

    fn mint(&mut self, amount: U256) -> Result<(), ModuleError> {
        if amount.is_zero() {
            return Ok(());
        }
        let balance = self.balance(self.address)?;
        self.set_balance(self.address, balance.saturating_add(amount))?;
        self.adjust_supply(amount, U256::ZERO)
    }

    fn burn(&mut self, amount: U256) -> Result<(), ModuleError> {
        if amount.is_zero() {
            return Ok(());
        }
        let balance = self.balance(self.address)?;
        let left = balance.checked_sub(amount).ok_or_else(|| {
            ModuleError::reason(format!(
                "{}: cannot burn {amount} wei of the module's {balance} wei",
                self.name
            ))
        })?;
        self.set_balance(self.address, left)?;
        self.adjust_supply(U256::ZERO, amount)
    }
}
