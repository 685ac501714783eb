//! BitTorrent peer wire protocol (BEP 3, BEP 6, BEP 10) as a sans-IO codec.
//!
//! # Layout
//! - [`Handshake`]: the fixed 68-byte opening exchange and its reserved capability bits.
//! - [`Message`]: one length-prefixed message, decoded by borrowing from the frame
//!   ([`Message::decode`]) and encoded into a caller's buffer ([`Message::encode`]).
//!   [`piece_header`] writes just the 13-byte header of a `piece` message so block data can go
//!   straight from disk to socket with a vectored write.
//! - [`FrameDecoder`]: a bounded, reusable receive buffer. The driver reads socket bytes into
//!   [`FrameDecoder::spare`], commits them with [`FrameDecoder::advance`] and drains borrowed
//!   messages with [`FrameDecoder::next`]. A frame longer than the configured limit is an error,
//!   never an allocation.
//! - [`ExtendedHandshake`]: the BEP 10 handshake dictionary (extended message id 0).
//! - [`allowed_fast_set`]: the BEP 6 allowed-fast piece set for a peer address.
//! - [`Bitfield`]: an owned, MSB-first piece bit vector with the BEP 3 spare-bit rule.
//!
//! Nothing here touches sockets, files or clocks. Every decoder is total: hostile input yields an
//! [`Error`], never a panic, and no buffer is sized from a length field the peer sent before that
//! length has been checked against a limit.
//!
//! ```
//! use wire::{FrameDecoder, Handshake, Message, BlockRef};
//!
//! // Handshakes round-trip through their fixed 68-byte form.
//! let hs = Handshake::new([0xaa; 20], *b"-BT0001-abcdefghijkl");
//! assert!(Handshake::decode(&hs.encode()).unwrap().supports_fast());
//!
//! // Encode two messages, then feed the bytes to a decoder as a socket would.
//! let mut bytes = Vec::new();
//! Message::Interested.encode(&mut bytes);
//! Message::Request(BlockRef { index: 1, begin: 0, length: 16384 }).encode(&mut bytes);
//! assert_eq!(&bytes[..5], &[0, 0, 0, 1, 2]);
//!
//! let mut dec = FrameDecoder::new(1 << 20);
//! let spare = dec.spare();
//! spare[..bytes.len()].copy_from_slice(&bytes);
//! dec.advance(bytes.len());
//! assert_eq!(dec.next().unwrap(), Some(Message::Interested));
//! assert!(matches!(dec.next().unwrap(), Some(Message::Request(b)) if b.index == 1));
//! assert_eq!(dec.next().unwrap(), None);
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bitfield;
mod extended;
mod fast;
mod frame;
mod handshake;
mod message;

pub use bitfield::Bitfield;
pub use extended::ExtendedHandshake;
pub use fast::allowed_fast_set;
pub use frame::FrameDecoder;
pub use handshake::{Handshake, HANDSHAKE_LEN, PROTOCOL};
pub use message::{piece_header, BlockRef, Message, BLOCK_SIZE};

/// Why bytes from a peer are not a valid wire-protocol item.
///
/// Every variant means the peer misbehaved (or is not a BitTorrent peer); the usual response is to
/// close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The 68 bytes do not start with `\x13BitTorrent protocol`.
    #[error("not a BitTorrent handshake: the peer speaks another protocol or encrypts; close it")]
    NotHandshake,
    /// A length prefix above the decoder's limit; honouring it would let a peer exhaust memory.
    #[error("peer sent a frame of {0} bytes, above the {1}-byte limit; close the connection")]
    FrameTooLarge(usize, usize),
    /// A fixed-size message whose payload has the wrong length.
    #[error("message id {id} has payload length {len}, expected {expected}")]
    BadPayloadLength {
        /// The message id.
        id: u8,
        /// Payload bytes received (after the id byte).
        len: usize,
        /// Payload bytes this message always has.
        expected: usize,
    },
    /// A variable-size message shorter than its fixed header.
    #[error("message id {id} has payload length {len}, expected at least {min}")]
    PayloadTooShort {
        /// The message id.
        id: u8,
        /// Payload bytes received (after the id byte).
        len: usize,
        /// The smallest valid payload.
        min: usize,
    },
    /// A bitfield whose byte length does not match the torrent's piece count.
    #[error("bitfield has {len} bytes, expected {expected} for this torrent's piece count")]
    BitfieldLength {
        /// Bytes received.
        len: usize,
        /// `ceil(pieces / 8)`.
        expected: usize,
    },
    /// A bitfield with bits set past the last piece (BEP 3 requires them clear).
    #[error("bitfield has spare bits set past the last piece")]
    BitfieldSpareBits,
    /// An extended handshake that is not valid bencode.
    #[error("extended handshake is not valid bencode: {0}")]
    Bencode(#[from] bencode::Error),
    /// An extended handshake that is bencode but not a dictionary.
    #[error("extended handshake is not a bencoded dictionary")]
    ExtendedNotDict,
}
