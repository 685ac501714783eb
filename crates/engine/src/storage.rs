//! Positional disk I/O over a torrent's file layout.
//!
//! Every operation is a `pread`/`pwrite` at an absolute offset, so one [`Storage`] is shared by all
//! peer tasks without a lock. Files are opened lazily and created sparse at their final length, so a
//! restart finds them at the right size. Calls block: drivers run them on blocking threads.
//!
//! Verified pieces are written with `O_DIRECT` where the span is aligned (whole pieces of a
//! single-file torrent, most spans of multi-file ones) and the filesystem supports it; the rest go
//! through the page cache. Direct writes skip a copy into freshly allocated page-cache pages, which
//! measured as the largest cost of a fast download here (see docs/benchmarks.md); reads (hash checks,
//! serving peers) stay buffered.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use metainfo::Info;
use sha1::{Digest, Sha1};

/// Alignment of buffers, offsets and lengths for direct I/O.
pub const DIRECT_ALIGN: usize = 4096;

/// A piece buffer whose first byte is aligned to [`DIRECT_ALIGN`], so a verified piece can be
/// written with direct I/O straight from it. Reused across pieces; never reallocated while in use,
/// so the alignment holds.
#[derive(Debug, Default)]
pub struct PieceBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl PieceBuf {
    /// Makes the buffer `len` bytes long (contents unspecified), allocating only when it must grow.
    pub fn set_len(&mut self, len: usize) {
        if self.raw.len() < len + DIRECT_ALIGN {
            self.raw = vec![0u8; len + DIRECT_ALIGN];
        }
        let addr = self.raw.as_ptr() as usize;
        self.off = (DIRECT_ALIGN - addr % DIRECT_ALIGN) % DIRECT_ALIGN;
        self.len = len;
    }
}

impl std::ops::Deref for PieceBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.len]
    }
}

impl std::ops::DerefMut for PieceBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

/// Disk I/O failure, with the path involved.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct StorageError {
    /// What was being done ("write", "read", "create").
    pub op: &'static str,
    /// The file involved.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// The files of one torrent below a download directory.
pub struct Storage {
    info: std::sync::Arc<Info>,
    paths: Vec<PathBuf>,
    files: Vec<OnceLock<File>>,
    /// Write-only handles opened with `O_DIRECT`; `None` where the filesystem refuses it.
    direct: Vec<OnceLock<Option<File>>>,
    /// One writer per file at a time: concurrent buffered writes to one file contend on its inode
    /// lock in the kernel, where waiters spin; here they sleep, and hashing stays parallel.
    write_locks: Vec<std::sync::Mutex<()>>,
    writable: bool,
}

impl Storage {
    /// Storage for `info` rooted at `dir`. Opens nothing yet; read-only storage (for seeding) never
    /// creates or changes a file.
    pub fn new(info: std::sync::Arc<Info>, dir: &Path, writable: bool) -> Self {
        let paths: Vec<PathBuf> = (0..info.files.len())
            .map(|i| dir.join(info.file_path(i)))
            .collect();
        let files = paths.iter().map(|_| OnceLock::new()).collect();
        let write_locks = paths.iter().map(|_| std::sync::Mutex::new(())).collect();
        let direct = paths.iter().map(|_| OnceLock::new()).collect();
        Self {
            info,
            paths,
            files,
            direct,
            write_locks,
            writable,
        }
    }

    /// Path of file `i` on disk.
    pub fn path(&self, i: usize) -> &Path {
        &self.paths[i]
    }

    /// Paths of the files that live on disk (every file but BEP 47 pad files).
    pub fn data_paths(&self) -> Vec<&Path> {
        (0..self.paths.len())
            .filter(|&i| !self.info.files[i].pad)
            .map(|i| self.paths[i].as_path())
            .collect()
    }

    /// Creates every file (and its directories) at its final length, sparse. Existing data is kept.
    /// Pad files are never created.
    pub fn allocate(&self) -> Result<(), StorageError> {
        for i in 0..self.paths.len() {
            if self.info.files[i].pad {
                continue;
            }
            let f = self.open(i)?;
            let want = self.info.files[i].length;
            let have = f.metadata().map_err(|e| self.err("stat", i, e))?.len();
            if have != want {
                f.set_len(want).map_err(|e| self.err("resize", i, e))?;
            }
        }
        Ok(())
    }

    /// Current on-disk lengths of the files (`None` for a missing file). Pad files, which are
    /// never on disk, count as present at their full length.
    pub fn file_lengths(&self) -> Vec<Option<u64>> {
        self.paths
            .iter()
            .zip(&self.info.files)
            .map(|(p, f)| {
                if f.pad {
                    Some(f.length)
                } else {
                    std::fs::metadata(p).ok().map(|m| m.len())
                }
            })
            .collect()
    }

    fn err(&self, op: &'static str, i: usize, source: io::Error) -> StorageError {
        StorageError {
            op,
            path: self.paths[i].clone(),
            source,
        }
    }

    fn open(&self, i: usize) -> Result<&File, StorageError> {
        if let Some(f) = self.files[i].get() {
            return Ok(f);
        }
        let path = &self.paths[i];
        let create = self.writable;
        if create {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| self.err("create directory for", i, e))?;
            }
        }
        let f = OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(|e| self.err("open", i, e))?;
        // A racing opener may have won; either handle is equivalent.
        Ok(self.files[i].get_or_init(|| f))
    }

    /// Writes a whole verified piece.
    pub fn write_piece(&self, index: u32, data: &[u8]) -> Result<(), StorageError> {
        let mut done = 0usize;
        for span in self.info.piece_spans(index, 0, data.len() as u32) {
            let chunk = &data[done..done + span.len as usize];
            done += span.len as usize;
            if self.info.files[span.file].pad {
                continue;
            }
            let f = self.open(span.file)?;
            if self.write_direct(span.file, chunk, span.file_offset) {
                continue;
            }
            let _one_writer = self.write_locks[span.file]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            f.write_all_at(chunk, span.file_offset)
                .map_err(|e| self.err("write", span.file, e))?;
        }
        Ok(())
    }

    /// Tries a direct write; `false` means "write it buffered instead" (unaligned, unsupported, or
    /// the direct write failed, in which case the buffered write reports the real error if any).
    fn write_direct(&self, i: usize, chunk: &[u8], offset: u64) -> bool {
        let aligned = (chunk.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
            && chunk.len().is_multiple_of(DIRECT_ALIGN)
            && offset.is_multiple_of(DIRECT_ALIGN as u64);
        if !aligned || !self.writable {
            return false;
        }
        let handle = self.direct[i].get_or_init(|| {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&self.paths[i])
                .ok()
        });
        match handle {
            Some(f) => match f.write_all_at(chunk, offset) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(path = %self.paths[i].display(), "direct write failed, writing buffered: {e}");
                    false
                }
            },
            None => false,
        }
    }

    /// Reads `buf.len()` bytes of piece `index` starting at `begin` (pad files read as zeros).
    pub fn read(&self, index: u32, begin: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let mut done = 0usize;
        for span in self.info.piece_spans(index, begin, buf.len() as u32) {
            let chunk = &mut buf[done..done + span.len as usize];
            if self.info.files[span.file].pad {
                chunk.fill(0);
                done += span.len as usize;
                continue;
            }
            let f = self.open(span.file)?;
            f.read_exact_at(chunk, span.file_offset)
                .map_err(|e| self.err("read", span.file, e))?;
            done += span.len as usize;
        }
        Ok(())
    }

    /// Whether piece `index` is on disk with the right hash. Missing or short files count as "no".
    pub fn check_piece(&self, index: u32, buf: &mut Vec<u8>, hashes: &PieceHashes) -> bool {
        let size = self.info.piece_size(index) as usize;
        buf.resize(size, 0);
        if self.read(index, 0, buf).is_err() {
            return false;
        }
        hashes.piece_ok(index, buf)
    }

    /// Flushes written data of every open file to stable storage.
    pub fn sync_all(&self) -> Result<(), StorageError> {
        for (i, f) in self.files.iter().enumerate() {
            if let Some(f) = f.get() {
                f.sync_data().map_err(|e| self.err("sync", i, e))?;
            }
        }
        Ok(())
    }
}

/// What a torrent's pieces must hash to: SHA-1 piece hashes (v1), BEP 52 Merkle roots and piece
/// layers (v2), or both (hybrid, where a piece must match both).
#[derive(Debug, Clone)]
pub struct PieceHashes {
    info: std::sync::Arc<Info>,
    /// Piece layers by pieces root, for files longer than one piece.
    layers: std::collections::BTreeMap<[u8; 32], Vec<[u8; 32]>>,
}

impl PieceHashes {
    /// The hashes of `info` with the piece layers of its v2 files.
    pub fn new(
        info: std::sync::Arc<Info>,
        layers: std::collections::BTreeMap<[u8; 32], Vec<[u8; 32]>>,
    ) -> Self {
        Self { info, layers }
    }

    /// Whether `data` (the whole piece, pad bytes included) is piece `index`.
    pub fn piece_ok(&self, index: u32, data: &[u8]) -> bool {
        let v = self.info.version;
        let v1_ok = || {
            self.info
                .piece_hash(index)
                .is_some_and(|h| sha1_digest(data) == *h)
        };
        (!v.has_v1() || v1_ok()) && (!v.has_v2() || self.v2_piece_ok(index, data))
    }

    /// The piece layer of the file with `root`, if the torrent has it.
    pub fn layer(&self, root: &[u8; 32]) -> Option<&[[u8; 32]]> {
        self.layers.get(root).map(Vec::as_slice)
    }

    /// Whether `leaves` (a piece's 16 KiB leaf hashes, as a `hashes` answer delivers them) are
    /// the true leaves of piece `index`: they must hash up to its piece-layer entry, or to the
    /// pieces root for a file of one piece.
    pub fn leaves_ok(&self, index: u32, leaves: &[[u8; 32]]) -> bool {
        self.leaves_match(index, leaves, false)
    }

    fn v2_piece_ok(&self, index: u32, data: &[u8]) -> bool {
        let Some(p) = self.info.v2_piece(index) else {
            return false;
        };
        let Some(real) = data.get(..p.real_len as usize) else {
            return false;
        };
        // Bytes past the file's end in this piece are padding and must be zeros.
        if data[p.real_len as usize..].iter().any(|&b| b != 0) {
            return false;
        }
        // A hybrid from a magnet link has no piece layers; its SHA-1 piece hashes (checked
        // before this, and covered by the info-hash) are enough. A v2-only torrent cannot be
        // checked without them.
        let missing_layer_ok = self.info.version.has_v1();
        self.leaves_match(
            index,
            &metainfo::merkle::leaf_hashes(real),
            missing_layer_ok,
        )
    }

    /// The one v2 check: piece `index`'s leaf hashes against the trusted node above them (the
    /// file's pieces root for a one-piece file, else the piece-layer entry). Without a piece
    /// layer for the file the answer is `missing_layer_ok`.
    fn leaves_match(&self, index: u32, leaves: &[[u8; 32]], missing_layer_ok: bool) -> bool {
        use metainfo::merkle::{piece_hash_from_leaves, root_from_leaves};
        let Some(p) = self.info.v2_piece(index) else {
            return false;
        };
        let file = &self.info.files[p.file];
        let Some(root) = file.pieces_root else {
            return false;
        };
        if file.length <= u64::from(self.info.piece_length) {
            return root_from_leaves(leaves) == root;
        }
        match self.layer(&root) {
            Some(layer) => layer
                .get(p.piece_in_file as usize)
                .is_some_and(|h| piece_hash_from_leaves(leaves, self.info.piece_length) == *h),
            None => missing_layer_ok,
        }
    }
}

/// SHA-1 of `data` (hardware-accelerated where the CPU has SHA extensions).
pub fn sha1_digest(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_written_direct_and_buffered_read_back_exactly() {
        // File boundaries at 5000 and 69536 make some spans unaligned (buffered) and others aligned
        // (direct); the last piece is short.
        let lens = [5000u64, 64536, 100_000];
        let data: Vec<u8> = (0..lens.iter().sum::<u64>())
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let files = lens
            .iter()
            .enumerate()
            .map(|(i, l)| (vec![format!("f{i}")], *l))
            .collect();
        let mut hasher = metainfo::create::PieceHasher::new(16384);
        hasher.update(&data);
        let t = metainfo::create::Builder::new("set", files)
            .unwrap()
            .piece_length(16384)
            .unwrap()
            .build(hasher.finish())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let info = std::sync::Arc::new(t.info);
        let storage = Storage::new(info.clone(), dir.path(), true);
        storage.allocate().unwrap();
        let mut buf = PieceBuf::default();
        for i in (0..info.num_pieces()).rev() {
            let start = info.piece_offset(i) as usize;
            let len = info.piece_size(i) as usize;
            buf.set_len(len);
            assert_eq!(buf.as_ptr() as usize % DIRECT_ALIGN, 0);
            buf.copy_from_slice(&data[start..start + len]);
            storage.write_piece(i, &buf).unwrap();
        }
        let mut on_disk = Vec::new();
        for i in 0..3 {
            on_disk.extend(std::fs::read(dir.path().join(format!("set/f{i}"))).unwrap());
        }
        assert!(on_disk == data);
        let mut scratch = Vec::new();
        let hashes = PieceHashes::new(info.clone(), Default::default());
        assert!((0..info.num_pieces()).all(|i| storage.check_piece(i, &mut scratch, &hashes)));
    }
}
