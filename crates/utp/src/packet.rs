//! The uTP packet format (BEP 29): a 20-byte header, a chain of extensions, then the payload.
//!
//! ```text
//! 0       4       8               16              24              32
//! +-------+-------+---------------+---------------+---------------+
//! | type  | ver   | extension     | connection_id                 |
//! +-------+-------+---------------+---------------+---------------+
//! | timestamp_microseconds                                        |
//! | timestamp_difference_microseconds                             |
//! | wnd_size                                                      |
//! | seq_nr                        | ack_nr                        |
//! +---------------+---------------+---------------+---------------+
//! ```
//!
//! Each extension is `next_extension_type: u8, len: u8, data[len]`; the header's `extension` byte
//! names the first one and 0 ends the chain. Only the selective ack (type 1) carries meaning for us;
//! other extensions are skipped.

/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 20;
/// The only protocol version in use.
pub const VERSION: u8 = 1;
/// Extension type of the selective acknowledgement bitmask.
pub const EXT_SELECTIVE_ACK: u8 = 1;
/// Longest selective ack bitmask we send (covers 256 packets past `ack_nr + 1`).
pub const MAX_SELECTIVE_ACK_BYTES: usize = 32;

/// Why a datagram is not a uTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than a header, or an extension that runs past the end.
    #[error("utp packet truncated at byte {0}: not a uTP datagram or cut short")]
    Truncated(usize),
    /// The version nibble is not 1.
    #[error("utp packet has version {0}, only version 1 is understood")]
    BadVersion(u8),
    /// The type nibble is not one of the five packet types.
    #[error("utp packet has unknown type {0}")]
    BadType(u8),
    /// The output buffer cannot hold the encoded packet.
    #[error("utp packet needs {0} bytes of output buffer: pass a larger buffer")]
    BufferTooSmall(usize),
    /// A packet arrived that this connection cannot use (wrong id or an unexpected type).
    #[error("utp packet does not belong to this connection")]
    NotForUs,
}

/// The five packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Carries payload.
    Data = 0,
    /// Ends the sender's stream; its `seq_nr` is the last one the sender uses.
    Fin = 1,
    /// Acknowledgement only; does not consume a sequence number.
    State = 2,
    /// Aborts the connection.
    Reset = 3,
    /// Opens a connection.
    Syn = 4,
}

impl PacketType {
    fn from_nibble(n: u8) -> Result<Self, PacketError> {
        Ok(match n {
            0 => Self::Data,
            1 => Self::Fin,
            2 => Self::State,
            3 => Self::Reset,
            4 => Self::Syn,
            other => return Err(PacketError::BadType(other)),
        })
    }
}

/// The fixed header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Packet type.
    pub packet_type: PacketType,
    /// The receiver's connection id (for a SYN: the sender's receive id).
    pub connection_id: u16,
    /// Sender's clock, in microseconds, when the packet left (wraps).
    pub timestamp_us: u32,
    /// Sender's clock minus the timestamp of the last packet it received: the one-way delay from
    /// the receiver of this packet to its sender, plus an unknown clock offset.
    pub timestamp_diff_us: u32,
    /// Bytes the sender can still buffer on its receive side.
    pub wnd_size: u32,
    /// Sequence number of this packet (for ST_STATE: the next one the sender will use).
    pub seq_nr: u16,
    /// Last sequence number the sender received in order.
    pub ack_nr: u16,
}

/// A selective acknowledgement bitmask borrowed from a packet.
///
/// Bit `i` (bit `i % 8` of byte `i / 8`) set means packet `ack_nr + 2 + i` was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectiveAck<'a> {
    mask: &'a [u8],
}

impl<'a> SelectiveAck<'a> {
    /// Wraps a raw bitmask.
    pub fn new(mask: &'a [u8]) -> Self {
        Self { mask }
    }

    /// The raw bitmask bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.mask
    }

    /// Number of packets the bitmask speaks about.
    pub fn len_bits(&self) -> usize {
        self.mask.len() * 8
    }

    /// Whether packet `ack_nr + 2 + i` is acknowledged.
    pub fn is_acked(&self, i: usize) -> bool {
        self.mask
            .get(i / 8)
            .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
    }

    /// Offsets `i` (packet `ack_nr + 2 + i`) that are acknowledged, ascending.
    pub fn acked(&self) -> impl Iterator<Item = usize> + 'a {
        let mask = self.mask;
        (0..mask.len() * 8).filter(move |i| mask[i / 8] & (1 << (i % 8)) != 0)
    }
}

/// A decoded packet borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Fixed header.
    pub header: Header,
    /// Selective ack extension, if present.
    pub selective_ack: Option<SelectiveAck<'a>>,
    /// Bytes after the header and extensions.
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Decodes a datagram. Total: any input yields a packet or an error, never a panic.
    ///
    /// ```
    /// use utp::packet::{Packet, PacketType};
    /// let bytes = [0x21, 0, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0, 0, 0, 5, 0, 4, b'h', b'i'];
    /// let p = Packet::decode(&bytes).unwrap();
    /// assert_eq!(p.header.packet_type, PacketType::State);
    /// assert_eq!((p.header.connection_id, p.header.seq_nr, p.header.ack_nr), (0x1234, 5, 4));
    /// assert_eq!(p.payload, b"hi");
    /// ```
    pub fn decode(buf: &'a [u8]) -> Result<Self, PacketError> {
        if buf.len() < HEADER_LEN {
            return Err(PacketError::Truncated(buf.len()));
        }
        let version = buf[0] & 0x0f;
        if version != VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let packet_type = PacketType::from_nibble(buf[0] >> 4)?;
        let be16 = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let header = Header {
            packet_type,
            connection_id: be16(2),
            timestamp_us: be32(4),
            timestamp_diff_us: be32(8),
            wnd_size: be32(12),
            seq_nr: be16(16),
            ack_nr: be16(18),
        };
        let mut selective_ack = None;
        let mut next = buf[1];
        let mut at = HEADER_LEN;
        while next != 0 {
            let (Some(&following), Some(&len)) = (buf.get(at), buf.get(at + 1)) else {
                return Err(PacketError::Truncated(buf.len()));
            };
            let start = at + 2;
            let end = start + usize::from(len);
            let data = buf
                .get(start..end)
                .ok_or(PacketError::Truncated(buf.len()))?;
            if next == EXT_SELECTIVE_ACK && selective_ack.is_none() {
                selective_ack = Some(SelectiveAck::new(data));
            }
            next = following;
            at = end;
        }
        Ok(Packet {
            header,
            selective_ack,
            payload: &buf[at..],
        })
    }
}

impl Header {
    /// Writes this header, an optional selective ack bitmask and the payload into `out`; returns the
    /// number of bytes written. The bitmask length should be a non-zero multiple of 4 (BEP 29).
    ///
    /// ```
    /// use utp::packet::{Header, PacketType};
    /// let h = Header { packet_type: PacketType::Syn, connection_id: 7, timestamp_us: 0,
    ///     timestamp_diff_us: 0, wnd_size: 0, seq_nr: 1, ack_nr: 0 };
    /// let mut buf = [0u8; 64];
    /// let n = h.encode(None, b"", &mut buf).unwrap();
    /// assert_eq!(&buf[..4], &[0x41, 0, 0, 7]);
    /// assert_eq!(n, 20);
    /// ```
    pub fn encode(
        &self,
        selective_ack: Option<&[u8]>,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, PacketError> {
        let sack = selective_ack.filter(|m| !m.is_empty() && m.len() <= usize::from(u8::MAX));
        let ext_len = sack.map_or(0, |m| 2 + m.len());
        let total = HEADER_LEN + ext_len + payload.len();
        if out.len() < total {
            return Err(PacketError::BufferTooSmall(total));
        }
        out[0] = ((self.packet_type as u8) << 4) | VERSION;
        out[1] = if sack.is_some() { EXT_SELECTIVE_ACK } else { 0 };
        out[2..4].copy_from_slice(&self.connection_id.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp_us.to_be_bytes());
        out[8..12].copy_from_slice(&self.timestamp_diff_us.to_be_bytes());
        out[12..16].copy_from_slice(&self.wnd_size.to_be_bytes());
        out[16..18].copy_from_slice(&self.seq_nr.to_be_bytes());
        out[18..20].copy_from_slice(&self.ack_nr.to_be_bytes());
        let mut at = HEADER_LEN;
        if let Some(mask) = sack {
            out[at] = 0;
            // Bounded above by the filter.
            out[at + 1] = mask.len() as u8;
            out[at + 2..at + 2 + mask.len()].copy_from_slice(mask);
            at += 2 + mask.len();
        }
        out[at..at + payload.len()].copy_from_slice(payload);
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(packet_type: PacketType) -> Header {
        Header {
            packet_type,
            connection_id: 0xabcd,
            timestamp_us: 0x0102_0304,
            timestamp_diff_us: 0x0506_0708,
            wnd_size: 0x0010_0000,
            seq_nr: 0x1122,
            ack_nr: 0x3344,
        }
    }

    #[test]
    fn encodes_exact_bytes() {
        let mut buf = [0u8; 64];
        let n = header(PacketType::Data)
            .encode(None, b"xyz", &mut buf)
            .unwrap();
        assert_eq!(
            &buf[..n],
            &[
                0x01, 0x00, 0xab, 0xcd, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00, 0x10,
                0x00, 0x00, 0x11, 0x22, 0x33, 0x44, b'x', b'y', b'z'
            ][..]
        );
    }

    #[test]
    fn encodes_selective_ack_exact_bytes() {
        let mut buf = [0u8; 64];
        let n = header(PacketType::State)
            .encode(Some(&[0b0000_0101, 0, 0, 0x80]), b"", &mut buf)
            .unwrap();
        assert_eq!(buf[0], 0x21);
        assert_eq!(buf[1], EXT_SELECTIVE_ACK);
        assert_eq!(&buf[20..n], &[0, 4, 0b0000_0101, 0, 0, 0x80]);
        let p = Packet::decode(&buf[..n]).unwrap();
        let sack = p.selective_ack.unwrap();
        assert_eq!(sack.acked().collect::<Vec<_>>(), vec![0, 2, 31]);
        assert!(sack.is_acked(2) && !sack.is_acked(1) && !sack.is_acked(32));
        assert_eq!(p.payload, b"");
    }

    #[test]
    fn round_trips_every_type() {
        for t in [
            PacketType::Data,
            PacketType::Fin,
            PacketType::State,
            PacketType::Reset,
            PacketType::Syn,
        ] {
            let mut buf = [0u8; 64];
            let n = header(t).encode(None, b"p", &mut buf).unwrap();
            let p = Packet::decode(&buf[..n]).unwrap();
            assert_eq!(p.header, header(t));
            assert_eq!(p.payload, b"p");
            assert_eq!(p.selective_ack, None);
        }
    }

    #[test]
    fn skips_unknown_extensions() {
        // ext 2 (len 3), then ext 1 (len 4), then payload.
        let mut buf = vec![0x01, 2];
        buf.extend_from_slice(&[0; 18]);
        buf.extend_from_slice(&[1, 3, 9, 9, 9]);
        buf.extend_from_slice(&[0, 4, 1, 0, 0, 0]);
        buf.extend_from_slice(b"data");
        let p = Packet::decode(&buf).unwrap();
        assert_eq!(p.selective_ack.unwrap().as_bytes(), &[1, 0, 0, 0]);
        assert_eq!(p.payload, b"data");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Packet::decode(&[]), Err(PacketError::Truncated(0)));
        assert_eq!(Packet::decode(&[0x01; 19]), Err(PacketError::Truncated(19)));
        let mut buf = [0u8; 20];
        buf[0] = 0x02;
        assert_eq!(Packet::decode(&buf), Err(PacketError::BadVersion(2)));
        buf[0] = 0x51;
        assert_eq!(Packet::decode(&buf), Err(PacketError::BadType(5)));
        buf[0] = 0x01;
        buf[1] = 1; // extension promised, none present
        assert!(matches!(
            Packet::decode(&buf),
            Err(PacketError::Truncated(_))
        ));
        let mut long = buf.to_vec();
        long.extend_from_slice(&[0, 200, 1, 2]); // length runs past the end
        assert!(matches!(
            Packet::decode(&long),
            Err(PacketError::Truncated(_))
        ));
        let mut small = [0u8; 10];
        assert_eq!(
            header(PacketType::Data).encode(None, b"x", &mut small),
            Err(PacketError::BufferTooSmall(21))
        );
    }

    #[test]
    fn decode_is_total_on_noise() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(29);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..80);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if len > 0 && rng.gen_bool(0.7) {
                buf[0] = (buf[0] & 0x70) | 1;
            }
            let _ = Packet::decode(&buf);
        }
    }
}
