//! BEP 52 Merkle trees: SHA-256 over 16 KiB blocks, sans-IO.
//!
//! # Shape of a file's tree
//! The leaves are the SHA-256 of each 16 KiB block of one file (the last block may be short and
//! is hashed as it is). The leaf layer is padded to a power of two with all-zero hashes, and
//! every parent is `SHA-256(left || right)`. The root is the file's `pieces root`.
//!
//! Levels are counted from the leaves: level 0 holds the leaf hashes, level `h` the hashes of
//! `2^h`-block subtrees. The *piece layer* is level `log2(piece_length / 16 KiB)`; a piece-layer
//! entry past the end of the file is the root of an all-zero subtree ([`pad_hash`]), which is
//! what padding the leaves with zeros yields. A file of at most one piece has no piece layer:
//! its single piece is checked against the pieces root, padded only to its own block count.
//!
//! # Hash requests
//! [`HashRequest`] is the BEP 52 `hash request` payload without the pieces root.
//! [`MerkleTree::hashes`] produces the `hashes` answer from a tree, [`hashes_within_piece`]
//! answers block-level requests from one piece's leaves plus the tree above the piece layer;
//! [`HashRequest::fold`] and [`verify_hashes`] check an answer. An answer holds `length` hashes of level `base_layer` starting
//! at `index`, then one uncle hash per level from the top of that run up to level
//! `base_layer + proof_layers`, lowest first (the levels inside the run are implied by it).
//!
//! This module is shared by the engine (piece verification, serving and checking hash
//! requests) and storage proofs; it does no I/O.
//!
//! ```
//! use metainfo::merkle::{self, HashRequest, MerkleTree};
//!
//! // A 5-block file with 32 KiB pieces (2 blocks per piece).
//! let data = vec![9u8; 4 * merkle::BLOCK_SIZE as usize + 100];
//! let leaves = merkle::leaf_hashes(&data);
//! let tree = MerkleTree::from_leaves(&leaves);
//! assert_eq!(tree.root(), merkle::file_root(&data));
//! let layer = merkle::piece_layer(&leaves, 32768);
//! assert_eq!(merkle::root_from_piece_layer(&layer, 32768), tree.root());
//!
//! // Serve and check the leaf hashes of the third piece with a proof up to the root.
//! let req = HashRequest { base_layer: 0, index: 4, length: 2, proof_layers: 2 };
//! let answer = tree.hashes(&req)?;
//! merkle::verify_hashes(&tree.root(), tree.height(), &req, &answer)?;
//! # Ok::<(), merkle::MerkleError>(())
//! ```

use sha2::{Digest, Sha256};

/// Bytes per leaf block (16 KiB).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// A SHA-256 node of a Merkle tree.
pub type Hash = [u8; 32];

/// Why a hash request cannot be served or a `hashes` answer does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The request breaks BEP 52's rules or does not fit the file's tree.
    #[error("invalid hash request: {0}")]
    BadRequest(&'static str),
    /// The tree on hand does not hold the requested level (e.g. leaves asked of a piece layer).
    #[error("hash request asks for level {0}, which this tree does not hold: reject it")]
    Unavailable(u32),
    /// A `hashes` answer with the wrong number of hashes for its request.
    #[error("hashes answer has {found} hashes, the request implies {expected}")]
    WrongCount {
        /// Hashes present.
        found: usize,
        /// Hashes the request implies.
        expected: usize,
    },
    /// The hashes do not lead to the expected root: the sender is wrong or lying.
    #[error("hashes do not match the pieces root: discard them and distrust the peer")]
    RootMismatch,
}

/// SHA-256 of one block (at most [`BLOCK_SIZE`] bytes; the last block of a file may be short).
pub fn leaf_hash(block: &[u8]) -> Hash {
    Sha256::digest(block).into()
}

/// The parent of two nodes: `SHA-256(left || right)`.
pub fn hash_pair(left: &Hash, right: &Hash) -> Hash {
    let mut sha = Sha256::new();
    sha.update(left);
    sha.update(right);
    sha.finalize().into()
}

/// The root of a subtree of `2^height` all-zero leaves (`height` 0 is the zero leaf itself):
/// what stands in for every node that covers only data past the end of a file.
pub fn pad_hash(height: u32) -> Hash {
    let mut h = [0u8; 32];
    for _ in 0..height {
        h = hash_pair(&h, &h);
    }
    h
}

/// Number of 16 KiB blocks (leaves) in a file of `len` bytes.
pub fn block_count(len: u64) -> u64 {
    len.div_ceil(u64::from(BLOCK_SIZE))
}

/// Level of the root of a tree with `leaves` leaves: `log2` of the leaf count rounded up to a
/// power of two (0 for at most one leaf).
pub fn tree_height(leaves: u64) -> u32 {
    leaves.max(1).next_power_of_two().trailing_zeros()
}

/// Level of the piece layer for `piece_length`-byte pieces: `log2(piece_length / 16 KiB)`.
/// `piece_length` is assumed to be a power of two of at least 16 KiB, as BEP 52 requires.
pub fn piece_height(piece_length: u32) -> u32 {
    (piece_length / BLOCK_SIZE).max(1).trailing_zeros()
}

/// The leaf hashes of `data`, one per 16 KiB block.
pub fn leaf_hashes(data: &[u8]) -> Vec<Hash> {
    data.chunks(BLOCK_SIZE as usize).map(leaf_hash).collect()
}

/// The root over `leaves`, padded with zero leaves to a power of two. For a file this is its
/// `pieces root`; for a piece of a file that fits in one piece, the same. Empty input gives the
/// zero hash.
pub fn root_from_leaves(leaves: &[Hash]) -> Hash {
    root_of_layer(leaves, 0, 0)
}

/// The root of `data`'s tree: [`root_from_leaves`] of [`leaf_hashes`].
pub fn file_root(data: &[u8]) -> Hash {
    root_from_leaves(&leaf_hashes(data))
}

/// The root over a piece layer: entries are padded to a power of two with [`pad_hash`] of the
/// piece level. Only meaningful for files longer than one piece (two or more entries).
pub fn root_from_piece_layer(layer: &[Hash], piece_length: u32) -> Hash {
    root_of_layer(layer, piece_height(piece_length), 0)
}

/// The piece-layer entry for one piece of a file longer than one piece: the root over the
/// piece's leaves padded with zero leaves to `piece_length / 16 KiB`.
pub fn piece_hash(piece_data: &[u8], piece_length: u32) -> Hash {
    root_of_layer(&leaf_hashes(piece_data), 0, piece_height(piece_length))
}

/// [`piece_hash`] from the piece's leaf hashes (at most `piece_length / 16 KiB` of them).
pub fn piece_hash_from_leaves(leaves: &[Hash], piece_length: u32) -> Hash {
    root_of_layer(leaves, 0, piece_height(piece_length))
}

/// The piece layer of a file from all its leaves: one entry per `piece_length` bytes, the last
/// piece's missing leaves taken as zero. Empty for a file of at most one piece, which has no
/// piece layer.
pub fn piece_layer(leaves: &[Hash], piece_length: u32) -> Vec<Hash> {
    let height = piece_height(piece_length);
    let per_piece = 1usize << height;
    if leaves.len() <= per_piece {
        return Vec::new();
    }
    leaves
        .chunks(per_piece)
        .map(|piece| root_of_layer(piece, 0, height))
        .collect()
}

/// The root above `nodes` (all at level `level`), padded with [`pad_hash`]`(level)` to a power of
/// two of at least `2^min_height` nodes.
fn root_of_layer(nodes: &[Hash], level: u32, min_height: u32) -> Hash {
    let height = tree_height(nodes.len() as u64).max(min_height);
    let mut layer = nodes.to_vec();
    let mut pad = pad_hash(level);
    for _ in 0..height {
        layer = parent_layer(&layer, &pad);
        pad = hash_pair(&pad, &pad);
    }
    layer.first().copied().unwrap_or(pad)
}

/// The layer above `layer`, taking `pad` for a missing right sibling.
fn parent_layer(layer: &[Hash], pad: &Hash) -> Vec<Hash> {
    layer
        .chunks(2)
        .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(pad)))
        .collect()
}

/// Folds `node`, at position `index` of its level, with its uncle hashes (lowest first) into
/// the ancestor they prove. Position bits pick the side at each level.
pub fn fold_proof(node: Hash, index: u64, uncles: &[Hash]) -> Hash {
    uncles.iter().enumerate().fold(node, |acc, (i, uncle)| {
        if index.checked_shr(i as u32).unwrap_or(0) & 1 == 0 {
            hash_pair(&acc, uncle)
        } else {
            hash_pair(uncle, &acc)
        }
    })
}

/// Whether `uncles` prove `node` (at `index` of its level) under `root`: the proof must reach
/// exactly the root, so it needs one uncle per level between the node and the root.
pub fn verify_proof(root: &Hash, node: Hash, index: u64, uncles: &[Hash]) -> bool {
    index.checked_shr(uncles.len() as u32).unwrap_or(0) == 0
        && fold_proof(node, index, uncles) == *root
}

/// A complete tree from some level up to the root, with every padding node filled in.
///
/// Build it from a file's leaves ([`MerkleTree::from_leaves`]) to answer any hash request, or
/// from a piece layer ([`MerkleTree::from_piece_layer`]) to answer requests at or above the
/// piece level with a fraction of the memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// Level of `layers[0]`.
    base_height: u32,
    /// `layers[k]` is level `base_height + k`, padded to a power of two; the last is the root.
    layers: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// The tree over a file's leaf hashes.
    pub fn from_leaves(leaves: &[Hash]) -> MerkleTree {
        MerkleTree::from_layer(leaves, 0)
    }

    /// The tree above a file's piece layer (a file longer than one piece).
    pub fn from_piece_layer(layer: &[Hash], piece_length: u32) -> MerkleTree {
        MerkleTree::from_layer(layer, piece_height(piece_length))
    }

    /// The tree above `nodes`, which sit at level `level`; missing nodes are [`pad_hash`]es.
    pub fn from_layer(nodes: &[Hash], level: u32) -> MerkleTree {
        let width = nodes.len().max(1).next_power_of_two();
        let mut pad = pad_hash(level);
        let mut first = nodes.to_vec();
        first.resize(width, pad);
        let mut layers = vec![first];
        while let Some(top) = layers.last().filter(|l| l.len() > 1) {
            let next = parent_layer(top, &pad);
            pad = hash_pair(&pad, &pad);
            layers.push(next);
        }
        MerkleTree {
            base_height: level,
            layers,
        }
    }

    /// The root hash.
    pub fn root(&self) -> Hash {
        self.layers
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// Level of the lowest layer held.
    pub fn base_height(&self) -> u32 {
        self.base_height
    }

    /// Level of the root, counted from the leaves (`log2` of the padded leaf count).
    pub fn height(&self) -> u32 {
        self.base_height + self.layers.len() as u32 - 1
    }

    /// All nodes of `level` (padded to a power of two), if this tree holds that level.
    pub fn layer(&self, level: u32) -> Option<&[Hash]> {
        let k = level.checked_sub(self.base_height)?;
        self.layers.get(k as usize).map(Vec::as_slice)
    }

    /// The node at `index` of `level`.
    pub fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.layer(level)?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// The uncle hashes proving node `index` of `level` under the root, lowest first.
    pub fn proof(&self, level: u32, index: u64) -> Option<Vec<Hash>> {
        self.node(level, index)?;
        Some(self.uncles(level, index, self.height()))
    }

    /// Siblings on the path from node `index` of `level` up to (not including) level `top`.
    fn uncles(&self, level: u32, index: u64, top: u32) -> Vec<Hash> {
        (level..top)
            .filter_map(|l| self.node(l, (index >> (l - level)) ^ 1))
            .collect()
    }

    /// The `hashes` answer to `req` (see the [module docs](self)).
    pub fn hashes(&self, req: &HashRequest) -> Result<Vec<Hash>, MerkleError> {
        req.validate(self.height())?;
        let layer = self
            .layer(req.base_layer)
            .ok_or(MerkleError::Unavailable(req.base_layer))?;
        let start = req.index as usize;
        let mut out = layer[start..start + req.length as usize].to_vec();
        let run_top = req.base_layer + req.length.trailing_zeros();
        let top_uncle = req.base_layer + req.proof_layers;
        let run_index = u64::from(req.index >> req.length.trailing_zeros());
        out.extend(self.uncles(run_top, run_index, top_uncle + 1));
        Ok(out)
    }
}

/// Answers a hash request below the piece layer whose hashes lie inside piece `piece_index`,
/// from that piece's leaf hashes and the tree above the piece layer (`upper`, from
/// [`MerkleTree::from_piece_layer`]): the way to serve block hashes without keeping a whole
/// file's leaves. Requests at or above the piece layer go to [`MerkleTree::hashes`].
///
/// Fails with [`MerkleError::RootMismatch`] if the leaves do not hash to the piece's entry in
/// `upper` (the piece on disk is not the piece the tree describes).
pub fn hashes_within_piece(
    piece_leaves: &[Hash],
    piece_index: u32,
    upper: &MerkleTree,
    req: &HashRequest,
) -> Result<Vec<Hash>, MerkleError> {
    req.validate(upper.height())?;
    let piece_level = upper.base_height();
    if req.base_layer >= piece_level {
        return upper.hashes(req);
    }
    // Nodes of level `base_layer` per piece.
    let span = 1u64 << (piece_level - req.base_layer);
    let first = u64::from(piece_index) * span;
    if u64::from(req.index) < first || u64::from(req.index) + u64::from(req.length) > first + span {
        return Err(MerkleError::BadRequest("hashes outside the piece"));
    }
    let per_piece = 1usize << piece_level;
    if piece_leaves.is_empty() || piece_leaves.len() > per_piece {
        return Err(MerkleError::BadRequest("leaf count does not fit the piece"));
    }
    let mut leaves = piece_leaves.to_vec();
    leaves.resize(per_piece, [0; 32]);
    let lower = MerkleTree::from_leaves(&leaves);
    if Some(lower.root()) != upper.node(piece_level, u64::from(piece_index)) {
        return Err(MerkleError::RootMismatch);
    }
    // A node by absolute position: from the piece's subtree below the piece level.
    let node = |level: u32, index: u64| {
        if level < piece_level {
            lower.node(
                level,
                index - (u64::from(piece_index) << (piece_level - level)),
            )
        } else {
            upper.node(level, index)
        }
    };
    let mut out: Vec<Hash> = (0..u64::from(req.length))
        .filter_map(|i| node(req.base_layer, u64::from(req.index) + i))
        .collect();
    let run_top = req.base_layer + req.length.trailing_zeros();
    let run_index = u64::from(req.index >> req.length.trailing_zeros());
    for level in run_top..=req.base_layer + req.proof_layers {
        out.extend(node(level, (run_index >> (level - run_top)) ^ 1));
    }
    Ok(out)
}

/// A BEP 52 `hash request` for one file (the pieces root travels beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// Level of the requested hashes: 0 for leaves, the piece level for piece-layer hashes.
    pub base_layer: u32,
    /// Position of the first requested hash in its level; a multiple of `length`.
    pub index: u32,
    /// Number of hashes requested: a power of two.
    pub length: u32,
    /// The answer carries uncles up to level `base_layer + proof_layers`.
    pub proof_layers: u32,
}

/// What a checked `hashes` answer proves: one node above the requested run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvenNode {
    /// Level of the node.
    pub level: u32,
    /// Position of the node in its level.
    pub index: u64,
    /// The node's hash as the answer computes it; compare it to a trusted node.
    pub hash: Hash,
}

impl HashRequest {
    /// Checks the request against a file whose tree root is at level `tree_height`: BEP 52's
    /// rules (power-of-two `length`, `index` a multiple of it) and libtorrent's bounds (the run
    /// lies inside the padded level, uncles stop below the root).
    pub fn validate(&self, tree_height: u32) -> Result<(), MerkleError> {
        if !self.length.is_power_of_two() {
            return Err(MerkleError::BadRequest("length must be a power of two"));
        }
        if !self.index.is_multiple_of(self.length) {
            return Err(MerkleError::BadRequest(
                "index must be a multiple of length",
            ));
        }
        if self.base_layer >= tree_height {
            return Err(MerkleError::BadRequest("base layer must be below the root"));
        }
        let level_size = 1u64
            .checked_shl(tree_height - self.base_layer)
            .unwrap_or(u64::MAX);
        if u64::from(self.index) + u64::from(self.length) > level_size {
            return Err(MerkleError::BadRequest("hashes past the end of the layer"));
        }
        if self.proof_layers >= tree_height - self.base_layer {
            return Err(MerkleError::BadRequest("proof layers reach past the root"));
        }
        Ok(())
    }

    /// Number of uncle hashes an answer carries after the `length` base hashes.
    pub fn uncle_count(&self) -> usize {
        (self.proof_layers.saturating_add(1)).saturating_sub(self.length.trailing_zeros()) as usize
    }

    /// Total hashes in a `hashes` answer to this request.
    pub fn answer_len(&self) -> usize {
        self.length as usize + self.uncle_count()
    }

    /// Folds an answer into the node it proves: the root of the requested run combined with
    /// the uncles, landing at level `base_layer + proof_layers + 1` (or at the top of the run
    /// when that is higher). The caller compares the result with a node it trusts; see
    /// [`verify_hashes`] for the common case of proving all the way to the pieces root.
    pub fn fold(&self, hashes: &[Hash]) -> Result<ProvenNode, MerkleError> {
        if !self.length.is_power_of_two() || !self.index.is_multiple_of(self.length) {
            return Err(MerkleError::BadRequest(
                "length must be a power of two dividing index",
            ));
        }
        if hashes.len() != self.answer_len() {
            return Err(MerkleError::WrongCount {
                found: hashes.len(),
                expected: self.answer_len(),
            });
        }
        let (run, uncles) = hashes.split_at(self.length as usize);
        let run_height = self.length.trailing_zeros();
        // `length` is a power of two, so the run reduces without padding.
        let mut run_root = run.to_vec();
        while run_root.len() > 1 {
            run_root = run_root
                .chunks(2)
                .map(|p| hash_pair(&p[0], &p[1]))
                .collect();
        }
        let run_root = run_root[0];
        let run_index = u64::from(self.index >> run_height);
        Ok(ProvenNode {
            level: self
                .base_layer
                .saturating_add(run_height)
                .saturating_add(uncles.len() as u32),
            index: run_index.checked_shr(uncles.len() as u32).unwrap_or(0),
            hash: fold_proof(run_root, run_index, uncles),
        })
    }
}

/// Checks a `hashes` answer whose proof reaches the root of a tree of height `tree_height`
/// (`base_layer + proof_layers == tree_height - 1`) against the file's pieces root. On success
/// the first `length` hashes are trustworthy.
pub fn verify_hashes(
    root: &Hash,
    tree_height: u32,
    req: &HashRequest,
    hashes: &[Hash],
) -> Result<(), MerkleError> {
    req.validate(tree_height)?;
    let proven = req.fold(hashes)?;
    if proven.level != tree_height {
        return Err(MerkleError::BadRequest("proof does not reach the root"));
    }
    if proven.hash != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn data(len: usize) -> Vec<u8> {
        // Not periodic in 16 KiB, so every block (and piece) differs.
        (0..len as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect()
    }

    /// Naive reference: pad leaves with zeros to a power of two and reduce.
    fn naive_root(mut leaves: Vec<Hash>) -> Hash {
        let n = leaves.len().max(1).next_power_of_two();
        leaves.resize(n, [0; 32]);
        while leaves.len() > 1 {
            leaves = leaves.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        }
        leaves[0]
    }

    #[test]
    fn exact_vectors() {
        // SHA-256("") and SHA-256 of 64 zero bytes, known constants.
        assert_eq!(
            hex(&leaf_hash(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(pad_hash(0), [0; 32]);
        assert_eq!(
            hex(&pad_hash(1)),
            "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"
        );
        assert_eq!(pad_hash(2), hash_pair(&pad_hash(1), &pad_hash(1)));
        // A one-block file's root is its leaf; a short block is hashed as is.
        assert_eq!(file_root(b"abc"), leaf_hash(b"abc"));
        assert_eq!(
            hex(&file_root(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Three blocks pad to four leaves with a zero leaf.
        let d = data(2 * BLOCK_SIZE as usize + 1);
        let l = leaf_hashes(&d);
        assert_eq!(l.len(), 3);
        assert_eq!(
            file_root(&d),
            hash_pair(&hash_pair(&l[0], &l[1]), &hash_pair(&l[2], &[0; 32]))
        );
        assert_eq!(
            (
                block_count(0),
                block_count(1),
                block_count(16384),
                block_count(16385)
            ),
            (0, 1, 1, 2)
        );
        assert_eq!([0, 1, 2, 3, 4, 5].map(tree_height), [0, 0, 1, 2, 2, 3]);
        assert_eq!([16384, 32768, 1 << 20].map(piece_height), [0, 1, 6]);
    }

    #[test]
    fn roots_from_leaves_and_piece_layers_agree() {
        for blocks in [1usize, 2, 3, 4, 5, 7, 8, 9, 17] {
            let d = data(blocks * BLOCK_SIZE as usize - 10);
            let leaves = leaf_hashes(&d);
            let root = naive_root(leaves.clone());
            assert_eq!(root_from_leaves(&leaves), root, "{blocks} blocks");
            assert_eq!(MerkleTree::from_leaves(&leaves).root(), root);
            for piece_length in [16384u32, 32768, 65536, 131072] {
                let layer = piece_layer(&leaves, piece_length);
                let per_piece = (piece_length / BLOCK_SIZE) as usize;
                if blocks <= per_piece {
                    assert!(layer.is_empty());
                    continue;
                }
                assert_eq!(layer.len(), blocks.div_ceil(per_piece));
                assert_eq!(root_from_piece_layer(&layer, piece_length), root);
                let tree = MerkleTree::from_piece_layer(&layer, piece_length);
                assert_eq!(
                    (tree.root(), tree.height()),
                    (root, tree_height(blocks as u64))
                );
                // Each entry is the piece's own padded root.
                for (i, chunk) in d.chunks(piece_length as usize).enumerate() {
                    assert_eq!(piece_hash(chunk, piece_length), layer[i]);
                }
                // Padding entries of the piece layer are zero subtrees of a whole piece.
                let padded = tree.layer(piece_height(piece_length)).unwrap();
                assert!(padded[layer.len()..]
                    .iter()
                    .all(|h| *h == pad_hash(piece_height(piece_length))));
            }
        }
    }

    #[test]
    fn proofs_verify_every_node_and_reject_tampering() {
        let leaves = leaf_hashes(&data(11 * BLOCK_SIZE as usize));
        let tree = MerkleTree::from_leaves(&leaves);
        assert_eq!(tree.height(), 4);
        for level in 0..=4 {
            for index in 0..(16u64 >> level) {
                let node = tree.node(level, index).unwrap();
                let proof = tree.proof(level, index).unwrap();
                assert_eq!(proof.len(), (4 - level) as usize);
                assert!(verify_proof(&tree.root(), node, index, &proof));
                // The wrong position fails unless the node equals its sibling (padding).
                if proof.first().is_some_and(|sibling| *sibling != node) {
                    assert!(!verify_proof(&tree.root(), node, index ^ 1, &proof));
                }
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_proof(&tree.root(), node, index, &bad), "{first:?}");
                }
            }
        }
        assert_eq!(tree.proof(0, 16), None);
        assert_eq!(tree.node(5, 0), None);
        // An index too large for the proof length cannot verify.
        let proof = tree.proof(0, 3).unwrap();
        assert!(!verify_proof(&tree.root(), leaves[3], 3 + 16, &proof));
    }

    #[test]
    fn hash_requests_round_trip_with_exact_layout() {
        // 11 leaves pad to 16: height 4.
        let leaves = leaf_hashes(&data(11 * BLOCK_SIZE as usize));
        let tree = MerkleTree::from_leaves(&leaves);
        let root = tree.root();

        // Four leaves 8..12 with proof layers 3: uncles at levels 2 and 3 only.
        let req = HashRequest {
            base_layer: 0,
            index: 8,
            length: 4,
            proof_layers: 3,
        };
        let answer = tree.hashes(&req).unwrap();
        assert_eq!(answer.len(), 6);
        assert_eq!(&answer[..3], &leaves[8..11]);
        assert_eq!(answer[3], [0; 32], "leaf past the end of the file is zero");
        assert_eq!(answer[4], tree.node(2, 3).unwrap());
        assert_eq!(answer[5], tree.node(3, 0).unwrap());
        verify_hashes(&root, 4, &req, &answer).unwrap();

        // Fewer proof layers: the answer proves an inner node, not the root.
        let short = HashRequest {
            proof_layers: 2,
            ..req
        };
        let answer = tree.hashes(&short).unwrap();
        assert_eq!(answer.len(), 5);
        let proven = short.fold(&answer).unwrap();
        assert_eq!(
            proven,
            ProvenNode {
                level: 3,
                index: 1,
                hash: tree.node(3, 1).unwrap()
            }
        );
        assert_eq!(
            verify_hashes(&root, 4, &short, &answer),
            Err(MerkleError::BadRequest("proof does not reach the root"))
        );

        // No proof at all when the run's own root is the only thing wanted.
        let run = HashRequest {
            base_layer: 0,
            index: 0,
            length: 16,
            proof_layers: 0,
        };
        assert_eq!(tree.hashes(&run).unwrap().len(), 16);
        assert_eq!(run.fold(&tree.hashes(&run).unwrap()).unwrap().hash, root);

        // Every valid request verifies; one flipped bit anywhere fails.
        for base in 0..4u32 {
            for log_len in 0..=(4 - base) {
                let length = 1u32 << log_len;
                for index in (0..(16u32 >> base)).step_by(length as usize) {
                    let req = HashRequest {
                        base_layer: base,
                        index,
                        length,
                        proof_layers: 3 - base,
                    };
                    let answer = tree.hashes(&req).unwrap();
                    assert_eq!(answer.len(), req.answer_len());
                    verify_hashes(&root, 4, &req, &answer).unwrap();
                    for i in 0..answer.len() {
                        let mut bad = answer.clone();
                        bad[i][31] ^= 0x80;
                        // A flipped padding hash beyond the run can still be harmless only if
                        // unused; every hash here is used.
                        assert_eq!(
                            verify_hashes(&root, 4, &req, &bad),
                            Err(MerkleError::RootMismatch),
                            "{req:?} hash {i}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn piece_layer_tree_serves_piece_requests_only() {
        let piece_length = 65536;
        let leaves = leaf_hashes(&data(21 * BLOCK_SIZE as usize));
        let full = MerkleTree::from_leaves(&leaves);
        let layer = piece_layer(&leaves, piece_length);
        let top = MerkleTree::from_piece_layer(&layer, piece_length);
        assert_eq!((top.base_height(), top.height(), full.height()), (2, 5, 5));
        let req = HashRequest {
            base_layer: 2,
            index: 0,
            length: 8,
            proof_layers: 2,
        };
        assert_eq!(top.hashes(&req), full.hashes(&req));
        verify_hashes(&full.root(), 5, &req, &top.hashes(&req).unwrap()).unwrap();
        let leaves_req = HashRequest {
            base_layer: 0,
            index: 0,
            length: 4,
            proof_layers: 4,
        };
        assert_eq!(top.hashes(&leaves_req), Err(MerkleError::Unavailable(0)));
    }

    #[test]
    fn block_requests_from_one_piece_match_the_full_tree() {
        let piece_length = 65536; // 4 blocks per piece
        let leaves = leaf_hashes(&data(21 * BLOCK_SIZE as usize + 5));
        let full = MerkleTree::from_leaves(&leaves);
        let upper = MerkleTree::from_piece_layer(&piece_layer(&leaves, piece_length), piece_length);
        let mut served = 0;
        for piece in 0..6u32 {
            let piece_leaves =
                &leaves[piece as usize * 4..leaves.len().min(piece as usize * 4 + 4)];
            for base in 0..2u32 {
                for log_len in 0..=(2 - base) {
                    let length = 1u32 << log_len;
                    let per_piece = 4 >> base;
                    for index in
                        (piece * per_piece..(piece + 1) * per_piece).step_by(length as usize)
                    {
                        for proof_layers in 0..(full.height() - base) {
                            let req = HashRequest {
                                base_layer: base,
                                index,
                                length,
                                proof_layers,
                            };
                            assert_eq!(
                                hashes_within_piece(piece_leaves, piece, &upper, &req),
                                full.hashes(&req),
                                "{req:?}"
                            );
                            served += 1;
                        }
                    }
                }
            }
        }
        assert!(served > 100);
        // Another piece's range, or leaves that are not this piece, are refused.
        let req = HashRequest {
            base_layer: 0,
            index: 4,
            length: 4,
            proof_layers: 3,
        };
        assert_eq!(
            hashes_within_piece(&leaves[..4], 0, &upper, &req),
            Err(MerkleError::BadRequest("hashes outside the piece"))
        );
        assert_eq!(
            hashes_within_piece(&leaves[..4], 1, &upper, &req),
            Err(MerkleError::RootMismatch)
        );
    }

    #[test]
    fn rejects_bad_requests_and_answers() {
        let tree = MerkleTree::from_leaves(&leaf_hashes(&data(5 * BLOCK_SIZE as usize)));
        assert_eq!(tree.height(), 3);
        let ok = HashRequest {
            base_layer: 0,
            index: 0,
            length: 2,
            proof_layers: 2,
        };
        let cases = [
            (
                HashRequest { length: 3, ..ok },
                "length must be a power of two",
            ),
            (
                HashRequest { length: 0, ..ok },
                "length must be a power of two",
            ),
            (
                HashRequest { index: 1, ..ok },
                "index must be a multiple of length",
            ),
            (
                HashRequest {
                    base_layer: 3,
                    ..ok
                },
                "base layer must be below the root",
            ),
            (
                HashRequest { index: 8, ..ok },
                "hashes past the end of the layer",
            ),
            (
                HashRequest {
                    proof_layers: 3,
                    ..ok
                },
                "proof layers reach past the root",
            ),
            (
                HashRequest {
                    index: u32::MAX - 1,
                    ..ok
                },
                "hashes past the end of the layer",
            ),
        ];
        for (req, why) in cases {
            assert_eq!(
                tree.hashes(&req),
                Err(MerkleError::BadRequest(why)),
                "{req:?}"
            );
        }
        let answer = tree.hashes(&ok).unwrap();
        assert_eq!(
            verify_hashes(&tree.root(), 3, &ok, &answer[1..]),
            Err(MerkleError::WrongCount {
                found: 3,
                expected: 4
            })
        );
        assert_eq!(
            verify_hashes(&[1; 32], 3, &ok, &answer),
            Err(MerkleError::RootMismatch)
        );
        // A one-block file has a tree of height 0: nothing can be requested.
        let single = MerkleTree::from_leaves(&[leaf_hash(b"x")]);
        assert_eq!(single.height(), 0);
        assert!(single
            .hashes(&HashRequest {
                base_layer: 0,
                index: 0,
                length: 1,
                proof_layers: 0
            })
            .is_err());
    }
}
