//! The info dictionary: file layout, piece hashes and the byte-range arithmetic between them.

use std::path::{Component, Path, PathBuf};

use bencode::{Dict, Value};

use crate::error::clip;
use crate::Error;

/// Largest `piece length` accepted when reading a torrent (64 MiB). Real torrents stay at or
/// below 16 MiB; anything bigger is far more likely to be hostile than useful.
pub const MAX_PIECE_LENGTH: u32 = 64 * 1024 * 1024;

/// One file of the torrent, in the order the info dictionary lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent directory; for a single-file torrent, just `[name]`.
    /// Every component has been checked to be a plain, non-empty file name.
    pub path: Vec<String>,
    /// Length in bytes (may be 0).
    pub length: u64,
    /// Byte offset of the file's first byte in the torrent's concatenated data.
    pub offset: u64,
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

/// The validated content of a v1 info dictionary.
///
/// Invariants established by parsing (and relied on by the methods): `files` is non-empty with
/// contiguous offsets, `total_length` is their sum and non-zero, and `pieces.len()` is
/// `ceil(total_length / piece_length)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Suggested name: the file name (single-file) or the top directory (multi-file).
    pub name: String,
    /// Bytes per piece (all but the last piece).
    pub piece_length: u32,
    /// SHA-1 of each piece.
    pub pieces: Vec<[u8; 20]>,
    /// The files in torrent order.
    pub files: Vec<FileEntry>,
    /// BEP 27: peers come only from the torrent's trackers (no DHT, PEX or local discovery).
    pub private: bool,
    /// Sum of all file lengths.
    pub total_length: u64,
    /// The info dictionary has `length` rather than `files`, so the data is saved as `name`
    /// itself rather than in a `name/` directory.
    pub single_file: bool,
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
        u32::try_from(self.pieces.len()).unwrap_or(u32::MAX)
    }

    /// Size of piece `index` in bytes: `piece_length`, except the last piece which holds the
    /// remainder. 0 for an index past the end.
    pub fn piece_size(&self, index: u32) -> u32 {
        let (start, end) = self.piece_bounds(index);
        u32::try_from(end - start).unwrap_or(0)
    }

    /// The expected SHA-1 of piece `index`.
    pub fn piece_hash(&self, index: u32) -> Option<&[u8; 20]> {
        self.pieces.get(usize::try_from(index).ok()?)
    }

    /// Byte offset of piece `index` in the concatenated data.
    pub fn piece_offset(&self, index: u32) -> u64 {
        u64::from(index).saturating_mul(u64::from(self.piece_length))
    }

    /// Where bytes `[offset, offset + len)` of piece `index` are stored: file spans in order,
    /// skipping zero-length files.
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

    /// The file's path relative to the download directory: `name` for a single-file torrent,
    /// `name/<path…>` for a multi-file torrent.
    ///
    /// # Panics
    /// If `file` is not an index into [`Info::files`].
    pub fn file_path(&self, file: usize) -> PathBuf {
        let entry = &self.files[file];
        if self.single_file {
            return PathBuf::from(&self.name);
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
        let raw_piece_length =
            int(dict, b"piece length", "piece length")?.ok_or(Error::MissingKey("piece length"))?;
        let piece_length = u32::try_from(raw_piece_length)
            .ok()
            .filter(|&n| n > 0 && n <= MAX_PIECE_LENGTH)
            .ok_or(Error::BadPieceLength(raw_piece_length))?;

        let pieces_raw = match dict.get(b"pieces") {
            Some(v) => v.as_bytes().ok_or(Error::WrongType {
                key: "pieces",
                expected: "a byte string",
            })?,
            // BEP 52 torrents without v1 compatibility carry a file tree instead of pieces.
            None if dict.get(b"meta version").and_then(Value::as_int) == Some(2) => {
                return Err(Error::V2Only)
            }
            None => return Err(Error::MissingKey("pieces")),
        };
        if pieces_raw.len() % 20 != 0 {
            return Err(Error::PiecesNotMultipleOf20(pieces_raw.len()));
        }

        let name = utf8_preferred(dict, b"name.utf-8", "name")?.ok_or(Error::MissingKey("name"))?;
        check_component(&name)?;

        let (files, single_file) = match (dict.get(b"length"), dict.get(b"files")) {
            (Some(_), Some(_)) => return Err(Error::AmbiguousLayout),
            (None, None) => return Err(Error::MissingLayout),
            (Some(length), None) => {
                let length = length.as_int().ok_or(Error::WrongType {
                    key: "length",
                    expected: "an integer",
                })?;
                let length = u64::try_from(length).map_err(|_| Error::NegativeLength(length))?;
                (
                    vec![FileEntry {
                        path: vec![name.clone()],
                        length,
                        offset: 0,
                    }],
                    true,
                )
            }
            (None, Some(files)) => (parse_files(files)?, false),
        };
        let total_length = files.last().map_or(0, |f| f.offset + f.length);
        if total_length == 0 {
            return Err(Error::EmptyTorrent);
        }

        let found = (pieces_raw.len() / 20) as u64;
        let expected = total_length.div_ceil(u64::from(piece_length));
        if found != expected {
            return Err(Error::PieceCountMismatch { found, expected });
        }
        u32::try_from(found).map_err(|_| Error::TooManyPieces)?;
        let pieces = pieces_raw
            .chunks_exact(20)
            .map(|c| {
                let mut hash = [0u8; 20];
                hash.copy_from_slice(c);
                hash
            })
            .collect();

        Ok(Info {
            name,
            piece_length,
            pieces,
            files,
            private: dict.get(b"private").and_then(Value::as_int) == Some(1),
            total_length,
            single_file,
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

/// Parses a multi-file `files` list, assigning offsets and checking paths.
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
        push_file(&mut out, path, length)?;
    }
    check_distinct(&out)?;
    Ok(out)
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

/// Appends a file to a layout: it starts where the previous file ends. Checks the path and that
/// the total length stays representable; both parsing and creation build layouts through this.
pub(crate) fn push_file(
    files: &mut Vec<FileEntry>,
    path: Vec<String>,
    length: u64,
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
    });
    Ok(())
}

/// Rejects two files with the same path, and a file whose path is a directory of another.
pub(crate) fn check_distinct(files: &[FileEntry]) -> Result<(), Error> {
    let mut paths: Vec<&[String]> = files.iter().map(|f| f.path.as_slice()).collect();
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
                offset: 0
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
                Error::V2Only,
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
}
