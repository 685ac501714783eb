//! BEP 9 `ut_metadata`: fetching a torrent's info dictionary from peers (magnet links).
//!
//! The metadata (the bencoded info dictionary) travels in 16 KiB pieces. Each message is a BEP 10
//! extended message whose payload is a bencoded dictionary, `{msg_type, piece}` plus `total_size`
//! for `data`; a `data` message has the piece's raw bytes appended after the dictionary.
//!
//! [`MetadataAssembler`] collects the pieces of one torrent. It does not hash: the caller checks
//! the finished bytes against the info-hash (SHA-1 for v1, SHA-256 for v2), which keeps this crate
//! free of metainfo.

use bencode::{Encoder, Value};

use crate::Error;

/// Size of every metadata piece but the last (BEP 9).
pub const METADATA_PIECE_SIZE: usize = 16384;

/// The largest info dictionary we fetch: 16 MiB.
///
/// A peer's `metadata_size` decides how much memory one magnet download holds, so it is checked
/// against this before anything is reserved. Real info dictionaries are almost always below 1 MiB;
/// 16 MiB still fits a v1 piece list of 800,000 pieces or a file list of well over 100,000 files.
/// (libtorrent 2.0 accepts up to 30 MiB.) v2 piece layers are outside the info dictionary and do
/// not count.
pub const MAX_METADATA_SIZE: u64 = 16 << 20;

const REQUEST: i64 = 0;
const DATA: i64 = 1;
const REJECT: i64 = 2;

/// One `ut_metadata` message; the piece bytes of `data` borrow from the received payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMessage<'a> {
    /// `msg_type` 0: asks for one piece.
    Request {
        /// Piece index.
        piece: u32,
    },
    /// `msg_type` 1: one piece of the metadata.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole metadata in bytes, as in the extended handshake's `metadata_size`.
        total_size: u64,
        /// The piece: [`METADATA_PIECE_SIZE`] bytes, or the remainder for the last piece.
        data: &'a [u8],
    },
    /// `msg_type` 2: the sender does not have (or will not send) this piece.
    Reject {
        /// Piece index.
        piece: u32,
    },
}

/// Checks `total_size` against [`MAX_METADATA_SIZE`] and returns the piece count.
fn piece_count(total_size: u64) -> Result<u32, Error> {
    if total_size == 0 || total_size > MAX_METADATA_SIZE {
        return Err(Error::MetadataSize {
            size: total_size,
            max: MAX_METADATA_SIZE,
        });
    }
    // At most 1024 with the 16 MiB bound.
    Ok(total_size.div_ceil(METADATA_PIECE_SIZE as u64) as u32)
}

/// The exact length piece `piece` of a `total_size`-byte metadata must have.
fn piece_len(total_size: u64, piece: u32) -> Result<usize, Error> {
    let count = piece_count(total_size)?;
    if piece >= count {
        return Err(Error::MetadataPieceIndex {
            piece,
            size: total_size,
        });
    }
    let start = u64::from(piece) * METADATA_PIECE_SIZE as u64;
    // Below 16 KiB, so the cast cannot truncate.
    Ok((total_size - start).min(METADATA_PIECE_SIZE as u64) as usize)
}

impl<'a> MetadataMessage<'a> {
    /// Parses the payload of a `ut_metadata` extended message (after the extended id byte).
    ///
    /// `data` messages are checked in full: `total_size` within 1..=[`MAX_METADATA_SIZE`], `piece`
    /// inside it, and exactly the bytes that piece must have. A `msg_type` other than 0, 1 or 2
    /// is [`Error::MetadataUnknownType`], which BEP 9 says to ignore, not treat as misbehaviour.
    /// Unknown dictionary keys, and bytes after the dictionary of a request or reject, are ignored.
    pub fn decode(payload: &'a [u8]) -> Result<Self, Error> {
        let (value, used) = bencode::decode_prefix(payload)?;
        let dict = value
            .as_dict()
            .ok_or(Error::ExtensionNotDict("ut_metadata"))?;
        let int = |key: &[u8]| dict.get(key).and_then(Value::as_int);
        let msg_type = int(b"msg_type").ok_or(Error::MetadataKey("msg_type"))?;
        if !(REQUEST..=REJECT).contains(&msg_type) {
            return Err(Error::MetadataUnknownType(msg_type));
        }
        let piece = int(b"piece")
            .and_then(|p| u32::try_from(p).ok())
            .ok_or(Error::MetadataKey("piece"))?;
        Ok(match msg_type {
            REQUEST => MetadataMessage::Request { piece },
            REJECT => MetadataMessage::Reject { piece },
            _ => {
                let total_size = int(b"total_size")
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or(Error::MetadataKey("total_size"))?;
                let data = &payload[used..];
                let expected = piece_len(total_size, piece)?;
                if data.len() != expected {
                    return Err(Error::MetadataPieceLength {
                        piece,
                        len: data.len(),
                        expected,
                    });
                }
                MetadataMessage::Data {
                    piece,
                    total_size,
                    data,
                }
            }
        })
    }

    /// The answer to a request for `piece` from a peer that holds the verified `metadata`: the
    /// piece as `data`, or `reject` if there is no such piece.
    pub fn answer(metadata: &'a [u8], piece: u32) -> Self {
        let start = (piece as usize).saturating_mul(METADATA_PIECE_SIZE);
        match metadata.get(start..) {
            Some(rest) if !rest.is_empty() => MetadataMessage::Data {
                piece,
                total_size: metadata.len() as u64,
                data: &rest[..rest.len().min(METADATA_PIECE_SIZE)],
            },
            _ => MetadataMessage::Reject { piece },
        }
    }

    /// The piece index this message is about.
    pub fn piece(&self) -> u32 {
        match *self {
            MetadataMessage::Request { piece }
            | MetadataMessage::Data { piece, .. }
            | MetadataMessage::Reject { piece } => piece,
        }
    }

    /// Appends the payload (bencoded dictionary, then the piece bytes for `data`) to `out`.
    ///
    /// Send it as `Message::Extended { id, payload }` with the id the peer gave `ut_metadata`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (msg_type, total_size, data) = match *self {
            MetadataMessage::Request { .. } => (REQUEST, None, &[][..]),
            MetadataMessage::Data {
                total_size, data, ..
            } => (DATA, Some(total_size), data),
            MetadataMessage::Reject { .. } => (REJECT, None, &[][..]),
        };
        let mut e = Encoder::new(out);
        // Keys in ascending byte order: msg_type, piece, total_size.
        e.dict_start();
        e.bytes(b"msg_type").int(msg_type);
        e.bytes(b"piece").int(i64::from(self.piece()));
        if let Some(size) = total_size {
            e.bytes(b"total_size")
                .int(i64::try_from(size).unwrap_or(i64::MAX));
        }
        e.end();
        out.extend_from_slice(data);
    }
}

/// Collects the pieces of one torrent's metadata until all have arrived.
///
/// Sans-IO: the caller picks which missing piece to request from which peer (see
/// [`MetadataAssembler::missing`]), feeds every `data` message to
/// [`MetadataAssembler::handle_data`], and once [`MetadataAssembler::is_complete`] hashes
/// [`MetadataAssembler::metadata`] against the info-hash. On a mismatch it calls
/// [`MetadataAssembler::reset`] (some peer lied, and it cannot be told which) and starts over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataAssembler {
    size: usize,
    /// One flag per piece: stored yet?
    received: Vec<bool>,
    missing: u32,
    /// Empty until the first piece arrives, then exactly `size` bytes.
    buf: Vec<u8>,
}

impl MetadataAssembler {
    /// An assembler for a `metadata_size`-byte info dictionary, as a peer announced it in its
    /// extended handshake.
    ///
    /// Fails with [`Error::MetadataSize`] for 0 or above [`MAX_METADATA_SIZE`]. Nothing of that
    /// size is reserved until the first piece arrives.
    pub fn new(metadata_size: u64) -> Result<Self, Error> {
        let count = piece_count(metadata_size)?;
        Ok(Self {
            size: metadata_size as usize,
            received: vec![false; count as usize],
            missing: count,
            buf: Vec::new(),
        })
    }

    /// Size of the metadata in bytes.
    pub fn metadata_size(&self) -> usize {
        self.size
    }

    /// Number of pieces: `ceil(metadata_size / 16 KiB)`.
    pub fn piece_count(&self) -> u32 {
        self.received.len() as u32
    }

    /// Number of pieces not yet received.
    pub fn missing_count(&self) -> u32 {
        self.missing
    }

    /// The pieces not yet received, in ascending order.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.piece_count()).filter(|&p| !self.received[p as usize])
    }

    /// Whether `piece` has been received.
    pub fn has_piece(&self, piece: u32) -> bool {
        self.received.get(piece as usize).copied().unwrap_or(false)
    }

    /// Stores a `data` message's piece.
    ///
    /// `Ok(true)` if the piece was new, `Ok(false)` if it was already held (the first copy is
    /// kept). Fails, changing nothing, if `total_size` is not this assembler's size, the piece is
    /// out of range, or `data` has the wrong length.
    pub fn handle_data(&mut self, piece: u32, total_size: u64, data: &[u8]) -> Result<bool, Error> {
        if total_size != self.size as u64 {
            return Err(Error::MetadataSizeMismatch {
                got: total_size,
                expected: self.size as u64,
            });
        }
        let expected = piece_len(total_size, piece)?;
        if data.len() != expected {
            return Err(Error::MetadataPieceLength {
                piece,
                len: data.len(),
                expected,
            });
        }
        if self.received[piece as usize] {
            return Ok(false);
        }
        if self.buf.is_empty() {
            self.buf = vec![0; self.size];
        }
        let start = piece as usize * METADATA_PIECE_SIZE;
        self.buf[start..start + data.len()].copy_from_slice(data);
        self.received[piece as usize] = true;
        self.missing -= 1;
        Ok(true)
    }

    /// Whether every piece has been received.
    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// The assembled metadata once complete, for the caller to hash; `None` before.
    pub fn metadata(&self) -> Option<&[u8]> {
        self.is_complete().then_some(&self.buf[..])
    }

    /// Hands over the assembled metadata once complete and starts over empty; `None` (and no
    /// change) before.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        if !self.is_complete() {
            return None;
        }
        let buf = std::mem::take(&mut self.buf);
        self.reset();
        Some(buf)
    }

    /// Forgets every piece, as after the assembled bytes failed info-hash verification.
    pub fn reset(&mut self) {
        self.received.fill(false);
        self.missing = self.piece_count();
        self.buf = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(msg: &MetadataMessage<'_>) -> Vec<u8> {
        let mut out = vec![0xee]; // encode appends
        msg.encode(&mut out);
        out.remove(0);
        out
    }

    #[test]
    fn messages_round_trip_through_exact_bytes() {
        let last = [7u8; 100];
        let cases: [(MetadataMessage<'_>, Vec<u8>); 4] = [
            (
                MetadataMessage::Request { piece: 0 },
                b"d8:msg_typei0e5:piecei0ee".to_vec(),
            ),
            (
                MetadataMessage::Reject { piece: 3 },
                b"d8:msg_typei2e5:piecei3ee".to_vec(),
            ),
            (
                MetadataMessage::Data {
                    piece: 1,
                    total_size: 16484,
                    data: &last,
                },
                [&b"d8:msg_typei1e5:piecei1e10:total_sizei16484ee"[..], &last].concat(),
            ),
            (
                MetadataMessage::Data {
                    piece: 0,
                    total_size: 5,
                    data: b"d1:ae",
                },
                b"d8:msg_typei1e5:piecei0e10:total_sizei5eed1:ae".to_vec(),
            ),
        ];
        for (msg, bytes) in cases {
            assert_eq!(encode(&msg), bytes, "{msg:?}");
            assert_eq!(MetadataMessage::decode(&bytes), Ok(msg));
        }
    }

    #[test]
    fn decode_is_lenient_about_extras_and_key_order() {
        // Unsorted keys, an unknown key, trailing bytes after a request.
        let msg = MetadataMessage::decode(b"d5:piecei2e1:xi9e8:msg_typei0eeJUNK").unwrap();
        assert_eq!(msg, MetadataMessage::Request { piece: 2 });
    }

    #[test]
    fn decode_checks_data_pieces_against_total_size() {
        let full = [0u8; METADATA_PIECE_SIZE];
        let header = |piece: u32, total: u64| {
            format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{total}ee").into_bytes()
        };
        // A full first piece of two.
        let ok = [header(0, 20000), full.to_vec()].concat();
        assert!(matches!(
            MetadataMessage::decode(&ok),
            Ok(MetadataMessage::Data { piece: 0, data, .. }) if data.len() == METADATA_PIECE_SIZE
        ));
        // A short piece that is not the last.
        let short = [header(0, 20000), vec![0; 100]].concat();
        assert_eq!(
            MetadataMessage::decode(&short),
            Err(Error::MetadataPieceLength {
                piece: 0,
                len: 100,
                expected: 16384
            })
        );
        // The last piece must be exactly the remainder.
        let long_last = [header(1, 20000), vec![0; 3617]].concat();
        assert_eq!(
            MetadataMessage::decode(&long_last),
            Err(Error::MetadataPieceLength {
                piece: 1,
                len: 3617,
                expected: 3616
            })
        );
        // A piece past the end.
        assert_eq!(
            MetadataMessage::decode(&header(2, 20000)),
            Err(Error::MetadataPieceIndex {
                piece: 2,
                size: 20000
            })
        );
        // An exact multiple of 16 KiB has no empty trailing piece.
        assert_eq!(
            MetadataMessage::decode(&header(1, 16384)),
            Err(Error::MetadataPieceIndex {
                piece: 1,
                size: 16384
            })
        );
        // Sizes we refuse.
        for size in [0, MAX_METADATA_SIZE + 1, i64::MAX as u64] {
            assert_eq!(
                MetadataMessage::decode(&header(0, size)),
                Err(Error::MetadataSize {
                    size,
                    max: MAX_METADATA_SIZE
                })
            );
        }
    }

    #[test]
    fn decode_rejects_malformed_messages() {
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_typei7e5:piecei0ee"),
            Err(Error::MetadataUnknownType(7))
        );
        // An unknown type needs no piece: a future message may not have one.
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_typei-1ee"),
            Err(Error::MetadataUnknownType(-1))
        );
        assert_eq!(
            MetadataMessage::decode(b"d5:piecei0ee"),
            Err(Error::MetadataKey("msg_type"))
        );
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_type1:0e"),
            Err(Error::MetadataKey("msg_type"))
        );
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_typei0e5:piecei-1ee"),
            Err(Error::MetadataKey("piece"))
        );
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_typei0e5:piecei4294967296ee"),
            Err(Error::MetadataKey("piece"))
        );
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_typei1e5:piecei0eexx"),
            Err(Error::MetadataKey("total_size"))
        );
        assert_eq!(
            MetadataMessage::decode(b"li0ee"),
            Err(Error::ExtensionNotDict("ut_metadata"))
        );
        assert!(matches!(
            MetadataMessage::decode(b"d8:msg_typei0e"),
            Err(Error::Bencode(_))
        ));
        assert!(matches!(
            MetadataMessage::decode(b""),
            Err(Error::Bencode(_))
        ));
    }

    #[test]
    fn answer_serves_pieces_and_rejects_past_the_end() {
        let metadata: Vec<u8> = (0..20000u32).map(|i| i as u8).collect();
        assert_eq!(
            MetadataMessage::answer(&metadata, 0),
            MetadataMessage::Data {
                piece: 0,
                total_size: 20000,
                data: &metadata[..16384]
            }
        );
        assert_eq!(
            MetadataMessage::answer(&metadata, 1),
            MetadataMessage::Data {
                piece: 1,
                total_size: 20000,
                data: &metadata[16384..]
            }
        );
        for piece in [2, u32::MAX] {
            assert_eq!(
                MetadataMessage::answer(&metadata, piece),
                MetadataMessage::Reject { piece }
            );
        }
        assert_eq!(
            MetadataMessage::answer(&[], 0),
            MetadataMessage::Reject { piece: 0 }
        );
        // What we serve, we accept.
        let bytes = encode(&MetadataMessage::answer(&metadata, 1));
        assert_eq!(
            MetadataMessage::decode(&bytes),
            Ok(MetadataMessage::answer(&metadata, 1))
        );
    }

    #[test]
    fn assembler_collects_pieces_in_any_order() {
        let metadata: Vec<u8> = (0..40000u32).map(|i| (i * 7) as u8).collect();
        let mut asm = MetadataAssembler::new(40000).unwrap();
        assert_eq!(asm.piece_count(), 3);
        assert_eq!(asm.missing().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(asm.metadata(), None);

        for (step, piece) in [2u32, 0, 1].into_iter().enumerate() {
            let MetadataMessage::Data {
                total_size, data, ..
            } = MetadataMessage::answer(&metadata, piece)
            else {
                panic!("piece {piece} exists");
            };
            assert_eq!(asm.handle_data(piece, total_size, data), Ok(true));
            assert!(asm.has_piece(piece));
            assert_eq!(asm.missing_count(), 2 - step as u32);
            // A duplicate is ignored.
            assert_eq!(asm.handle_data(piece, total_size, data), Ok(false));
            assert_eq!(asm.is_complete(), step == 2);
        }
        assert_eq!(asm.missing().count(), 0);
        assert_eq!(asm.metadata(), Some(&metadata[..]));
        assert_eq!(asm.take(), Some(metadata));
        // Taking starts over.
        assert_eq!(asm.missing_count(), 3);
        assert_eq!(asm.take(), None);
    }

    #[test]
    fn assembler_refuses_bad_pieces_without_changing() {
        assert_eq!(
            MetadataAssembler::new(0),
            Err(Error::MetadataSize {
                size: 0,
                max: MAX_METADATA_SIZE
            })
        );
        assert!(MetadataAssembler::new(MAX_METADATA_SIZE + 1).is_err());
        assert_eq!(
            MetadataAssembler::new(MAX_METADATA_SIZE)
                .unwrap()
                .piece_count(),
            1024
        );

        let mut asm = MetadataAssembler::new(20000).unwrap();
        let before = asm.clone();
        assert_eq!(
            asm.handle_data(0, 20001, &[0; 16384]),
            Err(Error::MetadataSizeMismatch {
                got: 20001,
                expected: 20000
            })
        );
        assert_eq!(
            asm.handle_data(0, 20000, &[0; 100]),
            Err(Error::MetadataPieceLength {
                piece: 0,
                len: 100,
                expected: 16384
            })
        );
        assert_eq!(
            asm.handle_data(2, 20000, &[]),
            Err(Error::MetadataPieceIndex {
                piece: 2,
                size: 20000
            })
        );
        assert_eq!(asm, before);
        assert!(!asm.has_piece(u32::MAX));
    }

    #[test]
    fn reset_after_failed_verification_starts_over() {
        let mut asm = MetadataAssembler::new(10).unwrap();
        assert_eq!(asm.handle_data(0, 10, b"0123456789"), Ok(true));
        assert_eq!(asm.metadata(), Some(&b"0123456789"[..]));
        // The caller's hash did not match.
        asm.reset();
        assert!(!asm.is_complete() && !asm.has_piece(0));
        assert_eq!(asm.metadata(), None);
        assert_eq!(asm.handle_data(0, 10, b"abcdefghij"), Ok(true));
        assert_eq!(asm.metadata(), Some(&b"abcdefghij"[..]));
    }
}
