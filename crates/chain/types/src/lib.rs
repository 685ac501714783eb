//! Chain data types: validated Ethereum-compatible transactions, blocks, receipts and BTT amounts.
//!
//! # Layout
//! - Transactions ([`decode_tx`], [`validate_tx`], [`decode_and_recover`],
//!   [`decode_and_recover_batch`]): an `eth_sendRawTransaction` payload becomes an alloy
//!   [`TxEnvelope`] (legacy with EIP-155, EIP-2930, EIP-1559; blob and EIP-7702 transactions are
//!   refused), is checked without state (chain id, EIP-2 low `s`, intrinsic gas, fee caps, sizes),
//!   and its sender is recovered with libsecp256k1 into a [`RecoveredTx`]. Batches recover on
//!   several threads.
//! - Blocks ([`Header`], [`Block`]): our own header with a canonical RLP encoding whose keccak256
//!   is the block hash; Ethereum-style ordered trie roots over transactions and receipts, checked
//!   by [`Block::verify_roots`] and [`Block::verify_receipts`].
//! - Receipts ([`Receipt`]): Ethereum's typed receipt encoding with an EIP-658 status and a bloom.
//! - Amounts ([`Wei`]): 18-decimal BTT in integer base units, parsed from and formatted to exact
//!   decimal text.
//! - Errors: one enum per module ([`TxError`], [`AdmissionError`], [`BlockError`],
//!   [`ReceiptError`], [`AmountError`]); messages start with go-ethereum's wording, and
//!   [`RpcError::rpc_code`] gives the JSON-RPC code the node answers with.
//!
//! This crate does no I/O: no sockets, files, clocks or async runtime. Parallel recovery uses
//! scoped std threads, and the caller chooses how many.
//!
//! # Dependencies
//! alloy (`alloy-consensus`, `alloy-eips`, `alloy-primitives`, `alloy-rlp`) provides the
//! Ethereum types and codecs every wallet and tool agrees with; its `secp256k1` feature selects
//! libsecp256k1, about 8× faster than the pure-Rust `k256` at recovering senders (≈41 µs against
//! ≈340 µs per signature on the 2-core CI machine; see the `recovery_speed` test), and recovery is
//! the main per-transaction CPU cost at mempool admission.
//!
//! ```
//! use chain_types::{decode_and_recover, TxRules, Wei};
//!
//! // The signed transaction from the EIP-155 specification (chain id 1).
//! let raw = alloy_primitives::hex!("f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83");
//! let tx = decode_and_recover(&raw, &TxRules::new(1, 30_000_000)).unwrap();
//! assert_eq!(tx.sender().to_string(), "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F");
//!
//! // The transaction is for chain 1; on another chain it is refused with geth's message.
//! let err = decode_and_recover(&raw, &TxRules::new(7, 30_000_000)).unwrap_err();
//! assert_eq!(err.to_string(), "invalid chain id for signer: have 1 want 7");
//!
//! use alloy_consensus::Transaction;
//! assert_eq!(Wei(tx.envelope().value()).to_btt_string(), "1");
//! assert_eq!(Wei::parse_btt("1.5").unwrap().to_btt_string(), "1.5");
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod admission;
mod amount;
mod block;
mod call;
mod parallel;
mod receipt;
mod rpc;
mod tx;

#[cfg(test)]
mod tests;

pub use admission::AdmissionError;
pub use amount::{AmountError, Wei, DECIMALS, WEI_PER_BTT};
pub use block::{transactions_root, Block, BlockError, Header, MAX_EXTRA_DATA_BYTES};
pub use call::CallRequest;
pub use receipt::{logs_bloom, receipts_root, Receipt, ReceiptError};
pub use rpc::{RpcError, INVALID_PARAMS, SERVER_ERROR};
pub use tx::{
    decode_and_recover, decode_and_recover_batch, decode_envelope, decode_tx, floor_data_gas,
    intrinsic_gas, recover_sender, recover_senders, recover_tx, recover_tx_cached, validate_tx,
    RecoveredTx, TxError, TxRules, ACCESS_LIST_ADDRESS_GAS, ACCESS_LIST_STORAGE_KEY_GAS,
    CALLDATA_NONZERO_BYTE_GAS, CALLDATA_ZERO_BYTE_GAS, FLOOR_GAS_PER_TOKEN, INITCODE_WORD_GAS,
    MAX_INITCODE_BYTES, MAX_TX_BYTES, TX_BASE_GAS, TX_CREATE_GAS,
};

/// The alloy types in this crate's API, re-exported so callers use the exact same versions.
pub use alloy_consensus::{Transaction, TxEnvelope, TxType};
pub use alloy_eips::eip2718::Encodable2718;
pub use alloy_primitives::{Address, Bloom, Bytes, Log, B256, U256};
