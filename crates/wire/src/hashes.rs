//! BEP 52 hash messages: a v2 peer asks for, sends, or refuses a range of one file's Merkle-tree
//! hashes.
//!
//! On the wire (after the 4-byte length prefix and the id byte) every one starts with the same
//! 48-byte header, `<pieces root:32><base layer:u32><index:u32><length:u32><proof layers:u32>`;
//! `hashes` then carries the hashes themselves, 32 bytes each: first `length` hashes of the base
//! layer, then the uncle hashes from the lowest requested proof layer up to the one closest to the
//! root.
//!
//! These ids are not yet [`Message`] variants, so that matching code written against the BEP 3/6/10
//! set keeps compiling: [`Message::decode`] hands them over as [`Message::Unknown`] and
//! [`HashMessage::decode`] reads that id and payload.

use crate::message::be32;
use crate::{Error, Message};

/// Message id of `hash request`.
pub const HASH_REQUEST_ID: u8 = 21;
/// Message id of `hashes`.
pub const HASHES_ID: u8 = 22;
/// Message id of `hash reject`.
pub const HASH_REJECT_ID: u8 = 23;

/// Size of a SHA-256 tree node.
pub const HASH_LEN: usize = 32;

/// Payload bytes of a `hash request` or `hash reject`, and of the header of `hashes`.
const HEADER_LEN: usize = HASH_LEN + 16;

/// Which hashes of one file's Merkle tree: the payload of `hash request` and `hash reject`, and the
/// header of `hashes`.
///
/// Decoding checks sizes only. Whether the range fits the file's tree (BEP 52: `index` a multiple
/// of `length`, `length` a power of two of at least 2 unless cut short by the end of the layer, at
/// most 512 advised) depends on the torrent, so the caller checks it before serving or accepting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// The `pieces root` of the file whose tree is meant.
    pub pieces_root: [u8; 32],
    /// Layers above the leaves (16 KiB blocks) where the requested range lies; 0 means leaf hashes.
    pub base_layer: u32,
    /// Offset, in hashes, of the first requested hash within the base layer.
    pub index: u32,
    /// Number of base-layer hashes requested.
    pub length: u32,
    /// Number of ancestor layers whose uncle hashes should come with the range.
    pub proof_layers: u32,
}

/// A BEP 52 hash message, with the hashes of `hashes` borrowed from the received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashMessage<'a> {
    /// id 21: asks for a range of hashes and their proof.
    Request(HashRequest),
    /// id 22: answers a request.
    Hashes {
        /// The request this answers.
        request: HashRequest,
        /// Concatenated 32-byte hashes: the base-layer range, then the uncle hashes bottom-up.
        /// Always a multiple of [`HASH_LEN`] bytes.
        hashes: &'a [u8],
    },
    /// id 23: the sender will not serve this request.
    Reject(HashRequest),
}

impl HashRequest {
    fn decode(p: &[u8]) -> Self {
        let mut pieces_root = [0u8; 32];
        pieces_root.copy_from_slice(&p[..HASH_LEN]);
        Self {
            pieces_root,
            base_layer: be32(&p[32..]),
            index: be32(&p[36..]),
            length: be32(&p[40..]),
            proof_layers: be32(&p[44..]),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.pieces_root);
        for n in [self.base_layer, self.index, self.length, self.proof_layers] {
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

impl<'a> HashMessage<'a> {
    /// Reads a message with id `id` and `payload` (the bytes after the id), as found in
    /// [`Message::Unknown`].
    ///
    /// `None` if `id` is not 21, 22 or 23. A request or reject must be exactly 48 bytes; `hashes`
    /// must be 48 bytes plus a whole number of 32-byte hashes.
    pub fn decode(id: u8, payload: &'a [u8]) -> Option<Result<Self, Error>> {
        let fixed = |payload: &'a [u8]| {
            if payload.len() == HEADER_LEN {
                Ok(HashRequest::decode(payload))
            } else {
                Err(Error::BadPayloadLength {
                    id,
                    len: payload.len(),
                    expected: HEADER_LEN,
                })
            }
        };
        Some(match id {
            HASH_REQUEST_ID => fixed(payload).map(HashMessage::Request),
            HASH_REJECT_ID => fixed(payload).map(HashMessage::Reject),
            HASHES_ID => {
                if payload.len() < HEADER_LEN {
                    Err(Error::PayloadTooShort {
                        id,
                        len: payload.len(),
                        min: HEADER_LEN,
                    })
                } else if !(payload.len() - HEADER_LEN).is_multiple_of(HASH_LEN) {
                    Err(Error::HashesLength(payload.len() - HEADER_LEN))
                } else {
                    Ok(HashMessage::Hashes {
                        request: HashRequest::decode(payload),
                        hashes: &payload[HEADER_LEN..],
                    })
                }
            }
            _ => return None,
        })
    }

    /// Reads `msg` if it is a [`Message::Unknown`] with a hash-message id; `None` otherwise.
    pub fn from_message(msg: &Message<'a>) -> Option<Result<Self, Error>> {
        match *msg {
            Message::Unknown { id, payload } => Self::decode(id, payload),
            _ => None,
        }
    }

    /// The message id byte: 21, 22 or 23.
    pub fn id(&self) -> u8 {
        match self {
            HashMessage::Request(_) => HASH_REQUEST_ID,
            HashMessage::Hashes { .. } => HASHES_ID,
            HashMessage::Reject(_) => HASH_REJECT_ID,
        }
    }

    /// The request this message is about.
    pub fn request(&self) -> &HashRequest {
        match self {
            HashMessage::Request(r) | HashMessage::Reject(r) => r,
            HashMessage::Hashes { request, .. } => request,
        }
    }

    /// Size of the encoding, length prefix included.
    pub fn encoded_len(&self) -> usize {
        let hashes = match self {
            HashMessage::Hashes { hashes, .. } => hashes.len(),
            _ => 0,
        };
        4 + 1 + HEADER_LEN + hashes
    }

    /// Appends the length prefix and the message to `out`, like [`Message::encode`].
    ///
    /// `hashes` should be a multiple of [`HASH_LEN`] bytes and below 4 GiB; it is written as given.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&((self.encoded_len() - 4) as u32).to_be_bytes());
        out.push(self.id());
        self.request().encode(out);
        if let HashMessage::Hashes { hashes, .. } = self {
            out.extend_from_slice(hashes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> HashRequest {
        HashRequest {
            pieces_root: [0xab; 32],
            base_layer: 2,
            index: 0x0102_0304,
            length: 512,
            proof_layers: 7,
        }
    }

    /// The 48-byte header of [`req`].
    fn header() -> Vec<u8> {
        let mut h = vec![0xab; 32];
        h.extend_from_slice(&[0, 0, 0, 2, 1, 2, 3, 4, 0, 0, 2, 0, 0, 0, 0, 7]);
        h
    }

    fn frame(len: u32, id: u8, rest: &[u8]) -> Vec<u8> {
        [&len.to_be_bytes()[..], &[id], rest].concat()
    }

    #[test]
    fn every_hash_message_round_trips_through_exact_bytes() {
        let hashes = [[0x01; 32], [0x02; 32]].concat();
        let cases = [
            (HashMessage::Request(req()), frame(49, 21, &header())),
            (HashMessage::Reject(req()), frame(49, 23, &header())),
            (
                HashMessage::Hashes {
                    request: req(),
                    hashes: &hashes,
                },
                frame(49 + 64, 22, &[header(), hashes.clone()].concat()),
            ),
            (
                HashMessage::Hashes {
                    request: req(),
                    hashes: &[],
                },
                frame(49, 22, &header()),
            ),
        ];
        for (msg, bytes) in cases {
            let mut out = vec![0xee];
            msg.encode(&mut out);
            assert_eq!(&out[1..], &bytes[..], "{msg:?}");
            assert_eq!(msg.encoded_len(), bytes.len());
            // Through the general decoder, as the frame decoder delivers it.
            let general = Message::decode(&bytes[4..]).unwrap();
            assert_eq!(general.encoded_len(), bytes.len());
            assert_eq!(HashMessage::from_message(&general), Some(Ok(msg)));
            assert_eq!(HashMessage::decode(bytes[4], &bytes[5..]), Some(Ok(msg)));
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        let long = [header(), vec![0]].concat();
        for id in [HASH_REQUEST_ID, HASH_REJECT_ID] {
            assert_eq!(
                HashMessage::decode(id, &header()[..47]),
                Some(Err(Error::BadPayloadLength {
                    id,
                    len: 47,
                    expected: 48
                }))
            );
            assert_eq!(
                HashMessage::decode(id, &long),
                Some(Err(Error::BadPayloadLength {
                    id,
                    len: 49,
                    expected: 48
                }))
            );
        }
        assert_eq!(
            HashMessage::decode(HASHES_ID, &[0; 10]),
            Some(Err(Error::PayloadTooShort {
                id: 22,
                len: 10,
                min: 48
            }))
        );
        let ragged = [header(), vec![0; 33]].concat();
        assert_eq!(
            HashMessage::decode(HASHES_ID, &ragged),
            Some(Err(Error::HashesLength(33)))
        );
    }

    #[test]
    fn other_ids_are_not_hash_messages() {
        assert_eq!(HashMessage::decode(20, &header()), None);
        assert_eq!(HashMessage::decode(24, &header()), None);
        assert_eq!(HashMessage::from_message(&Message::Have(1)), None);
    }
}
