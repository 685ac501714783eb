//! Transactions: decode an `eth_sendRawTransaction` payload, validate it without state, recover
//! the sender.
//!
//! Accepted: legacy transactions signed with an EIP-155 chain id, EIP-2930 (type 1) and EIP-1559
//! (type 2). Refused: EIP-4844 blob transactions (type 3; this chain has no blob data market),
//! EIP-7702 (type 4; no delegated code), any other type byte, and by default pre-EIP-155 legacy
//! transactions, whose signature is valid on every chain and could be replayed here from any other
//! chain (and from here to any other).
//!
//! The checks in [`validate_tx`] need no account state, so the same transaction gets the same
//! answer in the RPC server, the mempool and on every validator. Nonce and balance checks live with
//! the state ([`crate::AdmissionError`]).

use std::num::NonZeroUsize;

use alloy_consensus::crypto::secp256k1::recover_signer_unchecked;
use alloy_consensus::crypto::SECP256K1N_HALF;
use alloy_consensus::transaction::RlpEcdsaDecodableTx;
use alloy_consensus::{Transaction, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::{Decodable2718, Eip2718Error, Encodable2718};
use alloy_primitives::{Address, B256};

use crate::parallel::par_map;
use crate::rpc::{RpcError, SERVER_ERROR};

/// geth's limit on one transaction's encoded size (`txMaxSize`, 4 × 32 KiB): bigger payloads are
/// refused before any decoding.
pub const MAX_TX_BYTES: usize = 128 * 1024;
/// EIP-3860: a contract-creation transaction's initcode may be at most twice the EIP-170 code limit.
pub const MAX_INITCODE_BYTES: usize = 2 * 24_576;
/// Gas every transaction pays before any data (the "21000").
pub const TX_BASE_GAS: u64 = 21_000;
/// Extra gas a contract-creation transaction pays (Homestead: 53000 in total).
pub const TX_CREATE_GAS: u64 = 32_000;
/// Gas per zero byte of calldata.
pub const CALLDATA_ZERO_BYTE_GAS: u64 = 4;
/// Gas per non-zero byte of calldata (EIP-2028).
pub const CALLDATA_NONZERO_BYTE_GAS: u64 = 16;
/// Gas per address in an EIP-2930 access list.
pub const ACCESS_LIST_ADDRESS_GAS: u64 = 2_400;
/// Gas per storage key in an EIP-2930 access list.
pub const ACCESS_LIST_STORAGE_KEY_GAS: u64 = 1_900;
/// EIP-3860: gas per 32-byte word of initcode.
pub const INITCODE_WORD_GAS: u64 = 2;
/// EIP-7623: floor gas per calldata token (a zero byte is one token, a non-zero byte four).
pub const FLOOR_GAS_PER_TOKEN: u64 = 10;

/// The chain-wide rules a transaction is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRules {
    /// Our EIP-155 chain id; every transaction must be signed for it.
    pub chain_id: u64,
    /// Largest accepted encoded transaction, in bytes.
    pub max_tx_bytes: usize,
    /// A transaction may not ask for more gas than one block holds.
    pub block_gas_limit: u64,
    /// Accept legacy transactions signed without a chain id (`v` = 27/28). Off by default: such
    /// a signature is valid on every chain, so it can be replayed across chains.
    pub allow_unprotected_legacy: bool,
    /// Enforce the EIP-7623 calldata floor (Prague). Must match the executor's EVM revision, or a
    /// transaction accepted here would fail in execution.
    pub calldata_floor: bool,
}

impl TxRules {
    /// The default rules for `chain_id` with blocks of `block_gas_limit` gas: [`MAX_TX_BYTES`],
    /// EIP-155 required, EIP-7623 floor on.
    pub const fn new(chain_id: u64, block_gas_limit: u64) -> Self {
        Self {
            chain_id,
            max_tx_bytes: MAX_TX_BYTES,
            block_gas_limit,
            allow_unprotected_legacy: false,
            calldata_floor: true,
        }
    }
}

/// Why a transaction was refused before touching any state. Messages start with geth's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The payload is larger than [`TxRules::max_tx_bytes`].
    #[error("oversized data: transaction size {size}, limit {limit}")]
    Oversized {
        /// Encoded size of the transaction.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The bytes are not a well-formed signed transaction.
    #[error("rlp: {0:?}: the bytes are not a valid signed transaction")]
    Malformed(alloy_rlp::Error),
    /// An EIP-2718 type this chain does not accept (blob, set-code or unknown types).
    #[error("transaction type not supported: type {0}; send a legacy (EIP-155), type 1 or type 2 transaction")]
    TypeNotSupported(u8),
    /// A legacy transaction signed without a chain id.
    #[error(
        "only replay-protected (EIP-155) transactions allowed over RPC: sign with chain id {0}"
    )]
    Unprotected(u64),
    /// Signed for another chain.
    #[error("invalid chain id for signer: have {have} want {want}")]
    WrongChainId {
        /// The chain id in the transaction.
        have: u64,
        /// Our chain id.
        want: u64,
    },
    /// The signature's `s` is in the upper half of the curve order (EIP-2 malleability).
    #[error(
        "invalid transaction v, r, s values: s is in the upper half of the curve order (EIP-2)"
    )]
    HighS,
    /// No public key recovers from the signature.
    #[error("invalid sender: the signature does not recover to a public key")]
    InvalidSender,
    /// The gas limit is below the intrinsic cost of the transaction.
    #[error("intrinsic gas too low: gas {gas}, minimum needed {needed}")]
    IntrinsicGasTooLow {
        /// The transaction's gas limit.
        gas: u64,
        /// Its intrinsic gas.
        needed: u64,
    },
    /// The gas limit is below the EIP-7623 calldata floor.
    #[error("insufficient gas for floor data gas cost: gas {gas}, minimum needed {needed}")]
    FloorDataGas {
        /// The transaction's gas limit.
        gas: u64,
        /// The calldata floor.
        needed: u64,
    },
    /// The gas limit is above what one block can hold.
    #[error("exceeds block gas limit: gas {gas}, block gas limit {limit}")]
    ExceedsBlockGasLimit {
        /// The transaction's gas limit.
        gas: u64,
        /// The block gas limit.
        limit: u64,
    },
    /// An EIP-1559 transaction offers a tip larger than its fee cap.
    #[error("max priority fee per gas higher than max fee per gas: maxPriorityFeePerGas: {max_priority_fee_per_gas}, maxFeePerGas: {max_fee_per_gas}")]
    TipAboveFeeCap {
        /// The tip cap.
        max_priority_fee_per_gas: u128,
        /// The fee cap.
        max_fee_per_gas: u128,
    },
    /// A contract creation whose initcode exceeds [`MAX_INITCODE_BYTES`] (EIP-3860).
    #[error("max initcode size exceeded: code size {size}, limit {limit}")]
    InitcodeTooLarge {
        /// Initcode length.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl RpcError for TxError {
    fn rpc_code(&self) -> i32 {
        // geth answers every rejection of a raw transaction with the generic server error.
        SERVER_ERROR
    }
}

/// A decoded transaction that passed [`validate_tx`], with its sender recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredTx {
    envelope: TxEnvelope,
    sender: Address,
    hash: B256,
    encoded_len: usize,
}

impl RecoveredTx {
    /// The signed transaction.
    pub const fn envelope(&self) -> &TxEnvelope {
        &self.envelope
    }

    /// The address that signed it.
    pub const fn sender(&self) -> Address {
        self.sender
    }

    /// The transaction hash: keccak256 of the EIP-2718 encoding.
    pub const fn hash(&self) -> B256 {
        self.hash
    }

    /// Length of the EIP-2718 encoding in bytes (what block size limits count).
    pub const fn encoded_len(&self) -> usize {
        self.encoded_len
    }

    /// The signed transaction, dropping the cached fields.
    pub fn into_envelope(self) -> TxEnvelope {
        self.envelope
    }
}

/// Decodes an EIP-2718 payload (what `eth_sendRawTransaction` carries) and runs [`validate_tx`].
/// Does not recover the sender; see [`decode_and_recover`].
pub fn decode_tx(raw: &[u8], rules: &TxRules) -> Result<TxEnvelope, TxError> {
    if raw.len() > rules.max_tx_bytes {
        return Err(TxError::Oversized {
            size: raw.len(),
            limit: rules.max_tx_bytes,
        });
    }
    let envelope = decode_envelope(raw)?;
    validate_tx(&envelope, rules)?;
    Ok(envelope)
}

/// Decodes exactly one EIP-2718 transaction of a type we accept (legacy, 1, 2), refusing other
/// types from the type byte before their body is decoded. No size limit and no validation: for
/// bytes this node stored itself; use [`decode_tx`] for anything received.
pub fn decode_envelope(raw: &[u8]) -> Result<TxEnvelope, TxError> {
    match raw.first() {
        None => Err(TxError::Malformed(alloy_rlp::Error::InputTooShort)),
        // A legacy transaction is a bare RLP list. Decoded directly rather than through the
        // envelope, whose untagged fallback reports every failure as "type 0".
        Some(0xc0..) => {
            let mut buf = raw;
            let signed = TxLegacy::rlp_decode_signed(&mut buf).map_err(TxError::Malformed)?;
            if !buf.is_empty() {
                return Err(TxError::Malformed(alloy_rlp::Error::UnexpectedLength));
            }
            Ok(TxEnvelope::Legacy(signed))
        }
        // An RLP string: neither a type byte nor a legacy transaction.
        Some(0x80..) => Err(TxError::Malformed(alloy_rlp::Error::UnexpectedString)),
        Some(1 | 2) => TxEnvelope::decode_2718_exact(raw).map_err(|e| match e {
            Eip2718Error::UnexpectedType(ty) => TxError::TypeNotSupported(ty),
            Eip2718Error::RlpError(e) => TxError::Malformed(e),
            _ => TxError::Malformed(alloy_rlp::Error::Custom("unknown decoding error")),
        }),
        Some(&ty) => Err(TxError::TypeNotSupported(ty)),
    }
}

/// Stateless checks, in geth's order: type, chain id, initcode size, block gas limit, fee caps,
/// signature `s`, intrinsic gas, calldata floor. The sender is not recovered here.
pub fn validate_tx(tx: &TxEnvelope, rules: &TxRules) -> Result<(), TxError> {
    match tx {
        TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_) => {}
        TxEnvelope::Eip4844(_) => return Err(TxError::TypeNotSupported(3)),
        TxEnvelope::Eip7702(_) => return Err(TxError::TypeNotSupported(4)),
    }
    match tx.chain_id() {
        None if !rules.allow_unprotected_legacy => {
            return Err(TxError::Unprotected(rules.chain_id))
        }
        Some(have) if have != rules.chain_id => {
            return Err(TxError::WrongChainId {
                have,
                want: rules.chain_id,
            })
        }
        _ => {}
    }
    if tx.is_create() && tx.input().len() > MAX_INITCODE_BYTES {
        return Err(TxError::InitcodeTooLarge {
            size: tx.input().len(),
            limit: MAX_INITCODE_BYTES,
        });
    }
    let gas = tx.gas_limit();
    if gas > rules.block_gas_limit {
        return Err(TxError::ExceedsBlockGasLimit {
            gas,
            limit: rules.block_gas_limit,
        });
    }
    if let Some(tip) = tx.max_priority_fee_per_gas() {
        if tip > tx.max_fee_per_gas() {
            return Err(TxError::TipAboveFeeCap {
                max_priority_fee_per_gas: tip,
                max_fee_per_gas: tx.max_fee_per_gas(),
            });
        }
    }
    if tx.signature().s() > SECP256K1N_HALF {
        return Err(TxError::HighS);
    }
    let needed = intrinsic_gas(tx);
    if gas < needed {
        return Err(TxError::IntrinsicGasTooLow { gas, needed });
    }
    if rules.calldata_floor {
        let needed = floor_data_gas(tx);
        if gas < needed {
            return Err(TxError::FloorDataGas { gas, needed });
        }
    }
    Ok(())
}

/// Intrinsic gas: 21000, +32000 and 2 per initcode word for a creation (EIP-2, EIP-3860), 4 per
/// zero and 16 per non-zero calldata byte (EIP-2028), 2400 per access-list address and 1900 per
/// storage key (EIP-2930). Saturates instead of overflowing (only reachable far above any limit).
pub fn intrinsic_gas(tx: &TxEnvelope) -> u64 {
    let input = tx.input();
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    let nonzeros = input.len() as u64 - zeros;
    let mut gas = TX_BASE_GAS
        .saturating_add(zeros.saturating_mul(CALLDATA_ZERO_BYTE_GAS))
        .saturating_add(nonzeros.saturating_mul(CALLDATA_NONZERO_BYTE_GAS));
    if tx.is_create() {
        let words = (input.len() as u64).div_ceil(32);
        gas = gas
            .saturating_add(TX_CREATE_GAS)
            .saturating_add(words.saturating_mul(INITCODE_WORD_GAS));
    }
    if let Some(list) = tx.access_list() {
        for item in list.iter() {
            gas = gas.saturating_add(ACCESS_LIST_ADDRESS_GAS).saturating_add(
                (item.storage_keys.len() as u64).saturating_mul(ACCESS_LIST_STORAGE_KEY_GAS),
            );
        }
    }
    gas
}

/// EIP-7623 floor: 21000 + 10 per calldata token, where a zero byte is one token and a non-zero
/// byte four. A transaction's gas limit must cover both this and [`intrinsic_gas`].
pub fn floor_data_gas(tx: &TxEnvelope) -> u64 {
    let input = tx.input();
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    let tokens = zeros + 4 * (input.len() as u64 - zeros);
    TX_BASE_GAS.saturating_add(tokens.saturating_mul(FLOOR_GAS_PER_TOKEN))
}

/// Recovers the signer of `tx` with libsecp256k1. Does not check `s` (see [`validate_tx`]).
pub fn recover_sender(tx: &TxEnvelope) -> Result<Address, TxError> {
    recover_signer_unchecked(tx.signature(), tx.signature_hash())
        .map_err(|_| TxError::InvalidSender)
}

/// [`decode_tx`], then recovers the sender.
pub fn decode_and_recover(raw: &[u8], rules: &TxRules) -> Result<RecoveredTx, TxError> {
    let envelope = decode_tx(raw, rules)?;
    let sender = recover_sender(&envelope)?;
    Ok(RecoveredTx {
        hash: *envelope.tx_hash(),
        envelope,
        sender,
        encoded_len: raw.len(),
    })
}

/// Validates an already decoded transaction (for example one taken from a block) and recovers its
/// sender.
pub fn recover_tx(envelope: TxEnvelope, rules: &TxRules) -> Result<RecoveredTx, TxError> {
    recover_tx_cached(envelope, rules, |_| None)
}

/// [`recover_tx`] that first asks `known` for the sender by transaction hash and recovers only
/// when it has none. The hash covers the signature, so a sender recovered earlier from a
/// transaction with the same hash (by the mempool, say) is this transaction's sender; the
/// stateless checks run either way.
pub fn recover_tx_cached(
    envelope: TxEnvelope,
    rules: &TxRules,
    known: impl Fn(&B256) -> Option<Address>,
) -> Result<RecoveredTx, TxError> {
    validate_tx(&envelope, rules)?;
    let sender = match known(envelope.tx_hash()) {
        Some(sender) => sender,
        None => recover_sender(&envelope)?,
    };
    Ok(RecoveredTx {
        hash: *envelope.tx_hash(),
        encoded_len: envelope.encode_2718_len(),
        envelope,
        sender,
    })
}

/// [`decode_and_recover`] over many payloads on up to `threads` threads; results are in input
/// order. Small batches run on the calling thread.
pub fn decode_and_recover_batch<R>(
    raws: &[R],
    rules: &TxRules,
    threads: NonZeroUsize,
) -> Vec<Result<RecoveredTx, TxError>>
where
    R: AsRef<[u8]> + Sync,
{
    par_map(raws, threads, |raw| decode_and_recover(raw.as_ref(), rules))
}

/// [`recover_sender`] over many transactions on up to `threads` threads; results are in input
/// order.
pub fn recover_senders(txs: &[TxEnvelope], threads: NonZeroUsize) -> Vec<Result<Address, TxError>> {
    par_map(txs, threads, recover_sender)
}
