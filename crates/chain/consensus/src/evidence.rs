//! Evidence that a validator signed conflicting votes, in a form the chain can carry in a
//! transaction and check without running consensus.
//!
//! Simplex reports three faults, each as a pair of votes by one signer in one round:
//! two notarizes of different proposals, two finalizes of different proposals, or a nullify
//! and a finalize. [`encode_activity`] turns such a report into evidence bytes;
//! [`verify_evidence`] checks the bytes against the committee of their epoch and names the
//! offender; [`evidence_epoch`] reads the epoch first, so the chain knows which committee to
//! look up.
//!
//! # Layout
//! Version 1 evidence is a version byte, then commonware's codec encoding of the simplex
//! `Activity` that reported the fault (its tag, then both votes):
//!
//! ```text
//! 0x01                      version
//! kind                      7 conflicting notarize, 8 conflicting finalize, 9 nullify + finalize
//! vote 1, vote 2            notarize+notarize, finalize+finalize, or nullify+finalize
//!
//! notarize, finalize:       epoch, view, parent view (varints), payload (32 bytes), attestation
//! nullify:                  epoch, view (varints), attestation
//! attestation:              signer (varint: the index of its identity key in the committee
//!                           sorted by key), BLS12-381 G2 signature (96 bytes)
//! ```
//!
//! Every field has a fixed size or is a varint, so decoding never allocates from a length field
//! and evidence is at most a few hundred bytes. Decoding is strict: the bytes must be exactly the
//! canonical encoding, with nothing after the second vote.
//!
//! # What verification proves
//! Both votes carry a valid signature by the same committee member, in the chain's namespace,
//! for the same round, and they conflict. Proofs of possession are not checked here: a single
//! vote's signature is sound without them (they guard aggregated certificates), and the chain
//! checks each validator's with [`verify_validator_keys`] when it joins. The same fault can be
//! written as more than one blob (the two votes in either order), so the chain should key any
//! penalty on the returned [`Equivocation`], not on the bytes.

use crate::{
    block::Digest,
    keys::{self, BlsPublic, KeyError},
    namespace, Identity, Scheme, ValidatorInfo,
};
use commonware_codec::{Copying, DecodeExt, Encode, EncodeSize, Read, ReadExt, Write};
use commonware_consensus::{
    simplex::types::{Activity, Attributable, Finalize, Notarize, Nullify},
    types::Round,
};
use commonware_cryptography::bls12381::primitives::{
    ops,
    variant::{MinPk, Variant},
};
use commonware_parallel::Sequential;
use commonware_utils::{ordered::BiMap, TryCollect};
use rand::SeedableRng;

/// The evidence format this build writes and reads.
pub(crate) const EVIDENCE_VERSION: u8 = 1;

/// Simplex's `Activity` tags for the three faults (its codec writes them before the votes).
const TAG_CONFLICTING_NOTARIZE: u8 = 7;
const TAG_CONFLICTING_FINALIZE: u8 = 8;
const TAG_NULLIFY_FINALIZE: u8 = 9;

/// What a piece of evidence proves: `offender` signed two conflicting votes in round
/// (`epoch`, `view`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Equivocation {
    /// The epoch of both votes.
    pub epoch: u64,
    /// The view of both votes.
    pub view: u64,
    /// The offender's identity key, `0x` hex, exactly as the committee entry passed to
    /// [`verify_evidence`] writes it.
    pub offender: String,
    /// Which two votes conflict.
    pub kind: EquivocationKind,
}

/// Which two votes conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EquivocationKind {
    /// Notarize votes for two different proposals.
    ConflictingNotarize,
    /// Finalize votes for two different proposals.
    ConflictingFinalize,
    /// A nullify vote and a finalize vote.
    NullifyFinalize,
}

/// Why evidence was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// There are no bytes at all.
    #[error("evidence is empty: submit the bytes consensus reported for the fault")]
    Empty,
    /// The first byte is not a version this build reads.
    #[error("evidence version {0} is not supported: this node reads version {EVIDENCE_VERSION}")]
    UnknownVersion(u8),
    /// The kind byte names no known fault.
    #[error(
        "evidence kind {0} is unknown: expected 7 (conflicting notarize), 8 (conflicting finalize) or 9 (nullify and finalize)"
    )]
    UnknownKind(u8),
    /// The bytes end before both votes are complete.
    #[error(
        "evidence is truncated: it ends before both votes are complete; submit the whole blob"
    )]
    Truncated,
    /// Bytes follow the second vote.
    #[error("evidence has {0} bytes after the second vote: submit exactly the reported blob")]
    TrailingBytes(usize),
    /// A field does not decode (a varint too long or out of range).
    #[error("evidence is malformed: {0}")]
    Malformed(String),
    /// The votes decode, but the bytes are not their canonical encoding.
    #[error("evidence is not canonically encoded: re-encode the two votes")]
    NonCanonical,
    /// The two votes name different signers.
    #[error("the votes are by different signers (#{first} and #{second}), so they prove nothing against either")]
    DifferentSigners {
        /// Signer index of the first vote.
        first: u32,
        /// Signer index of the second vote.
        second: u32,
    },
    /// The two votes are for different rounds.
    #[error(
        "the votes are for different rounds (epoch {first_epoch} view {first_view}, epoch {second_epoch} view {second_view}): only votes in one round can conflict"
    )]
    DifferentRounds {
        /// Epoch of the first vote.
        first_epoch: u64,
        /// View of the first vote.
        first_view: u64,
        /// Epoch of the second vote.
        second_epoch: u64,
        /// View of the second vote.
        second_view: u64,
    },
    /// Both votes are for the same proposal, which is allowed.
    #[error("the votes are for the same proposal, which is not a fault")]
    NoConflict,
    /// The committee passed in is empty.
    #[error("the committee is empty: pass the validator set of the evidence's epoch")]
    EmptyCommittee,
    /// A committee entry does not parse.
    #[error("committee member #{index} ({identity}) is invalid: {source}")]
    InvalidMember {
        /// Position in the list passed in.
        index: usize,
        /// The identity as written.
        identity: String,
        /// What is wrong.
        source: KeyError,
    },
    /// Two committee entries share an identity or a BLS key.
    #[error(
        "the committee lists an identity or BLS key twice: consensus never runs with such a set"
    )]
    DuplicateMember,
    /// The signer index is past the end of the committee.
    #[error(
        "signer #{signer} is not in the committee of {size} validators: check the evidence's epoch"
    )]
    UnknownSigner {
        /// The signer index the votes carry.
        signer: u32,
        /// How many validators the committee has.
        size: usize,
    },
    /// A vote's signature does not verify against the signer's BLS key.
    #[error(
        "vote {vote} is not signed by {identity} on this chain: the signature is forged, or the chain id or the epoch's committee is wrong"
    )]
    BadSignature {
        /// Which vote (1 or 2).
        vote: u8,
        /// The identity the signer index points at, as the committee entry writes it.
        identity: String,
    },
}

/// The two votes of a fault, decoded but not verified.
enum Votes {
    Notarize(Notarize<Scheme, Digest>, Notarize<Scheme, Digest>),
    Finalize(Finalize<Scheme, Digest>, Finalize<Scheme, Digest>),
    NullifyFinalize(Nullify<Scheme>, Finalize<Scheme, Digest>),
}

/// Evidence whose structure is valid: one signer, one round, conflicting votes.
struct Parsed {
    votes: Votes,
    signer: u32,
    round: Round,
}

impl Parsed {
    fn kind(&self) -> EquivocationKind {
        match self.votes {
            Votes::Notarize(..) => EquivocationKind::ConflictingNotarize,
            Votes::Finalize(..) => EquivocationKind::ConflictingFinalize,
            Votes::NullifyFinalize(..) => EquivocationKind::NullifyFinalize,
        }
    }
}

/// Encodes a conflicting-vote activity reported by simplex as evidence bytes (`None` for any
/// other activity). Simplex may report a fault before checking the second vote's signature, so
/// the bytes are only a claim until [`verify_evidence`] accepts them.
#[allow(dead_code)] // called by the engine's reporter
pub(crate) fn encode_activity(activity: &Activity<Scheme, Digest>) -> Option<Vec<u8>> {
    match activity {
        Activity::ConflictingNotarize(_)
        | Activity::ConflictingFinalize(_)
        | Activity::NullifyFinalize(_) => {
            let mut out = Vec::with_capacity(1 + activity.encode_size());
            out.push(EVIDENCE_VERSION);
            activity.write(&mut out);
            Some(out)
        }
        _ => None,
    }
}

/// The epoch an evidence blob claims, so the chain can look up that epoch's committee before
/// calling [`verify_evidence`]. Checks the structure (one signer, one round, conflicting votes)
/// but no signature.
pub fn evidence_epoch(evidence: &[u8]) -> Result<u64, EvidenceError> {
    Ok(parse(evidence)?.round.epoch().get())
}

/// Checks `evidence` against `committee`, the validators of the evidence's epoch (in any order:
/// they are sorted by identity key, as consensus sorts them), in chain `chain_id`'s namespace.
/// Accepts only if both votes carry valid signatures by the same member, for the same round,
/// and conflict. Total: any bytes give a verdict, without panicking.
pub fn verify_evidence(
    chain_id: u64,
    committee: &[ValidatorInfo],
    evidence: &[u8],
) -> Result<Equivocation, EvidenceError> {
    let parsed = parse(evidence)?;
    let (members, identities) = committee_of(committee)?;
    let size = members.len();
    let index = usize::try_from(parsed.signer).unwrap_or(usize::MAX);
    let Some(offender) = identities.get(index) else {
        return Err(EvidenceError::UnknownSigner {
            signer: parsed.signer,
            size,
        });
    };
    let scheme = Scheme::verifier(&namespace(chain_id), members);
    // Verifying a single BLS multisig vote draws no randomness (only batches do); the
    // generator only satisfies the signature of `verify`, so verdicts stay deterministic.
    let mut rng = rand::rngs::StdRng::from_seed([0; 32]);
    let (first_ok, second_ok) = match &parsed.votes {
        Votes::Notarize(a, b) => (
            a.verify(&mut rng, &scheme, &Sequential),
            b.verify(&mut rng, &scheme, &Sequential),
        ),
        Votes::Finalize(a, b) => (
            a.verify(&mut rng, &scheme, &Sequential),
            b.verify(&mut rng, &scheme, &Sequential),
        ),
        Votes::NullifyFinalize(a, b) => (
            a.verify::<_, Digest>(&mut rng, &scheme, &Sequential),
            b.verify(&mut rng, &scheme, &Sequential),
        ),
    };
    for (vote, ok) in [(1, first_ok), (2, second_ok)] {
        if !ok {
            return Err(EvidenceError::BadSignature {
                vote,
                identity: offender.clone(),
            });
        }
    }
    Ok(Equivocation {
        epoch: parsed.round.epoch().get(),
        view: parsed.round.view().get(),
        offender: offender.clone(),
        kind: parsed.kind(),
    })
}

/// Checks a validator's keys and its proof of possession in chain `chain_id`'s namespace, as
/// the chain must before adding it to a committee (multisig certificates are only sound if
/// every member proved it holds its BLS key).
pub fn verify_validator_keys(chain_id: u64, info: &ValidatorInfo) -> Result<(), KeyError> {
    info.identity_key()?;
    let bls = parse_bls(&info.bls)?;
    let what = "validator proof of possession";
    let pop_bytes = keys::from_hex(&info.pop, what)?;
    let pop = <MinPk as Variant>::Signature::decode(Copying(&pop_bytes)).map_err(|_| {
        KeyError::Invalid {
            what,
            kind: "BLS12-381 G2 signature",
        }
    })?;
    ops::verify_proof_of_possession::<MinPk>(&bls, &namespace(chain_id), &pop).map_err(|_| {
        KeyError::Invalid {
            what,
            kind: "proof of possession for this BLS key and chain id",
        }
    })
}

/// Parses a `0x` hex BLS12-381 G1 public key.
fn parse_bls(s: &str) -> Result<BlsPublic, KeyError> {
    let what = "validator BLS key";
    let bytes = keys::from_hex(s, what)?;
    BlsPublic::decode(Copying(&bytes)).map_err(|_| KeyError::Invalid {
        what,
        kind: "BLS12-381 G1 public key",
    })
}

/// The committee as consensus orders it (by identity key), and each member's identity as the
/// caller wrote it, in the same order.
fn committee_of(
    validators: &[ValidatorInfo],
) -> Result<(BiMap<Identity, BlsPublic>, Vec<String>), EvidenceError> {
    if validators.is_empty() {
        return Err(EvidenceError::EmptyCommittee);
    }
    let mut entries = Vec::with_capacity(validators.len());
    for (index, v) in validators.iter().enumerate() {
        let invalid = |source| EvidenceError::InvalidMember {
            index,
            identity: v.identity.clone(),
            source,
        };
        let identity = v.identity_key().map_err(invalid)?;
        let bls = parse_bls(&v.bls).map_err(invalid)?;
        entries.push((identity, bls, v.identity.as_str()));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let written = entries.iter().map(|e| e.2.to_owned()).collect();
    let members = entries
        .into_iter()
        .map(|(identity, bls, _)| (identity, bls))
        .try_collect()
        .map_err(|_| EvidenceError::DuplicateMember)?;
    Ok((members, written))
}

/// Decodes the version, the kind and both votes, and checks that the votes share a signer and
/// a round and conflict.
fn parse(evidence: &[u8]) -> Result<Parsed, EvidenceError> {
    let (&version, rest) = evidence.split_first().ok_or(EvidenceError::Empty)?;
    if version != EVIDENCE_VERSION {
        return Err(EvidenceError::UnknownVersion(version));
    }
    let (&kind, rest) = rest.split_first().ok_or(EvidenceError::Truncated)?;
    let mut buf = Copying(rest);
    let votes = match kind {
        TAG_CONFLICTING_NOTARIZE => Votes::Notarize(read(&mut buf)?, read(&mut buf)?),
        TAG_CONFLICTING_FINALIZE => Votes::Finalize(read(&mut buf)?, read(&mut buf)?),
        TAG_NULLIFY_FINALIZE => Votes::NullifyFinalize(read(&mut buf)?, read(&mut buf)?),
        other => return Err(EvidenceError::UnknownKind(other)),
    };
    if !buf.0.is_empty() {
        return Err(EvidenceError::TrailingBytes(buf.0.len()));
    }
    // Re-encoding must give back the input, so each pair of votes has one blob per order.
    let mut canonical = Vec::with_capacity(evidence.len());
    canonical.extend_from_slice(&[version, kind]);
    let ((signers, rounds), conflict) = match &votes {
        Votes::Notarize(a, b) => {
            canonical.extend_from_slice(&a.encode());
            canonical.extend_from_slice(&b.encode());
            (
                ((a.signer(), b.signer()), (a.round(), b.round())),
                a.proposal != b.proposal,
            )
        }
        Votes::Finalize(a, b) => {
            canonical.extend_from_slice(&a.encode());
            canonical.extend_from_slice(&b.encode());
            (
                ((a.signer(), b.signer()), (a.round(), b.round())),
                a.proposal != b.proposal,
            )
        }
        Votes::NullifyFinalize(a, b) => {
            canonical.extend_from_slice(&a.encode());
            canonical.extend_from_slice(&b.encode());
            // Nullifying a round and finalizing it contradict each other whatever the proposal.
            (((a.signer(), b.signer()), (a.round(), b.round())), true)
        }
    };
    if canonical != evidence {
        return Err(EvidenceError::NonCanonical);
    }
    if signers.0 != signers.1 {
        return Err(EvidenceError::DifferentSigners {
            first: signers.0.get(),
            second: signers.1.get(),
        });
    }
    if rounds.0 != rounds.1 {
        return Err(EvidenceError::DifferentRounds {
            first_epoch: rounds.0.epoch().get(),
            first_view: rounds.0.view().get(),
            second_epoch: rounds.1.epoch().get(),
            second_view: rounds.1.view().get(),
        });
    }
    if !conflict {
        return Err(EvidenceError::NoConflict);
    }
    Ok(Parsed {
        votes,
        signer: signers.0.get(),
        round: rounds.0,
    })
}

/// Reads one vote, mapping codec errors to ours.
fn read<T: Read<Cfg = ()>>(buf: &mut Copying<'_>) -> Result<T, EvidenceError> {
    T::read(buf).map_err(|e| match e {
        commonware_codec::Error::EndOfBuffer => EvidenceError::Truncated,
        other => EvidenceError::Malformed(other.to_string()),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::ValidatorKeys;
    use commonware_consensus::{
        simplex::types::{ConflictingFinalize, ConflictingNotarize, NullifyFinalize, Proposal},
        types::{Epoch, View},
    };
    use commonware_cryptography::sha256;

    pub(crate) const CHAIN: u64 = 7215;
    /// Bytes of one notarize or finalize with single-byte varints.
    const VOTE: usize = 3 + 32 + 1 + 96;

    /// Four validators' keys and genesis entries.
    pub(crate) fn validators() -> (Vec<ValidatorKeys>, Vec<ValidatorInfo>) {
        let keys: Vec<_> = (0..4u8).map(|i| ValidatorKeys::generate([i; 32])).collect();
        let infos = keys.iter().map(|k| k.public(&namespace(CHAIN))).collect();
        (keys, infos)
    }

    /// Validator `i`'s signing scheme in the committee of `infos`, on chain `chain_id`.
    pub(crate) fn scheme_of(
        keys: &[ValidatorKeys],
        infos: &[ValidatorInfo],
        i: usize,
        chain_id: u64,
    ) -> Scheme {
        let ns = namespace(chain_id);
        keys::signer(&keys[i], keys::committee(infos, &ns).unwrap(), &ns).unwrap()
    }

    fn proposal(epoch: u64, view: u64, payload: u8) -> Proposal<Digest> {
        Proposal::new(
            Round::new(Epoch::new(epoch), View::new(view)),
            View::new(view - 1),
            sha256::Digest([payload; 32]),
        )
    }

    fn notarize(s: &Scheme, epoch: u64, view: u64, payload: u8) -> Notarize<Scheme, Digest> {
        Notarize::sign(s, proposal(epoch, view, payload)).unwrap()
    }

    fn finalize(s: &Scheme, epoch: u64, view: u64, payload: u8) -> Finalize<Scheme, Digest> {
        Finalize::sign(s, proposal(epoch, view, payload)).unwrap()
    }

    fn nullify(s: &Scheme, epoch: u64, view: u64) -> Nullify<Scheme> {
        Nullify::sign::<Digest>(s, Round::new(Epoch::new(epoch), View::new(view))).unwrap()
    }

    /// Evidence bytes built by hand, bypassing the checks of simplex's constructors.
    fn raw(kind: u8, a: &impl Encode, b: &impl Encode) -> Vec<u8> {
        let mut out = vec![EVIDENCE_VERSION, kind];
        out.extend_from_slice(&a.encode());
        out.extend_from_slice(&b.encode());
        out
    }

    /// The committee index of validator `i` (position of its identity in sorted order).
    fn index_of(infos: &[ValidatorInfo], i: usize) -> u32 {
        let mut ids: Vec<_> = infos.iter().map(|v| v.identity_key().unwrap()).collect();
        ids.sort();
        let me = infos[i].identity_key().unwrap();
        u32::try_from(ids.iter().position(|id| *id == me).unwrap()).unwrap()
    }

    #[test]
    fn conflicting_notarize_names_the_offender() {
        let (keys, infos) = validators();
        let s = scheme_of(&keys, &infos, 2, CHAIN);
        let (a, b) = (notarize(&s, 3, 11, 1), notarize(&s, 3, 11, 2));
        let activity = Activity::ConflictingNotarize(ConflictingNotarize::new(a.clone(), b));
        let evidence = encode_activity(&activity).unwrap();

        // The layout the module docs describe.
        assert_eq!(evidence.len(), 2 + 2 * VOTE);
        assert_eq!(evidence[..5], [1, 7, 3, 11, 10]);
        assert_eq!(evidence[5..37], [1; 32]);
        assert_eq!(u32::from(evidence[37]), index_of(&infos, 2));
        assert_eq!(evidence[38..134], a.attestation.signature.encode()[..]);
        assert_eq!(evidence[2 + VOTE..2 + VOTE + 3], [3, 11, 10]);
        assert_eq!(evidence[2 + VOTE + 3..2 + VOTE + 35], [2; 32]);

        let want = Equivocation {
            epoch: 3,
            view: 11,
            offender: infos[2].identity.clone(),
            kind: EquivocationKind::ConflictingNotarize,
        };
        assert_eq!(verify_evidence(CHAIN, &infos, &evidence), Ok(want.clone()));
        assert_eq!(evidence_epoch(&evidence), Ok(3));
        // The committee may come in any order.
        let mut reversed = infos.clone();
        reversed.reverse();
        assert_eq!(verify_evidence(CHAIN, &reversed, &evidence), Ok(want));
    }

    #[test]
    fn conflicting_finalize_names_the_offender() {
        let (keys, infos) = validators();
        let s = scheme_of(&keys, &infos, 2, CHAIN);
        let (a, b) = (finalize(&s, 0, 5, 7), finalize(&s, 0, 5, 8));
        let activity = Activity::ConflictingFinalize(ConflictingFinalize::new(a, b));
        let evidence = encode_activity(&activity).unwrap();
        assert_eq!(evidence[..2], [1, 8]);
        assert_eq!(evidence.len(), 2 + 2 * VOTE);
        assert_eq!(
            verify_evidence(CHAIN, &infos, &evidence),
            Ok(Equivocation {
                epoch: 0,
                view: 5,
                offender: infos[2].identity.clone(),
                kind: EquivocationKind::ConflictingFinalize,
            })
        );
    }

    #[test]
    fn nullify_finalize_names_the_offender() {
        let (keys, infos) = validators();
        let s = scheme_of(&keys, &infos, 2, CHAIN);
        let activity = Activity::NullifyFinalize(NullifyFinalize::new(
            nullify(&s, 4, 9),
            finalize(&s, 4, 9, 1),
        ));
        let evidence = encode_activity(&activity).unwrap();
        assert_eq!(
            evidence[..5],
            [1, 9, 4, 9, u8::try_from(index_of(&infos, 2)).unwrap()]
        );
        assert_eq!(evidence.len(), 2 + (2 + 1 + 96) + VOTE);
        assert_eq!(evidence_epoch(&evidence), Ok(4));
        assert_eq!(
            verify_evidence(CHAIN, &infos, &evidence),
            Ok(Equivocation {
                epoch: 4,
                view: 9,
                offender: infos[2].identity.clone(),
                kind: EquivocationKind::NullifyFinalize,
            })
        );
    }

    #[test]
    fn only_faults_are_encoded() {
        let (keys, infos) = validators();
        let s = scheme_of(&keys, &infos, 2, CHAIN);
        assert_eq!(
            encode_activity(&Activity::Notarize(notarize(&s, 1, 1, 1))),
            None
        );
        assert_eq!(encode_activity(&Activity::Nullify(nullify(&s, 1, 1))), None);
        assert_eq!(
            encode_activity(&Activity::Finalize(finalize(&s, 1, 1, 1))),
            None
        );
    }

    #[test]
    fn votes_that_do_not_conflict_are_refused() {
        let (keys, infos) = validators();
        let s2 = scheme_of(&keys, &infos, 2, CHAIN);
        let s1 = scheme_of(&keys, &infos, 1, CHAIN);
        let a = notarize(&s2, 3, 11, 1);

        // The same vote twice.
        let same = raw(7, &a, &a);
        assert_eq!(
            verify_evidence(CHAIN, &infos, &same),
            Err(EvidenceError::NoConflict)
        );
        assert_eq!(evidence_epoch(&same), Err(EvidenceError::NoConflict));
        let f = finalize(&s2, 3, 11, 1);
        assert_eq!(
            verify_evidence(CHAIN, &infos, &raw(8, &f, &f)),
            Err(EvidenceError::NoConflict)
        );

        // Two signers.
        assert_eq!(
            verify_evidence(CHAIN, &infos, &raw(7, &a, &notarize(&s1, 3, 11, 2))),
            Err(EvidenceError::DifferentSigners {
                first: index_of(&infos, 2),
                second: index_of(&infos, 1),
            })
        );

        // Two views, and two epochs.
        assert_eq!(
            verify_evidence(CHAIN, &infos, &raw(7, &a, &notarize(&s2, 3, 12, 2))),
            Err(EvidenceError::DifferentRounds {
                first_epoch: 3,
                first_view: 11,
                second_epoch: 3,
                second_view: 12,
            })
        );
        assert_eq!(
            verify_evidence(
                CHAIN,
                &infos,
                &raw(9, &nullify(&s2, 3, 11), &finalize(&s2, 2, 11, 1))
            ),
            Err(EvidenceError::DifferentRounds {
                first_epoch: 3,
                first_view: 11,
                second_epoch: 2,
                second_view: 11,
            })
        );

        // A finalize where a notarize belongs decodes as something else or not at all, but
        // never verifies: the two kinds sign in different namespaces.
        let swapped = raw(7, &a, &finalize(&s2, 3, 11, 2));
        assert!(verify_evidence(CHAIN, &infos, &swapped).is_err());
    }

    #[test]
    fn signatures_are_checked_against_the_committee_and_chain() {
        let (keys, infos) = validators();
        let s = scheme_of(&keys, &infos, 2, CHAIN);
        let evidence = raw(7, &notarize(&s, 3, 11, 1), &notarize(&s, 3, 11, 2));
        let index = index_of(&infos, 2);

        // Another chain's namespace.
        let bad = |vote| EvidenceError::BadSignature {
            vote,
            identity: infos[2].identity.clone(),
        };
        assert_eq!(verify_evidence(CHAIN + 1, &infos, &evidence), Err(bad(1)));

        // A flipped byte in either signature.
        let first_sig_end = 2 + VOTE - 1;
        let mut flipped = evidence.clone();
        flipped[first_sig_end] ^= 1;
        assert_eq!(verify_evidence(CHAIN, &infos, &flipped), Err(bad(1)));
        let mut flipped = evidence.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verify_evidence(CHAIN, &infos, &flipped), Err(bad(2)));
        // A flipped payload byte: the signature no longer covers what the vote says.
        let mut flipped = evidence.clone();
        flipped[2 + VOTE + 4] ^= 1;
        assert_eq!(verify_evidence(CHAIN, &infos, &flipped), Err(bad(2)));

        // A committee without the signer: its index points past the end or at someone else.
        let others: Vec<_> = [0, 1, 3].iter().map(|&i| infos[i].clone()).collect();
        let mut sorted = others.clone();
        sorted.sort_by_key(|v| v.identity_key().unwrap());
        let want = match sorted.get(index as usize) {
            None => EvidenceError::UnknownSigner {
                signer: index,
                size: 3,
            },
            Some(v) => EvidenceError::BadSignature {
                vote: 1,
                identity: v.identity.clone(),
            },
        };
        assert_eq!(verify_evidence(CHAIN, &others, &evidence), Err(want));
        // A committee too small to have the index at all.
        let small: Vec<_> = (10..10 + index as u8)
            .map(|i| ValidatorKeys::generate([i; 32]).public(&namespace(CHAIN)))
            .collect();
        let want = if small.is_empty() {
            EvidenceError::EmptyCommittee
        } else {
            EvidenceError::UnknownSigner {
                signer: index,
                size: small.len(),
            }
        };
        assert_eq!(verify_evidence(CHAIN, &small, &evidence), Err(want));
        // The offender's own entry in a committee of strangers, at another index.
        let strangers: Vec<_> = (10..14u8)
            .map(|i| ValidatorKeys::generate([i; 32]).public(&namespace(CHAIN)))
            .collect();
        assert!(matches!(
            verify_evidence(CHAIN, &strangers, &evidence),
            Err(EvidenceError::BadSignature { vote: 1, .. })
        ));
    }

    #[test]
    fn malformed_bytes_are_refused() {
        let (keys, infos) = validators();
        let s = scheme_of(&keys, &infos, 2, CHAIN);
        let evidence = raw(7, &notarize(&s, 3, 11, 1), &notarize(&s, 3, 11, 2));
        let nf = raw(9, &nullify(&s, 3, 11), &finalize(&s, 3, 11, 1));

        for blob in [&evidence, &nf] {
            for len in 0..blob.len() {
                let want = if len == 0 {
                    EvidenceError::Empty
                } else {
                    EvidenceError::Truncated
                };
                assert_eq!(
                    verify_evidence(CHAIN, &infos, &blob[..len]),
                    Err(want.clone())
                );
                assert_eq!(evidence_epoch(&blob[..len]), Err(want), "length {len}");
            }
            let mut long = blob.clone();
            long.push(0);
            assert_eq!(
                verify_evidence(CHAIN, &infos, &long),
                Err(EvidenceError::TrailingBytes(1))
            );
        }

        for version in [0, 2, 0xff] {
            let mut v = evidence.clone();
            v[0] = version;
            assert_eq!(
                verify_evidence(CHAIN, &infos, &v),
                Err(EvidenceError::UnknownVersion(version))
            );
        }
        // Simplex's other activity tags (single votes, certificates) are not evidence.
        for kind in [0, 1, 5, 6, 10, 0xff] {
            let mut v = evidence.clone();
            v[1] = kind;
            assert_eq!(
                verify_evidence(CHAIN, &infos, &v),
                Err(EvidenceError::UnknownKind(kind))
            );
        }

        // An overlong varint for the epoch (3 written in two bytes).
        let mut overlong = evidence[..2].to_vec();
        overlong.extend_from_slice(&[0x83, 0x00]);
        overlong.extend_from_slice(&evidence[3..]);
        assert_eq!(
            verify_evidence(CHAIN, &infos, &overlong),
            Err(EvidenceError::Malformed(
                commonware_codec::Error::InvalidVarint(8).to_string()
            ))
        );

        // Random bytes, with and without a plausible header: an error, never a panic.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2_000 {
            let len = usize::try_from(next() % 300).unwrap();
            let mut blob: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            if round % 2 == 0 && len >= 2 {
                blob[0] = EVIDENCE_VERSION;
                blob[1] = 7 + u8::try_from(next() % 3).unwrap();
            }
            let verdict = verify_evidence(CHAIN, &infos, &blob);
            match blob.first() {
                None => assert_eq!(verdict, Err(EvidenceError::Empty)),
                Some(&v) if v != EVIDENCE_VERSION => {
                    assert_eq!(verdict, Err(EvidenceError::UnknownVersion(v)))
                }
                Some(_) => assert!(verdict.is_err(), "random blob accepted: {blob:?}"),
            }
        }
    }

    #[test]
    fn committee_entries_are_checked() {
        let (keys, infos) = validators();
        let s = scheme_of(&keys, &infos, 2, CHAIN);
        let evidence = raw(7, &notarize(&s, 3, 11, 1), &notarize(&s, 3, 11, 2));
        assert_eq!(
            verify_evidence(CHAIN, &[], &evidence),
            Err(EvidenceError::EmptyCommittee)
        );
        let mut dup = infos.clone();
        dup.push(infos[1].clone());
        assert_eq!(
            verify_evidence(CHAIN, &dup, &evidence),
            Err(EvidenceError::DuplicateMember)
        );
        let mut bad = infos.clone();
        bad[3].bls = "0x00".into();
        assert_eq!(
            verify_evidence(CHAIN, &bad, &evidence),
            Err(EvidenceError::InvalidMember {
                index: 3,
                identity: infos[3].identity.clone(),
                source: KeyError::Invalid {
                    what: "validator BLS key",
                    kind: "BLS12-381 G1 public key",
                },
            })
        );
        // Malformed evidence is refused before the committee is looked at.
        assert_eq!(
            verify_evidence(CHAIN, &[], &evidence[..3]),
            Err(EvidenceError::Truncated)
        );
    }

    #[test]
    fn validator_keys_and_proofs_of_possession() {
        let (_, infos) = validators();
        for info in &infos {
            assert_eq!(verify_validator_keys(CHAIN, info), Ok(()));
        }
        let pop_error = KeyError::Invalid {
            what: "validator proof of possession",
            kind: "proof of possession for this BLS key and chain id",
        };
        // Another validator's proof of possession.
        let mut swapped = infos[0].clone();
        swapped.pop = infos[1].pop.clone();
        assert_eq!(
            verify_validator_keys(CHAIN, &swapped),
            Err(pop_error.clone())
        );
        // A proof made for another chain.
        assert_eq!(verify_validator_keys(CHAIN + 1, &infos[0]), Err(pop_error));
        // Malformed fields.
        let mut bad = infos[0].clone();
        bad.identity = "0xzz".into();
        assert_eq!(
            verify_validator_keys(CHAIN, &bad),
            Err(KeyError::NotHex {
                what: "validator identity"
            })
        );
        let mut bad = infos[0].clone();
        bad.pop = "0x0102".into();
        assert_eq!(
            verify_validator_keys(CHAIN, &bad),
            Err(KeyError::Invalid {
                what: "validator proof of possession",
                kind: "BLS12-381 G2 signature",
            })
        );
    }
}
