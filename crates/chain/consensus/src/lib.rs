//! BFT consensus for the BTT chain: commonware's simplex with BLS12-381 multisig certificates,
//! marshal for ordered delivery of finalized blocks, and authenticated p2p among validators,
//! behind the [`ChainApp`] trait. No commonware type appears in this crate's API.
//!
//! A node is a validator or a full node ([`Role`]). A full node runs the same engine with a
//! verify-only scheme: it is a secondary peer of the committee (it dials the validators, which
//! accept it because they list it in [`Config::followers`], and receives their votes,
//! certificates and blocks), checks every certificate against the committee's BLS keys, fetches
//! what it missed from the validators' archives, and hands each finalized block to
//! [`ChainApp::finalized`]. It never votes and never asks the application to build or verify.
//!
//! # Layout
//! - [`ValidatorKeys`] / [`ValidatorInfo`] (`keys.rs`): an ed25519 identity and a BLS12-381
//!   (MinPk) key per validator, a key-file format, and a proof of possession for the genesis
//!   file; [`NodeKey`], a full node's ed25519 identity and its key file. [`start`] verifies every proof before building the committee, since multisig
//!   certificates are only sound against rogue keys with them.
//! - [`ChainApp`], [`ProposalCtx`], [`Verdict`], [`Status`] (`app.rs`): what the node
//!   implements and observes.
//! - `block.rs`: [`chain_types::Block`] as commonware's block type. The consensus digest is the
//!   block hash; the wire form is a length and the canonical RLP encoding, and decoding refuses
//!   non-canonical bytes and bodies that do not match the header's transactions root.
//! - `application/`: marshal's `Application` and finalized-block `Reporter` as a mailbox in
//!   front of an actor that owns the [`ChainApp`] (its own thread on tokio). A block from the
//!   future ([`Verdict::RetryAt`]) waits on the runtime clock; a finalized block is acknowledged
//!   to marshal only after [`ChainApp::finalized`] returns `Ok`.
//! - `engine.rs`: the wiring of one node (application actor, one marshal with block relay,
//!   backfill resolver and archives for all epochs, and an epoch orchestrator that runs one
//!   simplex engine per epoch behind its own `Inline` wrapper), generic over runtime and
//!   network so the simulation runs the production code.
//! - `node.rs`: [`start`] / [`Handle`]: the tokio runtime on its own OS thread, TCP p2p
//!   (the committee as primary peers, full nodes as secondary ones), storage under
//!   [`Config::storage_dir`].
//! - `sim` (feature `sim`, and this crate's tests): a deterministic multi-validator harness on
//!   commonware's simulated runtime and network, with crashes, partitions and lossy links.
//!
//! # Epochs
//! Epoch `e` covers heights `[e * L, e * L + L - 1]` ([`Config::epoch_length`] `= L`). Epoch 0's
//! committee is [`Config::validators`]; once the last block of epoch `e` is applied, consensus
//! asks [`ChainApp::committee`]`(e + 1)`, registers that committee's scheme with marshal (a
//! signer if it lists this node, a verifier otherwise), makes it the primary p2p peer set of
//! epoch `e + 1`, and starts a simplex engine for `e + 1` whose genesis is that last block, on
//! its own sub-channel of the votes, certificates and resolver channels and its own journal.
//! Within an epoch simplex re-proposes the boundary block instead of building past it, so no
//! block of epoch `e + 1` is ever certified by epoch `e`'s committee. The old engine lingers a
//! few leader timeouts for peers finishing it, then stops. A node that missed the boundary
//! hears votes of the later epoch, asks their sender for the boundary block's finalization,
//! and walks forward one epoch at a time. On restart it resumes in the epoch of
//! [`ChainApp::finalized_height`]` + 1`.
//!
//! # Dependencies
//! - commonware (`consensus`, `p2p`, `runtime`, `cryptography`, `storage`, `broadcast`, `codec`,
//!   `utils`, `actor`, `parallel`, `stream`, `math`), pinned to one exact release: simplex and
//!   marshal are the consensus, `p2p`/`stream` the encrypted authenticated transport,
//!   `runtime` the tokio and deterministic executors and storage, `storage` marshal's archives,
//!   `broadcast` the block relay; the rest are their traits and helpers.
//! - `rand` 0.10: commonware's RNG traits (deriving BLS keys from a seed); the workspace's
//!   rand 0.8 is a different, incompatible crate.
//! - `futures`: channels between consensus tasks and the application actor; `tokio`: the
//!   `watch` channel behind [`Handle::subscribe`]; `bytes`: commonware's codec buffers.
//! - `chain-types`: the block; `serde`: [`ValidatorInfo`] in genesis files; `thiserror`,
//!   `tracing` as everywhere.
//!
//! ```
//! use chain_consensus::{namespace, ValidatorKeys};
//!
//! let keys = ValidatorKeys::generate([7; 32]);
//! let info = keys.public(&namespace(7215));
//! assert_eq!(namespace(7215), b"btt-chain/7215");
//! assert_eq!(info.identity, keys.identity_hex());
//! assert_eq!(info.bls.len(), 2 + 2 * 48); // 0x + a G1 point
//! // The key file round-trips.
//! let again = ValidatorKeys::from_hex(&keys.to_hex()).unwrap();
//! assert_eq!(again.public(&namespace(7215)), info);
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod app;
mod application;
mod block;
mod engine;
mod equivocate;
mod evidence;
mod keys;
mod node;
#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use app::{ChainApp, Finality, ProposalCtx, Status, Verdict};
pub use evidence::{
    evidence_epoch, verify_evidence, verify_validator_keys, Equivocation, EquivocationKind,
    EvidenceError,
};
pub use keys::{KeyError, NodeKey, ValidatorInfo, ValidatorKeys};
pub use node::{start, Config, GossipHandler, Gossiper, Handle, Role};

use commonware_consensus::simplex::scheme::bls12381_multisig;
use commonware_cryptography::{bls12381::primitives::variant::MinPk, ed25519};

/// A validator's identity key (p2p identity and participant order).
pub(crate) type Identity = ed25519::PublicKey;

/// The certificate scheme: BLS12-381 multisig with public keys in G1 (48 bytes) and signatures
/// in G2 (96 bytes); verifying a certificate aggregates the signers' keys, which is cheap in G1.
pub(crate) type Scheme = bls12381_multisig::Scheme<Identity, MinPk>;

/// How long consensus waits before retrying a [`ChainApp::finalized`] call that failed.
pub const FINALIZE_RETRY_MS: u64 = 1_000;

/// The namespace that domain-separates every consensus signature and proof of possession on
/// chain `chain_id`: `btt-chain/<chain_id>`.
pub fn namespace(chain_id: u64) -> Vec<u8> {
    format!("btt-chain/{chain_id}").into_bytes()
}

/// Why consensus could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The validator list is empty.
    #[error("the validator set is empty: the genesis file must list at least one validator")]
    NoValidators,
    /// A validator entry is malformed or its proof of possession does not verify.
    #[error("validator #{index} ({identity}) is invalid: {source}")]
    Validator {
        /// Position in the list.
        index: usize,
        /// The identity as written.
        identity: String,
        /// What is wrong.
        source: KeyError,
    },
    /// Two entries share an identity or a BLS key.
    #[error("the validator set lists an identity or BLS key twice: remove the duplicate")]
    DuplicateValidator,
    /// This validator's identity is neither in the genesis validator set nor in the peer list
    /// (the address book of validators that may join later).
    #[error("this node's identity {0} is neither in the validator set nor in the peer list: check the key file, the genesis validators and the peers")]
    NotAValidator(String),
    /// A full node's identity (or a listed follower's) is also a validator identity.
    #[error(
        "follower identity {0} is also in the validator set: give the full node its own node key"
    )]
    FollowerIsValidator(String),
    /// This node's identity is in the set, but with a different BLS key.
    #[error(
        "the validator set pairs identity {0} with a different BLS key than this node's key file"
    )]
    KeyMismatch(String),
    /// A peer entry does not parse.
    #[error("peer {identity} is invalid: {source}")]
    Peer {
        /// The identity as written.
        identity: String,
        /// What is wrong.
        source: KeyError,
    },
    /// The epoch length is below 2.
    #[error("the epoch length is {0} blocks; it must be at least 2 (u64::MAX for one epoch)")]
    EpochLength(u64),
    /// A validator has no address to dial.
    #[error("no address for validator {0}: add it to the peer list")]
    MissingPeerAddress(String),
    /// The application's genesis block is not at height 0.
    #[error("the genesis block has number {0}, expected 0")]
    Genesis(u64),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}; choose another consensus listen address")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Consensus storage cannot be opened.
    #[error("consensus storage failed: {0}; check the storage directory")]
    Storage(String),
    /// The consensus thread could not be started or exited early.
    #[error("consensus thread failed: {0}")]
    Thread(String),
}
