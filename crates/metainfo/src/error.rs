//! Why a torrent could not be read or created.

/// Why a `.torrent` could not be parsed, or a torrent could not be built.
///
/// Every message fits on one line: user-controlled strings are quoted with escapes and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes are not bencode at all.
    #[error("torrent is not valid bencode: {0}")]
    Bencode(#[from] bencode::Error),
    /// The top-level value is not a dictionary.
    #[error("torrent is not a bencode dictionary: check that the file really is a .torrent")]
    NotADictionary,
    /// There is no `info` key, or it is not a dictionary.
    #[error("torrent has no info dictionary: the file is incomplete or not a .torrent")]
    MissingInfo,
    /// A required key is absent.
    #[error("torrent info is missing required key `{0}`")]
    MissingKey(&'static str),
    /// A key holds a value of the wrong bencode type.
    #[error("torrent key `{key}` must be {expected}")]
    WrongType {
        /// The key, with its parent for nested keys (`files.path`).
        key: &'static str,
        /// What the key must hold.
        expected: &'static str,
    },
    /// The info dictionary has both `length` (single file) and `files` (multi-file).
    #[error("torrent info has both `length` and `files`: it must have exactly one")]
    AmbiguousLayout,
    /// The info dictionary has neither `length` nor `files`.
    #[error("torrent info has neither `length` nor `files`: it must have exactly one")]
    MissingLayout,
    /// A `meta version` other than 2 (BEP 52 says to check it before anything else).
    #[error("torrent has meta version {0}, newer than this program understands: upgrade btt")]
    UnsupportedMetaVersion(i64),
    /// A v2 or hybrid torrent whose piece length is not a power of two of at least 16 KiB.
    #[error("v2 piece length {0} is invalid: BEP 52 needs a power of two of at least 16 KiB")]
    BadV2PieceLength(i64),
    /// The v2 `file tree` does not have the shape BEP 52 gives it.
    #[error("torrent file tree is malformed: {0}")]
    BadFileTree(&'static str),
    /// A non-empty file in the v2 file tree without a 32-byte `pieces root`.
    #[error("file {0:?} in the file tree has no 32-byte pieces root")]
    MissingPiecesRoot(String),
    /// A `piece layers` entry with the wrong size, or whose hashes do not lead to the file's
    /// pieces root.
    #[error("piece layer for file {path:?} is invalid: {why}; the torrent is corrupt")]
    BadPieceLayer {
        /// The file the layer belongs to.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `piece layers` is not a dictionary of 32-byte keys to byte strings.
    #[error("torrent `piece layers` must map 32-byte pieces roots to byte strings")]
    MalformedPieceLayers,
    /// A hybrid torrent whose v1 file list and v2 file tree describe different data.
    #[error("hybrid torrent's v1 and v2 parts disagree ({0}): the torrent is corrupt")]
    HybridMismatch(String),
    /// `piece length` is zero, negative or above [`MAX_PIECE_LENGTH`](crate::MAX_PIECE_LENGTH).
    #[error("piece length {0} is invalid: it must be between 1 byte and 64 MiB")]
    BadPieceLength(i64),
    /// The `pieces` string cannot be split into 20-byte SHA-1 hashes.
    #[error("pieces length is not a multiple of 20 (got {0} bytes)")]
    PiecesNotMultipleOf20(usize),
    /// The number of piece hashes disagrees with the total length and piece length.
    #[error("piece count does not match total length: {found} hashes given, {expected} needed")]
    PieceCountMismatch {
        /// Hashes present.
        found: u64,
        /// Hashes required by `ceil(total_length / piece_length)`.
        expected: u64,
    },
    /// More pieces than a `u32` piece index can address.
    #[error("torrent has more than 2^32 pieces: use a larger piece length")]
    TooManyPieces,
    /// A file has a negative `length`.
    #[error("file length {0} is negative")]
    NegativeLength(i64),
    /// A file length that cannot be written as a bencode integer (above `i64::MAX`).
    #[error("file length {0} is too large to encode: it must be at most 2^63 - 1 bytes")]
    LengthTooLarge(u64),
    /// The file lengths do not add up within 64 bits.
    #[error("total length of the files overflows 64 bits")]
    TotalLengthOverflow,
    /// The `files` list is empty.
    #[error("torrent has an empty file list: it must contain at least one file")]
    NoFiles,
    /// Every file is empty, so there is nothing to share.
    #[error("torrent contains no data: the total length of its files is 0")]
    EmptyTorrent,
    /// A file has an empty `path` list.
    #[error("file path has no components: every file needs a name")]
    EmptyPath,
    /// A path component (or the torrent name) could escape the download directory or is not a
    /// plain file name.
    #[error("file path component is unsafe: {0:?}")]
    UnsafePath(String),
    /// Two files have the same path, or one file's path is a directory of another.
    #[error("file path {0:?} is used twice, or both as a file and as a directory")]
    DuplicatePath(String),
    /// A hex info-hash that is not exactly 40 hex digits.
    #[error("info hash must be exactly 40 hex digits")]
    BadInfoHash,
    /// A hex v2 info-hash that is not exactly 64 hex digits.
    #[error("v2 info hash must be exactly 64 hex digits")]
    BadInfoHashV2,
    /// The text is not a `magnet:?` URI.
    #[error("not a magnet link: it must start with `magnet:?`")]
    NotAMagnet,
    /// A magnet link with neither a `urn:btih:` nor a `urn:btmh:` exact topic.
    #[error("magnet link has no BitTorrent info-hash (`xt=urn:btih:` or `xt=urn:btmh:`)")]
    MagnetWithoutHash,
    /// A magnet info-hash that cannot be decoded.
    #[error("magnet info-hash {0:?} is invalid: use 40 hex or 32 base32 digits (btih) or 1220 + 64 hex digits (btmh)")]
    BadMagnetHash(String),
    /// A magnet `x.pe` peer that is not `host:port`.
    #[error("magnet peer {0:?} is invalid: it must be host:port, with IPv6 in brackets")]
    BadMagnetPeer(String),
    /// A malformed percent escape in a magnet link.
    #[error("magnet link has a malformed percent escape or non-UTF-8 text in {0:?}")]
    BadMagnetEncoding(String),
    /// The data fed to a torrent hasher is not as long as the files it describes.
    #[error(
        "hashed {found} bytes but the files hold {expected}: feed every file's data exactly once"
    )]
    HashedLengthMismatch {
        /// Bytes the files hold.
        expected: u64,
        /// Bytes fed.
        found: u64,
    },
    /// v2 file hashes given to the torrent builder that do not fit its files.
    #[error("file hashes do not fit the files: {0}; hash each file with its own V2FileHasher, in Builder::files order")]
    FileHashesMismatch(String),
    /// A piece length given to the torrent builder that is not a power of two in range.
    #[error(
        "piece length {0} cannot be used: it must be a power of two between 16 KiB and 64 MiB"
    )]
    BadCreatePieceLength(u32),
}

/// Shortens and keeps a user-controlled string for an error message.
pub(crate) fn clip(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
