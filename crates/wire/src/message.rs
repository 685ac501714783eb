//! Length-prefixed peer messages (BEP 3, BEP 6, BEP 10) with borrowed payloads.
//!
//! On the wire every message is `<len:u32 BE><id:u8><payload>`, except keep-alive which is a bare
//! zero length. All integers are big-endian.

use crate::Error;

/// The block size every client requests and most refuse to exceed (16 KiB).
pub const BLOCK_SIZE: u32 = 16384;

const CHOKE: u8 = 0;
const UNCHOKE: u8 = 1;
const INTERESTED: u8 = 2;
const NOT_INTERESTED: u8 = 3;
const HAVE: u8 = 4;
const BITFIELD: u8 = 5;
const REQUEST: u8 = 6;
const PIECE: u8 = 7;
const CANCEL: u8 = 8;
const PORT: u8 = 9;
const SUGGEST: u8 = 13;
const HAVE_ALL: u8 = 14;
const HAVE_NONE: u8 = 15;
const REJECT: u8 = 16;
const ALLOWED_FAST: u8 = 17;
const EXTENDED: u8 = 20;

/// `index` and `begin` of a `piece` message.
const PIECE_FIXED: usize = 8;

/// One block of one piece: the argument of `request`, `cancel` and `reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    /// Piece index.
    pub index: u32,
    /// Byte offset of the block within the piece.
    pub begin: u32,
    /// Block length in bytes.
    pub length: u32,
}

/// One decoded peer message; variable-length payloads borrow from the received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Zero-length frame that only keeps the connection open.
    KeepAlive,
    /// id 0: the sender will not serve requests.
    Choke,
    /// id 1: the sender will serve requests.
    Unchoke,
    /// id 2: the sender wants pieces we have.
    Interested,
    /// id 3: the sender wants nothing from us.
    NotInterested,
    /// id 4: the sender completed this piece.
    Have(u32),
    /// id 5: the sender's pieces, MSB-first; validate with [`crate::Bitfield::from_bytes`].
    Bitfield(&'a [u8]),
    /// id 6: asks for a block.
    Request(BlockRef),
    /// id 7: a block of data.
    Piece {
        /// Piece index.
        index: u32,
        /// Byte offset within the piece.
        begin: u32,
        /// The block's bytes.
        data: &'a [u8],
    },
    /// id 8: withdraws a request.
    Cancel(BlockRef),
    /// id 9: the sender's DHT port (BEP 5).
    Port(u16),
    /// id 13 (BEP 6): the sender suggests downloading this piece.
    Suggest(u32),
    /// id 14 (BEP 6): the sender has every piece; replaces a bitfield.
    HaveAll,
    /// id 15 (BEP 6): the sender has no piece; replaces a bitfield.
    HaveNone,
    /// id 16 (BEP 6): the sender will not serve this request.
    Reject(BlockRef),
    /// id 17 (BEP 6): this piece may be requested even while choked.
    AllowedFast(u32),
    /// id 20 (BEP 10): an extension message; `id` 0 is the extended handshake.
    Extended {
        /// Extended message id, as assigned in the receiver's handshake `m` dictionary.
        id: u8,
        /// The extension's payload.
        payload: &'a [u8],
    },
    /// Any other id. Kept rather than rejected so new extensions do not break old peers.
    ///
    /// The BEP 52 hash messages (ids 21 to 23) arrive here; read them with
    /// [`crate::HashMessage::from_message`].
    Unknown {
        /// The message id.
        id: u8,
        /// Everything after the id byte.
        payload: &'a [u8],
    },
}

/// The big-endian `u32` at the start of `b`; callers check that four bytes are there.
pub(crate) fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn block_ref(p: &[u8]) -> BlockRef {
    BlockRef {
        index: be32(p),
        begin: be32(&p[4..]),
        length: be32(&p[8..]),
    }
}

/// Checks a fixed-size payload.
fn exact(id: u8, payload: &[u8], expected: usize) -> Result<&[u8], Error> {
    if payload.len() == expected {
        Ok(payload)
    } else {
        Err(Error::BadPayloadLength {
            id,
            len: payload.len(),
            expected,
        })
    }
}

impl Message<'_> {
    /// Decodes one frame: the bytes after the 4-byte length prefix (empty means keep-alive).
    ///
    /// Fixed-size messages must have exactly their size; `piece` and `extended` must hold at least
    /// their header. Unknown ids decode to [`Message::Unknown`].
    pub fn decode(frame: &[u8]) -> Result<Message<'_>, Error> {
        let Some((&id, p)) = frame.split_first() else {
            return Ok(Message::KeepAlive);
        };
        Ok(match id {
            CHOKE => exact(id, p, 0).map(|_| Message::Choke)?,
            UNCHOKE => exact(id, p, 0).map(|_| Message::Unchoke)?,
            INTERESTED => exact(id, p, 0).map(|_| Message::Interested)?,
            NOT_INTERESTED => exact(id, p, 0).map(|_| Message::NotInterested)?,
            HAVE => Message::Have(be32(exact(id, p, 4)?)),
            BITFIELD => Message::Bitfield(p),
            REQUEST => Message::Request(block_ref(exact(id, p, 12)?)),
            PIECE => {
                if p.len() < PIECE_FIXED {
                    return Err(Error::PayloadTooShort {
                        id,
                        len: p.len(),
                        min: PIECE_FIXED,
                    });
                }
                Message::Piece {
                    index: be32(p),
                    begin: be32(&p[4..]),
                    data: &p[PIECE_FIXED..],
                }
            }
            CANCEL => Message::Cancel(block_ref(exact(id, p, 12)?)),
            PORT => {
                let p = exact(id, p, 2)?;
                Message::Port(u16::from_be_bytes([p[0], p[1]]))
            }
            SUGGEST => Message::Suggest(be32(exact(id, p, 4)?)),
            HAVE_ALL => exact(id, p, 0).map(|_| Message::HaveAll)?,
            HAVE_NONE => exact(id, p, 0).map(|_| Message::HaveNone)?,
            REJECT => Message::Reject(block_ref(exact(id, p, 12)?)),
            ALLOWED_FAST => Message::AllowedFast(be32(exact(id, p, 4)?)),
            EXTENDED => match p.split_first() {
                Some((&ext, payload)) => Message::Extended { id: ext, payload },
                None => return Err(Error::PayloadTooShort { id, len: 0, min: 1 }),
            },
            _ => Message::Unknown { id, payload: p },
        })
    }

    /// The message id byte, or `None` for keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => CHOKE,
            Message::Unchoke => UNCHOKE,
            Message::Interested => INTERESTED,
            Message::NotInterested => NOT_INTERESTED,
            Message::Have(_) => HAVE,
            Message::Bitfield(_) => BITFIELD,
            Message::Request(_) => REQUEST,
            Message::Piece { .. } => PIECE,
            Message::Cancel(_) => CANCEL,
            Message::Port(_) => PORT,
            Message::Suggest(_) => SUGGEST,
            Message::HaveAll => HAVE_ALL,
            Message::HaveNone => HAVE_NONE,
            Message::Reject(_) => REJECT,
            Message::AllowedFast(_) => ALLOWED_FAST,
            Message::Extended { .. } => EXTENDED,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// Bytes after the id byte.
    fn payload_len(&self) -> usize {
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 0,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 4,
            Message::Port(_) => 2,
            Message::Request(_) | Message::Cancel(_) | Message::Reject(_) => 12,
            Message::Bitfield(b) => b.len(),
            Message::Piece { data, .. } => PIECE_FIXED + data.len(),
            Message::Extended { payload, .. } => 1 + payload.len(),
            Message::Unknown { payload, .. } => payload.len(),
        }
    }

    /// Size of the encoding, length prefix included.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::KeepAlive => 4,
            _ => 4 + 1 + self.payload_len(),
        }
    }

    /// Appends the length prefix and the message to `out`.
    ///
    /// Payloads must be shorter than 4 GiB; every real message is far below that.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        let frame_len = self.encoded_len() - 4;
        out.extend_from_slice(&(frame_len as u32).to_be_bytes());
        let Some(id) = self.id() else { return };
        out.push(id);
        let block = |out: &mut Vec<u8>, b: &BlockRef| {
            out.extend_from_slice(&b.index.to_be_bytes());
            out.extend_from_slice(&b.begin.to_be_bytes());
            out.extend_from_slice(&b.length.to_be_bytes());
        };
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have(i) | Message::Suggest(i) | Message::AllowedFast(i) => {
                out.extend_from_slice(&i.to_be_bytes())
            }
            Message::Bitfield(b) => out.extend_from_slice(b),
            Message::Request(b) | Message::Cancel(b) | Message::Reject(b) => block(out, b),
            Message::Piece { index, begin, data } => {
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(&begin.to_be_bytes());
                out.extend_from_slice(data);
            }
            Message::Port(port) => out.extend_from_slice(&port.to_be_bytes()),
            Message::Extended { id, payload } => {
                out.push(*id);
                out.extend_from_slice(payload);
            }
            Message::Unknown { payload, .. } => out.extend_from_slice(payload),
        }
    }
}

/// The 13-byte header of a `piece` message carrying `data_len` bytes: length prefix, id 7, `index`,
/// `begin`.
///
/// Lets a sender write the header and the block straight from its file buffer in one vectored
/// write instead of copying the block into a message buffer. `data_len` must be at most
/// `u32::MAX - 9`.
pub fn piece_header(index: u32, begin: u32, data_len: u32) -> [u8; 13] {
    let mut h = [0u8; 13];
    h[..4].copy_from_slice(&(data_len.wrapping_add(1 + PIECE_FIXED as u32)).to_be_bytes());
    h[4] = PIECE;
    h[5..9].copy_from_slice(&index.to_be_bytes());
    h[9..13].copy_from_slice(&begin.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: BlockRef = BlockRef {
        index: 1,
        begin: 0x4000,
        length: 0x4000,
    };

    /// Every message with its hand-written encoding.
    fn cases() -> Vec<(Message<'static>, Vec<u8>)> {
        vec![
            (Message::KeepAlive, vec![0, 0, 0, 0]),
            (Message::Choke, vec![0, 0, 0, 1, 0]),
            (Message::Unchoke, vec![0, 0, 0, 1, 1]),
            (Message::Interested, vec![0, 0, 0, 1, 2]),
            (Message::NotInterested, vec![0, 0, 0, 1, 3]),
            (Message::Have(0x0102_0304), vec![0, 0, 0, 5, 4, 1, 2, 3, 4]),
            (
                Message::Bitfield(&[0b1010_0000, 0xff]),
                vec![0, 0, 0, 3, 5, 0xa0, 0xff],
            ),
            (Message::Bitfield(&[]), vec![0, 0, 0, 1, 5]),
            (
                Message::Request(BLOCK),
                vec![0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (
                Message::Piece {
                    index: 2,
                    begin: 0x10,
                    data: b"abc",
                },
                vec![0, 0, 0, 12, 7, 0, 0, 0, 2, 0, 0, 0, 0x10, b'a', b'b', b'c'],
            ),
            (
                Message::Piece {
                    index: 0,
                    begin: 0,
                    data: b"",
                },
                vec![0, 0, 0, 9, 7, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            (
                Message::Cancel(BLOCK),
                vec![0, 0, 0, 13, 8, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (Message::Port(6881), vec![0, 0, 0, 3, 9, 0x1a, 0xe1]),
            (Message::Suggest(7), vec![0, 0, 0, 5, 13, 0, 0, 0, 7]),
            (Message::HaveAll, vec![0, 0, 0, 1, 14]),
            (Message::HaveNone, vec![0, 0, 0, 1, 15]),
            (
                Message::Reject(BLOCK),
                vec![0, 0, 0, 13, 16, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (
                Message::AllowedFast(0xffff_ffff),
                vec![0, 0, 0, 5, 17, 0xff, 0xff, 0xff, 0xff],
            ),
            (
                Message::Extended {
                    id: 0,
                    payload: b"de",
                },
                vec![0, 0, 0, 4, 20, 0, b'd', b'e'],
            ),
            (
                Message::Extended {
                    id: 3,
                    payload: b"",
                },
                vec![0, 0, 0, 2, 20, 3],
            ),
            (
                Message::Unknown {
                    id: 24,
                    payload: b"xy",
                },
                vec![0, 0, 0, 3, 24, b'x', b'y'],
            ),
            (
                Message::Unknown {
                    id: 255,
                    payload: b"",
                },
                vec![0, 0, 0, 1, 255],
            ),
        ]
    }

    #[test]
    fn every_message_round_trips_through_exact_bytes() {
        for (msg, bytes) in cases() {
            let mut out = vec![0xee]; // encode appends
            msg.encode(&mut out);
            assert_eq!(&out[1..], &bytes[..], "{msg:?}");
            assert_eq!(msg.encoded_len(), bytes.len(), "{msg:?}");
            assert_eq!(Message::decode(&bytes[4..]), Ok(msg), "{msg:?}");
        }
    }

    #[test]
    fn rejects_wrong_payload_lengths() {
        let fixed: [(u8, usize); 13] = [
            (CHOKE, 0),
            (UNCHOKE, 0),
            (INTERESTED, 0),
            (NOT_INTERESTED, 0),
            (HAVE, 4),
            (REQUEST, 12),
            (CANCEL, 12),
            (PORT, 2),
            (SUGGEST, 4),
            (HAVE_ALL, 0),
            (HAVE_NONE, 0),
            (REJECT, 12),
            (ALLOWED_FAST, 4),
        ];
        for (id, expected) in fixed {
            for len in [expected + 1, expected.wrapping_sub(1)] {
                if len > 64 {
                    continue;
                }
                let frame = [vec![id], vec![0; len]].concat();
                assert_eq!(
                    Message::decode(&frame),
                    Err(Error::BadPayloadLength { id, len, expected }),
                    "id {id} len {len}"
                );
            }
        }
        assert_eq!(
            Message::decode(&[PIECE, 0, 0, 0, 0, 0, 0, 0]),
            Err(Error::PayloadTooShort {
                id: PIECE,
                len: 7,
                min: 8
            })
        );
        assert_eq!(
            Message::decode(&[EXTENDED]),
            Err(Error::PayloadTooShort {
                id: EXTENDED,
                len: 0,
                min: 1
            })
        );
    }

    #[test]
    fn error_messages_name_the_problem() {
        let e = Message::decode(&[HAVE, 1, 2]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "message id 4 has payload length 2, expected 4"
        );
    }

    #[test]
    fn piece_header_matches_full_encoding() {
        let data = [7u8; 100];
        let mut full = Vec::new();
        Message::Piece {
            index: 9,
            begin: 0x8000,
            data: &data,
        }
        .encode(&mut full);
        let h = piece_header(9, 0x8000, 100);
        assert_eq!(h, [0, 0, 0, 109, 7, 0, 0, 0, 9, 0, 0, 0x80, 0]);
        assert_eq!(&full[..13], &h);
        assert_eq!(&full[13..], &data);
    }
}
