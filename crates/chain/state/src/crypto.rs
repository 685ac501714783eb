//! What the staking module needs from consensus cryptography, as a trait: the chain state does
//! not link the consensus engine. The node passes the real implementation (BLS12-381 proofs of
//! possession and signed votes, in `chain-consensus`); unit tests pass a fake.

use std::fmt;

/// A validator's consensus keys, as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsensusKey {
    /// ed25519 identity public key (32 bytes): the p2p identity and the committee order.
    pub identity: [u8; 32],
    /// BLS12-381 G1 public key (48 bytes) that signs votes.
    pub bls: Vec<u8>,
    /// Proof of possession of the BLS key (96 bytes).
    pub pop: Vec<u8>,
}

/// What verified evidence proves: who signed conflicting votes, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offence {
    /// The consensus epoch of the votes.
    pub epoch: u64,
    /// The view (round) within the epoch.
    pub view: u64,
    /// The offender's identity key.
    pub identity: [u8; 32],
}

/// Consensus cryptography the chain state calls into.
pub trait ConsensusCrypto: Send + Sync + fmt::Debug {
    /// Checks that the keys parse and the proof of possession is valid for this chain.
    fn check_keys(&self, key: &ConsensusKey) -> Result<(), String>;
    /// The epoch an evidence blob claims, read without verifying it.
    fn evidence_epoch(&self, evidence: &[u8]) -> Result<u64, String>;
    /// Verifies evidence against the committee of its epoch: two validly signed votes by one
    /// member of `committee` in one round that conflict.
    fn check_evidence(
        &self,
        committee: &[ConsensusKey],
        evidence: &[u8],
    ) -> Result<Offence, String>;
}
