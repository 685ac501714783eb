//! Rejections that need account or pool state. The state and mempool crates produce them; they
//! live here so every layer reports the same geth-compatible text.

use alloy_primitives::{Address, U256};

use crate::rpc::{RpcError, SERVER_ERROR};

/// Why a valid transaction cannot enter the pool or a block right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The sender already used this nonce.
    #[error("nonce too low: address {address}, tx: {tx_nonce} state: {state_nonce}")]
    NonceTooLow {
        /// The sender.
        address: Address,
        /// The transaction's nonce.
        tx_nonce: u64,
        /// The sender's next nonce in state.
        state_nonce: u64,
    },
    /// The nonce leaves a gap larger than the pool keeps for one sender.
    #[error("nonce too high: address {address}, tx: {tx_nonce} state: {state_nonce}")]
    NonceTooHigh {
        /// The sender.
        address: Address,
        /// The transaction's nonce.
        tx_nonce: u64,
        /// The sender's next nonce in state.
        state_nonce: u64,
    },
    /// The balance does not cover `gas_limit * max_fee + value`.
    #[error(
        "insufficient funds for gas * price + value: address {address} have {have} want {want}"
    )]
    InsufficientFunds {
        /// The sender.
        address: Address,
        /// The sender's balance in wei.
        have: U256,
        /// The worst-case cost in wei.
        want: U256,
    },
    /// The fee cap is below the current base fee.
    #[error("max fee per gas less than block base fee: maxFeePerGas: {max_fee_per_gas}, baseFee: {base_fee}")]
    FeeCapBelowBaseFee {
        /// The transaction's fee cap.
        max_fee_per_gas: u128,
        /// The current base fee.
        base_fee: u64,
    },
    /// The tip is below the pool's minimum.
    #[error("transaction underpriced: tip {tip} is below the minimum {minimum}")]
    Underpriced {
        /// The offered tip per gas.
        tip: u128,
        /// The pool's minimum tip per gas.
        minimum: u128,
    },
    /// A replacement for a pending transaction does not raise the fees enough.
    #[error(
        "replacement transaction underpriced: raise both fee caps by at least {bump_percent}%"
    )]
    ReplacementUnderpriced {
        /// The required fee increase in percent.
        bump_percent: u32,
    },
    /// The pool already holds this transaction.
    #[error("already known")]
    AlreadyKnown,
    /// The pool is full and the transaction does not pay enough to evict another.
    #[error("txpool is full: retry later or pay a higher fee")]
    PoolFull,
}

impl RpcError for AdmissionError {
    fn rpc_code(&self) -> i32 {
        SERVER_ERROR
    }
}
