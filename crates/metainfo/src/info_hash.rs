//! The v1 info-hash: SHA-1 of the bencoded info dictionary.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};

use crate::Error;

/// A BitTorrent v1 info-hash (BEP 3): SHA-1 over the exact bytes of the `info` dictionary.
///
/// This is the 20-byte id used in handshakes, tracker announces and `xt=urn:btih:` magnets.
/// BEP 52 v2 hashes (SHA-256) will get their own type beside this one.
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
        let s = s.as_bytes();
        if s.len() != 40 {
            return Err(Error::BadInfoHash);
        }
        let mut out = [0u8; 20];
        for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            let hi = hex_digit(pair[0]).ok_or(Error::BadInfoHash)?;
            let lo = hex_digit(pair[1]).ok_or(Error::BadInfoHash)?;
            *byte = hi << 4 | lo;
        }
        Ok(InfoHash(out))
    }
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
}
