//! BitTorrent peer wire protocol (BEP 3, 6, 9, 10, 11, 52) as a sans-IO codec.
//!
//! # Layout
//! - [`Handshake`]: the fixed 68-byte opening exchange and its reserved capability bits
//!   (extension protocol, fast extension, DHT, BitTorrent v2).
//! - [`Message`]: one length-prefixed message, decoded by borrowing from the frame
//!   ([`Message::decode`]) and encoded into a caller's buffer ([`Message::encode`]).
//!   [`piece_header`] writes just the 13-byte header of a `piece` message so block data can go
//!   straight from disk to socket with a vectored write.
//! - [`HashMessage`]: the BEP 52 `hash request` / `hashes` / `hash reject` messages (ids 21 to
//!   23), read from the [`Message::Unknown`] frames they arrive as and encoded like [`Message`].
//! - [`FrameDecoder`]: a bounded, reusable receive buffer. The driver reads socket bytes into
//!   [`FrameDecoder::spare`], commits them with [`FrameDecoder::advance`] and drains borrowed
//!   messages with [`FrameDecoder::next`]. A frame longer than the configured limit is an error,
//!   never an allocation.
//! - [`ExtendedHandshake`]: the BEP 10 handshake dictionary (extended message id 0), which maps
//!   extension names such as [`UT_METADATA`] and [`UT_PEX`] to the ids a peer receives them on.
//! - [`MetadataMessage`] and [`MetadataAssembler`]: BEP 9 `ut_metadata` messages, and the
//!   collection of an info dictionary's 16 KiB pieces for a magnet link (the caller verifies the
//!   hash).
//! - [`PexMessage`]: BEP 11 `ut_pex` peer exchange, IPv4 and IPv6, with a cap on what one message
//!   can make us hold.
//! - [`allowed_fast_set`]: the BEP 6 allowed-fast piece set for a peer address.
//! - [`Bitfield`]: an owned, MSB-first piece bit vector with the BEP 3 spare-bit rule.
//!
//! Nothing here touches sockets, files or clocks. Every decoder is total: hostile input yields an
//! [`Error`], never a panic, and no buffer is sized from a length field the peer sent before that
//! length has been checked against a limit.
//!
//! ```
//! use wire::{
//!     BlockRef, ExtendedHandshake, FrameDecoder, Handshake, Message, MetadataAssembler,
//!     MetadataMessage, UT_METADATA,
//! };
//!
//! // Handshakes round-trip through their fixed 68-byte form.
//! let hs = Handshake::new([0xaa; 20], *b"-BT0001-abcdefghijkl").with_v2(true);
//! let theirs = Handshake::decode(&hs.encode()).unwrap();
//! assert!(theirs.supports_fast() && theirs.supports_v2());
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
//!
//! // A magnet download: the seeder's extended handshake says where to send ut_metadata
//! // requests and how big the info dictionary is.
//! let info = b"d6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
//! let seeder = ExtendedHandshake {
//!     m: [(UT_METADATA.to_owned(), 3)].into_iter().collect(),
//!     metadata_size: Some(info.len() as u64),
//!     ..Default::default()
//! };
//! let seeder = ExtendedHandshake::decode(&seeder.encode()).unwrap();
//! assert_eq!(seeder.extension_id(UT_METADATA), Some(3));
//! let mut asm = MetadataAssembler::new(seeder.metadata_size.unwrap()).unwrap();
//!
//! // The seeder answers a request for piece 0; we decode its payload and store the piece.
//! let mut payload = Vec::new();
//! MetadataMessage::answer(info, 0).encode(&mut payload);
//! let msg = MetadataMessage::decode(&payload).unwrap();
//! if let MetadataMessage::Data { piece, total_size, data } = msg {
//!     asm.handle_data(piece, total_size, data).unwrap();
//! }
//! // Complete: hash `asm.metadata()` against the info-hash, and `asm.reset()` on a mismatch.
//! assert_eq!(asm.metadata(), Some(&info[..]));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bitfield;
mod extended;
mod fast;
mod frame;
mod handshake;
mod hashes;
mod message;
mod metadata;
mod pex;

pub use bitfield::Bitfield;
pub use extended::{ExtendedHandshake, UT_METADATA, UT_PEX};
pub use fast::allowed_fast_set;
pub use frame::FrameDecoder;
pub use handshake::{Handshake, HANDSHAKE_LEN, PROTOCOL};
pub use hashes::{HashMessage, HashRequest, HASHES_ID, HASH_LEN, HASH_REJECT_ID, HASH_REQUEST_ID};
pub use message::{piece_header, BlockRef, Message, BLOCK_SIZE};
pub use metadata::{MetadataAssembler, MetadataMessage, MAX_METADATA_SIZE, METADATA_PIECE_SIZE};
pub use pex::{
    PexMessage, PexPeer, MAX_PEX_PEERS, PEX_HOLEPUNCH, PEX_PREFERS_ENCRYPTION, PEX_REACHABLE,
    PEX_SEED, PEX_UTP,
};

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
    /// A `ut_metadata` or `ut_pex` payload that is bencode but not a dictionary.
    #[error("{0} message is not a bencoded dictionary; close the connection")]
    ExtensionNotDict(&'static str),
    /// A `ut_metadata` message without an integer `msg_type`, a `piece` in the `u32` range, or
    /// (for `data`) a non-negative `total_size`.
    #[error("ut_metadata message lacks a valid `{0}`; close the connection")]
    MetadataKey(&'static str),
    /// A `ut_metadata` message type other than request (0), data (1) or reject (2).
    #[error("ut_metadata message type {0} is unknown; ignore the message, as BEP 9 requires")]
    MetadataUnknownType(i64),
    /// A metadata size of zero or above [`MAX_METADATA_SIZE`].
    #[error(
        "peer claims a {size}-byte info dictionary, outside 1..={max}; \
         fetch the metadata from another peer"
    )]
    MetadataSize {
        /// The size the peer gave.
        size: u64,
        /// [`MAX_METADATA_SIZE`].
        max: u64,
    },
    /// A metadata piece index at or past the end of the metadata.
    #[error("metadata piece {piece} is past the end of a {size}-byte info dictionary")]
    MetadataPieceIndex {
        /// The piece index.
        piece: u32,
        /// The metadata size the index was checked against.
        size: u64,
    },
    /// A metadata piece that is not 16 KiB (or, for the last piece, exactly the remainder).
    #[error("metadata piece {piece} has {len} bytes, expected {expected}; close the connection")]
    MetadataPieceLength {
        /// The piece index.
        piece: u32,
        /// Bytes received.
        len: usize,
        /// Bytes this piece must have.
        expected: usize,
    },
    /// A metadata piece whose `total_size` differs from the size being assembled.
    #[error(
        "metadata piece says the info dictionary has {got} bytes, not {expected}; \
         ignore this peer's pieces"
    )]
    MetadataSizeMismatch {
        /// `total_size` in the message.
        got: u64,
        /// The size the assembler was created with.
        expected: u64,
    },
    /// A `ut_pex` address string that is not a whole number of compact entries.
    #[error("ut_pex `{field}` has {len} bytes, not a multiple of {entry}; close the connection")]
    PexLength {
        /// The dictionary key.
        field: &'static str,
        /// Bytes received.
        len: usize,
        /// Bytes per entry: 6 for IPv4, 18 for IPv6.
        entry: usize,
    },
    /// A BEP 52 `hashes` message whose hash bytes are not a whole number of 32-byte hashes.
    #[error("hashes message carries {0} hash bytes, not a multiple of 32; close the connection")]
    HashesLength(usize),
}
