//! Our blocks, transactions and receipts in alloy's RPC shapes.
//!
//! The header is shown as an Ethereum header (beneficiary = proposer, zero difficulty, mix hash
//! and nonce, the empty ommers hash, timestamp in seconds) but carries OUR header hash, because
//! that is what `parentHash` links to and what `eth_getBlockByHash` accepts.

use alloy_consensus::transaction::{Recovered, TransactionInfo};
use alloy_consensus::{Eip658Value, ReceiptEnvelope, ReceiptWithBloom, Transaction as _};
use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::{Block, BlockTransactions, Header, Log, Transaction, TransactionReceipt};
use chain_types::RecoveredTx;

use crate::backend::BlockData;

/// Seconds since the Unix epoch from our millisecond timestamp.
pub(crate) const fn timestamp_secs(timestamp_ms: u64) -> u64 {
    timestamp_ms / 1000
}

/// The RPC header: our fields in Ethereum's layout, with our hash.
pub(crate) fn rpc_header(data: &BlockData, hash: B256) -> Header {
    let h = &data.block.header;
    let inner = alloy_consensus::Header {
        parent_hash: h.parent_hash,
        ommers_hash: alloy_consensus::EMPTY_OMMER_ROOT_HASH,
        beneficiary: h.proposer,
        state_root: h.state_root,
        transactions_root: h.transactions_root,
        receipts_root: h.receipts_root,
        logs_bloom: h.logs_bloom,
        difficulty: U256::ZERO,
        number: h.number,
        gas_limit: h.gas_limit,
        gas_used: h.gas_used,
        timestamp: timestamp_secs(h.timestamp_ms),
        extra_data: h.extra_data.clone(),
        mix_hash: B256::ZERO,
        nonce: Default::default(),
        base_fee_per_gas: Some(h.base_fee_per_gas),
        ..Default::default()
    };
    Header {
        hash,
        inner,
        total_difficulty: None,
        size: Some(U256::from(data.block.encoded().len())),
    }
}

/// The RPC block, with full transaction objects or only their hashes.
pub(crate) fn rpc_block(data: &BlockData, full: bool) -> Block {
    let hash = data.block.hash();
    let transactions = if full {
        BlockTransactions::Full(
            (0..data.block.transactions.len())
                .filter_map(|i| mined_tx(data, hash, i))
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(
            data.block
                .transactions
                .iter()
                .map(|tx| *tx.tx_hash())
                .collect(),
        )
    };
    Block::new(rpc_header(data, hash), transactions)
}

/// Transaction `index` of a mined block; `None` when out of range.
pub(crate) fn mined_tx(data: &BlockData, block_hash: B256, index: usize) -> Option<Transaction> {
    let tx = data.block.transactions.get(index)?;
    let sender = *data.senders.get(index)?;
    let h = &data.block.header;
    let info = TransactionInfo {
        hash: Some(*tx.tx_hash()),
        index: Some(index as u64),
        block_hash: Some(block_hash),
        block_number: Some(h.number),
        base_fee: Some(h.base_fee_per_gas),
        block_timestamp: Some(timestamp_secs(h.timestamp_ms)),
    };
    Some(Transaction::from_transaction(
        Recovered::new_unchecked(tx.clone(), sender),
        info,
    ))
}

/// A transaction from the mempool: no block fields; the gas price is its fee cap.
pub(crate) fn pending_tx(tx: &RecoveredTx) -> Transaction {
    let info = TransactionInfo {
        hash: Some(tx.hash()),
        ..Default::default()
    };
    Transaction::from_transaction(
        Recovered::new_unchecked(tx.envelope().clone(), tx.sender()),
        info,
    )
}

/// Logs of the whole block with their block, transaction and log indices, in emission order.
pub(crate) fn block_logs(data: &BlockData, block_hash: B256) -> impl Iterator<Item = Log> + '_ {
    let h = &data.block.header;
    let mut log_index = 0u64;
    data.receipts
        .iter()
        .zip(&data.block.transactions)
        .enumerate()
        .flat_map(move |(tx_index, (receipt, tx))| {
            let tx_hash = *tx.tx_hash();
            receipt
                .logs()
                .iter()
                .map(move |log| (tx_index, tx_hash, log))
        })
        .map(move |(tx_index, tx_hash, log)| {
            let rpc = Log {
                inner: log.clone(),
                block_hash: Some(block_hash),
                block_number: Some(h.number),
                block_timestamp: Some(timestamp_secs(h.timestamp_ms)),
                transaction_hash: Some(tx_hash),
                transaction_index: Some(tx_index as u64),
                log_index: Some(log_index),
                removed: false,
            };
            log_index += 1;
            rpc
        })
}

/// The receipt of transaction `index`; `None` when out of range.
pub(crate) fn rpc_receipt(
    data: &BlockData,
    block_hash: B256,
    index: usize,
) -> Option<TransactionReceipt> {
    let tx = data.block.transactions.get(index)?;
    let receipt = data.receipts.get(index)?;
    let from = *data.senders.get(index)?;
    let h = &data.block.header;
    let previous_cumulative = match index {
        0 => 0,
        i => data.receipts.get(i - 1)?.cumulative_gas_used(),
    };
    let first_log_index: usize = data.receipts[..index].iter().map(|r| r.logs().len()).sum();
    let tx_hash = *tx.tx_hash();
    let logs = receipt
        .logs()
        .iter()
        .enumerate()
        .map(|(i, log)| Log {
            inner: log.clone(),
            block_hash: Some(block_hash),
            block_number: Some(h.number),
            block_timestamp: Some(timestamp_secs(h.timestamp_ms)),
            transaction_hash: Some(tx_hash),
            transaction_index: Some(index as u64),
            log_index: Some((first_log_index + i) as u64),
            removed: false,
        })
        .collect();
    let inner = ReceiptEnvelope::from_typed(
        receipt.tx_type(),
        ReceiptWithBloom {
            receipt: alloy_consensus::Receipt {
                status: Eip658Value::Eip658(receipt.success()),
                cumulative_gas_used: receipt.cumulative_gas_used(),
                logs,
            },
            logs_bloom: receipt.bloom(),
        },
    );
    let to = tx.to();
    Some(TransactionReceipt {
        inner,
        transaction_hash: tx_hash,
        transaction_index: Some(index as u64),
        block_hash: Some(block_hash),
        block_number: Some(h.number),
        gas_used: receipt
            .cumulative_gas_used()
            .saturating_sub(previous_cumulative),
        effective_gas_price: tx.effective_gas_price(Some(h.base_fee_per_gas)),
        blob_gas_used: None,
        blob_gas_price: None,
        from,
        to,
        contract_address: to.is_none().then(|| from.create(tx.nonce())),
    })
}

/// Gas used by each transaction of the block (differences of cumulative gas).
pub(crate) fn gas_used_per_tx(data: &BlockData) -> impl Iterator<Item = u64> + '_ {
    let mut previous = 0u64;
    data.receipts.iter().map(move |r| {
        let used = r.cumulative_gas_used().saturating_sub(previous);
        previous = r.cumulative_gas_used();
        used
    })
}
