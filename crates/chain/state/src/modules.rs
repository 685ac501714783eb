//! Native modules: chain logic written in Rust, reachable at reserved addresses with ordinary
//! ABI-encoded calls (so `cast call 0x…b77000 "totalSupply()"` works), executed inside revm.
//!
//! A module call runs as a precompile: revm has already moved the call's value and opened a
//! journal checkpoint, and every storage write, balance move and log a module makes goes through
//! revm's journal, so a revert (by the module or by any caller up the stack) undoes it exactly
//! like a contract's.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use alloy_primitives::{address, Address, Bytes, Log, LogData, B256, U256};
use alloy_sol_types::{SolCall, SolError, SolInterface};
use revm::context::Cfg;
use revm::context_interface::{Block, ContextTr, JournalTr};
use revm::handler::{EthPrecompiles, PrecompileProvider};
use revm::interpreter::{CallInputs, Gas, InstructionResult, InterpreterResult};
use revm::primitives::hardfork::SpecId;
use revm::primitives::AddressSet;

use crate::params::ChainParams;

/// The first system address; module `n` lives at `MODULE_BASE + n`.
pub const MODULE_BASE: Address = address!("0000000000000000000000000000000000b77000");

/// The bank module: total supply, burned fees and the fee pool.
pub const BANK_ADDRESS: Address = MODULE_BASE;

/// The address of module number `n` (0 bank, 1 staking, 2 governance, 3 channels, 4 storage,
/// 5 bridge).
pub fn module_address(n: u16) -> Address {
    let mut bytes = MODULE_BASE.0 .0;
    let low = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) + u32::from(n);
    bytes[16..].copy_from_slice(&low.to_be_bytes());
    Address::from(bytes)
}

/// Gas every module call pays before it runs.
pub const MODULE_CALL_GAS: u64 = 200;
/// Gas per storage read by a module (a cold `SLOAD`).
pub const MODULE_SLOAD_GAS: u64 = 2_100;
/// Gas per storage write by a module (a fresh `SSTORE`, whatever the old value).
pub const MODULE_SSTORE_GAS: u64 = 20_000;
/// Gas per balance read by a module (a cold `BALANCE`).
pub const MODULE_BALANCE_GAS: u64 = 2_600;
/// Gas per value transfer out of a module (a value-bearing `CALL`).
pub const MODULE_TRANSFER_GAS: u64 = 9_000;

/// The ABI of the native modules, generated with `sol!`; use it to encode calls and decode
/// answers (`IBank::totalSupplyCall {}.abi_encode()`).
#[allow(missing_docs)]
pub mod abi {
    alloy_sol_types::sol! {
        /// The bank module at `0x…b77000`.
        interface IBank {
            /// All BTT in existence (the sum of every balance), in wei.
            function totalSupply() external view returns (uint256);
            /// BTT destroyed so far (burned base fees), in wei.
            function burned() external view returns (uint256);
            /// Base fees collected in pool mode (the bank account's balance), in wei.
            function feePool() external view returns (uint256);
            /// The execution parameters; `feeMode` 0 = burn, 1 = pool.
            function chainParams() external view returns (
                uint64 chainId,
                uint64 gasLimit,
                uint64 initialBaseFee,
                uint64 minBaseFee,
                uint64 elasticityMultiplier,
                uint64 baseFeeChangeDenominator,
                uint8 feeMode
            );
        }
    }
}

/// One call into a module.
#[derive(Debug, Clone, Copy)]
pub struct ModuleCall<'a> {
    /// The immediate caller (an account or a contract).
    pub caller: Address,
    /// Value sent with the call, already credited to the module's account.
    pub value: U256,
    /// ABI calldata.
    pub input: &'a [u8],
    /// Whether the call is inside a `STATICCALL` (writes are refused).
    pub is_static: bool,
}

impl ModuleCall<'_> {
    /// The call's function selector as `0x` hex (`none` when the input is shorter), for the
    /// revert reason of a call no function matches.
    pub fn selector_hex(&self) -> String {
        self.input
            .get(..4)
            .map(alloy_primitives::hex::encode_prefixed)
            .unwrap_or_else(|| "none".to_owned())
    }
}

/// How a module call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleError {
    /// Revert with this revert data; the call's effects are undone, unused gas is returned.
    Revert(Bytes),
    /// The call ran out of gas; effects are undone and all its gas is consumed.
    OutOfGas,
    /// The state could not be read: the whole block execution stops with an error.
    Fatal(String),
}

impl ModuleError {
    /// A revert with a Solidity `Error(string)` reason, what `cast` and wallets decode.
    pub fn reason(reason: impl Into<String>) -> Self {
        Self::Revert(Bytes::from(
            alloy_sol_types::Revert {
                reason: reason.into(),
            }
            .abi_encode(),
        ))
    }
}

/// What a module may do during a call. Every method charges its gas first; all effects go
/// through revm's journal.
pub trait ModuleContext {
    /// The module's own address (its storage and balance live there).
    fn address(&self) -> Address;
    /// Gas left for this call.
    fn gas_left(&self) -> u64;
    /// The block's time in whole seconds since the Unix epoch (what `TIMESTAMP` gives).
    fn block_timestamp(&self) -> u64;
    /// The block's height (what `NUMBER` gives).
    fn block_number(&self) -> u64;
    /// The operator address of the block's proposer (`BlockEnv::proposer`). Set in system calls
    /// at the end of a block; [`Address::ZERO`] at genesis and inside transactions (the EVM's
    /// coinbase is the fee collector, not the proposer), so only end-of-block code may rely on
    /// it.
    fn block_proposer(&self) -> Address;
    /// Whether this is the chain's own call (genesis or the end of a block, see
    /// [`NativeModule::end_block`]) rather than a transaction's. Only system calls may
    /// [`mint`](Self::mint) or [`burn`](Self::burn).
    fn is_system(&self) -> bool;
    /// Charges `gas`; fails with [`ModuleError::OutOfGas`] when not enough is left.
    fn charge(&mut self, gas: u64) -> Result<(), ModuleError>;
    /// Reads one of the module's storage slots.
    fn sload(&mut self, slot: U256) -> Result<U256, ModuleError>;
    /// Writes one of the module's storage slots (refused in a static call).
    fn sstore(&mut self, slot: U256, value: U256) -> Result<(), ModuleError>;
    /// Reads a storage slot of another account (how one module reads another's state, e.g.
    /// governance reading stake). Read-only; charged like [`sload`](Self::sload).
    fn sload_at(&mut self, address: Address, slot: U256) -> Result<U256, ModuleError>;
    /// Any account's balance.
    fn balance(&mut self, address: Address) -> Result<U256, ModuleError>;
    /// Moves `amount` from the module's account to `to` (refused in a static call).
    fn transfer(&mut self, to: Address, amount: U256) -> Result<(), ModuleError>;
    /// Emits a log from the module's address (refused in a static call).
    fn emit(&mut self, topics: Vec<B256>, data: Bytes) -> Result<(), ModuleError>;
    /// Creates `amount` wei in the module's account; the total supply grows by as much.
    /// System calls only (emission).
    fn mint(&mut self, amount: U256) -> Result<(), ModuleError>;
    /// Destroys `amount` wei of the module's account; the total supply shrinks and the burned
    /// counter grows by as much. System calls only (slashing).
    fn burn(&mut self, amount: U256) -> Result<(), ModuleError>;
}

/// Chain logic at a reserved address.
pub trait NativeModule: Send + Sync + fmt::Debug {
    /// Where the module lives.
    fn address(&self) -> Address;
    /// A short name for errors and logs.
    fn name(&self) -> &'static str;
    /// Runs one call: `Ok(output)` returns ABI-encoded output to the caller.
    fn handle(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
    ) -> Result<Bytes, ModuleError>;

    /// Writes the module's initial state (a system call on the genesis state, after the
    /// allocations). The default writes nothing.
    fn genesis(&self, ctx: &mut dyn ModuleContext) -> Result<(), ModuleError> {
        let _ = ctx;
        Ok(())
    }

    /// Runs after the last transaction of every block, in module address order (a system call:
    /// no gas limit, may mint and burn). Its writes are part of the block's state; an error
    /// makes the block invalid. The default does nothing.
    fn end_block(&self, ctx: &mut dyn ModuleContext) -> Result<(), ModuleError> {
        let _ = ctx;
        Ok(())
    }
}

/// Bank storage slot holding the total supply.
pub const BANK_TOTAL_SUPPLY_SLOT: U256 = U256::ZERO;
/// Bank storage slot holding the total burned.
pub const BANK_BURNED_SLOT: U256 = U256::from_limbs([1, 0, 0, 0]);

/// The bank module (`0x…b77000`): read-only views over the supply bookkeeping, which the
/// executor maintains after every transaction (see [`crate::Executor`]). Its account balance is
/// the fee pool.
#[derive(Debug, Clone)]
pub struct Bank {
    params: ChainParams,
}

impl Bank {
    /// A bank answering `chainParams()` with `params`.
    pub fn new(params: ChainParams) -> Self {
        Self { params }
    }
}

impl NativeModule for Bank {
    fn address(&self) -> Address {
        BANK_ADDRESS
    }

    fn name(&self) -> &'static str {
        "bank"
    }

    fn handle(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
    ) -> Result<Bytes, ModuleError> {
        use abi::IBank;
        let decoded = IBank::IBankCalls::abi_decode(call.input).map_err(|_| {
            let selector = call.selector_hex();
            ModuleError::reason(format!(
                "bank: unknown function selector {selector} or bad arguments: see IBank for the interface"
            ))
        })?;
        if !call.value.is_zero() {
            return Err(ModuleError::reason(
                "bank: this function does not accept value: send 0",
            ));
        }
        let out = match decoded {
            IBank::IBankCalls::totalSupply(_) => {
                IBank::totalSupplyCall::abi_encode_returns(&ctx.sload(BANK_TOTAL_SUPPLY_SLOT)?)
            }
            IBank::IBankCalls::burned(_) => {
                IBank::burnedCall::abi_encode_returns(&ctx.sload(BANK_BURNED_SLOT)?)
            }
            IBank::IBankCalls::feePool(_) => {
                let me = ctx.address();
                IBank::feePoolCall::abi_encode_returns(&ctx.balance(me)?)
            }
            IBank::IBankCalls::chainParams(_) => {
                let p = &self.params;
                IBank::chainParamsCall::abi_encode_returns(&IBank::chainParamsReturn {
                    chainId: p.chain_id,
                    gasLimit: p.gas_limit,
                    initialBaseFee: p.initial_base_fee,
                    minBaseFee: p.min_base_fee,
                    elasticityMultiplier: p.elasticity_multiplier,
                    baseFeeChangeDenominator: p.base_fee_change_denominator,
                    feeMode: p.fee_mode.code(),
                })
            }
        };
        Ok(Bytes::from(out))
    }
}

/// The registered modules by address.
pub(crate) type ModuleMap = BTreeMap<Address, Arc<dyn NativeModule>>;

/// Ethereum's precompiles plus the native modules, as one revm precompile provider.
#[derive(Clone)]
pub(crate) struct ChainPrecompiles {
    eth: EthPrecompiles,
    modules: Arc<ModuleMap>,
    warm: AddressSet,
}

impl fmt::Debug for ChainPrecompiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainPrecompiles")
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ChainPrecompiles {
    pub(crate) fn new(spec: SpecId, modules: Arc<ModuleMap>) -> Self {
        let eth = EthPrecompiles::new(spec);
        let warm = Self::warm_set(&eth, &modules);
        Self { eth, modules, warm }
    }

    fn warm_set(eth: &EthPrecompiles, modules: &ModuleMap) -> AddressSet {
        let mut warm = eth.warm_addresses().clone();
        warm.extend(modules.keys().copied());
        warm
    }
}

impl<CTX> PrecompileProvider<CTX> for ChainPrecompiles
where
    CTX: ContextTr<Cfg: Cfg<Spec = SpecId>>,
{
    type Output = InterpreterResult;

    fn set_spec(&mut self, spec: SpecId) -> bool {
        let changed = <EthPrecompiles as PrecompileProvider<CTX>>::set_spec(&mut self.eth, spec);
        self.warm = Self::warm_set(&self.eth, &self.modules);
        changed
    }

    fn run(
        &mut self,
        context: &mut CTX,
        inputs: &CallInputs,
    ) -> Result<Option<Self::Output>, String> {
        let Some(module) = self.modules.get(&inputs.bytecode_address).cloned() else {
            return <EthPrecompiles as PrecompileProvider<CTX>>::run(
                &mut self.eth,
                context,
                inputs,
            );
        };
        let input = inputs.input.bytes(context);
        let mut gas = Gas::new(inputs.gas_limit);
        let result = if inputs.target_address != inputs.bytecode_address {
            // DELEGATECALL/CALLCODE would run the module against the caller's storage.
            Err(ModuleError::reason(format!(
                "{}: native modules cannot be delegate-called: CALL the module directly",
                module.name()
            )))
        } else if !gas.record_regular_cost(MODULE_CALL_GAS) {
            Err(ModuleError::OutOfGas)
        } else {
            let call = ModuleCall {
                caller: inputs.caller,
                value: inputs.value.get(),
                input: &input,
                is_static: inputs.is_static,
            };
            let mut ctx = JournalContext {
                ctx: context,
                address: inputs.target_address,
                gas: &mut gas,
                is_static: inputs.is_static,
                name: module.name(),
            };
            module.handle(&call, &mut ctx)
        };
        let (result, output) = match result {
            Ok(output) => (InstructionResult::Return, output),
            Err(ModuleError::Revert(data)) => (InstructionResult::Revert, data),
            Err(ModuleError::OutOfGas) => {
                gas.spend_all();
                (InstructionResult::PrecompileOOG, Bytes::new())
            }
            Err(ModuleError::Fatal(e)) => return Err(e),
        };
        Ok(Some(InterpreterResult::new(result, output, gas)))
    }

    fn warm_addresses(&self) -> &AddressSet {
        &self.warm
    }

    fn contains(&self, address: &Address) -> bool {
        self.warm.contains(address)
    }
}

/// [`ModuleContext`] over revm's context: every effect goes through the journal.
struct JournalContext<'a, CTX> {
    ctx: &'a mut CTX,
    address: Address,
    gas: &'a mut Gas,
    is_static: bool,
    name: &'static str,
}

impl<CTX: ContextTr> JournalContext<'_, CTX> {
    fn writable(&self) -> Result<(), ModuleError> {
        if self.is_static {
            return Err(ModuleError::reason(format!(
                "{}: state change in a static call: use a transaction",
                self.name
            )));
        }
        Ok(())
    }
}

fn fatal(e: impl fmt::Display) -> ModuleError {
    ModuleError::Fatal(e.to_string())
}

impl<CTX: ContextTr> ModuleContext for JournalContext<'_, CTX> {
    fn address(&self) -> Address {
        self.address
    }

    fn gas_left(&self) -> u64 {
        self.gas.remaining()
    }

    fn block_timestamp(&self) -> u64 {
        self.ctx.block().timestamp().saturating_to()
    }

    fn block_number(&self) -> u64 {
        self.ctx.block().number().saturating_to()
    }

    fn block_proposer(&self) -> Address {
        // revm's beneficiary is the fee collector; the proposer is not in its block env.
        Address::ZERO
    }

    fn is_system(&self) -> bool {
        false
    }

    fn charge(&mut self, gas: u64) -> Result<(), ModuleError> {
        if self.gas.record_regular_cost(gas) {
            Ok(())
        } else {
            Err(ModuleError::OutOfGas)
        }
    }

    fn sload(&mut self, slot: U256) -> Result<U256, ModuleError> {
        self.charge(MODULE_SLOAD_GAS)?;
        let journal = self.ctx.journal_mut();
        journal.load_account(self.address).map_err(fatal)?;
        Ok(journal.sload(self.address, slot).map_err(fatal)?.data)
    }

    fn sstore(&mut self, slot: U256, value: U256) -> Result<(), ModuleError> {
        self.writable()?;
        self.charge(MODULE_SSTORE_GAS)?;
        let journal = self.ctx.journal_mut();
        journal.touch_account(self.address);
        journal.sstore(self.address, slot, value).map_err(fatal)?;
        Ok(())
    }

    fn sload_at(&mut self, address: Address, slot: U256) -> Result<U256, ModuleError> {
        self.charge(MODULE_SLOAD_GAS)?;
        let journal = self.ctx.journal_mut();
        journal.load_account(address).map_err(fatal)?;
        Ok(journal.sload(address, slot).map_err(fatal)?.data)
    }

    fn balance(&mut self, address: Address) -> Result<U256, ModuleError> {
        self.charge(MODULE_BALANCE_GAS)?;
        let account = self
            .ctx
            .journal_mut()
            .load_account(address)
            .map_err(fatal)?;
        Ok(account.data.info.balance)
    }

    fn transfer(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        self.writable()?;
        self.charge(MODULE_TRANSFER_GAS)?;
        match self
            .ctx
            .journal_mut()
            .transfer(self.address, to, amount)
            .map_err(fatal)?
        {
            None => Ok(()),
            Some(e) => Err(ModuleError::reason(format!(
                "{}: transfer of {amount} wei to {to} failed: {e:?}",
                self.name
            ))),
        }
    }

    fn emit(&mut self, topics: Vec<B256>, data: Bytes) -> Result<(), ModuleError> {
        self.writable()?;
        let cost = 375u64
            .saturating_add(375u64.saturating_mul(topics.len() as u64))
            .saturating_add(8u64.saturating_mul(data.len() as u64));
        self.charge(cost)?;
        if topics.len() > 4 {
            return Err(ModuleError::reason(format!(
                "{}: a log has at most 4 topics",
                self.name
            )));
        }
        self.ctx.journal_mut().log(Log {
            address: self.address,
            data: LogData::new_unchecked(topics, data),
        });
        Ok(())
    }

    fn mint(&mut self, amount: U256) -> Result<(), ModuleError> {
        let _ = amount;
        Err(ModuleError::reason(format!(
            "{}: minting is only possible at the end of a block",
            self.name
        )))
    }

    fn burn(&mut self, amount: U256) -> Result<(), ModuleError> {
        let _ = amount;
        Err(ModuleError::reason(format!(
            "{}: burning is only possible at the end of a block",
            self.name
        )))
    }
}
