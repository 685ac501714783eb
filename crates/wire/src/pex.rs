//! BEP 11 `ut_pex`: peers tell each other whom they are connected to.
//!
//! The payload of the extended message is a bencoded dictionary of compact address strings:
//! `added` / `dropped` hold 6-byte IPv4 entries (address, port), `added6` / `dropped6` 18-byte
//! IPv6 entries, and `added.f` / `added6.f` one flag byte per added peer.
//!
//! PEX data is untrusted. Decoding keeps at most [`MAX_PEX_PEERS`] added and as many dropped
//! entries, so a message listing thousands of peers costs bounded memory; the rest are skipped,
//! not treated as an error, since a large initial message is legal.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bencode::{Encoder, Value};

use crate::Error;

/// PEX flag: the peer prefers encrypted connections (its extended handshake had `e`).
pub const PEX_PREFERS_ENCRYPTION: u8 = 0x01;
/// PEX flag: the peer is a seed or upload-only.
pub const PEX_SEED: u8 = 0x02;
/// PEX flag: the peer supports uTP (BEP 29).
pub const PEX_UTP: u8 = 0x04;
/// PEX flag: the peer advertised `ut_holepunch` (BEP 55).
pub const PEX_HOLEPUNCH: u8 = 0x08;
/// PEX flag: the sender connected out to the peer, so it is reachable.
pub const PEX_REACHABLE: u8 = 0x10;

/// Most added (and, separately, most dropped) peers kept from one decoded message.
///
/// BEP 11 asks for at most 50 of each per message after the first; the first lists every current
/// connection, which for common clients is a few hundred at most. IPv4 entries are taken before
/// IPv6 ones.
pub const MAX_PEX_PEERS: usize = 500;

const V4_LEN: usize = 6;
const V6_LEN: usize = 18;

/// One added peer and its flag byte (`PEX_*` bits; 0 when the sender sent no flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PexPeer {
    /// Where to connect.
    pub addr: SocketAddr,
    /// `PEX_*` bits.
    pub flags: u8,
}

/// A decoded or to-be-sent `ut_pex` message, IPv4 and IPv6 entries together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PexMessage {
    /// Peers the sender connected to since its last message.
    pub added: Vec<PexPeer>,
    /// Peers the sender disconnected from since its last message.
    pub dropped: Vec<SocketAddr>,
}

/// The byte string under `key`, or empty if absent or not a string.
fn field<'v>(dict: &'v bencode::Dict<'_>, key: &[u8]) -> &'v [u8] {
    dict.get(key).and_then(Value::as_bytes).unwrap_or(&[])
}

/// Checks that `bytes` is whole entries of `entry` bytes.
fn entries<'b>(
    bytes: &'b [u8],
    entry: usize,
    name: &'static str,
) -> Result<std::slice::ChunksExact<'b, u8>, Error> {
    if !bytes.len().is_multiple_of(entry) {
        return Err(Error::PexLength {
            field: name,
            len: bytes.len(),
            entry,
        });
    }
    Ok(bytes.chunks_exact(entry))
}

fn v4(c: &[u8]) -> SocketAddr {
    let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
    SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([c[4], c[5]])))
}

fn v6(c: &[u8]) -> SocketAddr {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&c[..16]);
    let port = u16::from_be_bytes([c[16], c[17]]);
    SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
}

/// Appends the compact form of `addr`.
fn compact(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

impl PexMessage {
    /// Parses the payload of a `ut_pex` extended message (after the extended id byte).
    ///
    /// Fails if the payload is not a bencoded dictionary or an address string is not a whole
    /// number of entries. Absent keys mean no peers; a flag string whose length does not match
    /// its address string is ignored (flags 0), since flags are only hints. Keeps at most
    /// [`MAX_PEX_PEERS`] added and [`MAX_PEX_PEERS`] dropped peers; bytes after the dictionary
    /// are ignored.
    pub fn decode(payload: &[u8]) -> Result<Self, Error> {
        let (value, _) = bencode::decode_prefix(payload)?;
        let dict = value.as_dict().ok_or(Error::ExtensionNotDict("ut_pex"))?;
        // Check every length before building anything.
        let added4 = entries(field(dict, b"added"), V4_LEN, "added")?;
        let added6 = entries(field(dict, b"added6"), V6_LEN, "added6")?;
        let dropped4 = entries(field(dict, b"dropped"), V4_LEN, "dropped")?;
        let dropped6 = entries(field(dict, b"dropped6"), V6_LEN, "dropped6")?;

        let flags = |key: &[u8], count: usize| {
            let f = field(dict, key);
            (f.len() == count).then_some(f)
        };
        let flags4 = flags(b"added.f", added4.len());
        let flags6 = flags(b"added6.f", added6.len());
        let with_flags = |flags: Option<&[u8]>, i: usize| flags.map_or(0, |f| f[i]);

        let added = added4
            .enumerate()
            .map(|(i, c)| PexPeer {
                addr: v4(c),
                flags: with_flags(flags4, i),
            })
            .chain(added6.enumerate().map(|(i, c)| PexPeer {
                addr: v6(c),
                flags: with_flags(flags6, i),
            }))
            .take(MAX_PEX_PEERS)
            .collect();
        let dropped = dropped4
            .map(v4)
            .chain(dropped6.map(v6))
            .take(MAX_PEX_PEERS)
            .collect();
        Ok(Self { added, dropped })
    }

    /// Appends the bencoded payload to `out`.
    ///
    /// Every key is written, empty when there is nothing to say, so the message always carries
    /// the address fields BEP 11 requires. IPv6 addresses that embed IPv4 are sent as IPv6.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut added4 = Vec::new();
        let mut flags4 = Vec::new();
        let mut added6 = Vec::new();
        let mut flags6 = Vec::new();
        for p in &self.added {
            let (list, flags) = match p.addr {
                SocketAddr::V4(_) => (&mut added4, &mut flags4),
                SocketAddr::V6(_) => (&mut added6, &mut flags6),
            };
            compact(list, &p.addr);
            flags.push(p.flags);
        }
        let mut dropped4 = Vec::new();
        let mut dropped6 = Vec::new();
        for addr in &self.dropped {
            let list = match addr {
                SocketAddr::V4(_) => &mut dropped4,
                SocketAddr::V6(_) => &mut dropped6,
            };
            compact(list, addr);
        }
        let mut e = Encoder::new(out);
        // Keys in ascending byte order ('.' sorts before '6').
        e.dict_start();
        e.bytes(b"added").bytes(&added4);
        e.bytes(b"added.f").bytes(&flags4);
        e.bytes(b"added6").bytes(&added6);
        e.bytes(b"added6.f").bytes(&flags6);
        e.bytes(b"dropped").bytes(&dropped4);
        e.bytes(b"dropped6").bytes(&dropped6);
        e.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn sample() -> PexMessage {
        PexMessage {
            added: vec![
                PexPeer {
                    addr: addr("1.2.3.4:6881"),
                    flags: PEX_SEED | PEX_REACHABLE,
                },
                PexPeer {
                    addr: addr("[2001:db8::1]:80"),
                    flags: PEX_UTP,
                },
                PexPeer {
                    addr: addr("10.0.0.1:1"),
                    flags: 0,
                },
            ],
            dropped: vec![addr("5.6.7.8:65535")],
        }
    }

    #[test]
    fn encodes_exact_bytes_and_round_trips() {
        let mut out = vec![0xee]; // encode appends
        sample().encode(&mut out);
        let expected: &[u8] = b"d5:added12:\x01\x02\x03\x04\x1a\xe1\x0a\x00\x00\x01\x00\x01\
7:added.f2:\x12\x00\
6:added618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x50\
8:added6.f1:\x04\
7:dropped6:\x05\x06\x07\x08\xff\xff8:dropped60:e";
        assert_eq!(&out[1..], expected);
        assert_eq!(
            bencode::decode(&out[1..]).unwrap().encode_to_vec(),
            &out[1..]
        );
        // Decoding groups IPv4 before IPv6.
        let mut want = sample();
        want.added.swap(1, 2);
        assert_eq!(PexMessage::decode(&out[1..]), Ok(want));
    }

    #[test]
    fn empty_message() {
        let mut out = Vec::new();
        PexMessage::default().encode(&mut out);
        assert_eq!(
            out,
            b"d5:added0:7:added.f0:6:added60:8:added6.f0:7:dropped0:8:dropped60:e"
        );
        assert_eq!(PexMessage::decode(&out), Ok(PexMessage::default()));
        assert_eq!(PexMessage::decode(b"de"), Ok(PexMessage::default()));
    }

    #[test]
    fn missing_or_mismatched_flags_read_as_zero() {
        // No added.f at all; an added6.f that is one byte short.
        let payload = [
            &b"d5:added6:\x7f\x00\x00\x01\x00\x506:added618:"[..],
            &[0u8; 15],
            &[1, 0, 2],
            b"8:added6.f0:e",
        ]
        .concat();
        let pex = PexMessage::decode(&payload).unwrap();
        assert_eq!(
            pex.added,
            vec![
                PexPeer {
                    addr: addr("127.0.0.1:80"),
                    flags: 0
                },
                PexPeer {
                    addr: addr("[::1]:2"),
                    flags: 0
                },
            ]
        );
        assert!(pex.dropped.is_empty());
    }

    #[test]
    fn rejects_ragged_address_strings() {
        let cases: [(&[u8], &str, usize, usize); 4] = [
            (b"d5:added5:12345e", "added", 5, 6),
            (b"d6:added66:123456e", "added6", 6, 18),
            (b"d7:dropped7:1234567e", "dropped", 7, 6),
            (b"d8:dropped61:xe", "dropped6", 1, 18),
        ];
        for (payload, field, len, entry) in cases {
            assert_eq!(
                PexMessage::decode(payload),
                Err(Error::PexLength { field, len, entry })
            );
        }
        assert_eq!(
            PexMessage::decode(b"le"),
            Err(Error::ExtensionNotDict("ut_pex"))
        );
        assert!(matches!(
            PexMessage::decode(b"d5:added"),
            Err(Error::Bencode(_))
        ));
    }

    #[test]
    fn keys_of_the_wrong_type_mean_no_peers() {
        assert_eq!(
            PexMessage::decode(b"d5:addedi1e7:droppedlee"),
            Ok(PexMessage::default())
        );
    }

    #[test]
    fn caps_what_a_huge_message_returns() {
        let n = 3 * MAX_PEX_PEERS;
        let mut big = PexMessage::default();
        for i in 0..n {
            let a = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881));
            big.added.push(PexPeer { addr: a, flags: 1 });
            big.dropped.push(a);
        }
        big.added.push(PexPeer {
            addr: addr("[::1]:1"),
            flags: 2,
        });
        let mut out = Vec::new();
        big.encode(&mut out);
        let got = PexMessage::decode(&out).unwrap();
        assert_eq!(got.added.len(), MAX_PEX_PEERS);
        assert_eq!(got.dropped.len(), MAX_PEX_PEERS);
        assert_eq!(&got.added[..], &big.added[..MAX_PEX_PEERS]);
        assert_eq!(&got.dropped[..], &big.dropped[..MAX_PEX_PEERS]);
    }
}
