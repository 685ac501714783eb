//! The state commitment as the node keeps it: the finalized bucket tree in memory, the leaves in
//! the store, and the bucket hashes of blocks that are not finalized yet as overrides on top.
//!
//! A block's state root is the root of the finalized tree with the buckets changed since the
//! finalized head replaced. Those changed buckets are recomputed from the finalized leaves in
//! the store patched with the leaf updates of every unfinalized ancestor and of the block itself.

use std::collections::BTreeMap;

use chain_state::{bucket_hash, bucket_of, leaf_updates, BucketTree, StateChanges};
use chain_types::B256;

use crate::store::Store;
use crate::Error;

/// Leaf updates grouped by bucket: `Some(hash)` writes a leaf, `None` deletes it.
pub(crate) type LeafUpdates = BTreeMap<u16, BTreeMap<B256, Option<B256>>>;

/// Groups the leaf updates of `changes` by bucket.
pub(crate) fn group_leaves(changes: &StateChanges) -> LeafUpdates {
    let mut out = LeafUpdates::new();
    for (key, leaf) in leaf_updates(changes) {
        out.entry(bucket_of(&key)).or_default().insert(key, leaf);
    }
    out
}

/// The finalized commitment tree.
pub(crate) struct Commitment {
    tree: BucketTree,
}

impl Commitment {
    /// The tree of the finalized state in `store`.
    pub(crate) fn load(store: &Store) -> Result<Self, Error> {
        let mut tree = BucketTree::new();
        for (bucket, hash) in store.bucket_hashes()? {
            tree.set(bucket, hash);
        }
        Ok(Self { tree })
    }

    /// Root of a state built from nothing by `changes` (the genesis state).
    pub(crate) fn root_of_changes(changes: &StateChanges) -> B256 {
        let mut tree = BucketTree::new();
        for (bucket, hash) in Self::fresh_buckets(changes) {
            tree.set(bucket, hash);
        }
        tree.root()
    }

    /// Bucket hashes of a state built from nothing by `changes`.
    pub(crate) fn fresh_buckets(changes: &StateChanges) -> Vec<(u16, B256)> {
        group_leaves(changes)
            .into_iter()
            .map(|(bucket, leaves)| {
                let entries: Vec<(B256, B256)> = leaves
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
                (bucket, bucket_hash(&entries))
            })
            .collect()
    }

    /// Recomputes the buckets touched by `new` on top of the finalized leaves in `store` and the
    /// leaf updates of unfinalized `ancestors` (oldest first). Returns the new bucket hashes.
    pub(crate) fn changed_buckets(
        store: &Store,
        ancestors: &[&LeafUpdates],
        new: &LeafUpdates,
    ) -> Result<BTreeMap<u16, B256>, Error> {
        let mut out = BTreeMap::new();
        for (bucket, updates) in new {
            let mut leaves: BTreeMap<B256, B256> =
                store.bucket_leaves(*bucket)?.into_iter().collect();
            for layer in ancestors
                .iter()
                .filter_map(|a| a.get(bucket))
                .chain([updates])
            {
                for (key, leaf) in layer {
                    match leaf {
                        Some(h) => leaves.insert(*key, *h),
                        None => leaves.remove(key),
                    };
                }
            }
            let entries: Vec<(B256, B256)> = leaves.into_iter().collect();
            out.insert(*bucket, bucket_hash(&entries));
        }
        Ok(out)
    }

    /// Root of the finalized tree with `overrides` applied (not kept).
    pub(crate) fn root_with(&self, overrides: &BTreeMap<u16, B256>) -> B256 {
        if overrides.is_empty() {
            return self.tree.root();
        }
        let mut tree = self.tree.clone();
        for (bucket, hash) in overrides {
            tree.set(*bucket, *hash);
        }
        tree.root()
    }

    /// Makes `buckets` part of the finalized tree.
    pub(crate) fn apply(&mut self, buckets: &BTreeMap<u16, B256>) {
        for (bucket, hash) in buckets {
            self.tree.set(*bucket, *hash);
        }
    }

    /// Root of the finalized state.
    pub(crate) fn root(&self) -> B256 {
        self.tree.root()
    }
}
