//! Block headers and blocks with their canonical encoding.
//!
//! # Encoding
//! RLP, with alloy-rlp: it is Ethereum's own codec, so block and transaction hashes are computed
//! the way every Ethereum tool expects, the transactions inside a block keep their exact EIP-2718
//! bytes, and alloy-rlp's decoder is strict (no leading zeros, no non-canonical lengths), so every
//! valid encoding is the unique encoding of its value and the hash cannot be malleated.
//!
//! - `Header` = RLP list of its fields in declaration order (see [`Header`]); its hash is
//!   keccak256 of that encoding.
//! - `Block` = RLP list `[header, [tx₀, tx₁, …]]` where each transaction uses the Ethereum network
//!   form: a legacy transaction is its RLP list, a typed one an RLP string holding its EIP-2718
//!   bytes.
//!
//! # Roots
//! Ethereum's ordered Merkle-Patricia trie roots (alloy-trie, keys RLP(index)) for transactions
//! and receipts, so they can be checked with standard tooling; computing one for 5,000
//! transactions costs about as much as hashing them. The state root comes from the state crate.

use std::num::NonZeroUsize;

use alloy_consensus::TxEnvelope;
use alloy_primitives::{keccak256, Address, Bloom, Bytes, B256};
use alloy_rlp::{Decodable, Encodable};

use crate::parallel::par_map;
use crate::receipt::{logs_bloom, receipts_root, Receipt};
use crate::rpc::{RpcError, SERVER_ERROR};
use crate::tx::{
    decode_envelope, recover_sender, recover_tx_cached, validate_tx, RecoveredTx, TxError, TxRules,
};

/// Longest [`Header::extra_data`], as in Ethereum.
pub const MAX_EXTRA_DATA_BYTES: usize = 32;

/// Why a block or header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The bytes are not a canonical block or header encoding.
    #[error("block rlp: {0:?}: the bytes are not a valid block")]
    Malformed(alloy_rlp::Error),
    /// `extra_data` is longer than [`MAX_EXTRA_DATA_BYTES`].
    #[error("block extra data is {0} bytes, at most {MAX_EXTRA_DATA_BYTES} allowed")]
    ExtraDataTooLong(usize),
    /// A transaction in the block is invalid.
    #[error("block transaction {index}: {error}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// What is wrong with it.
        error: TxError,
    },
    /// The header's transactions root does not commit to the block's transactions.
    #[error("transactions root mismatch: header has {header}, transactions give {computed}")]
    TransactionsRootMismatch {
        /// Root in the header.
        header: B256,
        /// Root of the transactions.
        computed: B256,
    },
    /// Execution produced a different number of receipts than transactions.
    #[error("block has {transactions} transactions but {receipts} receipts")]
    ReceiptCountMismatch {
        /// Number of transactions.
        transactions: usize,
        /// Number of receipts.
        receipts: usize,
    },
    /// The header's receipts root differs from the executed receipts.
    #[error("receipts root mismatch: header has {header}, execution gives {computed}")]
    ReceiptsRootMismatch {
        /// Root in the header.
        header: B256,
        /// Root of the receipts.
        computed: B256,
    },
    /// The header's logs bloom differs from the executed receipts.
    #[error("logs bloom mismatch: the header's bloom is not the union of the receipts' blooms")]
    LogsBloomMismatch,
    /// The header's gas used differs from the executed receipts.
    #[error("gas used mismatch: header has {header}, execution gives {computed}")]
    GasUsedMismatch {
        /// Gas used in the header.
        header: u64,
        /// Cumulative gas of the last receipt.
        computed: u64,
    },
    /// The block uses more gas than its limit.
    #[error("block gas used {gas_used} exceeds its gas limit {gas_limit}")]
    GasLimitExceeded {
        /// Gas used.
        gas_used: u64,
        /// Gas limit.
        gas_limit: u64,
    },
}

impl RpcError for BlockError {
    fn rpc_code(&self) -> i32 {
        SERVER_ERROR
    }
}

/// A block header. Field order is the encoding order; changing it changes every block hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Hash of the previous block's header (zero for genesis).
    pub parent_hash: B256,
    /// Height: genesis is 0, each block is its parent's plus one.
    pub number: u64,
    /// Proposer's clock when the block was built, in milliseconds since the Unix epoch; must be
    /// above the parent's (checked by the node, which owns clocks).
    pub timestamp_ms: u64,
    /// Validator that proposed the block; receives the priority fees.
    pub proposer: Address,
    /// Validator-set epoch the block was agreed in (the set that signed its certificate).
    pub epoch: u64,
    /// Merkle commitment to the whole state after executing this block.
    pub state_root: B256,
    /// Ordered trie root of the transactions' EIP-2718 encodings.
    pub transactions_root: B256,
    /// Ordered trie root of the receipts' EIP-2718 encodings.
    pub receipts_root: B256,
    /// Union of the receipts' blooms (lets `eth_getLogs` skip blocks).
    pub logs_bloom: Bloom,
    /// Most gas the block's transactions may use.
    pub gas_limit: u64,
    /// Gas the transactions used (the last receipt's cumulative gas).
    pub gas_used: u64,
    /// EIP-1559 base fee per gas in wei for this block's transactions.
    pub base_fee_per_gas: u64,
    /// Free-form proposer data, at most [`MAX_EXTRA_DATA_BYTES`].
    pub extra_data: Bytes,
}

impl Header {
    /// keccak256 of the canonical encoding.
    pub fn hash(&self) -> B256 {
        let mut buf = Vec::with_capacity(self.length());
        self.encode(&mut buf);
        keccak256(&buf)
    }

    /// The canonical encoding.
    pub fn encoded(&self) -> Vec<u8> {
        alloy_rlp::encode(self)
    }

    /// Decodes exactly one header from `bytes` (no trailing bytes).
    pub fn decode_exact(bytes: &[u8]) -> Result<Self, BlockError> {
        let mut buf = bytes;
        let header = Self::decode(&mut buf).map_err(BlockError::Malformed)?;
        if !buf.is_empty() {
            return Err(BlockError::Malformed(alloy_rlp::Error::UnexpectedLength));
        }
        header.check_extra_data()?;
        Ok(header)
    }

    fn check_extra_data(&self) -> Result<(), BlockError> {
        if self.extra_data.len() > MAX_EXTRA_DATA_BYTES {
            return Err(BlockError::ExtraDataTooLong(self.extra_data.len()));
        }
        Ok(())
    }

    fn payload_length(&self) -> usize {
        self.parent_hash.length()
            + self.number.length()
            + self.timestamp_ms.length()
            + self.proposer.length()
            + self.epoch.length()
            + self.state_root.length()
            + self.transactions_root.length()
            + self.receipts_root.length()
            + self.logs_bloom.length()
            + self.gas_limit.length()
            + self.gas_used.length()
            + self.base_fee_per_gas.length()
            + self.extra_data.length()
    }
}

impl Encodable for Header {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        alloy_rlp::Header {
            list: true,
            payload_length: self.payload_length(),
        }
        .encode(out);
        self.parent_hash.encode(out);
        self.number.encode(out);
        self.timestamp_ms.encode(out);
        self.proposer.encode(out);
        self.epoch.encode(out);
        self.state_root.encode(out);
        self.transactions_root.encode(out);
        self.receipts_root.encode(out);
        self.logs_bloom.encode(out);
        self.gas_limit.encode(out);
        self.gas_used.encode(out);
        self.base_fee_per_gas.encode(out);
        self.extra_data.encode(out);
    }

    fn length(&self) -> usize {
        let payload_length = self.payload_length();
        alloy_rlp::length_of_length(payload_length) + payload_length
    }
}

impl Decodable for Header {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        let mut payload = alloy_rlp::Header::decode_bytes(buf, true)?;
        let p = &mut payload;
        let header = Self {
            parent_hash: Decodable::decode(p)?,
            number: Decodable::decode(p)?,
            timestamp_ms: Decodable::decode(p)?,
            proposer: Decodable::decode(p)?,
            epoch: Decodable::decode(p)?,
            state_root: Decodable::decode(p)?,
            transactions_root: Decodable::decode(p)?,
            receipts_root: Decodable::decode(p)?,
            logs_bloom: Decodable::decode(p)?,
            gas_limit: Decodable::decode(p)?,
            gas_used: Decodable::decode(p)?,
            base_fee_per_gas: Decodable::decode(p)?,
            extra_data: Decodable::decode(p)?,
        };
        if !payload.is_empty() {
            return Err(alloy_rlp::Error::Custom("header has extra fields"));
        }
        Ok(header)
    }
}

/// Ordered trie root of the transactions' EIP-2718 encodings (Ethereum's `transactionsRoot`).
pub fn transactions_root(transactions: &[TxEnvelope]) -> B256 {
    alloy_consensus::proofs::calculate_transaction_root(transactions)
}

/// A header and its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header; its roots commit to the body.
    pub header: Header,
    /// Transactions in execution order.
    pub transactions: Vec<TxEnvelope>,
}

impl Block {
    /// The block hash (its header's hash).
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }

    /// The canonical encoding `[header, [tx…]]`.
    pub fn encoded(&self) -> Vec<u8> {
        let txs_payload: usize = self.transactions.iter().map(|t| t.length()).sum();
        let txs_header = alloy_rlp::Header {
            list: true,
            payload_length: txs_payload,
        };
        let payload = self.header.length() + txs_header.length_with_payload();
        let outer = alloy_rlp::Header {
            list: true,
            payload_length: payload,
        };
        let mut out = Vec::with_capacity(outer.length_with_payload());
        outer.encode(&mut out);
        self.header.encode(&mut out);
        txs_header.encode(&mut out);
        for tx in &self.transactions {
            tx.encode(&mut out);
        }
        out
    }

    /// Decodes a block. Refuses trailing bytes, an oversized `extra_data` and transaction types
    /// other than legacy, 1 and 2 (checked from the type byte before the body is decoded). Roots
    /// and transaction validity are separate steps: [`Block::verify_roots`] and
    /// [`Block::validate_transactions`].
    pub fn decode(bytes: &[u8]) -> Result<Self, BlockError> {
        let malformed = BlockError::Malformed;
        let mut buf = bytes;
        let mut payload = alloy_rlp::Header::decode_bytes(&mut buf, true).map_err(malformed)?;
        if !buf.is_empty() {
            return Err(malformed(alloy_rlp::Error::UnexpectedLength));
        }
        let header = Header::decode(&mut payload).map_err(malformed)?;
        header.check_extra_data()?;
        let mut txs = alloy_rlp::Header::decode_bytes(&mut payload, true).map_err(malformed)?;
        if !payload.is_empty() {
            return Err(malformed(alloy_rlp::Error::Custom(
                "block has extra fields",
            )));
        }
        let mut transactions = Vec::new();
        while !txs.is_empty() {
            let index = transactions.len();
            let tx = decode_block_tx(&mut txs).map_err(|error| match error {
                TxError::Malformed(e) => BlockError::Malformed(e),
                error => BlockError::Transaction { index, error },
            })?;
            transactions.push(tx);
        }
        Ok(Self {
            header,
            transactions,
        })
    }

    /// Checks that the header's transactions root commits to the transactions. The receipts root,
    /// bloom and gas used need execution: see [`Block::verify_receipts`].
    pub fn verify_roots(&self) -> Result<(), BlockError> {
        let computed = transactions_root(&self.transactions);
        if computed != self.header.transactions_root {
            return Err(BlockError::TransactionsRootMismatch {
                header: self.header.transactions_root,
                computed,
            });
        }
        Ok(())
    }

    /// Checks the header against the receipts from executing this block: count, receipts root,
    /// logs bloom, gas used, and gas used within the gas limit.
    pub fn verify_receipts(&self, receipts: &[Receipt]) -> Result<(), BlockError> {
        if receipts.len() != self.transactions.len() {
            return Err(BlockError::ReceiptCountMismatch {
                transactions: self.transactions.len(),
                receipts: receipts.len(),
            });
        }
        let computed = receipts_root(receipts);
        if computed != self.header.receipts_root {
            return Err(BlockError::ReceiptsRootMismatch {
                header: self.header.receipts_root,
                computed,
            });
        }
        if logs_bloom(receipts) != self.header.logs_bloom {
            return Err(BlockError::LogsBloomMismatch);
        }
        let gas_used = receipts.last().map_or(0, Receipt::cumulative_gas_used);
        if gas_used != self.header.gas_used {
            return Err(BlockError::GasUsedMismatch {
                header: self.header.gas_used,
                computed: gas_used,
            });
        }
        if gas_used > self.header.gas_limit {
            return Err(BlockError::GasLimitExceeded {
                gas_used,
                gas_limit: self.header.gas_limit,
            });
        }
        Ok(())
    }

    /// [`Block::validate_transactions`], keeping each transaction with its sender, ready for
    /// execution.
    pub fn recover_transactions(
        &self,
        rules: &TxRules,
        threads: NonZeroUsize,
    ) -> Result<Vec<RecoveredTx>, BlockError> {
        self.recover_transactions_cached(rules, threads, |_| None)
    }

    /// [`Block::recover_transactions`] that takes senders already known by transaction hash
    /// from `known` (see [`crate::recover_tx_cached`]) and recovers only the others.
    pub fn recover_transactions_cached(
        &self,
        rules: &TxRules,
        threads: NonZeroUsize,
        known: impl Fn(&B256) -> Option<Address> + Sync,
    ) -> Result<Vec<RecoveredTx>, BlockError> {
        par_map(&self.transactions, threads, |tx| {
            recover_tx_cached(tx.clone(), rules, &known)
        })
        .into_iter()
        .enumerate()
        .map(|(index, r)| r.map_err(|error| BlockError::Transaction { index, error }))
        .collect()
    }

    /// Runs [`validate_tx`] on every transaction and recovers the senders on up to `threads`
    /// threads. Returns the senders in block order, or the first invalid transaction.
    pub fn validate_transactions(
        &self,
        rules: &TxRules,
        threads: NonZeroUsize,
    ) -> Result<Vec<Address>, BlockError> {
        par_map(&self.transactions, threads, |tx| {
            validate_tx(tx, rules)?;
            recover_sender(tx)
        })
        .into_iter()
        .enumerate()
        .map(|(index, r)| r.map_err(|error| BlockError::Transaction { index, error }))
        .collect()
    }
}

/// Decodes one transaction in network form from the front of `buf`.
fn decode_block_tx(buf: &mut &[u8]) -> Result<TxEnvelope, TxError> {
    let start = *buf;
    let h = alloy_rlp::Header::decode(buf).map_err(TxError::Malformed)?;
    let header_len = start.len() - buf.len();
    let (payload, rest) = buf
        .split_at_checked(h.payload_length)
        .ok_or(TxError::Malformed(alloy_rlp::Error::InputTooShort))?;
    *buf = rest;
    if h.list {
        decode_envelope(&start[..header_len + h.payload_length])
    } else if payload.first().is_some_and(|ty| *ty < 0x80) {
        // A typed transaction travels as an RLP string holding its EIP-2718 bytes.
        decode_envelope(payload)
    } else {
        // Only typed transactions are wrapped; a wrapped legacy one is not canonical.
        Err(TxError::Malformed(alloy_rlp::Error::UnexpectedString))
    }
}
