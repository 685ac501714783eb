//! Validator keys: an ed25519 identity (p2p handshakes, participant order) and a BLS12-381
//! key (MinPk: 48-byte public keys, 96-byte signatures) that signs votes aggregated into
//! multisig certificates.
//!
//! A BLS multisig certificate is only sound if no validator chose its public key as a function
//! of the others' (a rogue-key attack). Every [`ValidatorInfo`] therefore carries a proof of
//! possession, and [`committee`] verifies each one before a scheme is built from the set.

use crate::{Error, Identity, Scheme};
use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::{
    bls12381::primitives::{
        group::Private,
        ops,
        variant::{MinPk, Variant},
    },
    ed25519, Hasher, Sha256, Signer,
};
use commonware_math::algebra::Random;
use commonware_utils::{ordered::BiMap, TryCollect};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A BLS12-381 public key in G1 (MinPk).
pub(crate) type BlsPublic = <MinPk as Variant>::Public;

/// Bytes of an ed25519 secret key.
const IDENTITY_SECRET_BYTES: usize = 32;
/// Bytes of a BLS12-381 secret scalar.
const BLS_SECRET_BYTES: usize = 32;

/// Why a key file or a validator entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not `0x`-prefixed (optional) hexadecimal with an even number of digits.
    #[error("{what} is not hex: write it as 0x followed by hex digits")]
    NotHex {
        /// Which field.
        what: &'static str,
    },
    /// The decoded bytes have the wrong length.
    #[error("{what} has {got} bytes, expected {want}")]
    Length {
        /// Which field.
        what: &'static str,
        /// Bytes found.
        got: usize,
        /// Bytes required.
        want: usize,
    },
    /// The bytes have the right length but are not a valid key, point or signature.
    #[error("{what} is not a valid {kind}: check that it was copied whole")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// What it should have been.
        kind: &'static str,
    },
}

/// A validator's secret keys. `Debug` prints only the public identity.
#[derive(Clone)]
pub struct ValidatorKeys {
    identity: ed25519::PrivateKey,
    bls: Private,
}

impl ValidatorKeys {
    /// Derives both keys from `seed`, deterministically (tests and devnets). Production keys
    /// should come from 32 bytes of OS randomness.
    pub fn generate(seed: [u8; 32]) -> Self {
        // Separate domains so the two secrets are independent functions of the seed.
        let identity_seed = Sha256::hash(&[b"btt-validator/ed25519", &seed]);
        let bls_seed = Sha256::hash(&[b"btt-validator/bls12381", &seed]);
        let identity = decode::<ed25519::PrivateKey>(identity_seed.as_ref())
            .unwrap_or_else(|_| unreachable!("any 32 bytes are an ed25519 secret"));
        let mut seed_bytes = [0u8; 32];
        seed_bytes.copy_from_slice(bls_seed.as_ref());
        let bls = Private::random(rand::rngs::StdRng::from_seed(seed_bytes));
        Self { identity, bls }
    }

    /// The key file body: `0x` followed by the ed25519 secret and the BLS secret in hex.
    pub fn to_hex(&self) -> String {
        let mut bytes = self.identity.encode().to_vec();
        bytes.extend_from_slice(&self.bls.encode());
        to_hex(&bytes)
    }

    /// Parses what [`ValidatorKeys::to_hex`] wrote (surrounding whitespace is ignored).
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let what = "validator key file";
        let bytes = from_hex(s.trim(), what)?;
        let want = IDENTITY_SECRET_BYTES + BLS_SECRET_BYTES;
        if bytes.len() != want {
            return Err(KeyError::Length {
                what,
                got: bytes.len(),
                want,
            });
        }
        let (identity, bls) = bytes.split_at(IDENTITY_SECRET_BYTES);
        let identity = decode::<ed25519::PrivateKey>(identity).map_err(|_| KeyError::Invalid {
            what,
            kind: "ed25519 secret key",
        })?;
        let bls = decode::<Private>(bls).map_err(|_| KeyError::Invalid {
            what,
            kind: "BLS12-381 secret scalar",
        })?;
        Ok(Self { identity, bls })
    }

    /// The public entry for a genesis file or staking set, with a proof of possession of the BLS
    /// key bound to `namespace` (see [`crate::namespace`]).
    pub fn public(&self, namespace: &[u8]) -> ValidatorInfo {
        let bls = ops::compute_public::<MinPk>(&self.bls);
        let pop = ops::sign_proof_of_possession::<MinPk>(&self.bls, namespace);
        ValidatorInfo {
            identity: self.identity_hex(),
            bls: to_hex(&bls.encode()),
            pop: to_hex(&pop.encode()),
        }
    }

    /// The identity public key as `0x` hex, as it appears in [`ValidatorInfo::identity`].
    pub fn identity_hex(&self) -> String {
        to_hex(&self.identity.public_key().encode())
    }

    pub(crate) fn identity(&self) -> &ed25519::PrivateKey {
        &self.identity
    }
}

impl fmt::Debug for ValidatorKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorKeys")
            .field("identity", &self.identity_hex())
            .finish_non_exhaustive()
    }
}

/// The secret identity key of a full node: an ed25519 key for p2p handshakes, without a BLS
/// key, since a full node never votes. `Debug` prints only the public identity.
#[derive(Clone)]
pub struct NodeKey {
    identity: ed25519::PrivateKey,
}

impl NodeKey {
    /// Derives the key from `seed`, deterministically (tests and devnets). Production keys
    /// should come from 32 bytes of OS randomness.
    pub fn generate(seed: [u8; 32]) -> Self {
        let secret = Sha256::hash(&[b"btt-node/ed25519", &seed]);
        let identity = decode::<ed25519::PrivateKey>(secret.as_ref())
            .unwrap_or_else(|_| unreachable!("any 32 bytes are an ed25519 secret"));
        Self { identity }
    }

    /// The key file body: `0x` followed by the ed25519 secret in hex.
    pub fn to_hex(&self) -> String {
        to_hex(&self.identity.encode())
    }

    /// Parses what [`NodeKey::to_hex`] wrote (surrounding whitespace is ignored).
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let what = "node key file";
        let bytes = from_hex(s.trim(), what)?;
        if bytes.len() != IDENTITY_SECRET_BYTES {
            return Err(KeyError::Length {
                what,
                got: bytes.len(),
                want: IDENTITY_SECRET_BYTES,
            });
        }
        let identity = decode::<ed25519::PrivateKey>(&bytes).map_err(|_| KeyError::Invalid {
            what,
            kind: "ed25519 secret key",
        })?;
        Ok(Self { identity })
    }

    /// The identity public key as `0x` hex: what validators list among their followers.
    pub fn identity_hex(&self) -> String {
        to_hex(&self.identity.public_key().encode())
    }

    pub(crate) fn identity(&self) -> &ed25519::PrivateKey {
        &self.identity
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("identity", &self.identity_hex())
            .finish_non_exhaustive()
    }
}

/// One validator as a genesis file lists it. All fields are `0x` hex.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ValidatorInfo {
    /// ed25519 identity public key (32 bytes): p2p identity and participant order.
    pub identity: String,
    /// BLS12-381 G1 public key (48 bytes) that signs consensus votes.
    pub bls: String,
    /// Proof of possession of the BLS key: a G2 signature (96 bytes) over the key, in the
    /// chain's namespace.
    pub pop: String,
}

impl ValidatorInfo {
    /// Parses the identity key.
    pub(crate) fn identity_key(&self) -> Result<Identity, KeyError> {
        parse_identity(&self.identity)
    }

    /// Parses both keys and verifies the proof of possession in `namespace`.
    fn verified(&self, namespace: &[u8]) -> Result<(Identity, BlsPublic), KeyError> {
        let identity = self.identity_key()?;
        let bls_bytes = from_hex(&self.bls, "validator BLS key")?;
        let bls = decode::<BlsPublic>(&bls_bytes).map_err(|_| KeyError::Invalid {
            what: "validator BLS key",
            kind: "BLS12-381 G1 public key",
        })?;
        let pop_bytes = from_hex(&self.pop, "validator proof of possession")?;
        let pop =
            decode::<<MinPk as Variant>::Signature>(&pop_bytes).map_err(|_| KeyError::Invalid {
                what: "validator proof of possession",
                kind: "BLS12-381 G2 signature",
            })?;
        ops::verify_proof_of_possession::<MinPk>(&bls, namespace, &pop).map_err(|_| {
            KeyError::Invalid {
                what: "validator proof of possession",
                kind: "proof of possession for this BLS key and chain id",
            }
        })?;
        Ok((identity, bls))
    }
}

/// Parses a `0x` hex ed25519 identity public key.
pub(crate) fn parse_identity(s: &str) -> Result<Identity, KeyError> {
    let what = "validator identity";
    let bytes = from_hex(s, what)?;
    decode::<ed25519::PublicKey>(&bytes).map_err(|_| KeyError::Invalid {
        what,
        kind: "ed25519 public key",
    })
}

/// The committee (identity -> BLS key, ordered by identity) after checking every entry's
/// proof of possession and that no identity or BLS key appears twice.
pub(crate) fn committee(
    validators: &[ValidatorInfo],
    namespace: &[u8],
) -> Result<BiMap<Identity, BlsPublic>, Error> {
    if validators.is_empty() {
        return Err(Error::NoValidators);
    }
    let mut entries = Vec::with_capacity(validators.len());
    for (index, v) in validators.iter().enumerate() {
        let entry = v.verified(namespace).map_err(|source| Error::Validator {
            index,
            identity: v.identity.clone(),
            source,
        })?;
        entries.push(entry);
    }
    entries
        .into_iter()
        .try_collect()
        .map_err(|_| Error::DuplicateValidator)
}

/// The BLS multisig signing scheme of `keys` in `committee`.
pub(crate) fn signer(
    keys: &ValidatorKeys,
    committee: BiMap<Identity, BlsPublic>,
    namespace: &[u8],
) -> Result<Scheme, Error> {
    // The signer's index is the position of its identity in the sorted committee, so the
    // identity and BLS key must be the pair the genesis file lists together.
    let me = keys.identity.public_key();
    let my_bls = ops::compute_public::<MinPk>(&keys.bls);
    match committee.get_value(&me) {
        Some(bls) if *bls == my_bls => {}
        Some(_) => return Err(Error::KeyMismatch(keys.identity_hex())),
        None => return Err(Error::NotAValidator(keys.identity_hex())),
    }
    Scheme::signer(namespace, committee, keys.bls.clone())
        .ok_or_else(|| Error::NotAValidator(keys.identity_hex()))
}

/// The verify-only scheme of a node outside `committee`: it checks every vote and certificate
/// against the committee's BLS keys and never signs.
pub(crate) fn verifier(
    key: &NodeKey,
    committee: BiMap<Identity, BlsPublic>,
    namespace: &[u8],
) -> Result<Scheme, Error> {
    if committee.get_value(&key.identity.public_key()).is_some() {
        return Err(Error::FollowerIsValidator(key.identity_hex()));
    }
    Ok(Scheme::verifier(namespace, committee))
}

/// Decodes a fixed-size commonware value that must fill `bytes` exactly.
fn decode<T: DecodeExt<()>>(bytes: &[u8]) -> Result<T, commonware_codec::Error> {
    T::decode(bytes::Bytes::copy_from_slice(bytes))
}

/// Lowercase `0x` hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Parses hex with an optional `0x` prefix.
pub(crate) fn from_hex(s: &str, what: &'static str) -> Result<Vec<u8>, KeyError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
        .as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(KeyError::NotHex { what });
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or(KeyError::NotHex { what })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &[u8] = b"btt-chain/7215";

    #[test]
    fn generate_is_deterministic_and_hex_round_trips() {
        let a = ValidatorKeys::generate([1; 32]);
        let b = ValidatorKeys::generate([1; 32]);
        let c = ValidatorKeys::generate([2; 32]);
        assert_eq!(a.to_hex(), b.to_hex());
        assert_ne!(a.to_hex(), c.to_hex());
        assert_eq!(a.to_hex().len(), 2 + 128);
        let parsed = ValidatorKeys::from_hex(&format!(" {}\n", a.to_hex())).unwrap();
        assert_eq!(parsed.to_hex(), a.to_hex());
        assert_eq!(parsed.public(NS), a.public(NS));
        let info = a.public(NS);
        assert_eq!(info.identity.len(), 2 + 64);
        assert_eq!(info.bls.len(), 2 + 96);
        assert_eq!(info.pop.len(), 2 + 192);
        // The secret never shows up in Debug output.
        let debug = format!("{a:?}");
        assert!(debug.contains(&info.identity));
        assert!(!debug.contains(&a.to_hex()[2..]));
    }

    #[test]
    fn node_key_round_trips_and_cannot_be_a_validator() {
        let a = NodeKey::generate([3; 32]);
        assert_eq!(a.to_hex(), NodeKey::generate([3; 32]).to_hex());
        assert_ne!(a.to_hex(), NodeKey::generate([4; 32]).to_hex());
        assert_eq!(a.to_hex().len(), 2 + 64);
        let parsed = NodeKey::from_hex(&format!("{}\n", a.to_hex())).unwrap();
        assert_eq!(parsed.identity_hex(), a.identity_hex());
        assert_eq!(a.identity_hex().len(), 2 + 64);
        assert!(!format!("{a:?}").contains(&a.to_hex()[2..]));
        assert_eq!(
            NodeKey::from_hex("0x0011").unwrap_err(),
            KeyError::Length {
                what: "node key file",
                got: 2,
                want: 32
            }
        );
        // A validator key file is not a node key file.
        let validator = ValidatorKeys::generate([3; 32]);
        assert!(matches!(
            NodeKey::from_hex(&validator.to_hex()).unwrap_err(),
            KeyError::Length { got: 64, .. }
        ));

        let keys: Vec<_> = (0..4u8).map(|i| ValidatorKeys::generate([i; 32])).collect();
        let infos: Vec<_> = keys.iter().map(|k| k.public(NS)).collect();
        let set = committee(&infos, NS).unwrap();
        verifier(&a, set.clone(), NS).unwrap();
        // A node key that reuses a validator's identity is refused.
        let clash = NodeKey {
            identity: keys[1].identity().clone(),
        };
        assert!(matches!(
            verifier(&clash, set, NS).unwrap_err(),
            Error::FollowerIsValidator(_)
        ));
    }

    #[test]
    fn key_file_errors() {
        assert_eq!(
            ValidatorKeys::from_hex("0xzz").unwrap_err(),
            KeyError::NotHex {
                what: "validator key file"
            }
        );
        assert_eq!(
            ValidatorKeys::from_hex("0x00").unwrap_err(),
            KeyError::Length {
                what: "validator key file",
                got: 1,
                want: 64
            }
        );
        // A zero BLS scalar is not a key.
        let zero_bls = format!("0x{}{}", "11".repeat(32), "00".repeat(32));
        assert!(matches!(
            ValidatorKeys::from_hex(&zero_bls).unwrap_err(),
            KeyError::Invalid { .. }
        ));
    }

    #[test]
    fn committee_checks_proofs_of_possession() {
        let keys: Vec<_> = (0..4u8).map(|i| ValidatorKeys::generate([i; 32])).collect();
        let infos: Vec<_> = keys.iter().map(|k| k.public(NS)).collect();
        let set = committee(&infos, NS).unwrap();
        assert_eq!(set.len(), 4);
        for k in &keys {
            signer(k, set.clone(), NS).unwrap();
        }

        // A proof made for another chain does not verify here.
        let mut bad = infos.clone();
        bad[2].pop = keys[2].public(b"btt-chain/1").pop;
        match committee(&bad, NS).unwrap_err() {
            Error::Validator { index, source, .. } => {
                assert_eq!(index, 2);
                assert!(matches!(source, KeyError::Invalid { .. }));
            }
            other => panic!("unexpected {other}"),
        }

        // Someone else's BLS key under my identity (with their valid proof) is refused too:
        // the proof is fine, but the key is a duplicate.
        let mut dup = infos.clone();
        dup[1].bls = infos[0].bls.clone();
        dup[1].pop = infos[0].pop.clone();
        assert!(matches!(
            committee(&dup, NS).unwrap_err(),
            Error::DuplicateValidator
        ));

        // A node whose key is not in the set cannot sign.
        let outsider = ValidatorKeys::generate([9; 32]);
        assert!(matches!(
            signer(&outsider, set, NS).unwrap_err(),
            Error::NotAValidator(_)
        ));
        assert!(matches!(committee(&[], NS), Err(Error::NoValidators)));
    }
}
