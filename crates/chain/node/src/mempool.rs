//! The transaction pool: signed transactions waiting for a block, per sender in nonce order.
//!
//! Admission checks what the pool itself decides (duplicates, nonce window, replacement fees, size);
//! the caller has already validated the transaction statelessly, recovered its sender and checked
//! balance and fee cap against state. Blocks are built from [`Mempool::candidates`]: for every
//! sender the run of transactions that continues its nonce without a gap, merged across senders
//! by tip so the best-paying heads go first.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use alloy_consensus::Transaction;
use chain_types::{Address, AdmissionError, RecoveredTx, B256};

/// Pool limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most transactions in the pool.
    pub max_txs: usize,
    /// Most transactions one sender may queue, which also bounds how far ahead of the state nonce
    /// a nonce may be.
    pub max_per_sender: usize,
    /// A replacement must raise both the fee cap and the tip by this many percent.
    pub price_bump_percent: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_txs: 50_000,
            max_per_sender: 1_024,
            price_bump_percent: 10,
        }
    }
}

/// Pending transactions by sender and nonce.
#[derive(Debug, Default)]
pub struct Mempool {
    limits: Limits,
    by_hash: HashMap<B256, (Address, u64)>,
    by_sender: HashMap<Address, BTreeMap<u64, RecoveredTx>>,
}

impl Mempool {
    /// An empty pool.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Number of transactions held.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Adds `tx`, whose sender's next nonce in state is `state_nonce`. Returns the hash of the
    /// transaction it replaced, if any. Nothing changes on error.
    pub fn insert(
        &mut self,
        tx: RecoveredTx,
        state_nonce: u64,
    ) -> Result<Option<B256>, AdmissionError> {
        let sender = tx.sender();
        let nonce = tx.envelope().nonce();
        if self.by_hash.contains_key(&tx.hash()) {
            return Err(AdmissionError::AlreadyKnown);
        }
        if nonce < state_nonce {
            return Err(AdmissionError::NonceTooLow {
                address: sender,
                tx_nonce: nonce,
                state_nonce,
            });
        }
        let window = u64::try_from(self.limits.max_per_sender).unwrap_or(u64::MAX);
        if nonce - state_nonce >= window {
            return Err(AdmissionError::NonceTooHigh {
                address: sender,
                tx_nonce: nonce,
                state_nonce,
            });
        }
        let queue = self.by_sender.get(&sender);
        if let Some(old) = queue.and_then(|q| q.get(&nonce)) {
            if !outbids(&tx, old, self.limits.price_bump_percent) {
                return Err(AdmissionError::ReplacementUnderpriced {
                    bump_percent: self.limits.price_bump_percent,
                });
            }
        } else if self.by_hash.len() >= self.limits.max_txs {
            return Err(AdmissionError::PoolFull);
        }
        let hash = tx.hash();
        let replaced = self
            .by_sender
            .entry(sender)
            .or_default()
            .insert(nonce, tx)
            .map(|old| old.hash());
        if let Some(old) = replaced {
            self.by_hash.remove(&old);
        }
        self.by_hash.insert(hash, (sender, nonce));
        Ok(replaced)
    }

    /// The transaction with this hash, if pending.
    pub fn get(&self, hash: &B256) -> Option<&RecoveredTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.get(nonce)
    }

    /// The nonce the sender's next transaction should use: the state nonce, moved past every
    /// pending transaction that continues it without a gap.
    pub fn pending_nonce(&self, sender: &Address, state_nonce: u64) -> u64 {
        let mut next = state_nonce;
        if let Some(queue) = self.by_sender.get(sender) {
            for nonce in queue.range(state_nonce..).map(|(n, _)| *n) {
                if nonce != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Up to `max` transactions for a block built on a state where `nonce_of` gives each sender's
    /// next nonce: per sender the gap-free run from that nonce, senders interleaved by the tip
    /// their next transaction pays over `base_fee` (highest first, ties by sender address so the
    /// order is deterministic).
    pub fn candidates(
        &self,
        base_fee: u64,
        max: usize,
        mut nonce_of: impl FnMut(&Address) -> u64,
    ) -> Vec<RecoveredTx> {
        let mut heads = BinaryHeap::new();
        for (sender, queue) in &self.by_sender {
            let start = nonce_of(sender);
            if let Some(tx) = queue.get(&start) {
                heads.push(Head {
                    tip: tip(tx, base_fee),
                    sender: *sender,
                    nonce: start,
                });
            }
        }
        let mut out = Vec::new();
        while let Some(head) = heads.pop() {
            if out.len() >= max {
                break;
            }
            let queue = &self.by_sender[&head.sender];
            out.push(queue[&head.nonce].clone());
            let next = head.nonce + 1;
            if let Some(tx) = queue.get(&next) {
                heads.push(Head {
                    tip: tip(tx, base_fee),
                    sender: head.sender,
                    nonce: next,
                });
            }
        }
        out
    }

    /// Drops every transaction of `sender` below `state_nonce` (included in a finalized block, or
    /// made stale by one).
    pub fn prune_sender(&mut self, sender: &Address, state_nonce: u64) {
        let Some(queue) = self.by_sender.get_mut(sender) else {
            return;
        };
        let keep = queue.split_off(&state_nonce);
        for tx in queue.values() {
            self.by_hash.remove(&tx.hash());
        }
        if keep.is_empty() {
            self.by_sender.remove(sender);
        } else {
            *queue = keep;
        }
    }
}

/// A sender's next transaction in the candidate merge.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    tip: u128,
    sender: Address,
    nonce: u64,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.tip
            .cmp(&other.tip)
            .then_with(|| other.sender.cmp(&self.sender))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What the transaction pays the proposer per gas over `base_fee` (0 if its cap is below it).
fn tip(tx: &RecoveredTx, base_fee: u64) -> u128 {
    tx.envelope()
        .effective_tip_per_gas(base_fee)
        .unwrap_or_default()
}

/// Whether `new` raises both the fee cap and the tip of `old` by at least `bump_percent`.
fn outbids(new: &RecoveredTx, old: &RecoveredTx, bump_percent: u32) -> bool {
    let bumped = |v: u128| v.saturating_mul(100 + u128::from(bump_percent)) / 100;
    let (n, o) = (new.envelope(), old.envelope());
    let new_tip = n.max_priority_fee_per_gas().unwrap_or(n.max_fee_per_gas());
    let old_tip = o.max_priority_fee_per_gas().unwrap_or(o.max_fee_per_gas());
    n.max_fee_per_gas() >= bumped(o.max_fee_per_gas()) && new_tip >= bumped(old_tip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{signed_transfer, Key};

    fn pool() -> Mempool {
        Mempool::new(Limits {
            max_txs: 4,
            max_per_sender: 3,
            price_bump_percent: 10,
        })
    }

    #[test]
    fn admission_rules() {
        let alice = Key::new(1);
        let mut pool = pool();
        let tx0 = signed_transfer(&alice, 5, 100, 10);
        assert_eq!(pool.insert(tx0.clone(), 5), Ok(None));
        assert_eq!(
            pool.insert(tx0.clone(), 5),
            Err(AdmissionError::AlreadyKnown)
        );
        assert!(matches!(
            pool.insert(signed_transfer(&alice, 4, 100, 10), 5),
            Err(AdmissionError::NonceTooLow {
                tx_nonce: 4,
                state_nonce: 5,
                ..
            })
        ));
        assert!(matches!(
            pool.insert(signed_transfer(&alice, 8, 100, 10), 5),
            Err(AdmissionError::NonceTooHigh { tx_nonce: 8, .. })
        ));
        // A 9 % bump is refused, 10 % on both fields replaces.
        assert_eq!(
            pool.insert(signed_transfer(&alice, 5, 109, 11), 5),
            Err(AdmissionError::ReplacementUnderpriced { bump_percent: 10 })
        );
        let better = signed_transfer(&alice, 5, 110, 11);
        assert_eq!(pool.insert(better.clone(), 5), Ok(Some(tx0.hash())));
        assert_eq!(pool.len(), 1);
        assert!(pool.get(&tx0.hash()).is_none());
        assert_eq!(pool.get(&better.hash()), Some(&better));
    }

    #[test]
    fn full_pool_refuses_new_but_allows_replacement() {
        let mut pool = pool();
        for i in 0..4 {
            pool.insert(signed_transfer(&Key::new(10 + i), 0, 100, 10), 0)
                .unwrap();
        }
        assert_eq!(
            pool.insert(signed_transfer(&Key::new(99), 0, 100, 10), 0),
            Err(AdmissionError::PoolFull)
        );
        assert!(pool
            .insert(signed_transfer(&Key::new(10), 0, 200, 20), 0)
            .is_ok());
        assert_eq!(pool.len(), 4);
    }

    #[test]
    fn candidates_follow_nonces_and_tips() {
        let (alice, bob) = (Key::new(1), Key::new(2));
        let mut pool = Mempool::new(Limits::default());
        let a0 = signed_transfer(&alice, 0, 100, 1);
        let a1 = signed_transfer(&alice, 1, 100, 50);
        let a3 = signed_transfer(&alice, 3, 100, 90); // gap at 2: never a candidate
        let b0 = signed_transfer(&bob, 0, 100, 5);
        for tx in [&a0, &a1, &a3, &b0] {
            pool.insert(tx.clone(), 0).unwrap();
        }
        let hashes = |v: Vec<RecoveredTx>| v.iter().map(RecoveredTx::hash).collect::<Vec<_>>();
        // Bob's head tips 5, Alice's 1: Bob first, then Alice's run.
        assert_eq!(
            hashes(pool.candidates(0, 10, |_| 0)),
            vec![b0.hash(), a0.hash(), a1.hash()]
        );
        assert_eq!(
            hashes(pool.candidates(0, 2, |_| 0)),
            vec![b0.hash(), a0.hash()]
        );
        // On a parent where Alice's nonce is already 1, her run starts at a1.
        let nonce = |a: &Address| u64::from(*a == alice.address());
        assert_eq!(
            hashes(pool.candidates(0, 10, nonce)),
            vec![a1.hash(), b0.hash()]
        );
        assert_eq!(pool.pending_nonce(&alice.address(), 0), 2);
        pool.prune_sender(&alice.address(), 2);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.pending_nonce(&alice.address(), 2), 2);
        assert_eq!(hashes(pool.candidates(0, 10, |_| 2)), Vec::<B256>::new());
    }
}
