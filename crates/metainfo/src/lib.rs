//! `.torrent` metainfo (BEP 3, BEP 52 v2 and hybrid, BEP 47 pad files), magnet links, and
//! BEP 52 Merkle trees: parsing, validation, piece/file layout and sans-IO creation.
//!
//! # Layout
//! - [`Torrent`] is a whole `.torrent` file: [`Torrent::from_bytes`] validates it (v2 piece
//!   layers included), [`Torrent::to_bytes`] writes it back with the info dictionary
//!   untouched. Trackers follow BEP 12 tiers; the private flag follows BEP 27.
//! - [`Info`] is the validated info dictionary of a v1, v2 or hybrid torrent
//!   ([`MetaVersion`]). Every version maps onto one layout: [`Info::files`] at offsets in one
//!   byte space, with BEP 47 pad files ([`FileEntry::pad`]) aligning v2 files to pieces (taken
//!   from a hybrid's v1 list, synthesized for v2-only torrents where libtorrent puts them).
//!   [`Info::piece_spans`] maps pieces to files (allocation-free), [`Info::file_path`] files to
//!   paths, and [`Info::v2_piece`] a piece to its place in its file's Merkle tree.
//! - [`InfoHash`] (SHA-1) and [`InfoHashV2`] (SHA-256) are computed over the info
//!   dictionary's bytes exactly as they appear in the file (taken from bencode's
//!   [`Value::raw`](bencode::Value::raw)), never over a re-encoding, so torrents with unsorted
//!   keys keep the hash every other client computes. [`Torrent::info_hash`] is the 20-byte id
//!   for the wire, trackers and the DHT (v1, or truncated v2 for v2-only torrents).
//! - [`merkle`] is the sans-IO BEP 52 tree code: leaf, piece and root hashes, proofs, and
//!   serving and checking `hash request`s. The storage network reuses it for proofs.
//! - [`Magnet`] parses and prints `magnet:?` links (BEP 9, BEP 53 `btmh`).
//! - [`create`] builds new v1 (default), v2 or hybrid torrents from file lengths and
//!   caller-fed data; v2 and hybrid info dictionaries are byte for byte libtorrent 2.0's.
//!
//! # Trust boundary
//! A torrent is hostile input. Parsing never panics, allocates only in proportion to the input,
//! and rejects any name or path component that could leave the download directory (`..`, `.`,
//! separators, NUL, roots and drive prefixes), so `download_dir.join(info.file_path(i))` is
//! always inside `download_dir`. A piece layer that does not lead to its file's pieces root is
//! an error, not a silent omission.
//!
//! # Dependencies
//! `sha1` and `sha2` (RustCrypto) for info-hashes and piece hashes: they use the SHA-NI /
//! ARMv8 SHA instructions when the CPU has them, which matters because hashing bounds
//! throughput.
//!
//! ```
//! use metainfo::{FileSpan, Torrent};
//!
//! let file = b"d8:announce20:http://t.example/ann4:infod5:filesld6:lengthi3e4:pathl1:aeed\
//!     6:lengthi5e4:pathl3:sub1:beee4:name3:dir12:piece lengthi4e6:pieces40:\
//!     aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbee";
//! let t = Torrent::from_bytes(file)?;
//! assert_eq!(t.info.total_length, 8);
//! assert_eq!(t.trackers(), vec![vec!["http://t.example/ann".to_string()]]);
//! assert_eq!(t.info.file_path(1), std::path::Path::new("dir/sub/b"));
//! // Piece 0 holds all of `a` (3 bytes) and the first byte of `sub/b`.
//! let spans: Vec<FileSpan> = t.info.piece_spans(0, 0, 4).collect();
//! assert_eq!(spans, [
//!     FileSpan { file: 0, file_offset: 0, len: 3 },
//!     FileSpan { file: 1, file_offset: 0, len: 1 },
//! ]);
//! assert_eq!(t.info_hash, metainfo::InfoHash::of(&t.info_bytes));
//! assert_eq!(t.to_bytes(), file);
//!
//! // A v2-only torrent: one 5-byte file in 16 KiB pieces, padded to the piece boundary.
//! let root = metainfo::merkle::file_root(b"hello");
//! let mut info = b"d9:file treed5:hellod0:d6:lengthi5e11:pieces root32:".to_vec();
//! info.extend_from_slice(&root);
//! info.extend_from_slice(b"eee12:meta versioni2e4:name5:hello12:piece lengthi16384ee");
//! let t = Torrent::from_info_bytes(info)?;
//! assert_eq!(t.info.version, metainfo::MetaVersion::V2);
//! assert!(t.info.files[1].pad);
//! assert_eq!(t.info_hash.0, t.info_hashes.v2.unwrap().truncated());
//! assert_eq!(t.verify_v2_piece(0, b"hello"), Some(true));
//! # Ok::<(), metainfo::Error>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod create;
mod error;
mod info;
mod info_hash;
mod magnet;
pub mod merkle;
mod torrent;

pub use error::Error;
pub use info::{FileEntry, FileSpan, Info, MetaVersion, PieceSpans, V2Piece, MAX_PIECE_LENGTH};
pub use info_hash::{InfoHash, InfoHashV2, InfoHashes};
pub use magnet::Magnet;
pub use torrent::Torrent;
