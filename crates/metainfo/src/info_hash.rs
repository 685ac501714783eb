//! Info-hashes: SHA-1 (v1, BEP 3) and SHA-256 (v2, BEP 52) of the bencoded info dictionary.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::Error;

/// A BitTorrent v1 info-hash (BEP 3): SHA-1 over the exact bytes of the `info` dictionary.
///
/// This is the 20-byte id used in handshakes, tracker announces and `xt=urn:btih:` magnets.
/// A v2-only torrent uses its [`InfoHashV2::truncated`] hash in those places instead.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// SHA-1 of `info_bytes`, which must be the info dictionary exactly as it appears in the
    /// torrent (never a re-encoding: keys may be unsorted in the wild).
    pub fn of(info_bytes: &[u8]) -> Self {
        InfoHash(Sha1::digest(info_bytes).into())
    }

    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Lowercase hex, 40 characters.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        decode_hex(s).map(InfoHash).ok_or(Error::BadInfoHash)
    }
}

/// Exactly `N` bytes from `2 * N` hex digits of either case.
pub(crate) fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *byte = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

impl FromStr for InfoHash {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_hex(s)
    }
}

impl From<[u8; 20]> for InfoHash {
    fn from(bytes: [u8; 20]) -> Self {
        InfoHash(bytes)
    }
}

impl AsRef<[u8]> for InfoHash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A BitTorrent v2 info-hash (BEP 52): SHA-256 over the exact bytes of the `info` dictionary.
///
/// Used in full in `xt=urn:btmh:` magnets and the v2 handshake upgrade; trackers, the DHT and
/// the 20-byte handshake field carry [`InfoHashV2::truncated`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHashV2(pub [u8; 32]);

impl InfoHashV2 {
    /// SHA-256 of `info_bytes`, the info dictionary exactly as it appears in the torrent.
    pub fn of(info_bytes: &[u8]) -> Self {
        InfoHashV2(<Sha256 as sha2::Digest>::digest(info_bytes).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 20 bytes: the id a v2 torrent uses where the protocol has room for 20 bytes
    /// (tracker `info_hash`, DHT, the handshake).
    pub fn truncated(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out.copy_from_slice(&self.0[..20]);
        out
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        decode_hex(s).map(InfoHashV2).ok_or(Error::BadInfoHashV2)
    }
}

impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({self})")
    }
}

impl FromStr for InfoHashV2 {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_hex(s)
    }
}

impl From<[u8; 32]> for InfoHashV2 {
    fn from(bytes: [u8; 32]) -> Self {
        InfoHashV2(bytes)
    }
}

impl AsRef<[u8]> for InfoHashV2 {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Both info-hashes of a torrent: v1 for v1 and hybrid torrents, v2 for v2 and hybrid ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InfoHashes {
    /// SHA-1 of the info dictionary, when the torrent has v1 metadata (`pieces`).
    pub v1: Option<InfoHash>,
    /// SHA-256 of the info dictionary, when the torrent has v2 metadata (`meta version` 2).
    pub v2: Option<InfoHashV2>,
}

impl InfoHashes {
    /// The 20-byte id used on the wire, with trackers and in the DHT: the v1 hash when there is
    /// one, else the truncated v2 hash. `None` only when both are absent.
    pub fn wire_id(&self) -> Option<InfoHash> {
        self.v1
            .or_else(|| self.v2.map(|v2| InfoHash(v2.truncated())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = InfoHash::of(b"abc");
        // FIPS 180 test vector for SHA-1("abc").
        assert_eq!(h.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            InfoHash::from_hex("A9993E364706816ABA3E25717850C26C9CD0D89D"),
            Ok(h)
        );
        assert_eq!(
            "a9993e364706816aba3e25717850c26c9cd0d89d".parse::<InfoHash>(),
            Ok(h)
        );
        assert_eq!(
            format!("{h:?}"),
            "InfoHash(a9993e364706816aba3e25717850c26c9cd0d89d)"
        );
        assert_eq!(h.as_bytes()[0], 0xa9);
    }

    #[test]
    fn rejects_bad_hex() {
        for bad in [
            "",
            "a9993e",
            "g9993e364706816aba3e25717850c26c9cd0d89d",
            "a9993e364706816aba3e25717850c26c9cd0d89d0",
        ] {
            assert_eq!(InfoHash::from_hex(bad), Err(Error::BadInfoHash), "{bad}");
        }
        // 40 bytes but a multi-byte character: must not slice inside it.
        assert_eq!(
            InfoHash::from_hex("é9993e364706816aba3e25717850c26c9cd0d8d"),
            Err(Error::BadInfoHash)
        );
    }

    #[test]
    fn v2_hash_hex_and_truncation() {
        let h = InfoHashV2::of(b"abc");
        // FIPS 180 test vector for SHA-256("abc").
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(h.to_hex(), hex);
        assert_eq!(InfoHashV2::from_hex(&hex.to_uppercase()), Ok(h));
        assert_eq!(hex.parse::<InfoHashV2>(), Ok(h));
        assert_eq!(format!("{h:?}"), format!("InfoHashV2({hex})"));
        assert_eq!(InfoHash(h.truncated()).to_hex(), &hex[..40]);
        assert_eq!(InfoHashV2::from_hex(&hex[..40]), Err(Error::BadInfoHashV2));

        let both = InfoHashes {
            v1: Some(InfoHash([1; 20])),
            v2: Some(h),
        };
        assert_eq!(both.wire_id(), Some(InfoHash([1; 20])));
        let v2_only = InfoHashes {
            v1: None,
            v2: Some(h),
        };
        assert_eq!(v2_only.wire_id(), Some(InfoHash(h.truncated())));
        assert_eq!(InfoHashes::default().wire_id(), None);
    }
}
