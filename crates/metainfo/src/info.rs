//! The info dictionary: file layout, piece hashes and the byte-range arithmetic between them.
//!
//! v1 (BEP 3), v2 (BEP 52) and hybrid torrents share one layout model: [`Info::files`] lists
//! every file at its offset in one concatenated byte space, and pieces are `piece_length`
//! slices of that space. BEP 52 aligns every non-empty file to a piece boundary; the gaps are
//! [`FileEntry::pad`] entries (BEP 47 pad files), which hybrid torrents list in their v1 `files`
//! and which are synthesized for v2-only torrents exactly where libtorrent puts them (after
//! every non-empty file that does not end on a piece boundary, the last one included), so piece
//! indices agree with every other client.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use bencode::{Dict, Value};

use crate::error::clip;
use crate::merkle::BLOCK_SIZE;
use crate::Error;

/// Largest `piece length` accepted when reading a torrent (64 MiB). Real torrents stay at or
/// below 16 MiB; anything bigger is far more likely to be hostile than useful.
pub const MAX_PIECE_LENGTH: u32 = 64 * 1024 * 1024;

/// Which metadata a torrent carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaVersion {
    /// BEP 3 only: SHA-1 piece hashes, no `meta version`.
    V1,
    /// BEP 52 only: `meta version` 2, a file tree and per-file Merkle roots; no SHA-1 pieces.
    V2,
    /// Both (BEP 52 "upgrade path"): v1 `pieces` with BEP 47 pad files and a v2 file tree
    /// describing the same aligned data.
    Hybrid,
}

impl MetaVersion {
    /// Whether the torrent has v1 (SHA-1) piece hashes and a v1 info-hash.
    pub fn has_v1(self) -> bool {
        matches!(self, MetaVersion::V1 | MetaVersion::Hybrid)
    }

    /// Whether the torrent has v2 (SHA-256 Merkle) hashes and a v2 info-hash.
    pub fn has_v2(self) -> bool {
        matches!(self, MetaVersion::V2 | MetaVersion::Hybrid)
    }
}

/// One file of the torrent, in layout order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent directory; for a single-file torrent, just the file
    /// name. Every component has been checked to be a plain, non-empty file name. Pad files
    /// are named `[".pad", "<length>"]`, as libtorrent names them.
    pub path: Vec<String>,
    /// Length in bytes (may be 0).
    pub length: u64,
    /// Byte offset of the file's first byte in the torrent's concatenated data.
    pub offset: u64,
    /// A BEP 47 pad file: alignment filler that reads as zeros and is never stored on disk.
    pub pad: bool,
    /// The v2 Merkle root of the file's 16 KiB blocks (`pieces root`); `None` for v1-only
    /// torrents, pad files and empty files.
    pub pieces_root: Option<[u8; 32]>,
}

/// Part of a piece that lives in one file; see [`Info::piece_spans`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileSpan {
    /// Index into [`Info::files`].
    pub file: usize,
    /// Offset within that file.
    pub file_offset: u64,
    /// Bytes in this span (never 0).
    pub len: u32,
}

/// Where a piece of a v2 or hybrid torrent sits in its file's Merkle tree; see
/// [`Info::v2_piece`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct V2Piece {
    /// Index into [`Info::files`] of the (real, non-empty) file holding the piece.
    pub file: usize,
    /// The piece's index within that file: its entry in the file's piece layer.
    pub piece_in_file: u32,
    /// Bytes of file data in the piece; the rest of the piece, if any, is padding.
    pub real_len: u32,
}

/// The validated content of an info dictionary.
///
/// Invariants established by parsing (and relied on by the methods): `files` is non-empty with
/// contiguous offsets, `total_length` is their sum and non-zero, `pieces.len()` is
/// `ceil(total_length / piece_length)` for torrents with v1 metadata and 0 for v2-only ones,
/// and for v2 and hybrid torrents every non-empty real file starts on a piece boundary and
/// carries its `pieces_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Suggested name: the file name (single-file) or the top directory (multi-file).
    pub name: String,
    /// Bytes per piece (all but the last piece).
    pub piece_length: u32,
    /// SHA-1 of each piece; empty for v2-only torrents.
    pub pieces: Vec<[u8; 20]>,
    /// The files in layout order, pad files included.
    pub files: Vec<FileEntry>,
    /// BEP 27: peers come only from the torrent's trackers (no DHT, PEX or local discovery).
    pub private: bool,
    /// Sum of all file lengths, pad files included.
    pub total_length: u64,
    /// The torrent holds one file saved directly as its name rather than in a directory
    /// (`length` rather than `files` in v1; a file tree with a single top-level file in v2).
    pub single_file: bool,
    /// Which metadata the info dictionary carries.
    pub version: MetaVersion,
}

impl Info {
    /// Parses and validates a bencoded info dictionary (e.g. one fetched by BEP 9 for a magnet).
    pub fn from_bytes(info_bytes: &[u8]) -> Result<Info, Error> {
        let value = bencode::decode(info_bytes)?;
        let dict = value.as_dict().ok_or(Error::MissingInfo)?;
        Info::from_dict(dict)
    }

    /// Number of pieces.
    pub fn num_pieces(&self) -> u32 {
        u32::try_from(self.total_length.div_ceil(u64::from(self.piece_length))).unwrap_or(u32::MAX)
    }

    /// Size of piece `index` in bytes, pad bytes included: `piece_length`, except the last
    /// piece which holds the remainder. 0 for an index past the end.
    pub fn piece_size(&self, index: u32) -> u32 {
        let (start, end) = self.piece_bounds(index);
        u32::try_from(end - start).unwrap_or(0)
    }

    /// The expected SHA-1 of piece `index` (`None` for v2-only torrents).
    pub fn piece_hash(&self, index: u32) -> Option<&[u8; 20]> {
        self.pieces.get(usize::try_from(index).ok()?)
    }

    /// Byte offset of piece `index` in the concatenated data.
    pub fn piece_offset(&self, index: u32) -> u64 {
        u64::from(index).saturating_mul(u64::from(self.piece_length))
    }

    /// Where bytes `[offset, offset + len)` of piece `index` are stored: file spans in order,
    /// skipping zero-length files. Spans in pad files are included (check
    /// [`FileEntry::pad`]: they read as zeros and are never stored).
    ///
    /// The range is clipped to the piece, so an out-of-range request yields fewer bytes (or
    /// none); callers that need exactly `len` bytes should validate the request first. Does not
    /// allocate.
    pub fn piece_spans(&self, index: u32, offset: u32, len: u32) -> PieceSpans<'_> {
        let (piece_start, piece_end) = self.piece_bounds(index);
        let start = piece_start.saturating_add(u64::from(offset)).min(piece_end);
        let end = start.saturating_add(u64::from(len)).min(piece_end);
        // Files are sorted by offset, so their end offsets are non-decreasing and this finds the
        // first file that ends after `start` (which necessarily contains `start` and is non-empty).
        let file = self
            .files
            .partition_point(|f| f.offset.saturating_add(f.length) <= start);
        PieceSpans {
            files: &self.files,
            file,
            pos: start,
            end,
        }
    }

    /// The v2 view of piece `index`: its file, its index in that file's piece layer and how many
    /// of its bytes are file data. `None` for v1-only torrents, for an index past the end, and
    /// for a piece holding only padding.
    pub fn v2_piece(&self, index: u32) -> Option<V2Piece> {
        if !self.version.has_v2() || index >= self.num_pieces() {
            return None;
        }
        let (start, end) = self.piece_bounds(index);
        let file = self
            .files
            .partition_point(|f| f.offset.saturating_add(f.length) <= start);
        let entry = self.files.get(file).filter(|f| !f.pad)?;
        let piece_length = u64::from(self.piece_length);
        let real_end = end.min(entry.offset + entry.length);
        Some(V2Piece {
            file,
            piece_in_file: u32::try_from((start - entry.offset) / piece_length).ok()?,
            real_len: u32::try_from(real_end - start).ok()?,
        })
    }

    /// Blocks (16 KiB leaves) per piece: `piece_length / 16 KiB`, at least 1.
    pub fn blocks_per_piece(&self) -> u32 {
        (self.piece_length / BLOCK_SIZE).max(1)
    }

    /// The file's path relative to the download directory: the file name for a single-file
    /// torrent, `name/<path…>` otherwise. Pad files map to `name/.pad/<length>`, libtorrent's
    /// convention; they are never meant to be created.
    ///
    /// # Panics
    /// If `file` is not an index into [`Info::files`].
    pub fn file_path(&self, file: usize) -> PathBuf {
        let entry = &self.files[file];
        if self.single_file && !entry.pad {
            return PathBuf::from(entry.path.first().unwrap_or(&self.name));
        }
        let mut path = PathBuf::from(&self.name);
        path.extend(&entry.path);
        path
    }

    /// `[start, end)` of piece `index` in the concatenated data; empty past the last piece.
    fn piece_bounds(&self, index: u32) -> (u64, u64) {
        if index >= self.num_pieces() {
            return (self.total_length, self.total_length);
        }
        let start = self.piece_offset(index);
        let end = start
            .saturating_add(u64::from(self.piece_length))
            .min(self.total_length);
        (start.min(end), end)
    }

    pub(crate) fn from_dict(dict: &Dict<'_>) -> Result<Info, Error> {
        // BEP 52: check the meta version before anything that could give a vaguer error.
        let v2 = match int(dict, b"meta version", "meta version")? {
            None => false,
            Some(2) => true,
            Some(other) => return Err(Error::UnsupportedMetaVersion(other)),
        };
        let raw_piece_length =
            int(dict, b"piece length", "piece length")?.ok_or(Error::MissingKey("piece length"))?;
        let piece_length = u32::try_from(raw_piece_length)
            .ok()
            .filter(|&n| n > 0 && n <= MAX_PIECE_LENGTH)
            .ok_or(Error::BadPieceLength(raw_piece_length))?;
        if v2 && (!piece_length.is_power_of_two() || piece_length < BLOCK_SIZE) {
            return Err(Error::BadV2PieceLength(raw_piece_length));
        }

        let pieces_raw = match dict.get(b"pieces") {
            Some(v) => Some(v.as_bytes().ok_or(Error::WrongType {
                key: "pieces",
                expected: "a byte string",
            })?),
            None if v2 => None,
            None => return Err(Error::MissingKey("pieces")),
        };
        if let Some(raw) = pieces_raw {
            if raw.len() % 20 != 0 {
                return Err(Error::PiecesNotMultipleOf20(raw.len()));
            }
        }

        let name = utf8_preferred(dict, b"name.utf-8", "name")?.ok_or(Error::MissingKey("name"))?;
        check_component(&name)?;

        let tree = if v2 {
            let tree = dict
                .get(b"file tree")
                .ok_or(Error::MissingKey("file tree"))?;
            Some(parse_file_tree(tree)?)
        } else {
            None
        };

        let (files, single_file, version) = match (pieces_raw, tree) {
            (Some(_), tree) => {
                let (mut files, single_file) = parse_v1_layout(dict, &name)?;
                let version = match tree {
                    Some(tree) => {
                        match_hybrid(&mut files, single_file, &tree, piece_length)?;
                        MetaVersion::Hybrid
                    }
                    None => MetaVersion::V1,
                };
                (files, single_file, version)
            }
            (None, Some(tree)) => {
                let single_file = tree.single_file;
                (
                    v2_layout(tree.files, piece_length)?,
                    single_file,
                    MetaVersion::V2,
                )
            }
            // `pieces` is only optional when `meta version` is 2, which implies a tree.
            (None, None) => return Err(Error::MissingKey("pieces")),
        };
        let total_length = files.last().map_or(0, |f| f.offset + f.length);
        if files.iter().all(|f| f.pad || f.length == 0) {
            return Err(Error::EmptyTorrent);
        }

        let expected = total_length.div_ceil(u64::from(piece_length));
        u32::try_from(expected).map_err(|_| Error::TooManyPieces)?;
        let pieces = match pieces_raw {
            Some(raw) => {
                let found = (raw.len() / 20) as u64;
                if found != expected {
                    return Err(Error::PieceCountMismatch { found, expected });
                }
                raw.chunks_exact(20)
                    .map(|c| {
                        let mut hash = [0u8; 20];
                        hash.copy_from_slice(c);
                        hash
                    })
                    .collect()
            }
            None => Vec::new(),
        };

        Ok(Info {
            name,
            piece_length,
            pieces,
            files,
            private: dict.get(b"private").and_then(Value::as_int) == Some(1),
            total_length,
            single_file,
            version,
        })
    }
}

/// Iterator returned by [`Info::piece_spans`].
#[derive(Debug, Clone)]
pub struct PieceSpans<'a> {
    files: &'a [FileEntry],
    file: usize,
    pos: u64,
    end: u64,
}

impl Iterator for PieceSpans<'_> {
    type Item = FileSpan;

    fn next(&mut self) -> Option<FileSpan> {
        while self.pos < self.end {
            let f = self.files.get(self.file)?;
            let file_end = f.offset.saturating_add(f.length);
            if file_end <= self.pos {
                // Zero-length file (or one already consumed): nothing of the range is in it.
                self.file += 1;
                continue;
            }
            let span_end = file_end.min(self.end);
            let span = FileSpan {
                file: self.file,
                file_offset: self.pos - f.offset,
                // The range is clipped to one piece, so it fits in u32.
                len: u32::try_from(span_end - self.pos).unwrap_or(u32::MAX),
            };
            self.pos = span_end;
            self.file += 1;
            return Some(span);
        }
        None
    }
}

impl std::iter::FusedIterator for PieceSpans<'_> {}

/// The v1 layout: `length` (single file saved as `name`) or `files`.
fn parse_v1_layout(dict: &Dict<'_>, name: &str) -> Result<(Vec<FileEntry>, bool), Error> {
    match (dict.get(b"length"), dict.get(b"files")) {
        (Some(_), Some(_)) => Err(Error::AmbiguousLayout),
        (None, None) => Err(Error::MissingLayout),
        (Some(length), None) => {
            let length = length.as_int().ok_or(Error::WrongType {
                key: "length",
                expected: "an integer",
            })?;
            let length = u64::try_from(length).map_err(|_| Error::NegativeLength(length))?;
            let mut files = Vec::with_capacity(1);
            push_file(&mut files, vec![name.to_owned()], length)?;
            Ok((files, true))
        }
        (None, Some(files)) => Ok((parse_files(files)?, false)),
    }
}

/// Parses a multi-file `files` list, assigning offsets, recognising pad files and checking
/// paths.
fn parse_files(files: &Value<'_>) -> Result<Vec<FileEntry>, Error> {
    let list = files.as_list().ok_or(Error::WrongType {
        key: "files",
        expected: "a list",
    })?;
    if list.is_empty() {
        return Err(Error::NoFiles);
    }
    let mut out = Vec::with_capacity(list.len());
    for file in list {
        let file = file.as_dict().ok_or(Error::WrongType {
            key: "files",
            expected: "a list of dictionaries",
        })?;
        let length =
            int(file, b"length", "files.length")?.ok_or(Error::MissingKey("files.length"))?;
        let length = u64::try_from(length).map_err(|_| Error::NegativeLength(length))?;
        let path = match file
            .get(b"path.utf-8")
            .and_then(|v| string_list(v, "files.path.utf-8").ok())
        {
            Some(path) => path,
            None => string_list(
                file.get(b"path").ok_or(Error::MissingKey("files.path"))?,
                "files.path",
            )?,
        };
        // BEP 47 marks pad files with `p` in `attr`; older BitComet torrents only by name.
        let pad = file
            .get(b"attr")
            .and_then(Value::as_bytes)
            .is_some_and(|attr| attr.contains(&b'p'))
            || path
                .last()
                .is_some_and(|n| n.starts_with("_____padding_file_"));
        push_entry(&mut out, path, length, pad)?;
    }
    check_distinct(&out)?;
    Ok(out)
}

/// One file of a v2 file tree, in tree order.
#[derive(Debug)]
struct TreeFile {
    path: Vec<String>,
    length: u64,
    pieces_root: Option<[u8; 32]>,
}

/// The files of a v2 `file tree`.
#[derive(Debug)]
struct FileTree {
    files: Vec<TreeFile>,
    /// The tree holds exactly one file, at its top level.
    single_file: bool,
}

/// Parses a BEP 52 `file tree` into its files in tree order (depth first, keys as they appear,
/// which in valid bencode is sorted order).
fn parse_file_tree(tree: &Value<'_>) -> Result<FileTree, Error> {
    let root = tree.as_dict().ok_or(Error::WrongType {
        key: "file tree",
        expected: "a dictionary",
    })?;
    let mut files = Vec::new();
    walk_tree(root, &mut Vec::new(), &mut files)?;
    if files.is_empty() {
        return Err(Error::NoFiles);
    }
    let single_file = matches!(&files[..], [f] if f.path.len() == 1);
    let entries: Vec<FileEntry> = files
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            length: f.length,
            offset: 0,
            pad: false,
            pieces_root: None,
        })
        .collect();
    check_distinct(&entries)?;
    Ok(FileTree { files, single_file })
}

/// Depth-first walk of one directory of the file tree. Recursion depth is bounded by
/// bencode's own nesting limit.
fn walk_tree(
    dir: &Dict<'_>,
    prefix: &mut Vec<String>,
    out: &mut Vec<TreeFile>,
) -> Result<(), Error> {
    for (key, node) in &dir.entries {
        if key.is_empty() {
            // A directory (or the root) cannot itself be a file.
            return Err(Error::BadFileTree(
                "an empty name appears beside other entries or at the root",
            ));
        }
        let name = String::from_utf8_lossy(key).into_owned();
        check_component(&name)?;
        let node = node
            .as_dict()
            .ok_or(Error::BadFileTree("every entry must be a dictionary"))?;
        prefix.push(name);
        match node.get(b"") {
            Some(props) => {
                if node.entries.len() != 1 {
                    return Err(Error::BadFileTree("a file entry has sibling entries"));
                }
                out.push(tree_file(prefix, props)?);
            }
            None => walk_tree(node, prefix, out)?,
        }
        prefix.pop();
    }
    Ok(())
}

/// The properties dictionary (`""` key) of one file.
fn tree_file(path: &[String], props: &Value<'_>) -> Result<TreeFile, Error> {
    let props = props
        .as_dict()
        .ok_or(Error::BadFileTree("file properties must be a dictionary"))?;
    let length =
        int(props, b"length", "file tree length")?.ok_or(Error::MissingKey("file tree length"))?;
    let length = u64::try_from(length).map_err(|_| Error::NegativeLength(length))?;
    if length > i64::MAX as u64 {
        return Err(Error::LengthTooLarge(length));
    }
    let pieces_root = if length == 0 {
        None
    } else {
        let root = props
            .get(b"pieces root")
            .and_then(Value::as_bytes)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| Error::MissingPiecesRoot(clip(&path.join("/"))))?;
        Some(root)
    };
    Ok(TreeFile {
        path: path.to_vec(),
        length,
        pieces_root,
    })
}

/// The aligned layout of a v2-only torrent: after every non-empty file that does not end on a
/// piece boundary comes a pad file up to the boundary, as libtorrent lays it out.
fn v2_layout(tree: Vec<TreeFile>, piece_length: u32) -> Result<Vec<FileEntry>, Error> {
    let piece_length = u64::from(piece_length);
    let mut out = Vec::with_capacity(tree.len() * 2);
    for file in tree {
        let offset = out.last().map_or(0, |f: &FileEntry| f.offset + f.length);
        let end = offset
            .checked_add(file.length)
            .ok_or(Error::TotalLengthOverflow)?;
        out.push(FileEntry {
            path: file.path,
            length: file.length,
            offset,
            pad: false,
            pieces_root: file.pieces_root,
        });
        let gap = (piece_length - end % piece_length) % piece_length;
        if file.length > 0 && gap > 0 {
            end.checked_add(gap).ok_or(Error::TotalLengthOverflow)?;
            out.push(pad_entry(end, gap));
        }
    }
    Ok(out)
}

/// A pad file of `length` bytes at `offset`, named as libtorrent names them.
pub(crate) fn pad_entry(offset: u64, length: u64) -> FileEntry {
    FileEntry {
        path: vec![".pad".to_owned(), length.to_string()],
        length,
        offset,
        pad: true,
        pieces_root: None,
    }
}

/// Checks that a hybrid's v1 layout and v2 tree describe the same files at the same aligned
/// offsets and the same number of pieces, and copies the pieces roots into the v1 entries.
fn match_hybrid(
    files: &mut [FileEntry],
    single_file: bool,
    tree: &FileTree,
    piece_length: u32,
) -> Result<(), Error> {
    let mismatch = |what: String| Err(Error::HybridMismatch(what));
    if single_file != tree.single_file {
        return mismatch("one part is single-file and the other is not".into());
    }
    let piece_length = u64::from(piece_length);
    let v1_end = files.last().map_or(0, |f| f.offset + f.length);
    let mut real = files.iter_mut().filter(|f| !f.pad);
    // Where the v2 layout puts the next file, and where its data ends.
    let (mut v2_offset, mut v2_end) = (0u64, 0u64);
    for t in &tree.files {
        let Some(f) = real.next() else {
            return mismatch("the file tree has more files".into());
        };
        if f.path != t.path || f.length != t.length {
            return mismatch(format!(
                "v1 has {:?} ({} bytes) where v2 has {:?} ({} bytes)",
                clip(&f.path.join("/")),
                f.length,
                clip(&t.path.join("/")),
                t.length
            ));
        }
        if t.length > 0 {
            if f.offset != v2_offset {
                return mismatch(format!(
                    "{:?} is at offset {} in v1 but {} in v2",
                    clip(&f.path.join("/")),
                    f.offset,
                    v2_offset
                ));
            }
            v2_end = v2_offset + t.length;
            v2_offset = v2_end.div_ceil(piece_length) * piece_length;
        }
        f.pieces_root = t.pieces_root;
    }
    if real.next().is_some() {
        return mismatch("the v1 file list has more files".into());
    }
    if v1_end.div_ceil(piece_length) != v2_end.div_ceil(piece_length) {
        return mismatch("trailing padding changes the piece count".into());
    }
    Ok(())
}

/// A list of byte strings as (lossily decoded) UTF-8; any other item is a type error.
fn string_list(v: &Value<'_>, key: &'static str) -> Result<Vec<String>, Error> {
    let wrong = Error::WrongType {
        key,
        expected: "a list of strings",
    };
    v.as_list()
        .ok_or(wrong.clone())?
        .iter()
        .map(|c| {
            c.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or(wrong.clone())
        })
        .collect()
}

/// Checks that a file's path has at least one component and that each one is safe.
pub(crate) fn check_path(path: &[String]) -> Result<(), Error> {
    if path.is_empty() {
        return Err(Error::EmptyPath);
    }
    path.iter().try_for_each(|c| check_component(c))
}

/// A path component must name exactly one normal entry inside its parent directory.
///
/// This is the boundary that keeps a hostile torrent inside the download directory: no `..`,
/// no separators of any platform, no NUL, no root or drive prefix.
pub(crate) fn check_component(c: &str) -> Result<(), Error> {
    let plain = !c.is_empty()
        && c != "."
        && c != ".."
        && !c.contains(['/', '\\', '\0'])
        // Catches what the host platform treats specially (e.g. `C:` prefixes on Windows).
        && is_single_normal_component(c);
    if plain {
        Ok(())
    } else {
        Err(Error::UnsafePath(clip(c)))
    }
}

/// Whether the host platform parses `c` as exactly one normal component (not a root, drive
/// prefix or `..`).
fn is_single_normal_component(c: &str) -> bool {
    let mut parts = Path::new(c).components();
    matches!((parts.next(), parts.next()), (Some(Component::Normal(n)), None) if n == c)
}

/// Appends a real file to a layout: it starts where the previous file ends. Checks the path and
/// that the total length stays representable; both parsing and creation build layouts through
/// this.
pub(crate) fn push_file(
    files: &mut Vec<FileEntry>,
    path: Vec<String>,
    length: u64,
) -> Result<(), Error> {
    push_entry(files, path, length, false)
}

/// [`push_file`] for a real or a pad file.
fn push_entry(
    files: &mut Vec<FileEntry>,
    path: Vec<String>,
    length: u64,
    pad: bool,
) -> Result<(), Error> {
    check_path(&path)?;
    let offset = files.last().map_or(0, |f| f.offset + f.length);
    offset
        .checked_add(length)
        .ok_or(Error::TotalLengthOverflow)?;
    files.push(FileEntry {
        path,
        length,
        offset,
        pad,
        pieces_root: None,
    });
    Ok(())
}

/// Rejects two files with the same path, and a file whose path is a directory of another.
/// Pad files may share a path with each other (libtorrent names them by length), never with a
/// real file.
pub(crate) fn check_distinct(files: &[FileEntry]) -> Result<(), Error> {
    let pads: BTreeSet<&[String]> = files
        .iter()
        .filter(|f| f.pad)
        .map(|f| f.path.as_slice())
        .collect();
    let mut paths: Vec<&[String]> = files
        .iter()
        .filter(|f| !f.pad)
        .map(|f| f.path.as_slice())
        .chain(pads)
        .collect();
    paths.sort_unstable();
    // In sorted order a path is immediately followed by any path it is a prefix of.
    for pair in paths.windows(2) {
        if pair[1].starts_with(pair[0]) {
            return Err(Error::DuplicatePath(clip(&pair[0].join("/"))));
        }
    }
    Ok(())
}

/// An optional integer key; present with another type is an error.
fn int(dict: &Dict<'_>, key: &[u8], name: &'static str) -> Result<Option<i64>, Error> {
    match dict.get(key) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or(Error::WrongType {
            key: name,
            expected: "an integer",
        }),
    }
}

/// A string key, preferring its `*.utf-8` twin (not in any BEP, but widespread) when that is
/// valid UTF-8.
/// Legacy non-UTF-8 names are decoded lossily (replacement characters are harmless in paths).
fn utf8_preferred(
    dict: &Dict<'_>,
    utf8_key: &[u8],
    key: &'static str,
) -> Result<Option<String>, Error> {
    if let Some(s) = dict.get(utf8_key).and_then(Value::as_str) {
        return Ok(Some(s.to_owned()));
    }
    match dict.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v
            .as_bytes()
            .map(|b| Some(String::from_utf8_lossy(b).into_owned()))
            .ok_or(Error::WrongType {
                key,
                expected: "a string",
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bencode::List;

    fn s(x: &str) -> Value<'static> {
        Value::owned_bytes(x.as_bytes().to_vec())
    }

    fn list(items: Vec<Value<'static>>) -> Value<'static> {
        Value::List(List::new(items))
    }

    fn file(path: &[&str], length: i64) -> Value<'static> {
        let mut d = Dict::new();
        d.insert(&b"length"[..], Value::Int(length));
        d.insert(&b"path"[..], list(path.iter().map(|c| s(c)).collect()));
        Value::Dict(d)
    }

    /// A valid multi-file info dict: `dir/a` (3), `dir/e1` (0), `dir/sub/b` (5), `dir/e2` (0),
    /// `dir/c` (2), piece length 4, so pieces are [0,4) [4,8) [8,10).
    fn multi() -> Dict<'static> {
        let mut d = Dict::new();
        d.insert(&b"name"[..], s("dir"));
        d.insert(&b"piece length"[..], Value::Int(4));
        d.insert(
            &b"pieces"[..],
            Value::owned_bytes([[1u8; 20], [2; 20], [3; 20]].concat()),
        );
        let files = vec![
            file(&["a"], 3),
            file(&["e1"], 0),
            file(&["sub", "b"], 5),
            file(&["e2"], 0),
            file(&["c"], 2),
        ];
        d.insert(&b"files"[..], list(files));
        d
    }

    fn single(length: i64, pieces: usize) -> Dict<'static> {
        let mut d = Dict::new();
        d.insert(&b"name"[..], s("f.bin"));
        d.insert(&b"piece length"[..], Value::Int(16384));
        d.insert(&b"pieces"[..], Value::owned_bytes(vec![9; 20 * pieces]));
        d.insert(&b"length"[..], Value::Int(length));
        d
    }

    fn parse(d: Dict<'static>) -> Result<Info, Error> {
        Info::from_bytes(&Value::Dict(d).encode_to_vec())
    }

    fn with(mut d: Dict<'static>, key: &'static str, v: Value<'static>) -> Dict<'static> {
        d.insert(key.as_bytes(), v);
        d
    }

    fn without(mut d: Dict<'static>, key: &str) -> Dict<'static> {
        d.entries.retain(|(k, _)| k.as_ref() != key.as_bytes());
        d
    }

    fn with_files(files: Vec<Value<'static>>, pieces: usize) -> Dict<'static> {
        let d = with(multi(), "files", list(files));
        with(d, "pieces", Value::owned_bytes(vec![0; 20 * pieces]))
    }

    #[test]
    fn parses_multi_file_layout() {
        let info = parse(multi()).unwrap();
        assert_eq!(info.name, "dir");
        assert!(!info.single_file && !info.private);
        assert_eq!(info.total_length, 10);
        let layout: Vec<_> = info
            .files
            .iter()
            .map(|f| (f.path.join("/"), f.length, f.offset))
            .collect();
        assert_eq!(
            layout,
            [
                ("a".into(), 3, 0),
                ("e1".into(), 0, 3),
                ("sub/b".into(), 5, 3),
                ("e2".into(), 0, 8),
                ("c".into(), 2, 8)
            ]
        );
        assert_eq!(info.num_pieces(), 3);
        assert_eq!([0, 1, 2, 3].map(|i| info.piece_size(i)), [4, 4, 2, 0]);
        assert_eq!(info.piece_hash(2), Some(&[3; 20]));
        assert_eq!(info.piece_hash(3), None);
        assert_eq!(info.piece_offset(2), 8);
        assert_eq!(
            info.file_path(2),
            PathBuf::from("dir").join("sub").join("b")
        );
    }

    #[test]
    fn parses_single_file_layout() {
        let info = parse(single(16385, 2)).unwrap();
        assert!(info.single_file);
        assert_eq!(
            info.files,
            [FileEntry {
                path: vec!["f.bin".into()],
                length: 16385,
                offset: 0,
                pad: false,
                pieces_root: None,
            }]
        );
        assert_eq!(info.file_path(0), PathBuf::from("f.bin"));
        assert_eq!((info.piece_size(0), info.piece_size(1)), (16384, 1));
    }

    fn spans(info: &Info, index: u32, offset: u32, len: u32) -> Vec<(usize, u64, u32)> {
        info.piece_spans(index, offset, len)
            .map(|s| (s.file, s.file_offset, s.len))
            .collect()
    }

    #[test]
    fn piece_spans_cross_files_and_skip_empty_ones() {
        let info = parse(multi()).unwrap();
        assert_eq!(spans(&info, 0, 0, 4), [(0, 0, 3), (2, 0, 1)]);
        assert_eq!(spans(&info, 1, 0, 4), [(2, 1, 4)]);
        // The zero-length file at index 3 sits exactly at the piece start and is skipped.
        assert_eq!(spans(&info, 2, 0, 2), [(4, 0, 2)]);
        // Starting exactly where `a` ends lands in `sub/b`, not in the empty `e1`.
        assert_eq!(spans(&info, 0, 3, 1), [(2, 0, 1)]);
        assert_eq!(spans(&info, 0, 1, 1), [(0, 1, 1)]);
        // Requests are clipped to the piece.
        assert_eq!(spans(&info, 1, 2, 100), [(2, 3, 2)]);
        assert_eq!(spans(&info, 2, 0, u32::MAX), [(4, 0, 2)]);
        assert_eq!(spans(&info, 0, 9, 1), []);
        assert_eq!(spans(&info, 3, 0, 4), []);
        assert_eq!(spans(&info, u32::MAX, u32::MAX, u32::MAX), []);
        assert_eq!(spans(&info, 0, 0, 0), []);
    }

    #[test]
    fn piece_spans_with_leading_empty_files_and_whole_piece_in_one_file() {
        let d = with_files(
            vec![file(&["z0"], 0), file(&["z1"], 0), file(&["big"], 9)],
            3,
        );
        let info = parse(d).unwrap();
        assert_eq!(spans(&info, 0, 0, 4), [(2, 0, 4)]);
        assert_eq!(spans(&info, 2, 0, 4), [(2, 8, 1)]);
        // Every byte of the torrent is covered exactly once, in order.
        let all: Vec<_> = (0..info.num_pieces())
            .flat_map(|p| spans(&info, p, 0, info.piece_size(p)))
            .collect();
        assert_eq!(all, [(2, 0, 4), (2, 4, 4), (2, 8, 1)]);
    }

    #[test]
    fn prefers_utf8_twins_and_decodes_legacy_names_lossily() {
        let d = with(multi(), "name.utf-8", s("Ünïcode"));
        assert_eq!(parse(d).unwrap().name, "Ünïcode");
        // An invalid `name.utf-8` falls back to `name`.
        let d = with(multi(), "name.utf-8", Value::owned_bytes(vec![0xff]));
        assert_eq!(parse(d).unwrap().name, "dir");
        let d = with(multi(), "name", Value::owned_bytes(b"caf\xe9".to_vec()));
        assert_eq!(parse(d).unwrap().name, "caf\u{fffd}");

        let mut f = file(&["legacy"], 10);
        if let Value::Dict(d) = &mut f {
            d.insert(&b"path.utf-8"[..], list(vec![s("naïve")]));
        }
        let info = parse(with_files(vec![f], 3)).unwrap();
        assert_eq!(info.files[0].path, ["naïve"]);
    }

    #[test]
    fn private_flag_is_exactly_one() {
        assert!(
            parse(with(multi(), "private", Value::Int(1)))
                .unwrap()
                .private
        );
        assert!(
            !parse(with(multi(), "private", Value::Int(0)))
                .unwrap()
                .private
        );
        assert!(!parse(with(multi(), "private", s("1"))).unwrap().private);
    }

    #[test]
    fn accepts_the_largest_piece_length() {
        let d = with(
            single(5, 1),
            "piece length",
            Value::Int(i64::from(MAX_PIECE_LENGTH)),
        );
        assert_eq!(parse(d).unwrap().piece_length, MAX_PIECE_LENGTH);
    }

    #[test]
    fn rejects_missing_and_mistyped_keys() {
        let cases: Vec<(Dict<'static>, Error)> = vec![
            (
                without(multi(), "piece length"),
                Error::MissingKey("piece length"),
            ),
            (without(multi(), "pieces"), Error::MissingKey("pieces")),
            (without(multi(), "name"), Error::MissingKey("name")),
            (without(multi(), "files"), Error::MissingLayout),
            (
                with_files(vec![Value::Dict(Dict::new())], 0),
                Error::MissingKey("files.length"),
            ),
            (
                with_files(
                    vec![Value::Dict(without(dict_of(file(&["a"], 1)), "path"))],
                    1,
                ),
                Error::MissingKey("files.path"),
            ),
            (
                with(multi(), "piece length", s("4")),
                Error::WrongType {
                    key: "piece length",
                    expected: "an integer",
                },
            ),
            (
                with(multi(), "pieces", Value::Int(0)),
                Error::WrongType {
                    key: "pieces",
                    expected: "a byte string",
                },
            ),
            (
                with(multi(), "name", Value::Int(0)),
                Error::WrongType {
                    key: "name",
                    expected: "a string",
                },
            ),
            (
                with(single(1, 1), "length", s("1")),
                Error::WrongType {
                    key: "length",
                    expected: "an integer",
                },
            ),
            (
                with(multi(), "files", s("x")),
                Error::WrongType {
                    key: "files",
                    expected: "a list",
                },
            ),
            (
                with_files(vec![Value::Int(1)], 1),
                Error::WrongType {
                    key: "files",
                    expected: "a list of dictionaries",
                },
            ),
            (
                with_files(vec![file_with_path(s("a"))], 1),
                Error::WrongType {
                    key: "files.path",
                    expected: "a list of strings",
                },
            ),
            (
                with_files(vec![file_with_path(list(vec![Value::Int(1)]))], 1),
                Error::WrongType {
                    key: "files.path",
                    expected: "a list of strings",
                },
            ),
            (
                with(multi(), "length", Value::Int(10)),
                Error::AmbiguousLayout,
            ),
            (
                with(
                    without(single(1, 1), "pieces"),
                    "meta version",
                    Value::Int(2),
                ),
                Error::MissingKey("file tree"),
            ),
        ];
        for (d, want) in cases {
            assert_eq!(parse(d), Err(want));
        }
        assert_eq!(Info::from_bytes(b"le"), Err(Error::MissingInfo));
        assert_eq!(
            Info::from_bytes(b"d"),
            Err(Error::Bencode(bencode::Error::Truncated(1)))
        );
    }

    fn dict_of(v: Value<'static>) -> Dict<'static> {
        match v {
            Value::Dict(d) => d,
            _ => unreachable!(),
        }
    }

    fn file_with_path(path: Value<'static>) -> Value<'static> {
        let mut d = Dict::new();
        d.insert(&b"length"[..], Value::Int(1));
        d.insert(&b"path"[..], path);
        Value::Dict(d)
    }

    #[test]
    fn rejects_bad_sizes() {
        for bad in [0, -1, i64::from(MAX_PIECE_LENGTH) + 1, i64::MAX, i64::MIN] {
            assert_eq!(
                parse(with(multi(), "piece length", Value::Int(bad))),
                Err(Error::BadPieceLength(bad))
            );
        }
        assert_eq!(
            parse(with(multi(), "pieces", Value::owned_bytes(vec![0; 59]))),
            Err(Error::PiecesNotMultipleOf20(59))
        );
        assert_eq!(
            parse(single(16385, 1)),
            Err(Error::PieceCountMismatch {
                found: 1,
                expected: 2
            })
        );
        assert_eq!(
            parse(single(16384, 2)),
            Err(Error::PieceCountMismatch {
                found: 2,
                expected: 1
            })
        );
        assert_eq!(parse(single(-5, 1)), Err(Error::NegativeLength(-5)));
        assert_eq!(
            parse(with_files(vec![file(&["a"], 1), file(&["b"], -1)], 1)),
            Err(Error::NegativeLength(-1))
        );
        let huge = vec![
            file(&["a"], i64::MAX),
            file(&["b"], i64::MAX),
            file(&["c"], i64::MAX),
        ];
        assert_eq!(parse(with_files(huge, 1)), Err(Error::TotalLengthOverflow));
        assert_eq!(parse(with_files(vec![], 0)), Err(Error::NoFiles));
        assert_eq!(parse(single(0, 0)), Err(Error::EmptyTorrent));
        assert_eq!(
            parse(with_files(vec![file(&["a"], 0), file(&["b"], 0)], 0)),
            Err(Error::EmptyTorrent)
        );
    }

    #[test]
    fn rejects_unsafe_paths() {
        for bad in [
            "..",
            ".",
            "",
            "a/b",
            "/etc",
            "a\\b",
            "\\x",
            "a\0b",
            "../../.bashrc",
        ] {
            let want = Err(Error::UnsafePath(bad.into()));
            assert_eq!(
                parse(with_files(vec![file(&["ok", bad], 1)], 1)),
                want,
                "path {bad:?}"
            );
            assert_eq!(parse(with(multi(), "name", s(bad))), want, "name {bad:?}");
            assert_eq!(
                parse(with(single(1, 1), "name", s(bad))),
                want,
                "single-file name {bad:?}"
            );
            // A valid `name` must not be overridden by an unsafe `name.utf-8`.
            assert_eq!(
                parse(with(multi(), "name.utf-8", s(bad))),
                want,
                "name.utf-8 {bad:?}"
            );
        }
        assert_eq!(
            parse(with_files(vec![file(&[], 1)], 1)),
            Err(Error::EmptyPath)
        );
        // Long hostile components are shortened in the message.
        let long = "/".repeat(1000);
        let err = parse(with(multi(), "name", s(&long)))
            .unwrap_err()
            .to_string();
        assert!(
            err.len() < 120 && err.starts_with("file path component is unsafe: \"//"),
            "{err}"
        );
    }

    #[test]
    fn rejects_colliding_paths() {
        let d = with_files(
            vec![file(&["x", "a"], 1), file(&["y"], 1), file(&["x", "a"], 1)],
            1,
        );
        assert_eq!(parse(d), Err(Error::DuplicatePath("x/a".into())));
        // `x` as a file and as the directory of `x/a`.
        let d = with_files(vec![file(&["x", "a"], 1), file(&["x"], 1)], 1);
        assert_eq!(parse(d), Err(Error::DuplicatePath("x".into())));
        // Sharing a directory, or a name prefix that is not a path prefix, is fine.
        let d = with_files(
            vec![file(&["x", "a"], 1), file(&["x", "b"], 1), file(&["xa"], 1)],
            1,
        );
        assert!(parse(d).is_ok());
    }

    fn v2_leaf(length: i64, root: Option<[u8; 32]>) -> Value<'static> {
        let mut props = Dict::new();
        props.insert(&b"length"[..], Value::Int(length));
        if let Some(root) = root {
            props.insert(&b"pieces root"[..], Value::owned_bytes(root.to_vec()));
        }
        let mut leaf = Dict::new();
        leaf.insert(&b""[..], Value::Dict(props));
        Value::Dict(leaf)
    }

    fn dir(entries: Vec<(&str, Value<'static>)>) -> Value<'static> {
        let mut d = Dict::new();
        for (k, v) in entries {
            d.insert(k.as_bytes().to_vec(), v);
        }
        Value::Dict(d)
    }

    /// v2-only: `a` (100 bytes), `e` (empty), `sub/b` (16384 * 2 + 1), 32 KiB pieces.
    fn v2_info() -> Dict<'static> {
        let mut d = Dict::new();
        d.insert(&b"meta version"[..], Value::Int(2));
        d.insert(&b"name"[..], s("t"));
        d.insert(&b"piece length"[..], Value::Int(32768));
        let tree = dir(vec![
            ("a", v2_leaf(100, Some([1; 32]))),
            ("e", v2_leaf(0, None)),
            ("sub", dir(vec![("b", v2_leaf(32769, Some([2; 32])))])),
        ]);
        d.insert(&b"file tree"[..], tree);
        d
    }

    #[test]
    fn v2_layout_pads_every_file_to_a_piece_boundary() {
        let info = parse(v2_info()).unwrap();
        assert_eq!(info.version, MetaVersion::V2);
        assert!(info.pieces.is_empty() && !info.single_file);
        let layout: Vec<_> = info
            .files
            .iter()
            .map(|f| {
                (
                    f.path.join("/"),
                    f.length,
                    f.offset,
                    f.pad,
                    f.pieces_root.map(|r| r[0]),
                )
            })
            .collect();
        assert_eq!(
            layout,
            [
                ("a".into(), 100, 0, false, Some(1)),
                (".pad/32668".into(), 32668, 100, true, None),
                ("e".into(), 0, 32768, false, None),
                ("sub/b".into(), 32769, 32768, false, Some(2)),
                (".pad/32767".into(), 32767, 65537, true, None),
            ]
        );
        assert_eq!((info.total_length, info.num_pieces()), (98304, 3));
        assert_eq!(info.piece_size(2), 32768);
        assert_eq!(info.file_path(1), PathBuf::from("t/.pad/32668"));
        let v2 = |i| {
            info.v2_piece(i)
                .map(|p| (p.file, p.piece_in_file, p.real_len))
        };
        assert_eq!(
            [v2(0), v2(1), v2(2), v2(3)],
            [
                Some((0, 0, 100)),
                Some((3, 0, 32768)),
                Some((3, 1, 1)),
                None
            ]
        );
        assert_eq!(info.blocks_per_piece(), 2);
        // Piece 0 is `a` then padding.
        assert_eq!(spans(&info, 0, 0, 32768), [(0, 0, 100), (1, 0, 32668)]);
    }

    #[test]
    fn v2_single_file_is_saved_under_its_tree_name() {
        let mut d = v2_info();
        d.insert(
            &b"file tree"[..],
            dir(vec![("only.bin", v2_leaf(5, Some([3; 32])))]),
        );
        let info = parse(d).unwrap();
        assert!(info.single_file);
        assert_eq!(info.file_path(0), PathBuf::from("only.bin"));
        assert_eq!(info.file_path(1), PathBuf::from("t/.pad/32763"));
        // One file inside a directory is a multi-file torrent.
        let mut d = v2_info();
        d.insert(
            &b"file tree"[..],
            dir(vec![("d", dir(vec![("f", v2_leaf(5, Some([3; 32])))]))]),
        );
        assert!(!parse(d).unwrap().single_file);
    }

    #[test]
    fn rejects_malformed_v2() {
        let tree = |t: Value<'static>| with(v2_info(), "file tree", t);
        let cases: Vec<(Dict<'static>, Error)> = vec![
            (
                with(v2_info(), "meta version", Value::Int(3)),
                Error::UnsupportedMetaVersion(3),
            ),
            (
                with(v2_info(), "piece length", Value::Int(16383)),
                Error::BadV2PieceLength(16383),
            ),
            (
                with(v2_info(), "piece length", Value::Int(49152)),
                Error::BadV2PieceLength(49152),
            ),
            (
                without(v2_info(), "file tree"),
                Error::MissingKey("file tree"),
            ),
            (tree(dir(vec![])), Error::NoFiles),
            (
                tree(s("x")),
                Error::WrongType {
                    key: "file tree",
                    expected: "a dictionary",
                },
            ),
            (
                tree(dir(vec![("a", v2_leaf(5, None))])),
                Error::MissingPiecesRoot("a".into()),
            ),
            (
                tree(dir(vec![("", v2_leaf(5, Some([1; 32])))])),
                Error::BadFileTree("an empty name appears beside other entries or at the root"),
            ),
            (
                tree(dir(vec![("a", Value::Int(1))])),
                Error::BadFileTree("every entry must be a dictionary"),
            ),
            (
                tree(dir(vec![("..", v2_leaf(5, Some([1; 32])))])),
                Error::UnsafePath("..".into()),
            ),
            (
                tree(dir(vec![("a", v2_leaf(-1, Some([1; 32])))])),
                Error::NegativeLength(-1),
            ),
            (
                tree(dir(vec![("a", v2_leaf(0, None))])),
                Error::EmptyTorrent,
            ),
        ];
        for (d, want) in cases {
            assert_eq!(parse(d), Err(want));
        }
        // A file entry with siblings.
        let mut leaf = dict_of(v2_leaf(5, Some([1; 32])));
        leaf.insert(&b"x"[..], v2_leaf(1, Some([1; 32])));
        assert_eq!(
            parse(tree(dir(vec![("a", Value::Dict(leaf))]))),
            Err(Error::BadFileTree("a file entry has sibling entries"))
        );
        // A short pieces root.
        let mut props = Dict::new();
        props.insert(&b"length"[..], Value::Int(5));
        props.insert(&b"pieces root"[..], Value::owned_bytes(vec![0; 31]));
        let leaf = dir(vec![("", Value::Dict(props))]);
        assert_eq!(
            parse(tree(dir(vec![("a", leaf)]))),
            Err(Error::MissingPiecesRoot("a".into()))
        );
    }

    fn pad_file(length: i64) -> Value<'static> {
        let mut d = dict_of(file(&[".pad", &length.to_string()], length));
        d.insert(&b"attr"[..], s("p"));
        Value::Dict(d)
    }

    /// The hybrid twin of [`v2_info`].
    fn hybrid_info(files: Vec<Value<'static>>, pieces: usize) -> Dict<'static> {
        let mut d = with(v2_info(), "files", list(files));
        d.insert(&b"pieces"[..], Value::owned_bytes(vec![7; 20 * pieces]));
        d
    }

    fn good_hybrid_files() -> Vec<Value<'static>> {
        vec![
            file(&["a"], 100),
            pad_file(32668),
            file(&["e"], 0),
            file(&["sub", "b"], 32769),
        ]
    }

    #[test]
    fn hybrid_takes_the_v1_layout_and_checks_it_against_the_tree() {
        let info = parse(hybrid_info(good_hybrid_files(), 3)).unwrap();
        assert_eq!(info.version, MetaVersion::Hybrid);
        assert_eq!(info.pieces.len(), 3);
        assert_eq!(info.total_length, 65537, "no tail pad in this v1 list");
        assert!(info.files[1].pad);
        assert_eq!(info.files[3].pieces_root, Some([2; 32]));
        // With a tail pad, as libtorrent writes them.
        let mut files = good_hybrid_files();
        files.push(pad_file(32767));
        let info = parse(hybrid_info(files, 3)).unwrap();
        assert_eq!(info.total_length, 98304);

        let mismatch =
            |files: Vec<Value<'static>>, pieces: usize| match parse(hybrid_info(files, pieces)) {
                Err(Error::HybridMismatch(why)) => why,
                other => panic!("{other:?}"),
            };
        // Missing pad: `sub/b` would not be aligned.
        let why = mismatch(
            vec![
                file(&["a"], 100),
                file(&["e"], 0),
                file(&["sub", "b"], 32769),
            ],
            3,
        );
        assert_eq!(why, "\"sub/b\" is at offset 100 in v1 but 32768 in v2");
        let why = mismatch(
            vec![
                file(&["a"], 100),
                pad_file(32668),
                file(&["e"], 0),
                file(&["sub", "c"], 32769),
            ],
            3,
        );
        assert!(why.starts_with("v1 has \"sub/c\""), "{why}");
        let why = mismatch(vec![file(&["a"], 100), pad_file(32668), file(&["e"], 0)], 2);
        assert_eq!(why, "the file tree has more files");
        let mut files = good_hybrid_files();
        files.push(file(&["z"], 1));
        assert_eq!(mismatch(files, 3), "the v1 file list has more files");
        let mut files = good_hybrid_files();
        files.push(pad_file(32767));
        files.push(pad_file(32768));
        assert_eq!(
            mismatch(files, 4),
            "trailing padding changes the piece count"
        );
        // A single-file v1 half against a multi-file tree.
        let d = with(
            without(hybrid_info(vec![], 1), "files"),
            "length",
            Value::Int(100),
        );
        assert_eq!(
            parse(d),
            Err(Error::HybridMismatch(
                "one part is single-file and the other is not".into()
            ))
        );
    }

    #[test]
    fn v1_pad_files_are_flagged_and_may_share_paths() {
        let d = with_files(
            vec![
                file(&["a"], 1),
                pad_file(3),
                file(&["b"], 1),
                pad_file(3),
                file(&["c"], 1),
            ],
            3,
        );
        let info = parse(d).unwrap();
        assert_eq!(info.version, MetaVersion::V1);
        let pads: Vec<bool> = info.files.iter().map(|f| f.pad).collect();
        assert_eq!(pads, [false, true, false, true, false]);
        // But not with a real file.
        let d = with_files(
            vec![file(&[".pad", "3"], 1), pad_file(3), file(&["c"], 1)],
            1,
        );
        assert_eq!(parse(d), Err(Error::DuplicatePath(".pad/3".into())));
        // Legacy BitComet padding names.
        let d = with_files(
            vec![
                file(&["a"], 1),
                file(&["_____padding_file_0"], 3),
                file(&["c"], 1),
            ],
            2,
        );
        assert!(parse(d).unwrap().files[1].pad);
    }
}
