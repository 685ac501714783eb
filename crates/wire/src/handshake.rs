//! The BEP 3 handshake: `<19><"BitTorrent protocol"><reserved:8><info_hash:20><peer_id:20>`.

use crate::Error;

/// The protocol string every BitTorrent v1 handshake carries after its length byte.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// Size of an encoded handshake: 1 + 19 + 8 + 20 + 20.
pub const HANDSHAKE_LEN: usize = 68;

/// Reserved byte and mask of the BEP 10 extension-protocol bit.
const EXTENSION_BIT: (usize, u8) = (5, 0x10);
/// Reserved byte and mask of the BEP 6 fast-extension bit.
const FAST_BIT: (usize, u8) = (7, 0x04);
/// Reserved byte and mask of the BEP 5 DHT bit (the peer sends a `port` message).
const DHT_BIT: (usize, u8) = (7, 0x01);
/// Reserved byte and mask of the BEP 52 upgrade bit ("the 4th most significant bit in the last
/// byte"): the sender of a hybrid torrent's SHA-1 info-hash also speaks v2 and may be answered with
/// the truncated v2 info-hash.
const V2_BIT: (usize, u8) = (7, 0x10);

/// One side's handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Capability bits; see the `supports_*` methods.
    pub reserved: [u8; 8],
    /// The v1 info-hash (or the truncated v2 hash) of the torrent this connection is for.
    pub info_hash: [u8; 20],
    /// The sender's peer id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Our handshake: advertises the extension protocol (BEP 10) and the fast extension (BEP 6).
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Self {
        let mut reserved = [0u8; 8];
        reserved[EXTENSION_BIT.0] |= EXTENSION_BIT.1;
        reserved[FAST_BIT.0] |= FAST_BIT.1;
        Self {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// The 68 bytes to send.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    /// Parses 68 received bytes; anything but `\x13BitTorrent protocol` up front is rejected.
    pub fn decode(buf: &[u8; HANDSHAKE_LEN]) -> Result<Self, Error> {
        if usize::from(buf[0]) != PROTOCOL.len() || &buf[1..20] != PROTOCOL {
            return Err(Error::NotHandshake);
        }
        let mut hs = Self {
            reserved: [0; 8],
            info_hash: [0; 20],
            peer_id: [0; 20],
        };
        hs.reserved.copy_from_slice(&buf[20..28]);
        hs.info_hash.copy_from_slice(&buf[28..48]);
        hs.peer_id.copy_from_slice(&buf[48..68]);
        Ok(hs)
    }

    /// Whether the sender speaks the BEP 10 extension protocol.
    pub fn supports_extensions(&self) -> bool {
        self.reserved[EXTENSION_BIT.0] & EXTENSION_BIT.1 != 0
    }

    /// Whether the sender speaks the BEP 6 fast extension. It is in effect only if both sides set it.
    pub fn supports_fast(&self) -> bool {
        self.reserved[FAST_BIT.0] & FAST_BIT.1 != 0
    }

    /// Whether the sender runs a DHT node (BEP 5) and may send a `port` message.
    pub fn supports_dht(&self) -> bool {
        self.reserved[DHT_BIT.0] & DHT_BIT.1 != 0
    }

    /// Whether the sender speaks BitTorrent v2 (BEP 52): for a hybrid torrent it may be answered
    /// with the truncated v2 info-hash to upgrade the connection, and it understands the hash
    /// messages (ids 21 to 23).
    pub fn supports_v2(&self) -> bool {
        self.reserved[V2_BIT.0] & V2_BIT.1 != 0
    }

    /// This handshake with the BEP 52 v2 bit set to `on`; every other bit is kept.
    ///
    /// [`Handshake::new`] leaves it clear: set it only when the session can serve v2 hashes.
    #[must_use]
    pub fn with_v2(mut self, on: bool) -> Self {
        if on {
            self.reserved[V2_BIT.0] |= V2_BIT.1;
        } else {
            self.reserved[V2_BIT.0] &= !V2_BIT.1;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_exact_bytes() {
        let hs = Handshake::new([0x11; 20], [0x22; 20]);
        let bytes = hs.encode();
        let mut expected = vec![19u8];
        expected.extend_from_slice(b"BitTorrent protocol");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        expected.extend_from_slice(&[0x11; 20]);
        expected.extend_from_slice(&[0x22; 20]);
        assert_eq!(bytes.to_vec(), expected);
        assert_eq!(Handshake::decode(&bytes), Ok(hs));
    }

    #[test]
    fn reports_capability_bits() {
        let hs = Handshake::new([0; 20], [0; 20]);
        assert!(hs.supports_extensions());
        assert!(hs.supports_fast());
        assert!(!hs.supports_dht());

        let plain = Handshake {
            reserved: [0; 8],
            ..hs
        };
        assert!(!plain.supports_extensions() && !plain.supports_fast() && !plain.supports_dht());

        let dht_only = Handshake {
            reserved: [0, 0, 0, 0, 0, 0, 0, 0x01],
            ..hs
        };
        assert!(dht_only.supports_dht() && !dht_only.supports_fast());
        assert!(!hs.supports_v2());
    }

    #[test]
    fn v2_bit_is_0x10_of_the_last_reserved_byte() {
        let hs = Handshake::new([0x11; 20], [0x22; 20]).with_v2(true);
        assert!(hs.supports_v2() && hs.supports_fast() && hs.supports_extensions());
        assert_eq!(hs.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x14]);
        assert_eq!(&hs.encode()[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0x14]);
        assert_eq!(Handshake::decode(&hs.encode()), Ok(hs));

        let off = hs.with_v2(false);
        assert!(!off.supports_v2() && off.supports_fast());
        assert_eq!(off, Handshake::new([0x11; 20], [0x22; 20]));

        // A peer that sets only the v2 bit.
        let v2_only = Handshake {
            reserved: [0, 0, 0, 0, 0, 0, 0, 0x10],
            ..hs
        };
        assert!(v2_only.supports_v2() && !v2_only.supports_dht() && !v2_only.supports_fast());
    }

    #[test]
    fn rejects_other_protocols() {
        let good = Handshake::new([1; 20], [2; 20]).encode();

        let mut bad_len = good;
        bad_len[0] = 18;
        assert_eq!(Handshake::decode(&bad_len), Err(Error::NotHandshake));

        let mut bad_pstr = good;
        bad_pstr[1] = b'b';
        assert_eq!(Handshake::decode(&bad_pstr), Err(Error::NotHandshake));

        // An MSE/PE encrypted stream starts with random bytes.
        assert_eq!(
            Handshake::decode(&[0xde; HANDSHAKE_LEN]),
            Err(Error::NotHandshake)
        );
    }
}
