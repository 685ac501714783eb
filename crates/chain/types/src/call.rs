//! A call or gas estimate against the state, as `eth_call` and `eth_estimateGas` describe it.

use alloy_eips::eip2930::AccessList;
use alloy_primitives::{Address, Bytes, U256};

/// An `eth_call` / `eth_estimateGas` request. Every field is optional; the executor fills
/// geth's defaults (zero sender, block gas limit, zero fees and value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallRequest {
    /// Sender; the zero address when unset.
    pub from: Option<Address>,
    /// Callee; unset means contract creation with `input` as its init code.
    pub to: Option<Address>,
    /// Gas limit; the block gas limit when unset (and capped to it).
    pub gas: Option<u64>,
    /// Legacy gas price, in wei.
    pub gas_price: Option<u128>,
    /// EIP-1559 fee cap, in wei.
    pub max_fee_per_gas: Option<u128>,
    /// EIP-1559 tip cap, in wei.
    pub max_priority_fee_per_gas: Option<u128>,
    /// Value in wei; zero when unset.
    pub value: Option<U256>,
    /// Calldata or init code.
    pub input: Option<Bytes>,
    /// Checked against the sender's nonce when set; ignored when unset.
    pub nonce: Option<u64>,
    /// EIP-2930 access list (it changes the gas a call needs).
    pub access_list: Option<AccessList>,
}
