//! Sans-IO torrent creation: v1 (the default), v2-only and hybrid.
//!
//! The caller describes the files and reads their bytes itself.
//! - v1: feed the concatenated data to a [`PieceHasher`] (or hash [`Builder::piece_len`]-sized
//!   chunks in parallel with [`hash_piece`]) and call [`Builder::build`].
//! - v2 and hybrid ([`Builder::meta_version`]): feed each real file of [`Builder::files`], in
//!   that order, to a [`TorrentHasher`] (or hash files in parallel, one [`V2FileHasher`] each,
//!   plus the v1 pieces of the padded data for a hybrid) and call [`Builder::build_hashed`].
//!
//! The info dictionary is canonical (keys sorted, only the keys BEP 3/27/52 define), so every
//! client computes the same info-hash. For v2 and hybrid torrents it is byte for byte what
//! libtorrent 2.0 writes for the same files and piece length: files sorted by path, and in a
//! hybrid a pad file (`attr` `p`, path `.pad/<length>`) after every non-empty file that does
//! not end on a piece boundary, the last one included (a single-file hybrid has none).

use std::fmt;

use bencode::Encoder;
use sha1::{Digest, Sha1};

use crate::info::{check_component, check_distinct, pad_entry, push_file};
use crate::merkle::{self, Hash, BLOCK_SIZE};
use crate::torrent::clean_tiers;
use crate::{Error, FileEntry, MetaVersion, Torrent};

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
///
/// A hybrid of two files:
///
/// ```
/// use metainfo::{create::Builder, MetaVersion};
///
/// let files = vec![(vec!["b.txt".to_string()], 5), (vec!["a.txt".to_string()], 3)];
/// let builder = Builder::new("dir", files)?.meta_version(MetaVersion::Hybrid);
/// // Files are in path order, each followed by a pad file to the piece boundary.
/// let order: Vec<String> = builder.files().iter().map(|f| f.path.join("/")).collect();
/// assert_eq!(order, ["a.txt", ".pad/16381", "b.txt", ".pad/16379"]);
/// let mut hasher = builder.torrent_hasher();
/// hasher.update(b"aaa");
/// hasher.update(b"bbbbb");
/// let torrent = builder.build_hashed(hasher.finish()?)?;
/// assert_eq!(torrent.info.version, MetaVersion::Hybrid);
/// assert_eq!(torrent.verify_v2_piece(1, b"bbbbb"), Some(true));
/// # Ok::<(), metainfo::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    /// The real files, in the order given (v1) or sorted by path (v2, hybrid).
    files: Vec<FileEntry>,
    single_file: bool,
    piece_length: u32,
    version: MetaVersion,
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
            piece_length: default_piece_length(total_length),
            version: MetaVersion::V1,
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

    /// Which metadata to write: [`MetaVersion::V1`] (the default), [`MetaVersion::V2`] or
    /// [`MetaVersion::Hybrid`]. v2 and hybrid torrents list their files sorted by path (the
    /// order of BEP 52's file tree); see [`Builder::files`].
    pub fn meta_version(mut self, version: MetaVersion) -> Builder {
        self.version = version;
        if version.has_v2() {
            self.files.sort_by(|a, b| a.path.cmp(&b.path));
            let mut offset = 0;
            for f in &mut self.files {
                f.offset = offset;
                offset += f.length;
            }
        }
        self
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

    /// The metadata version that will be written.
    pub fn version(&self) -> MetaVersion {
        self.version
    }

    /// The layout the torrent will have, as [`Info::files`](crate::Info::files) will show it:
    /// the real files in the order their data must be fed, and for v2 and hybrid torrents the
    /// pad files between them.
    pub fn files(&self) -> Vec<FileEntry> {
        if !self.version.has_v2() {
            return self.files.clone();
        }
        let piece_length = u64::from(self.piece_length);
        let tail_pad = !(self.single_file && self.version == MetaVersion::Hybrid);
        let mut out = Vec::with_capacity(self.files.len() * 2);
        let last = self.files.len() - 1;
        for (i, f) in self.files.iter().enumerate() {
            let offset = out.last().map_or(0, |f: &FileEntry| f.offset + f.length);
            out.push(FileEntry {
                offset,
                ..f.clone()
            });
            let end = offset + f.length;
            let gap = (piece_length - end % piece_length) % piece_length;
            if f.length > 0 && gap > 0 && (i < last || tail_pad) {
                out.push(pad_entry(end, gap));
            }
        }
        out
    }

    /// Total bytes of the torrent's data, pad files included: the length of the stream a v1
    /// [`PieceHasher`] hashes.
    pub fn total_length(&self) -> u64 {
        self.files().last().map_or(0, |f| f.offset + f.length)
    }

    /// How many pieces the torrent has (and v1 piece hashes [`Builder::build`] needs).
    pub fn piece_count(&self) -> u32 {
        u32::try_from(self.total_length().div_ceil(u64::from(self.piece_length)))
            .unwrap_or(u32::MAX)
    }

    /// A [`PieceHasher`] for this builder's piece length (v1 torrents; for a hybrid, feed it the
    /// padded data, zeros for each pad file).
    pub fn hasher(&self) -> PieceHasher {
        PieceHasher::new(self.piece_length)
    }

    /// A [`TorrentHasher`] computing every hash this builder's version needs from the real
    /// files' data.
    pub fn torrent_hasher(&self) -> TorrentHasher {
        TorrentHasher::new(self)
    }

    /// The v1 torrent with these piece hashes (SHA-1 of each `piece_len()`-byte chunk of the
    /// concatenated file data, the last one shorter). For v2 and hybrid torrents use
    /// [`Builder::build_hashed`].
    pub fn build(self, pieces: Vec<[u8; 20]>) -> Result<Torrent, Error> {
        self.build_hashed(Hashes {
            pieces,
            files: Vec::new(),
        })
    }

    /// The torrent with these hashes: `pieces` for v1 and hybrid torrents (empty for v2), and
    /// for v2 and hybrid torrents one [`FileHashes`] per real file in [`Builder::files`] order.
    pub fn build_hashed(self, hashes: Hashes) -> Result<Torrent, Error> {
        let expected = u64::from(self.piece_count());
        let want_pieces = if self.version.has_v1() { expected } else { 0 };
        if hashes.pieces.len() as u64 != want_pieces {
            return Err(Error::PieceCountMismatch {
                found: hashes.pieces.len() as u64,
                expected: want_pieces,
            });
        }
        if self.version.has_v2() {
            self.check_file_hashes(&hashes.files)?;
        }
        let layout = self.files();
        let info_bytes = self.encode_info(&layout, &hashes);
        let mut torrent = Torrent::from_info_bytes(info_bytes)?;
        if self.version.has_v2() {
            for file in &hashes.files {
                if let (Some(root), false) = (file.pieces_root, file.piece_layer.is_empty()) {
                    torrent.set_piece_layer(root, file.piece_layer.clone())?;
                }
            }
        }
        torrent.announce = self.trackers.first().and_then(|tier| tier.first()).cloned();
        torrent.announce_list = self.trackers;
        torrent.comment = self.comment;
        torrent.created_by = self.created_by;
        torrent.creation_date = self.creation_date;
        Ok(torrent)
    }

    fn check_file_hashes(&self, files: &[FileHashes]) -> Result<(), Error> {
        if files.len() != self.files.len() {
            return Err(Error::FileHashesMismatch(format!(
                "{} given for {} files",
                files.len(),
                self.files.len()
            )));
        }
        let piece_length = u64::from(self.piece_length);
        for (f, h) in self.files.iter().zip(files) {
            let pieces = f.length.div_ceil(piece_length);
            let layer_len = if pieces > 1 { pieces } else { 0 };
            if h.pieces_root.is_some() != (f.length > 0) || h.piece_layer.len() as u64 != layer_len
            {
                return Err(Error::FileHashesMismatch(format!(
                    "wrong hashes for {:?}",
                    crate::error::clip(&f.path.join("/"))
                )));
            }
        }
        Ok(())
    }

    /// The canonical info dictionary. Keys in byte order: `file tree` (v2), `files` | `length`
    /// (v1), `meta version` (v2), `name`, `piece length`, `pieces` (v1), `private`.
    fn encode_info(&self, layout: &[FileEntry], hashes: &Hashes) -> Vec<u8> {
        let mut out = Vec::with_capacity(hashes.pieces.len() * 20 + layout.len() * 100 + 128);
        let mut enc = Encoder::new(&mut out);
        enc.dict_start();
        if self.version.has_v2() {
            enc.bytes(b"file tree");
            let files: Vec<(&[String], u64, Option<Hash>)> = self
                .files
                .iter()
                .zip(&hashes.files)
                .map(|(f, h)| (f.path.as_slice(), f.length, h.pieces_root))
                .collect();
            encode_tree(&mut enc, &files, 0);
        }
        if self.version.has_v1() {
            if self.single_file {
                enc.bytes(b"length").int(self.files[0].length as i64);
            } else {
                enc.bytes(b"files").list_start();
                for file in layout {
                    enc.dict_start();
                    if file.pad {
                        enc.bytes(b"attr").bytes(b"p");
                    }
                    // Lengths were checked to fit i64 in `new`.
                    enc.bytes(b"length").int(file.length as i64);
                    enc.bytes(b"path").list_start();
                    for component in &file.path {
                        enc.bytes(component.as_bytes());
                    }
                    enc.end().end();
                }
                enc.end();
            }
        }
        if self.version.has_v2() {
            enc.bytes(b"meta version").int(2);
        }
        enc.bytes(b"name").bytes(self.name.as_bytes());
        enc.bytes(b"piece length").int(i64::from(self.piece_length));
        if self.version.has_v1() {
            enc.bytes(b"pieces").bytes(hashes.pieces.as_flattened());
        }
        if self.private {
            enc.bytes(b"private").int(1);
        }
        enc.end();
        out
    }

    fn check_piece_count(&self) -> Result<(), Error> {
        u32::try_from(self.total_length().div_ceil(u64::from(self.piece_length)))
            .map(drop)
            .map_err(|_| Error::TooManyPieces)
    }
}

/// Writes the BEP 52 file tree of `files` (sorted by path) below path depth `depth`.
fn encode_tree(enc: &mut Encoder<'_>, files: &[(&[String], u64, Option<Hash>)], depth: usize) {
    enc.dict_start();
    let mut rest = files;
    while let Some((first, ..)) = rest.first() {
        let key = &first[depth];
        // Sorted paths keep a directory's files together.
        let n = rest
            .iter()
            .take_while(|(p, ..)| p.get(depth) == Some(key))
            .count();
        let (group, tail) = rest.split_at(n);
        enc.bytes(key.as_bytes());
        match group {
            [(path, length, root)] if path.len() == depth + 1 => {
                enc.dict_start().bytes(b"").dict_start();
                enc.bytes(b"length").int(*length as i64);
                if let Some(root) = root {
                    enc.bytes(b"pieces root").bytes(root);
                }
                enc.end().end();
            }
            _ => encode_tree(enc, group, depth + 1),
        }
        rest = tail;
    }
    enc.end();
}

/// Every hash a v2 or hybrid torrent needs; see [`Builder::build_hashed`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hashes {
    /// SHA-1 of each piece of the padded data (v1 and hybrid; empty for v2).
    pub pieces: Vec<[u8; 20]>,
    /// One entry per real file, in [`Builder::files`] order (v2 and hybrid; empty for v1).
    pub files: Vec<FileHashes>,
}

/// The v2 hashes of one file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileHashes {
    /// The Merkle root of the file's blocks; `None` for an empty file.
    pub pieces_root: Option<Hash>,
    /// One hash per piece for a file longer than one piece, else empty.
    pub piece_layer: Vec<Hash>,
}

/// Hashes one file's bytes into its BEP 52 pieces root and piece layer. Memory stays at one
/// block plus one hash per piece.
#[derive(Debug, Clone)]
pub struct V2FileHasher {
    piece_length: u32,
    /// Bytes of the current, incomplete block.
    block: Vec<u8>,
    /// Leaves of the current, incomplete piece.
    leaves: Vec<Hash>,
    /// Hashes of the complete pieces so far.
    layer: Vec<Hash>,
    len: u64,
}

impl V2FileHasher {
    /// A hasher for a file of a torrent with `piece_length`-byte pieces (a power of two of at
    /// least 16 KiB).
    pub fn new(piece_length: u32) -> V2FileHasher {
        V2FileHasher {
            piece_length,
            block: Vec::with_capacity(BLOCK_SIZE as usize),
            leaves: Vec::new(),
            layer: Vec::new(),
            len: 0,
        }
    }

    /// Feeds the file's next bytes, in any chunk sizes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while !data.is_empty() {
            let room = BLOCK_SIZE as usize - self.block.len();
            if self.block.is_empty() && data.len() >= room {
                // Whole blocks straight from the caller's buffer.
                let (block, rest) = data.split_at(room);
                self.push_leaf(merkle::leaf_hash(block));
                data = rest;
                continue;
            }
            let (now, rest) = data.split_at(room.min(data.len()));
            self.block.extend_from_slice(now);
            data = rest;
            if self.block.len() == BLOCK_SIZE as usize {
                let leaf = merkle::leaf_hash(&self.block);
                self.block.clear();
                self.push_leaf(leaf);
            }
        }
    }

    fn push_leaf(&mut self, leaf: Hash) {
        self.leaves.push(leaf);
        if self.leaves.len() as u32 == (self.piece_length / BLOCK_SIZE).max(1) {
            self.layer.push(merkle::piece_hash_from_leaves(
                &self.leaves,
                self.piece_length,
            ));
            self.leaves.clear();
        }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's pieces root and piece layer.
    pub fn finish(mut self) -> FileHashes {
        if self.len == 0 {
            return FileHashes::default();
        }
        if !self.block.is_empty() {
            let leaf = merkle::leaf_hash(&self.block);
            self.leaves.push(leaf);
        }
        if self.layer.is_empty() {
            // At most one piece: the root pads only to the file's own block count.
            return FileHashes {
                pieces_root: Some(merkle::root_from_leaves(&self.leaves)),
                piece_layer: Vec::new(),
            };
        }
        if !self.leaves.is_empty() {
            self.layer.push(merkle::piece_hash_from_leaves(
                &self.leaves,
                self.piece_length,
            ));
        }
        if self.layer.len() == 1 {
            return FileHashes {
                pieces_root: self.layer.first().copied(),
                piece_layer: Vec::new(),
            };
        }
        FileHashes {
            pieces_root: Some(merkle::root_from_piece_layer(
                &self.layer,
                self.piece_length,
            )),
            piece_layer: self.layer,
        }
    }
}

/// Hashes the real files of a [`Builder`] (fed in [`Builder::files`] order, pad files left
/// out) into every hash its version needs: v1 pieces over the padded data and/or each file's
/// v2 root and piece layer.
#[derive(Debug, Clone)]
pub struct TorrentHasher {
    /// (length, pad) of each layout entry.
    layout: Vec<(u64, bool)>,
    /// Next layout entry to start.
    next: usize,
    /// Bytes still expected for the current real file.
    remaining: u64,
    v1: Option<PieceHasher>,
    piece_length: u32,
    v2: bool,
    current: Option<V2FileHasher>,
    files: Vec<FileHashes>,
    fed: u64,
    expected: u64,
}

impl TorrentHasher {
    fn new(builder: &Builder) -> TorrentHasher {
        let layout: Vec<(u64, bool)> = builder.files().iter().map(|f| (f.length, f.pad)).collect();
        let expected = layout.iter().filter(|(_, pad)| !pad).map(|(l, _)| l).sum();
        let mut h = TorrentHasher {
            layout,
            next: 0,
            remaining: 0,
            v1: builder.version.has_v1().then(|| builder.hasher()),
            piece_length: builder.piece_length,
            v2: builder.version.has_v2(),
            current: None,
            files: Vec::new(),
            fed: 0,
            expected,
        };
        h.advance();
        h
    }

    /// Feeds the next bytes of the real files' concatenated data, in any chunk sizes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.fed += data.len() as u64;
        while !data.is_empty() && self.remaining > 0 {
            let n = data
                .len()
                .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            let (now, rest) = data.split_at(n);
            if let Some(v1) = &mut self.v1 {
                v1.update(now);
            }
            if let Some(file) = &mut self.current {
                file.update(now);
            }
            self.remaining -= n as u64;
            data = rest;
            if self.remaining == 0 {
                if let Some(file) = self.current.take() {
                    self.files.push(file.finish());
                }
                self.advance();
            }
        }
    }

    /// Moves to the next real file with data, hashing pad files (zeros, v1 only) and empty
    /// files on the way.
    fn advance(&mut self) {
        const ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];
        while self.remaining == 0 {
            let Some(&(length, pad)) = self.layout.get(self.next) else {
                return;
            };
            self.next += 1;
            if pad {
                if let Some(v1) = &mut self.v1 {
                    let mut left = length;
                    while left > 0 {
                        let n = left.min(u64::from(BLOCK_SIZE));
                        v1.update(&ZEROS[..n as usize]);
                        left -= n;
                    }
                }
            } else if length == 0 {
                if self.v2 {
                    self.files.push(FileHashes::default());
                }
            } else {
                self.remaining = length;
                self.current = self.v2.then(|| V2FileHasher::new(self.piece_length));
            }
        }
    }

    /// The hashes, once exactly the files' bytes have been fed.
    pub fn finish(self) -> Result<Hashes, Error> {
        if self.fed != self.expected || self.remaining > 0 {
            return Err(Error::HashedLengthMismatch {
                expected: self.expected,
                found: self.fed,
            });
        }
        Ok(Hashes {
            pieces: self.v1.map(PieceHasher::finish).unwrap_or_default(),
            files: self.files,
        })
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
