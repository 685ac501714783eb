//! Ethereum addresses with EIP-55 mixed-case checksums.

use std::fmt;
use std::str::FromStr;

use sha3::{Digest, Keccak256};

use crate::{hex, Error};

/// Keccak-256 (the pre-standard SHA-3 variant Ethereum uses) of `data`.
pub fn keccak256(data: impl AsRef<[u8]>) -> [u8; 32] {
    Keccak256::digest(data.as_ref()).into()
}

/// A 20-byte Ethereum address: the last 20 bytes of the Keccak-256 hash of an uncompressed
/// secp256k1 public key (without its `0x04` tag).
///
/// Displays (`{}` and `{:?}`) in EIP-55 checksummed form with `0x`; `{:x}` gives lowercase hex.
/// Parsing accepts all-lowercase or all-uppercase hex unchecked, and checks the EIP-55 checksum of
/// mixed-case input.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The all-zero address.
    pub const ZERO: Self = Self([0; 20]);

    /// The address of an uncompressed public key given as its 64 coordinate bytes (`x ‖ y`).
    pub fn from_public_key(xy: &[u8; 64]) -> Self {
        let hash = keccak256(xy);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Self(out)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// EIP-55 form: `0x` and hex where a letter is uppercase when the matching nibble of
    /// `keccak256(lowercase hex)` is 8 or more.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(&self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            out.push(if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        out
    }
}

impl From<[u8; 20]> for Address {
    fn from(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }
}

impl From<Address> for [u8; 20] {
    fn from(address: Address) -> Self {
        address.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::LowerHex for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.write_str("0x")?;
        }
        f.write_str(&hex::encode(&self.0))
    }
}

impl FromStr for Address {
    type Err = Error;

    /// Parses `0x` + 40 hex digits (the prefix is optional).
    fn from_str(s: &str) -> Result<Self, Error> {
        let digits = hex::strip_prefix(s);
        let bytes =
            hex::decode_array::<20>(digits).ok_or_else(|| Error::InvalidAddress(s.into()))?;
        let address = Self(bytes);
        let has_lower = digits.bytes().any(|c| c.is_ascii_lowercase());
        let has_upper = digits.bytes().any(|c| c.is_ascii_uppercase());
        if has_lower && has_upper && address.to_checksum()[2..] != *digits {
            return Err(Error::AddressChecksum(s.into()));
        }
        Ok(address)
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_checksum())
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples listed in EIP-55.
    const EIP55: [&str; 8] = [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors_round_trip() {
        for s in EIP55 {
            let a: Address = s.parse().unwrap();
            assert_eq!(a.to_string(), s, "checksum of {s}");
            let lower: Address = s.to_ascii_lowercase().parse().unwrap();
            assert_eq!(lower, a);
            let upper: Address = format!("0x{}", s[2..].to_ascii_uppercase())
                .parse()
                .unwrap();
            assert_eq!(upper, a);
        }
    }

    #[test]
    fn wrong_checksum_is_rejected() {
        // One letter's case flipped in a mixed-case address.
        let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert!(matches!(
            bad.parse::<Address>(),
            Err(Error::AddressChecksum(_))
        ));
    }

    #[test]
    fn bad_length_and_digits_are_rejected() {
        for s in [
            "0x",
            "0x1234",
            "0xzz908400098527886E0F7030069857D2E4169EE7",
            "52908400098527886E0F7030069857D2E4169EE7aa",
        ] {
            assert!(
                matches!(s.parse::<Address>(), Err(Error::InvalidAddress(_))),
                "{s}"
            );
        }
        // The prefix is optional.
        assert!("52908400098527886E0F7030069857D2E4169EE7"
            .parse::<Address>()
            .is_ok());
    }

    #[test]
    fn formats_and_serde() {
        let a: Address = EIP55[4].parse().unwrap();
        assert_eq!(format!("{a:x}"), "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
        assert_eq!(
            format!("{a:#x}"),
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
        );
        assert_eq!(format!("{a:?}"), EIP55[4]);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{}\"", EIP55[4]));
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
    }

    #[test]
    fn keccak_of_empty_input() {
        assert_eq!(
            hex::encode(&keccak256([])),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
