//! `.torrent` metainfo (BEP 3): parsing, validation, piece/file layout and sans-IO creation.
//!
//! # Layout
//! - [`Torrent`] is a whole `.torrent` file: [`Torrent::from_bytes`] validates it,
//!   [`Torrent::to_bytes`] writes it back with the info dictionary untouched. Trackers follow
//!   BEP 12 tiers; the private flag follows BEP 27.
//! - [`Info`] is the validated info dictionary. It maps pieces to files
//!   ([`Info::piece_spans`], allocation-free) and files to paths ([`Info::file_path`]).
//! - [`InfoHash`] is SHA-1 over the info dictionary's bytes exactly as they appear in the file
//!   (taken from bencode's [`Value::raw`](bencode::Value::raw)), never over a re-encoding, so
//!   torrents with unsorted keys keep the hash every other client computes.
//! - [`create`] builds new torrents from file lengths and caller-computed piece hashes.
//!
//! Only v1 torrents are understood so far; hybrid torrents open as their v1 half and v2-only
//! torrents are rejected with [`Error::V2Only`].
//!
//! # Trust boundary
//! A torrent is hostile input. Parsing never panics, allocates only in proportion to the input,
//! and rejects any name or path component that could leave the download directory (`..`, `.`,
//! separators, NUL, roots and drive prefixes), so `download_dir.join(info.file_path(i))` is
//! always inside `download_dir`.
//!
//! # Dependencies
//! `sha1` (RustCrypto) for the info-hash and piece hashes: it uses the SHA-NI / ARMv8 SHA
//! instructions when the CPU has them, which matters because piece hashing bounds throughput.
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
//! # Ok::<(), metainfo::Error>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod create;
mod error;
mod info;
mod info_hash;
mod torrent;

pub use error::Error;
pub use info::{FileEntry, FileSpan, Info, PieceSpans, MAX_PIECE_LENGTH};
pub use info_hash::InfoHash;
pub use torrent::Torrent;
