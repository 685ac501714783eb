//! Receipts and logs, encoded exactly like Ethereum's (EIP-2718 typed receipts with an EIP-658
//! status and a 2048-bit logs bloom), so `eth_getTransactionReceipt` can be served with alloy's
//! RPC types and receipt roots match what Ethereum tooling computes.

use alloy_consensus::{Eip658Value, ReceiptEnvelope, ReceiptWithBloom, TxReceipt, TxType};
use alloy_eips::eip2718::{Decodable2718, Eip2718Error, Encodable2718};
use alloy_primitives::{Bloom, Log, B256};

use crate::rpc::{RpcError, SERVER_ERROR};

/// Why stored or received receipt bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The bytes are not an EIP-2718 receipt.
    #[error("receipt rlp: {0:?}: the bytes are not a valid receipt")]
    Malformed(alloy_rlp::Error),
    /// A receipt for a transaction type this chain never executes.
    #[error("receipt type {0} not supported: only legacy, type 1 and type 2 receipts exist here")]
    TypeNotSupported(u8),
    /// A pre-Byzantium receipt with a state root instead of a status.
    #[error("receipt has a post-state root instead of an EIP-658 status")]
    PostState,
    /// The encoded bloom does not match the logs.
    #[error("receipt bloom does not match its logs: the receipt is corrupt")]
    BloomMismatch,
}

impl RpcError for ReceiptError {
    fn rpc_code(&self) -> i32 {
        SERVER_ERROR
    }
}

/// The outcome of one executed transaction.
///
/// Invariants: the status is an EIP-658 success flag and the bloom is the bloom of the logs
/// (computed once in [`Receipt::new`], checked in [`Receipt::decode_2718`]). Decoding also refuses
/// blob and set-code receipt types, which this chain never executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt(ReceiptEnvelope);

impl Receipt {
    /// A receipt for a transaction of `tx_type`. `cumulative_gas_used` counts this transaction and
    /// every earlier one in the block.
    pub fn new(tx_type: TxType, success: bool, cumulative_gas_used: u64, logs: Vec<Log>) -> Self {
        let receipt = alloy_consensus::Receipt {
            status: Eip658Value::Eip658(success),
            cumulative_gas_used,
            logs,
        };
        Self(ReceiptEnvelope::from_typed(
            tx_type,
            ReceiptWithBloom::from(receipt),
        ))
    }

    /// The type of the transaction this receipt belongs to.
    pub fn tx_type(&self) -> TxType {
        self.0.tx_type()
    }

    /// Whether the transaction succeeded (EIP-658 status 1).
    pub fn success(&self) -> bool {
        self.0.status()
    }

    /// Gas used by this transaction and every earlier one in the block.
    pub fn cumulative_gas_used(&self) -> u64 {
        self.0.cumulative_gas_used()
    }

    /// Logs in emission order.
    pub fn logs(&self) -> &[Log] {
        self.0.logs()
    }

    /// The 2048-bit bloom of the log addresses and topics.
    pub fn bloom(&self) -> Bloom {
        self.0.bloom()
    }

    /// The alloy envelope (for building RPC receipts).
    pub const fn as_envelope(&self) -> &ReceiptEnvelope {
        &self.0
    }

    /// Appends the EIP-2718 encoding (type byte, then the RLP of status, gas, bloom and logs).
    pub fn encode_2718(&self, out: &mut Vec<u8>) {
        self.0.encode_2718(out);
    }

    /// The EIP-2718 encoding as a new buffer.
    pub fn encoded_2718(&self) -> Vec<u8> {
        self.0.encoded_2718()
    }

    /// Decodes an EIP-2718 receipt, refusing unsupported types, post-state receipts and a bloom
    /// that does not match the logs.
    pub fn decode_2718(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let Some(&ty) = bytes.first() else {
            return Err(ReceiptError::Malformed(alloy_rlp::Error::InputTooShort));
        };
        if (0x80..0xc0).contains(&ty) {
            // An RLP string: neither a type byte nor a legacy transaction's list.
            return Err(ReceiptError::Malformed(alloy_rlp::Error::UnexpectedString));
        }
        if ty < 0x80 && !matches!(ty, 1 | 2) {
            return Err(ReceiptError::TypeNotSupported(ty));
        }
        let envelope = ReceiptEnvelope::decode_2718_exact(bytes).map_err(|e| match e {
            Eip2718Error::UnexpectedType(ty) => ReceiptError::TypeNotSupported(ty),
            Eip2718Error::RlpError(e) => ReceiptError::Malformed(e),
            _ => ReceiptError::Malformed(alloy_rlp::Error::Custom("unknown decoding error")),
        })?;
        let Some(inner) = envelope.as_receipt_with_bloom() else {
            return Err(ReceiptError::Malformed(alloy_rlp::Error::Custom(
                "no receipt",
            )));
        };
        if matches!(inner.receipt.status, Eip658Value::PostState(_)) {
            return Err(ReceiptError::PostState);
        }
        if inner.receipt.bloom_slow() != inner.logs_bloom {
            return Err(ReceiptError::BloomMismatch);
        }
        Ok(Self(envelope))
    }
}

/// The Ethereum receipts root: the ordered Merkle-Patricia trie root over the EIP-2718 encodings,
/// keyed by RLP(index). Empty input gives [`alloy_consensus::EMPTY_ROOT_HASH`].
pub fn receipts_root(receipts: &[Receipt]) -> B256 {
    alloy_consensus::proofs::ordered_trie_root_with_encoder(receipts, |r, buf| r.0.encode_2718(buf))
}

/// The block's logs bloom: the union of every receipt's bloom.
pub fn logs_bloom(receipts: &[Receipt]) -> Bloom {
    let mut bloom = Bloom::ZERO;
    for receipt in receipts {
        bloom |= receipt.bloom();
    }
    bloom
}
