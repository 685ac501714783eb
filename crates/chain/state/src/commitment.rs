//! The state commitment: a binary Merkle tree over 65,536 buckets of sorted leaves.
//!
//! # Format (frozen: every block's `state_root` depends on it)
//! All integers are big-endian, all hashes keccak256, `‖` is concatenation.
//!
//! - Account leaf: key `keccak(address)` (20 bytes hashed), hash
//!   `keccak(nonce as 8 bytes ‖ balance as 32 bytes ‖ code_hash)` (72 bytes hashed).
//! - Storage leaf: key `keccak(address ‖ slot as 32 bytes)` (52 bytes hashed), hash
//!   `keccak(value as 32 bytes)`. A zero value is no leaf (the slot is deleted).
//! - A leaf key's bucket is its first two bytes read as a big-endian `u16` ([`bucket_of`]).
//! - A bucket's hash is `keccak(key₀ ‖ hash₀ ‖ key₁ ‖ hash₁ ‖ …)` over its leaves in ascending
//!   key order; an empty bucket hashes to 32 zero bytes ([`bucket_hash`]).
//! - The root is a complete binary tree of depth 16 over the bucket hashes in bucket order: a
//!   parent is `keccak(left ‖ right)`, except that two zero children give a zero parent, so an
//!   empty state has the zero root ([`BucketTree`]).
//! - A proof for a bucket is the 16 sibling hashes from the bucket level up to the root's
//!   children ([`BucketTree::proof`], [`verify_proof`]).
//!
//! Account and storage keys hash preimages of different lengths (20 and 52 bytes), so the two
//! kinds cannot collide by construction. Buckets keep updates cheap for a store: one block touches
//! a few thousand leaves, each bucket holds on average `leaves / 65,536` entries to rehash, and
//! the tree above them is 16 hashes per touched bucket.

use alloy_primitives::{keccak256, Address, B256, U256};

use crate::state::{Account, StateChanges};

/// Number of buckets: one per value of a leaf key's first two bytes.
pub const BUCKETS: usize = 1 << 16;

/// Depth of the bucket tree (and length of a proof).
pub const TREE_DEPTH: usize = 16;

/// The leaf key of an account: `keccak(address)`.
pub fn account_leaf_key(address: &Address) -> B256 {
    keccak256(address)
}

/// The leaf hash of an account: `keccak(nonce ‖ balance ‖ code_hash)`.
pub fn account_leaf_hash(account: &Account) -> B256 {
    let mut buf = [0u8; 72];
    buf[..8].copy_from_slice(&account.nonce.to_be_bytes());
    buf[8..40].copy_from_slice(&account.balance.to_be_bytes::<32>());
    buf[40..].copy_from_slice(account.code_hash.as_slice());
    keccak256(buf)
}

/// The leaf key of a storage slot: `keccak(address ‖ slot)`.
pub fn storage_leaf_key(address: &Address, slot: &U256) -> B256 {
    let mut buf = [0u8; 52];
    buf[..20].copy_from_slice(address.as_slice());
    buf[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    keccak256(buf)
}

/// The leaf hash of a non-zero storage value: `keccak(value)`.
pub fn storage_leaf_hash(value: &U256) -> B256 {
    keccak256(value.to_be_bytes::<32>())
}

/// The leaves a change set writes, sorted by key: `Some(hash)` = insert or replace, `None` =
/// delete (a deleted account or a slot written to zero).
pub fn leaf_updates(changes: &StateChanges) -> Vec<(B256, Option<B256>)> {
    let mut out: Vec<(B256, Option<B256>)> = changes
        .accounts()
        .map(|(address, account)| (account_leaf_key(address), account.map(account_leaf_hash)))
        .chain(changes.storage().map(|(address, slot, value)| {
            let hash = (!value.is_zero()).then(|| storage_leaf_hash(value));
            (storage_leaf_key(address, slot), hash)
        }))
        .collect();
    out.sort_unstable_by_key(|(key, _)| *key);
    out
}

/// The bucket a leaf key falls in: its first two bytes, big-endian.
pub fn bucket_of(key: &B256) -> u16 {
    u16::from_be_bytes([key[0], key[1]])
}

/// The hash of one bucket from its leaves `(key, leaf hash)`, which must be sorted by key
/// ascending without duplicates; zero for an empty bucket.
pub fn bucket_hash(sorted_entries: &[(B256, B256)]) -> B256 {
    if sorted_entries.is_empty() {
        return B256::ZERO;
    }
    let mut buf = Vec::with_capacity(sorted_entries.len() * 64);
    for (key, hash) in sorted_entries {
        buf.extend_from_slice(key.as_slice());
        buf.extend_from_slice(hash.as_slice());
    }
    keccak256(&buf)
}

fn parent_hash(left: &B256, right: &B256) -> B256 {
    if left.is_zero() && right.is_zero() {
        return B256::ZERO;
    }
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left.as_slice());
    buf[32..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// The binary Merkle tree over the 65,536 bucket hashes, kept in memory (4 MiB) so a bucket
/// update costs 16 hashes. Node `i` has children `2i` and `2i + 1`; the root is node 1 and
/// bucket `b` is node `65,536 + b`.
#[derive(Clone)]
pub struct BucketTree {
    nodes: Vec<B256>,
}

impl std::fmt::Debug for BucketTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketTree")
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
}

impl Default for BucketTree {
    fn default() -> Self {
        Self::new()
    }
}

/// A Merkle path for one bucket: the sibling hashes from the bucket level up.
pub type BucketProof = [B256; TREE_DEPTH];

impl BucketTree {
    /// A tree with every bucket empty (root zero).
    pub fn new() -> Self {
        Self {
            nodes: vec![B256::ZERO; 2 * BUCKETS],
        }
    }

    /// A tree from all bucket hashes at once (in bucket order), hashing each node once.
    pub fn from_buckets(bucket_hashes: impl IntoIterator<Item = (u16, B256)>) -> Self {
        let mut tree = Self::new();
        for (bucket, hash) in bucket_hashes {
            tree.nodes[BUCKETS + usize::from(bucket)] = hash;
        }
        for i in (1..BUCKETS).rev() {
            tree.nodes[i] = parent_hash(&tree.nodes[2 * i], &tree.nodes[2 * i + 1]);
        }
        tree
    }

    /// Sets one bucket's hash and rehashes its path to the root.
    pub fn set(&mut self, bucket: u16, hash: B256) {
        let mut i = BUCKETS + usize::from(bucket);
        self.nodes[i] = hash;
        while i > 1 {
            i /= 2;
            self.nodes[i] = parent_hash(&self.nodes[2 * i], &self.nodes[2 * i + 1]);
        }
    }

    /// The hash stored for `bucket`.
    pub fn bucket(&self, bucket: u16) -> B256 {
        self.nodes[BUCKETS + usize::from(bucket)]
    }

    /// The state root.
    pub fn root(&self) -> B256 {
        self.nodes[1]
    }

    /// The sibling path of `bucket`, bucket level first.
    pub fn proof(&self, bucket: u16) -> BucketProof {
        let mut proof = [B256::ZERO; TREE_DEPTH];
        let mut i = BUCKETS + usize::from(bucket);
        for sibling in &mut proof {
            *sibling = self.nodes[i ^ 1];
            i /= 2;
        }
        proof
    }
}

/// Whether `bucket_entries` (every leaf of `bucket`, sorted by key) and `proof` lead to `root`.
/// Unsorted or duplicate entries, or entries outside the bucket, fail.
pub fn verify_proof(
    root: &B256,
    bucket: u16,
    bucket_entries: &[(B256, B256)],
    proof: &BucketProof,
) -> bool {
    let well_formed = bucket_entries.windows(2).all(|w| w[0].0 < w[1].0)
        && bucket_entries.iter().all(|(k, _)| bucket_of(k) == bucket);
    if !well_formed {
        return false;
    }
    let mut hash = bucket_hash(bucket_entries);
    let mut index = usize::from(bucket);
    for sibling in proof {
        hash = if index.is_multiple_of(2) {
            parent_hash(&hash, sibling)
        } else {
            parent_hash(sibling, &hash)
        };
        index /= 2;
    }
    hash == *root
}

/// The root over a full set of leaves `(key, leaf hash)` in any order (keys must be distinct).
pub fn root_of_leaves(leaves: impl IntoIterator<Item = (B256, B256)>) -> B256 {
    let mut sorted: Vec<(B256, B256)> = leaves.into_iter().collect();
    sorted.sort_unstable_by_key(|(key, _)| *key);
    let mut buckets = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let bucket = bucket_of(&sorted[start].0);
        let end = start
            + sorted[start..]
                .iter()
                .take_while(|(k, _)| bucket_of(k) == bucket)
                .count();
        buckets.push((bucket, bucket_hash(&sorted[start..end])));
        start = end;
    }
    BucketTree::from_buckets(buckets).root()
}
