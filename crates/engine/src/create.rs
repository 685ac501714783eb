//! Creating a torrent from files on disk: walks the path, hashes pieces on all cores.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use metainfo::create::{default_piece_length, Builder};
use metainfo::Torrent;

/// A file inside the torrent: path components below the torrent's name, and length.
type FileSpec = (Vec<String>, u64);

/// Options for [`create_torrent`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Piece size in bytes (a power of two ≥ 16 KiB); `None` picks one by total size.
    pub piece_length: Option<u32>,
    /// Tracker URLs, one tier each, in order.
    pub trackers: Vec<String>,
    /// Sets the private flag (BEP 27).
    pub private: bool,
    /// Free-form comment.
    pub comment: Option<String>,
    /// Unix time to record as creation date.
    pub creation_date: Option<i64>,
    /// v1 (the default), v2-only or hybrid (BEP 52).
    pub version: metainfo::MetaVersion,
    /// Web seed URLs (BEP 19 `url-list`).
    pub web_seeds: Vec<String>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            piece_length: None,
            trackers: Vec::new(),
            private: false,
            comment: None,
            creation_date: None,
            version: metainfo::MetaVersion::V1,
            web_seeds: Vec::new(),
        }
    }
}

/// Why a torrent could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Reading the input failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The input has no name or no files, or options are invalid.
    #[error(transparent)]
    Metainfo(#[from] metainfo::Error),
    /// The input is not usable.
    #[error("{0}")]
    Input(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Files below `root` in a stable (sorted) order with their path components relative to `root`.
fn walk(root: &Path) -> Result<Vec<(Vec<String>, PathBuf, u64)>, CreateError> {
    let mut out = Vec::new();
    let mut stack = vec![(Vec::<String>::new(), root.to_owned())];
    while let Some((rel, dir)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .collect::<Result<_, _>>()
            .map_err(io_err(&dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let name = e
                .file_name()
                .into_string()
                .map_err(|n| CreateError::Input(format!("file name {n:?} is not UTF-8")))?;
            let path = e.path();
            let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
            let mut components = rel.clone();
            components.push(name);
            if meta.is_dir() {
                stack.push((components, path));
            } else if meta.is_file() {
                out.push((components, path, meta.len()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Builds a v1 torrent of the file or directory at `path`.
pub fn create_torrent(path: &Path, opts: &CreateOptions) -> Result<Torrent, CreateError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CreateError::Input(format!("{} has no usable file name", path.display())))?
        .to_owned();
    let (specs, sources): (Vec<FileSpec>, Vec<(PathBuf, u64)>) = if meta.is_dir() {
        let files = walk(path)?;
        if files.is_empty() {
            return Err(CreateError::Input(format!(
                "{} contains no files",
                path.display()
            )));
        }
        files.into_iter().map(|(c, p, l)| ((c, l), (p, l))).unzip()
    } else {
        (
            vec![(Vec::new(), meta.len())],
            vec![(path.to_owned(), meta.len())],
        )
    };
    let total: u64 = specs.iter().map(|s| s.1).sum();
    let mut builder = if meta.is_dir() {
        Builder::new(name, specs)?
    } else {
        Builder::single_file(name, meta.len())?
    };
    builder = builder.piece_length(
        opts.piece_length
            .unwrap_or_else(|| default_piece_length(total)),
    )?;
    builder = builder
        .trackers(opts.trackers.iter().map(|t| vec![t.clone()]).collect())
        .private(opts.private);
    builder = builder.created_by(crate::session::CLIENT_VERSION);
    if let Some(c) = &opts.comment {
        builder = builder.comment(c.clone());
    }
    if let Some(d) = opts.creation_date {
        builder = builder.creation_date(d);
    }
    builder = builder.meta_version(opts.version);
    let mut torrent = if opts.version == metainfo::MetaVersion::V1 {
        let pieces = hash_pieces(&sources, builder.piece_len(), builder.piece_count())?;
        builder.build(pieces)?
    } else {
        let hashes = hash_v2(&sources, builder.torrent_hasher())?;
        builder.build_hashed(hashes)?
    };
    torrent.url_list = opts.web_seeds.clone();
    Ok(torrent)
}

/// Hashes the files for a v2 or hybrid torrent: per-file Merkle trees (and the v1 pieces of a
/// hybrid), reading each file once, in order.
fn hash_v2(
    files: &[(PathBuf, u64)],
    mut hasher: metainfo::create::TorrentHasher,
) -> Result<metainfo::create::Hashes, CreateError> {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    for (p, len) in files {
        let mut f = File::open(p).map_err(io_err(p))?;
        let mut left = *len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = f.read(&mut buf[..want]).map_err(io_err(p))?;
            if n == 0 {
                return Err(CreateError::Input(format!(
                    "{} changed while it was being hashed",
                    p.display()
                )));
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
    }
    Ok(hasher.finish()?)
}

/// Hashes the concatenation of `files` in pieces, spreading pieces over the available cores.
fn hash_pieces(
    files: &[(PathBuf, u64)],
    piece_length: u32,
    count: u32,
) -> Result<Vec<[u8; 20]>, CreateError> {
    let opened: Vec<(File, u64, u64, &Path)> = {
        let mut offset = 0u64;
        let mut v = Vec::new();
        for (p, len) in files {
            v.push((File::open(p).map_err(io_err(p))?, offset, *len, p.as_path()));
            offset += len;
        }
        v
    };
    let total: u64 = files.iter().map(|f| f.1).sum();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let next = std::sync::atomic::AtomicU32::new(0);
    let results = std::sync::Mutex::new(vec![[0u8; 20]; count as usize]);
    std::thread::scope(|s| -> Result<(), CreateError> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<(), CreateError> {
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= count {
                            return Ok(());
                        }
                        let start = u64::from(i) * u64::from(piece_length);
                        let end = (start + u64::from(piece_length)).min(total);
                        buf.resize((end - start) as usize, 0);
                        for (f, off, len, p) in &opened {
                            let (lo, hi) = (start.max(*off), end.min(off + len));
                            if lo < hi {
                                f.read_exact_at(
                                    &mut buf[(lo - start) as usize..(hi - start) as usize],
                                    lo - off,
                                )
                                .map_err(io_err(p))?;
                            }
                        }
                        let h = metainfo::create::hash_piece(&buf);
                        results.lock().unwrap_or_else(|e| e.into_inner())[i as usize] = h;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| CreateError::Input("hashing thread panicked".into()))??;
        }
        Ok(())
    })?;
    Ok(results.into_inner().unwrap_or_else(|e| e.into_inner()))
}
