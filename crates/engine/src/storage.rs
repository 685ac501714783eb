//! Positional disk I/O over a torrent's file layout.
//!
//! Every operation is a `pread`/`pwrite` at an absolute offset, so one [`Storage`] is shared by all
//! peer tasks without a lock. Files are opened lazily and created sparse at their final length, so a
//! restart finds them at the right size. Calls block: drivers run them on blocking threads.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use metainfo::Info;
use sha1::{Digest, Sha1};

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
        Self {
            info,
            paths,
            files,
            writable,
        }
    }

    /// Path of file `i` on disk.
    pub fn path(&self, i: usize) -> &Path {
        &self.paths[i]
    }

    /// Creates every file (and its directories) at its final length, sparse. Existing data is kept.
    pub fn allocate(&self) -> Result<(), StorageError> {
        for i in 0..self.paths.len() {
            let f = self.open(i)?;
            let want = self.info.files[i].length;
            let have = f.metadata().map_err(|e| self.err("stat", i, e))?.len();
            if have != want {
                f.set_len(want).map_err(|e| self.err("resize", i, e))?;
            }
        }
        Ok(())
    }

    /// Current on-disk lengths of the files (`None` for a missing file).
    pub fn file_lengths(&self) -> Vec<Option<u64>> {
        self.paths
            .iter()
            .map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
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
            let f = self.open(span.file)?;
            let chunk = &data[done..done + span.len as usize];
            f.write_all_at(chunk, span.file_offset)
                .map_err(|e| self.err("write", span.file, e))?;
            done += span.len as usize;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes of piece `index` starting at `begin`.
    pub fn read(&self, index: u32, begin: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let mut done = 0usize;
        for span in self.info.piece_spans(index, begin, buf.len() as u32) {
            let f = self.open(span.file)?;
            let chunk = &mut buf[done..done + span.len as usize];
            f.read_exact_at(chunk, span.file_offset)
                .map_err(|e| self.err("read", span.file, e))?;
            done += span.len as usize;
        }
        Ok(())
    }

    /// Whether piece `index` is on disk with the right hash. Missing or short files count as "no".
    pub fn check_piece(&self, index: u32, buf: &mut Vec<u8>) -> bool {
        let size = self.info.piece_size(index) as usize;
        buf.resize(size, 0);
        if self.read(index, 0, buf).is_err() {
            return false;
        }
        self.info
            .piece_hash(index)
            .is_some_and(|h| sha1_digest(buf) == *h)
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

/// SHA-1 of `data` (hardware-accelerated where the CPU has SHA extensions).
pub fn sha1_digest(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}
