//! Transaction gossip among validators, so a transaction sent to any node's RPC reaches every
//! leader's mempool.
//!
//! Transactions admitted through RPC are batched for up to [`BATCH_WINDOW_MS`] and sent to the
//! other validators over the consensus network as one message: each transaction is a u32
//! big-endian length followed by its EIP-2718 bytes. Received batches are decoded, their senders
//! recovered on a blocking thread and admitted like RPC submissions, but not gossiped again
//! (validators are fully connected, so one hop reaches everyone).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use chain_consensus::Gossiper;
use chain_types::{decode_and_recover_batch, MAX_TX_BYTES};
use tokio::sync::mpsc;

use crate::backend::NodeBackend;

/// How long transactions wait to be batched.
pub(crate) const BATCH_WINDOW_MS: u64 = 10;
/// Largest batch message in bytes.
pub(crate) const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Threads that recover senders of a received batch.
const RECOVERY_THREADS: NonZeroUsize = NonZeroUsize::MIN.saturating_add(1);

/// Appends one transaction to a batch.
pub(crate) fn push(batch: &mut Vec<u8>, raw: &[u8]) {
    let len = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    batch.extend_from_slice(&len.to_be_bytes());
    batch.extend_from_slice(raw);
}

/// Splits a batch into its transactions; `None` if it is malformed (a length past the end, or a
/// transaction larger than any valid one).
pub(crate) fn split(mut batch: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !batch.is_empty() {
        let (len, rest) = batch.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_TX_BYTES {
            return None;
        }
        let (tx, rest) = rest.split_at_checked(len)?;
        out.push(tx);
        batch = rest;
    }
    Some(out)
}

/// Sends what `outgoing` yields (raw transactions admitted locally) in batches until it closes.
pub(crate) async fn send_loop(mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>, gossiper: Gossiper) {
    while let Some(first) = outgoing.recv().await {
        let mut batch = Vec::new();
        push(&mut batch, &first);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(BATCH_WINDOW_MS);
        while batch.len() < MAX_BATCH_BYTES {
            match tokio::time::timeout_at(deadline, outgoing.recv()).await {
                Ok(Some(raw)) => push(&mut batch, &raw),
                Ok(None) | Err(_) => break,
            }
        }
        gossiper.gossip(batch);
    }
}

/// Admits the transactions of every batch `incoming` yields, until it closes.
pub(crate) async fn receive_loop(
    mut incoming: mpsc::UnboundedReceiver<Vec<u8>>,
    backend: Arc<NodeBackend>,
) {
    while let Some(batch) = incoming.recv().await {
        let backend = backend.clone();
        let admitted = tokio::task::spawn_blocking(move || {
            let Some(raws) = split(&batch) else {
                tracing::debug!("dropped a malformed transaction batch from a validator");
                return 0;
            };
            let rules = backend.rules();
            decode_and_recover_batch(&raws, &rules, RECOVERY_THREADS)
                .into_iter()
                .filter_map(Result::ok)
                .filter_map(|tx| backend.admit(tx).ok())
                .count()
        })
        .await
        .unwrap_or(0);
        tracing::trace!(admitted, "admitted gossiped transactions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_malformed_ones_are_refused() {
        let mut batch = Vec::new();
        push(&mut batch, b"abc");
        push(&mut batch, b"");
        push(&mut batch, &[7; 300]);
        assert_eq!(batch[..7], [0, 0, 0, 3, b'a', b'b', b'c']);
        let parts = split(&batch).unwrap();
        assert_eq!(parts, vec![&b"abc"[..], &b""[..], &[7u8; 300][..]]);
        assert_eq!(split(&[]), Some(vec![]));
        assert_eq!(split(&batch[..batch.len() - 1]), None);
        assert_eq!(split(&[0, 0, 0]), None);
        assert_eq!(split(&[0xff, 0xff, 0xff, 0xff]), None);
    }
}
