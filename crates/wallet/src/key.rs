//! Private keys, recoverable signatures and the [`Signer`].

use std::fmt;

use rand::RngCore;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey, SECP256K1};
use zeroize::Zeroize;

use crate::eip712::{self, Eip712Domain};
use crate::{hex, keccak256, Address, Error};

/// Half the secp256k1 group order, big-endian: signatures with `s` above it are malleable
/// twins of low-`s` ones (EIP-2) and are rejected on recovery.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// A secp256k1 private key.
///
/// The bytes are wiped when the value is dropped. `Debug` shows only the address; there is no
/// `Display`, no `Clone` and no serde support: the only way to write a key out is
/// [`EncryptedKey::encrypt`](crate::EncryptedKey::encrypt).
pub struct PrivateKey {
    /// Invariant: a valid non-zero scalar below the group order.
    bytes: [u8; 32],
}

impl PrivateKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        loop {
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            // Out-of-range values (zero or ≥ the order) have probability ~2^-128; draw again.
            if let Ok(key) = Self::from_bytes(&bytes) {
                bytes.zeroize();
                return key;
            }
        }
    }

    /// The key with these big-endian bytes.
    ///
    /// The caller still owns (and should wipe) its own copy of `bytes`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let mut secret =
            SecretKey::from_byte_array(*bytes).map_err(|_| Error::InvalidPrivateKey)?;
        secret.non_secure_erase();
        Ok(Self { bytes: *bytes })
    }

    /// Parses 64 hex digits with an optional `0x` prefix; surrounding whitespace is ignored.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let bytes = hex::decode_secret::<32>(s.trim()).ok_or(Error::InvalidPrivateKey)?;
        Self::from_bytes(&bytes)
    }

    /// The address this key signs for.
    pub fn address(&self) -> Address {
        self.with_secret(|secret| {
            let public = PublicKey::from_secret_key_global(secret).serialize_uncompressed();
            let mut xy = [0u8; 64];
            xy.copy_from_slice(&public[1..]);
            Address::from_public_key(&xy)
        })
    }

    /// The raw bytes, for the keystore encryption only.
    pub(crate) fn expose_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Runs `f` with a libsecp256k1 key that is wiped afterwards (`SecretKey` is `Copy`, so it
    /// must never outlive this call).
    fn with_secret<T>(&self, f: impl FnOnce(&SecretKey) -> T) -> T {
        let Ok(mut secret) = SecretKey::from_byte_array(self.bytes) else {
            unreachable!("PrivateKey holds a valid scalar by construction")
        };
        let out = f(&secret);
        secret.non_secure_erase();
        out
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// A recoverable ECDSA signature over a 32-byte hash, always with low `s` (EIP-2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The `r` value, big-endian.
    pub r: [u8; 32],
    /// The `s` value, big-endian; at most half the group order.
    pub s: [u8; 32],
    /// The recovery id (y parity of the nonce point): 0 or 1.
    pub recovery_id: u8,
}

impl Signature {
    /// `v` as `personal_sign` and `ecrecover` want it: 27 or 28.
    pub fn v(&self) -> u8 {
        27 + self.recovery_id
    }

    /// The 65-byte `r ‖ s ‖ v` form (`v` = 27 or 28) used by `personal_sign` and EIP-712 wallets.
    pub fn to_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = self.v();
        out
    }

    /// Parses `r ‖ s ‖ v` with `v` in {0, 1, 27, 28}; a high `s` is rejected.
    pub fn from_bytes(bytes: &[u8; 65]) -> Result<Self, Error> {
        let recovery_id = match bytes[64] {
            0 | 27 => 0,
            1 | 28 => 1,
            _ => return Err(Error::InvalidSignature),
        };
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..64]);
        if s > HALF_ORDER {
            return Err(Error::InvalidSignature);
        }
        Ok(Self { r, s, recovery_id })
    }

    /// The address whose key made this signature over `hash`.
    ///
    /// Fails for a high `s`, a zero or out-of-range `r`/`s`, or a point that does not recover.
    pub fn recover(&self, hash: &[u8; 32]) -> Result<Address, Error> {
        if self.s > HALF_ORDER || self.recovery_id > 1 {
            return Err(Error::InvalidSignature);
        }
        let mut compact = [0u8; 64];
        compact[..32].copy_from_slice(&self.r);
        compact[32..].copy_from_slice(&self.s);
        let id = RecoveryId::try_from(i32::from(self.recovery_id))
            .map_err(|_| Error::InvalidSignature)?;
        let signature = RecoverableSignature::from_compact(&compact, id)
            .map_err(|_| Error::InvalidSignature)?;
        let public = SECP256K1
            .recover_ecdsa(Message::from_digest(*hash), &signature)
            .map_err(|_| Error::InvalidSignature)?
            .serialize_uncompressed();
        let mut xy = [0u8; 64];
        xy.copy_from_slice(&public[1..]);
        Ok(Address::from_public_key(&xy))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(0x{})", hex::encode(&self.to_bytes()))
    }
}

/// The EIP-191 (version `0x45`, `personal_sign`) hash of `message`:
/// `keccak256("\x19Ethereum Signed Message:\n" ‖ len(message) ‖ message)`, the length in decimal.
pub fn hash_message(message: impl AsRef<[u8]>) -> [u8; 32] {
    let message = message.as_ref();
    let mut data = Vec::with_capacity(message.len() + 48);
    data.extend_from_slice(b"\x19Ethereum Signed Message:\n");
    data.extend_from_slice(message.len().to_string().as_bytes());
    data.extend_from_slice(message);
    keccak256(&data)
}

/// An unlocked key that signs hashes, `personal_sign` messages and EIP-712 structs.
///
/// `Debug` shows the address only.
pub struct Signer {
    key: PrivateKey,
    address: Address,
}

impl Signer {
    /// A signer for `key`.
    pub fn new(key: PrivateKey) -> Self {
        let address = key.address();
        Self { key, address }
    }

    /// The address signatures recover to.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte hash (RFC 6979 deterministic nonce; libsecp256k1 always yields low `s`).
    pub fn sign_hash(&self, hash: &[u8; 32]) -> Signature {
        let (id, compact) = self.key.with_secret(|secret| {
            SECP256K1
                .sign_ecdsa_recoverable(Message::from_digest(*hash), secret)
                .serialize_compact()
        });
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&compact[..32]);
        s.copy_from_slice(&compact[32..]);
        // The library returns 0..=3; 2 and 3 (r ≥ group order − n) cannot occur in practice.
        let recovery_id = match id {
            RecoveryId::Zero | RecoveryId::Two => 0,
            RecoveryId::One | RecoveryId::Three => 1,
        };
        Signature { r, s, recovery_id }
    }

    /// Signs `message` the `personal_sign` way (EIP-191 version `0x45`, see [`hash_message`]).
    pub fn sign_message(&self, message: impl AsRef<[u8]>) -> Signature {
        self.sign_hash(&hash_message(message))
    }

    /// Signs an EIP-712 struct given its [`hash_struct`](eip712::hash_struct) under `domain`.
    pub fn sign_typed_data(&self, domain: &Eip712Domain, struct_hash: &[u8; 32]) -> Signature {
        self.sign_hash(&eip712::signing_hash(&domain.separator(), struct_hash))
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EIP-712's example signer: keccak256("cow").
    fn cow() -> Signer {
        Signer::new(PrivateKey::from_bytes(&keccak256(b"cow")).unwrap())
    }

    #[test]
    fn address_of_known_key() {
        assert_eq!(
            cow().address().to_string(),
            "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
        );
        // The secret from the Web3 Secret Storage test vectors.
        let key = PrivateKey::from_hex(
            "0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d",
        )
        .unwrap();
        assert_eq!(
            format!("{:x}", key.address()),
            "008aeeda4d805471df9b2a5b0f38a0c3bcba786b"
        );
    }

    #[test]
    fn invalid_keys_are_rejected() {
        assert!(matches!(
            PrivateKey::from_bytes(&[0; 32]),
            Err(Error::InvalidPrivateKey)
        ));
        assert!(matches!(
            PrivateKey::from_bytes(&[0xff; 32]),
            Err(Error::InvalidPrivateKey)
        ));
        for s in [
            "",
            "12",
            "zz28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d",
        ] {
            assert!(matches!(
                PrivateKey::from_hex(s),
                Err(Error::InvalidPrivateKey)
            ));
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = PrivateKey::from_bytes(&keccak256(b"cow")).unwrap();
        let secret_hex = hex::encode(&keccak256(b"cow"));
        let mut shown = format!("{key:?}");
        shown += &format!("{:?}", Signer::new(key));
        assert!(!shown.contains(&secret_hex), "{shown}");
        assert!(!shown.contains(&secret_hex[..16]), "{shown}");
        assert!(shown.contains("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"));
    }

    #[test]
    fn sign_and_recover_round_trip_with_low_s() {
        for i in 0u8..32 {
            let signer = Signer::new(PrivateKey::generate());
            let hash = keccak256([i]);
            let sig = signer.sign_hash(&hash);
            assert!(sig.s <= HALF_ORDER);
            assert!(sig.recovery_id <= 1);
            assert_eq!(sig.recover(&hash).unwrap(), signer.address());
            assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
            // A different hash recovers to someone else.
            assert_ne!(sig.recover(&keccak256([i, 1])).ok(), Some(signer.address()));
        }
    }

    #[test]
    fn high_s_and_bad_v_are_rejected() {
        let signer = cow();
        let hash = keccak256(b"x");
        let mut bytes = signer.sign_hash(&hash).to_bytes();
        bytes[64] = 29;
        assert!(Signature::from_bytes(&bytes).is_err());
        bytes[64] = 27;
        bytes[32] = 0xff;
        assert!(Signature::from_bytes(&bytes).is_err());
        let mut sig = signer.sign_hash(&hash);
        sig.s = [0xff; 32];
        assert!(sig.recover(&hash).is_err());
        sig.r = [0; 32];
        sig.s = [0; 32];
        assert!(sig.recover(&hash).is_err());
    }

    /// EIP-191 digests as produced by ethers' `hashMessage` and web3's `eth_sign` helpers.
    #[test]
    fn eip191_hash_vectors() {
        assert_eq!(
            hex::encode(&hash_message("Hello World")),
            "a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2"
        );
        let signer = cow();
        let sig = signer.sign_message("Hello World");
        assert_eq!(
            sig.recover(&hash_message("Hello World")).unwrap(),
            signer.address()
        );
    }

    /// Signing is deterministic (RFC 6979), so the EIP-712 example signature is reproducible.
    #[test]
    fn deterministic_signature_matches_eip712_example() {
        let digest: [u8; 32] =
            hex::decode_array("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
                .unwrap();
        let sig = cow().sign_hash(&digest);
        assert_eq!(
            hex::encode(&sig.to_bytes()),
            "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d\
             07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b915621c"
        );
        assert_eq!(sig.v(), 28);
    }
}
