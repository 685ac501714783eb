//! Sans-IO torrent creation.
//!
//! The caller describes the files, reads their concatenated bytes itself and either feeds them
//! to a [`PieceHasher`] or hashes [`Builder::piece_len`]-sized chunks in parallel with
//! [`hash_piece`]; [`Builder::build`] then writes a canonical info dictionary (keys sorted, only
//! the keys BEP 3/27 define) so that every client computes the same info-hash.

use std::fmt;

use bencode::Encoder;
use sha1::{Digest, Sha1};

use crate::info::{check_component, check_distinct, push_file};
use crate::torrent::clean_tiers;
use crate::{Error, FileEntry, Torrent};

/// Smallest piece length [`Builder`] accepts and [`default_piece_length`] picks (16 KiB, one
/// request block).
pub const MIN_PIECE_LENGTH: u32 = 16 * 1024;
/// Largest piece length [`default_piece_length`] picks (16 MiB).
pub const MAX_DEFAULT_PIECE_LENGTH: u32 = 16 * 1024 * 1024;
/// [`default_piece_length`] aims for at most this many pieces (and more than half as many).
const TARGET_PIECES: u64 = 2000;

/// A piece length for `total_len` bytes of data: the smallest power of two giving at most 2000
/// pieces (so 1000–2000 pieces for mid-sized data), clamped to 16 KiB..=16 MiB.
///
/// Fewer, larger pieces keep the `.torrent` small; more, smaller pieces let peers start
/// sharing sooner. This matches what common clients choose.
pub fn default_piece_length(total_len: u64) -> u32 {
    let ideal = total_len
        .div_ceil(TARGET_PIECES)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX);
    let clamped = ideal.clamp(
        u64::from(MIN_PIECE_LENGTH),
        u64::from(MAX_DEFAULT_PIECE_LENGTH),
    );
    u32::try_from(clamped).unwrap_or(MAX_DEFAULT_PIECE_LENGTH)
}

/// SHA-1 of one piece's bytes.
pub fn hash_piece(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// Describes a torrent to create; see the [module docs](self).
///
/// ```
/// use metainfo::create::{Builder, PieceHasher};
///
/// let data = vec![7u8; 40_000];
/// let builder = Builder::single_file("seven.bin", data.len() as u64)?
///     .trackers(vec![vec!["http://tracker.example/announce".into()]]);
/// let mut hasher = builder.hasher();
/// hasher.update(&data);
/// let torrent = builder.build(hasher.finish())?;
/// assert_eq!(torrent.info.num_pieces(), 3); // 16 KiB pieces
/// # Ok::<(), metainfo::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    files: Vec<FileEntry>,
    single_file: bool,
    total_length: u64,
    piece_length: u32,
    trackers: Vec<Vec<String>>,
    private: bool,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
}

impl Builder {
    /// A torrent named `name` holding `files` (path below `name`, length) in this order.
    ///
    /// A single entry with an empty path makes a single-file torrent whose file is `name`
    /// itself (see also [`Builder::single_file`]). The piece length starts at
    /// [`default_piece_length`] of the total.
    pub fn new(name: impl Into<String>, files: Vec<(Vec<String>, u64)>) -> Result<Builder, Error> {
        let name = name.into();
        check_component(&name)?;
        let single_file = matches!(&files[..], [(path, _)] if path.is_empty());
        let mut entries = Vec::with_capacity(files.len());
        for (path, length) in files {
            if length > i64::MAX as u64 {
                return Err(Error::LengthTooLarge(length));
            }
            let path = if single_file {
                vec![name.clone()]
            } else {
                path
            };
            push_file(&mut entries, path, length)?;
        }
        let total_length = entries.last().map_or(0, |f| f.offset + f.length);
        if entries.is_empty() {
            return Err(Error::NoFiles);
        }
        check_distinct(&entries)?;
        if total_length == 0 {
            return Err(Error::EmptyTorrent);
        }
        let builder = Builder {
            name,
            files: entries,
            single_file,
            total_length,
            piece_length: default_piece_length(total_length),
            trackers: Vec::new(),
            private: false,
            comment: None,
            created_by: None,
            creation_date: None,
        };
        builder.check_piece_count()?;
        Ok(builder)
    }

    /// A single-file torrent: the file is saved as `name`.
    pub fn single_file(name: impl Into<String>, length: u64) -> Result<Builder, Error> {
        Builder::new(name, vec![(Vec::new(), length)])
    }

    /// Overrides the piece length: a power of two from 16 KiB to 64 MiB.
    pub fn piece_length(mut self, piece_length: u32) -> Result<Builder, Error> {
        if !piece_length.is_power_of_two()
            || !(MIN_PIECE_LENGTH..=crate::MAX_PIECE_LENGTH).contains(&piece_length)
        {
            return Err(Error::BadCreatePieceLength(piece_length));
        }
        self.piece_length = piece_length;
        self.check_piece_count()?;
        Ok(self)
    }

    /// Tracker tiers (BEP 12), best first. The first URL becomes `announce`; `announce-list` is
    /// written when there is more than one URL. Blank URLs and empty tiers are dropped.
    pub fn trackers(mut self, tiers: Vec<Vec<String>>) -> Builder {
        self.trackers = clean_tiers(tiers);
        self
    }

    /// Marks the torrent private (BEP 27): peers only from its trackers.
    pub fn private(mut self, private: bool) -> Builder {
        self.private = private;
        self
    }

    /// Sets `comment`.
    pub fn comment(mut self, comment: impl Into<String>) -> Builder {
        self.comment = Some(comment.into());
        self
    }

    /// Sets `created by`.
    pub fn created_by(mut self, created_by: impl Into<String>) -> Builder {
        self.created_by = Some(created_by.into());
        self
    }

    /// Sets `creation date`, seconds since the Unix epoch (the caller supplies the clock).
    pub fn creation_date(mut self, unix_seconds: i64) -> Builder {
        self.creation_date = Some(unix_seconds);
        self
    }

    /// The piece length in bytes that [`Builder::build`] will use.
    pub fn piece_len(&self) -> u32 {
        self.piece_length
    }

    /// Total bytes of all files: the length of the data to hash.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// How many piece hashes [`Builder::build`] needs.
    pub fn piece_count(&self) -> u32 {
        u32::try_from(self.total_length.div_ceil(u64::from(self.piece_length))).unwrap_or(u32::MAX)
    }

    /// A [`PieceHasher`] for this builder's piece length.
    pub fn hasher(&self) -> PieceHasher {
        PieceHasher::new(self.piece_length)
    }

    /// The torrent with these piece hashes (SHA-1 of each `piece_len()`-byte chunk of the
    /// concatenated file data, the last one shorter).
    pub fn build(self, pieces: Vec<[u8; 20]>) -> Result<Torrent, Error> {
        let expected = u64::from(self.piece_count());
        if pieces.len() as u64 != expected {
            return Err(Error::PieceCountMismatch {
                found: pieces.len() as u64,
                expected,
            });
        }
        let info_bytes = self.encode_info(&pieces);
        let mut torrent = Torrent::from_info_bytes(info_bytes)?;
        torrent.announce = self.trackers.first().and_then(|tier| tier.first()).cloned();
        torrent.announce_list = self.trackers;
        torrent.comment = self.comment;
        torrent.created_by = self.created_by;
        torrent.creation_date = self.creation_date;
        Ok(torrent)
    }

    /// The canonical info dictionary. Keys in byte order: `files` | `length`, `name`,
    /// `piece length`, `pieces`, `private`.
    fn encode_info(&self, pieces: &[[u8; 20]]) -> Vec<u8> {
        let mut out = Vec::with_capacity(pieces.len() * 20 + self.files.len() * 64 + 128);
        let mut enc = Encoder::new(&mut out);
        enc.dict_start();
        if self.single_file {
            enc.bytes(b"length").int(self.total_length as i64);
        } else {
            enc.bytes(b"files").list_start();
            for file in &self.files {
                // Lengths were checked to fit i64 in `new`.
                enc.dict_start().bytes(b"length").int(file.length as i64);
                enc.bytes(b"path").list_start();
                for component in &file.path {
                    enc.bytes(component.as_bytes());
                }
                enc.end().end();
            }
            enc.end();
        }
        enc.bytes(b"name").bytes(self.name.as_bytes());
        enc.bytes(b"piece length").int(i64::from(self.piece_length));
        enc.bytes(b"pieces").bytes(pieces.as_flattened());
        if self.private {
            enc.bytes(b"private").int(1);
        }
        enc.end();
        out
    }

    fn check_piece_count(&self) -> Result<(), Error> {
        u32::try_from(self.total_length.div_ceil(u64::from(self.piece_length)))
            .map(drop)
            .map_err(|_| Error::TooManyPieces)
    }
}

/// Hashes a stream of concatenated file data into piece hashes, for callers that read the data
/// sequentially. `update` may be called with any chunk sizes; pieces span calls.
#[derive(Clone)]
pub struct PieceHasher {
    piece_length: u32,
    /// Bytes of the current piece already fed to `sha`.
    filled: u32,
    sha: Sha1,
    pieces: Vec<[u8; 20]>,
}

impl PieceHasher {
    /// A hasher for `piece_length`-byte pieces.
    ///
    /// # Panics
    /// If `piece_length` is 0.
    pub fn new(piece_length: u32) -> PieceHasher {
        assert!(piece_length > 0, "piece length must be positive");
        PieceHasher {
            piece_length,
            filled: 0,
            sha: Sha1::new(),
            pieces: Vec::new(),
        }
    }

    /// Feeds the next bytes of the concatenated data.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (self.piece_length - self.filled) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.sha.update(now);
            // `now.len() <= room`, which fits u32.
            self.filled += now.len() as u32;
            if self.filled == self.piece_length {
                self.pieces.push(self.sha.finalize_reset().into());
                self.filled = 0;
            }
            data = rest;
        }
    }

    /// Number of complete pieces hashed so far.
    pub fn pieces_done(&self) -> usize {
        self.pieces.len()
    }

    /// The hashes of all pieces, including a final short piece.
    pub fn finish(mut self) -> Vec<[u8; 20]> {
        if self.filled > 0 {
            self.pieces.push(self.sha.finalize().into());
        }
        self.pieces
    }
}

impl fmt::Debug for PieceHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PieceHasher")
            .field("piece_length", &self.piece_length)
            .field("filled", &self.filled)
            .field("pieces", &self.pieces.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_piece_length_table() {
        let table: [(u64, u64); 12] = [
            (0, 16 * KIB),
            (1, 16 * KIB),
            (MIB, 16 * KIB),
            (32 * MIB, 32 * KIB), // 1024 pieces
            (100_000_000, 64 * KIB),
            (700 * MIB, 512 * KIB),
            (GIB, MIB),
            (2 * GIB, 2 * MIB), // 1 MiB would give 2048 pieces, over target
            (4 * GIB, 4 * MIB),
            (20 * GIB, 16 * MIB),
            (1024 * GIB, 16 * MIB),
            (u64::MAX, 16 * MIB),
        ];
        for (total, want) in table {
            assert_eq!(
                u64::from(default_piece_length(total)),
                want,
                "total {total}"
            );
        }
    }

    #[test]
    fn default_piece_length_stays_in_bounds_and_near_target() {
        for shift in 0..64 {
            for total in [
                1u64 << shift,
                (1u64 << shift) + 1,
                (1u64 << shift).saturating_mul(3) / 2,
            ] {
                let pl = default_piece_length(total);
                assert!(
                    pl.is_power_of_two()
                        && (MIN_PIECE_LENGTH..=MAX_DEFAULT_PIECE_LENGTH).contains(&pl)
                );
                let pieces = total.div_ceil(u64::from(pl));
                if pl > MIN_PIECE_LENGTH && pl < MAX_DEFAULT_PIECE_LENGTH {
                    assert!(
                        (1000..=2000).contains(&pieces),
                        "total {total}: {pieces} pieces of {pl}"
                    );
                }
            }
        }
    }

    #[test]
    fn builds_exact_single_file_torrent() {
        let t = Builder::single_file("a.txt", 20_000)
            .unwrap()
            .piece_length(16384)
            .unwrap()
            .trackers(
                strings(&["http://t/a"])
                    .into_iter()
                    .map(|u| vec![u])
                    .collect(),
            )
            .private(true)
            .comment("hi")
            .created_by("btt")
            .creation_date(1_700_000_000)
            .build(vec![[1; 20], [2; 20]])
            .unwrap();
        let info: &[u8] = &[
            &b"d6:lengthi20000e4:name5:a.txt12:piece lengthi16384e6:pieces40:"[..],
            &[1; 20],
            &[2; 20],
            b"7:privatei1ee",
        ]
        .concat();
        assert_eq!(t.info_bytes, info);
        let expected = [
            &b"d8:announce10:http://t/a7:comment2:hi10:created by3:btt13:creation datei1700000000e4:info"[..],
            info,
            b"e",
        ]
        .concat();
        assert_eq!(t.to_bytes(), expected);
        assert_eq!(t.info_hash, crate::InfoHash::of(info));
        assert!(t.info.private && t.info.single_file);
        assert_eq!(t.info.file_path(0), std::path::Path::new("a.txt"));
        assert_eq!(Torrent::from_bytes(&expected).unwrap(), t);
    }

    #[test]
    fn builds_exact_multi_file_torrent() {
        let files = vec![
            (strings(&["x.bin"]), 16384),
            (strings(&["sub", "y"]), 0),
            (strings(&["sub", "z"]), 1),
        ];
        let builder = Builder::new("dir", files).unwrap().trackers(vec![
            strings(&["http://a/1", " http://b/2 ", ""]),
            vec![],
            strings(&["udp://c:3"]),
        ]);
        assert_eq!(
            (
                builder.piece_len(),
                builder.piece_count(),
                builder.total_length()
            ),
            (16384, 2, 16385)
        );
        let t = builder.build(vec![[0xaa; 20], [0xbb; 20]]).unwrap();
        let expected = [
            &b"d8:announce10:http://a/113:announce-listll10:http://a/110:http://b/2el9:udp://c:3ee\
               4:infod5:filesld6:lengthi16384e4:pathl5:x.bineed6:lengthi0e4:pathl3:sub1:yee\
               d6:lengthi1e4:pathl3:sub1:zeee4:name3:dir12:piece lengthi16384e6:pieces40:"[..],
            &[0xaa; 20],
            &[0xbb; 20],
            b"ee",
        ]
        .concat();
        assert_eq!(t.to_bytes(), expected);
        // Canonical: decoding and re-encoding with sorted keys changes nothing.
        assert_eq!(
            bencode::decode(&expected).unwrap().encode_to_vec(),
            expected
        );
        assert_eq!(t.announce.as_deref(), Some("http://a/1"));
        assert_eq!(
            t.trackers(),
            [
                strings(&["http://a/1", "http://b/2"]),
                strings(&["udp://c:3"])
            ]
        );
        assert!(!t.info.private && !t.info.single_file);
        assert_eq!(t.info.file_path(2), std::path::Path::new("dir/sub/z"));
        assert_eq!(Torrent::from_bytes(&expected).unwrap(), t);
    }

    #[test]
    fn without_trackers_or_extras_writes_only_info() {
        let t = Builder::single_file("f", 1)
            .unwrap()
            .build(vec![[0; 20]])
            .unwrap();
        assert_eq!(
            t.to_bytes(),
            [&b"d4:info"[..], &t.info_bytes, b"e"].concat()
        );
        assert!(t.trackers().is_empty());
    }

    #[test]
    fn hasher_matches_known_digests_for_any_chunking() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        // SHA-1 of each 16 KiB chunk, computed independently.
        let known = [
            "68f3b81a11de1e1629e81555b4e70aed955d1140",
            "de9ee0222cd528efc5e01227e4bf16cf6ac6836a",
            "7b9d67e14ed5a5e1695fac5611004b00d76da5ae",
        ];
        for chunk in [1, 7, 16383, 16384, 16385, 40_000] {
            let mut h = PieceHasher::new(16384);
            data.chunks(chunk).for_each(|c| h.update(c));
            let hex: Vec<String> = h
                .finish()
                .into_iter()
                .map(|p| crate::InfoHash(p).to_hex())
                .collect();
            assert_eq!(hex, known, "chunk {chunk}");
        }
        let parallel: Vec<_> = data.chunks(16384).map(hash_piece).collect();
        let builder = Builder::single_file("d", data.len() as u64)
            .unwrap()
            .piece_length(16384)
            .unwrap();
        let mut h = builder.hasher();
        h.update(&data[..20_000]);
        assert_eq!(h.pieces_done(), 1);
        h.update(&data[20_000..]);
        assert_eq!(h.finish(), parallel);
        assert_eq!(builder.piece_count(), 3);
    }

    #[test]
    fn hasher_with_exact_multiple_has_no_empty_tail() {
        let mut h = PieceHasher::new(4);
        h.update(b"abcdefgh");
        assert_eq!(h.finish(), [hash_piece(b"abcd"), hash_piece(b"efgh")]);
        assert!(PieceHasher::new(4).finish().is_empty());
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            0,
            1,
            1000,
            8 * 1024,
            16 * 1024 + 1,
            3 << 20,
            128 << 20,
            u32::MAX,
        ] {
            let b = Builder::single_file("f", 1).unwrap().piece_length(bad);
            assert_eq!(b.unwrap_err(), Error::BadCreatePieceLength(bad));
        }
        assert!(Builder::single_file("f", 1)
            .unwrap()
            .piece_length(64 << 20)
            .is_ok());
        assert_eq!(
            Builder::single_file("..", 1).unwrap_err(),
            Error::UnsafePath("..".into())
        );
        assert_eq!(
            Builder::new("d", vec![(strings(&["a", "/x"]), 1)]).unwrap_err(),
            Error::UnsafePath("/x".into())
        );
        assert_eq!(Builder::new("d", vec![]).unwrap_err(), Error::NoFiles);
        assert_eq!(
            Builder::single_file("f", 0).unwrap_err(),
            Error::EmptyTorrent
        );
        assert_eq!(
            Builder::new("d", vec![(vec![], 1), (strings(&["a"]), 1)]).unwrap_err(),
            Error::EmptyPath
        );
        let dup = vec![(strings(&["a"]), 1), (strings(&["a"]), 1)];
        assert_eq!(
            Builder::new("d", dup).unwrap_err(),
            Error::DuplicatePath("a".into())
        );
        assert_eq!(
            Builder::single_file("f", u64::MAX).unwrap_err(),
            Error::LengthTooLarge(u64::MAX)
        );
        let big = vec![
            (strings(&["a"]), i64::MAX as u64),
            (strings(&["b"]), i64::MAX as u64),
            (strings(&["c"]), 2),
        ];
        assert_eq!(
            Builder::new("d", big).unwrap_err(),
            Error::TotalLengthOverflow
        );
        // 2^57 bytes in 16 MiB pieces is 2^33 pieces.
        assert_eq!(
            Builder::single_file("f", 1 << 57).unwrap_err(),
            Error::TooManyPieces
        );
        let b = Builder::single_file("f", 16385)
            .unwrap()
            .piece_length(16384)
            .unwrap();
        assert_eq!(
            b.build(vec![[0; 20]]).unwrap_err(),
            Error::PieceCountMismatch {
                found: 1,
                expected: 2
            }
        );
    }
}
