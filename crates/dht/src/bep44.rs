//! BEP 44 items: ed25519 keys and signed mutable items.
//!
//! Values are opaque byte strings (sent as a bencoded string `v`). An immutable item is addressed by
//! `SHA-1(bencoded v)`; a mutable item by `SHA-1(public key ‖ salt)` and carries a sequence number
//! and an ed25519 signature over `salt`, `seq` and `v`.

use std::fmt;

use crate::Error;

/// Longest value BEP 44 nodes accept.
pub const MAX_VALUE_BYTES: usize = 1000;
/// Longest salt BEP 44 nodes accept.
pub const MAX_SALT_BYTES: usize = 64;

/// An ed25519 secret key that signs mutable items.
#[derive(Clone)]
pub struct SigningKey(mainline::SigningKey);

impl SigningKey {
    /// A fresh random key from the operating system's secure generator (through `rand`).
    pub fn generate() -> Self {
        Self::from_bytes(&rand::random::<[u8; 32]>())
    }

    /// The key with this 32-byte ed25519 seed.
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        SigningKey(mainline::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for storing the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_tuple("SigningKey")
            .field(&self.public_key())
            .finish()
    }
}

/// An ed25519 public key: who may update a mutable item.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The DHT address of this key's item under `salt`: `SHA-1(key ‖ salt)`.
    pub fn target(&self, salt: Option<&[u8]>) -> [u8; 20] {
        *mainline::MutableItem::target_from_key(&self.0, salt).as_bytes()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// A signed BEP 44 mutable item. Only built by signing or by a verified DHT answer, so its
/// signature is always valid.
#[derive(Clone, PartialEq)]
pub struct MutableItem(pub(crate) mainline::MutableItem);

impl MutableItem {
    /// Signs `value` under `key` with sequence number `seq` and an optional `salt`.
    ///
    /// Fails if the value or salt is longer than BEP 44 allows.
    pub fn sign(
        key: &SigningKey,
        value: &[u8],
        seq: i64,
        salt: Option<&[u8]>,
    ) -> Result<Self, Error> {
        check_value(value)?;
        if let Some(salt) = salt {
            if salt.len() > MAX_SALT_BYTES {
                return Err(Error::SaltTooLarge {
                    len: salt.len(),
                    max: MAX_SALT_BYTES,
                });
            }
        }
        Ok(MutableItem(mainline::MutableItem::new(
            key.0.clone(),
            value,
            seq,
            salt,
        )))
    }

    /// The signer's public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.key())
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        self.0.value()
    }

    /// The sequence number; a higher one replaces a lower one.
    pub fn seq(&self) -> i64 {
        self.0.seq()
    }

    /// The salt, if any.
    pub fn salt(&self) -> Option<&[u8]> {
        self.0.salt()
    }

    /// The ed25519 signature.
    pub fn signature(&self) -> [u8; 64] {
        *self.0.signature()
    }

    /// The DHT address of this item.
    pub fn target(&self) -> [u8; 20] {
        *self.0.target().as_bytes()
    }
}

impl fmt::Debug for MutableItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutableItem")
            .field("public_key", &self.public_key())
            .field("seq", &self.seq())
            .field("salt", &self.salt())
            .field("value_len", &self.value().len())
            .finish()
    }
}

/// The DHT address of an immutable value: `SHA-1` of the value as a bencoded string.
pub fn immutable_target(value: &[u8]) -> [u8; 20] {
    let mut encoded = format!("{}:", value.len()).into_bytes();
    encoded.extend_from_slice(value);
    sha1_digest(&encoded)
}

pub(crate) fn check_value(value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            max: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// SHA-1 through the workspace's `sha1` crate.
fn sha1_digest(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_target_matches_bep44_example() {
        // BEP 44: the target of "Hello World!" is SHA-1("12:Hello World!").
        let hex: String = immutable_target(b"Hello World!")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "e5f96f6f38320f0f33959cb4d3d656452117aadb");
    }

    #[test]
    fn signing_is_deterministic_and_checked() {
        let key = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(
            SigningKey::from_bytes(&key.to_bytes()).public_key(),
            key.public_key()
        );
        let a = MutableItem::sign(&key, b"v", 1, Some(b"s")).unwrap();
        let b = MutableItem::sign(&key, b"v", 1, Some(b"s")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.target(), key.public_key().target(Some(b"s")));
        assert_ne!(a.target(), key.public_key().target(None));
        assert!(matches!(
            MutableItem::sign(&key, &[0; MAX_VALUE_BYTES + 1], 1, None),
            Err(Error::ValueTooLarge {
                len: 1001,
                max: 1000
            })
        ));
        assert!(matches!(
            MutableItem::sign(&key, b"v", 1, Some(&[0; MAX_SALT_BYTES + 1])),
            Err(Error::SaltTooLarge { len: 65, max: 64 })
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let seed_hex: String = [1u8; 32].iter().map(|b| format!("{b:02x}")).collect();
        assert!(!format!("{key:?}").contains(&seed_hex));
    }
}
