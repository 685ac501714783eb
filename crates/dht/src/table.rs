//! The saved routing table: a small versioned text file of node addresses.
//!
//! # Format (version 1)
//!
//! ```text
//! btt-dht-nodes 1
//! 203.0.113.7:6881
//! 198.51.100.2:51413
//! ```
//!
//! The first line names the format and its version; every further line is one IPv4 node address
//! `a.b.c.d:port` (port not 0). Node ids are not stored: nodes are only used as bootstrap
//! contacts, and they tell us their id when they answer. The file is replaced atomically (written
//! to a temporary file in the same directory, synced, then renamed over the old one), so a crash
//! leaves either the old or the new table, never a torn one.

use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

/// First line of a version 1 file.
pub(crate) const HEADER: &str = "btt-dht-nodes 1";

/// At most this many nodes are written or read; a routing table holds a few hundred at most.
pub(crate) const MAX_NODES: usize = 1000;

/// Longest file we read: `MAX_NODES` lines of `255.255.255.255:65535\n` plus the header.
const MAX_FILE_BYTES: u64 = (MAX_NODES as u64 + 1) * 24;

/// Why a saved table was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// The file is larger than any table we write.
    #[error("it is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    /// The file is not valid UTF-8 text.
    #[error("it is not text")]
    NotText,
    /// The first line is not [`HEADER`].
    #[error("it does not start with `{HEADER}` (unknown format or version)")]
    UnknownFormat,
    /// A line that is not an IPv4 `address:port`.
    #[error("line {0} is not an ipv4 address:port")]
    BadLine(usize),
}

/// Encodes `nodes` (at most [`MAX_NODES`] of them) as a version 1 file.
pub(crate) fn encode(nodes: &[SocketAddrV4]) -> String {
    let mut out = String::with_capacity(HEADER.len() + 1 + nodes.len().min(MAX_NODES) * 22);
    out.push_str(HEADER);
    out.push('\n');
    for node in nodes.iter().take(MAX_NODES) {
        out.push_str(&node.to_string());
        out.push('\n');
    }
    out
}

/// Decodes a version 1 file. Blank lines are ignored; anything else malformed rejects the file.
pub(crate) fn decode(text: &str) -> Result<Vec<SocketAddrV4>, LoadError> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(LoadError::UnknownFormat);
    }
    let mut nodes = Vec::new();
    for (index, line) in lines.enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let addr: SocketAddrV4 = line.parse().map_err(|_| LoadError::BadLine(index + 2))?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(LoadError::BadLine(index + 2));
        }
        if nodes.len() < MAX_NODES && !nodes.contains(&addr) {
            nodes.push(addr);
        }
    }
    Ok(nodes)
}

/// Reads and decodes the table at `path`.
pub(crate) fn load(path: &Path) -> Result<Vec<SocketAddrV4>, LoadError> {
    let mut bytes = Vec::new();
    fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| LoadError::NotText)?;
    decode(text)
}

/// Atomically replaces the table at `path` with `nodes`.
pub(crate) fn save(path: &Path, nodes: &[SocketAddrV4]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(encode(nodes).as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `dir/name` → `dir/.name.tmp`, in the same directory so the rename stays on one file system.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dht-nodes".to_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn encodes_exact_bytes() {
        let nodes = [addr("203.0.113.7:6881"), addr("127.0.0.1:51413")];
        assert_eq!(
            encode(&nodes),
            "btt-dht-nodes 1\n203.0.113.7:6881\n127.0.0.1:51413\n"
        );
        assert_eq!(encode(&[]), "btt-dht-nodes 1\n");
    }

    #[test]
    fn round_trips() {
        let nodes = vec![addr("203.0.113.7:6881"), addr("127.0.0.1:51413")];
        assert_eq!(decode(&encode(&nodes)).unwrap(), nodes);
    }

    #[test]
    fn tolerates_blank_lines_and_crlf_and_drops_duplicates() {
        let text = "btt-dht-nodes 1\r\n\r\n1.2.3.4:5\r\n1.2.3.4:5\n";
        assert_eq!(decode(text).unwrap(), vec![addr("1.2.3.4:5")]);
    }

    #[test]
    fn rejects_unknown_header_or_version() {
        assert!(matches!(decode(""), Err(LoadError::UnknownFormat)));
        assert!(matches!(
            decode("btt-dht-nodes 2\n1.2.3.4:5\n"),
            Err(LoadError::UnknownFormat)
        ));
        assert!(matches!(
            decode("{\"nodes\":[]}"),
            Err(LoadError::UnknownFormat)
        ));
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        for bad in [
            "1.2.3.4",
            "1.2.3.4:0",
            "0.0.0.0:5",
            "[::1]:5",
            "1.2.3.4:70000",
            "x",
        ] {
            let text = format!("btt-dht-nodes 1\n9.9.9.9:1\n{bad}\n");
            assert!(
                matches!(decode(&text), Err(LoadError::BadLine(3))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn caps_the_number_of_nodes() {
        let nodes: Vec<_> = (0..(MAX_NODES + 5) as u32)
            .map(|i| SocketAddrV4::new((0x0a00_0000 + i).into(), 1))
            .collect();
        assert_eq!(decode(&encode(&nodes)).unwrap().len(), MAX_NODES);
    }

    #[test]
    fn save_then_load_replaces_atomically() {
        let dir = std::env::temp_dir().join(format!("dht-table-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes");
        save(&path, &[addr("1.2.3.4:5")]).unwrap();
        save(&path, &[addr("6.7.8.9:10")]).unwrap();
        assert_eq!(load(&path).unwrap(), vec![addr("6.7.8.9:10")]);
        assert!(!temp_path(&path).exists());
        fs::write(&path, vec![b'x'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(load(&path), Err(LoadError::TooLarge)));
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(load(&path), Err(LoadError::NotText)));
        fs::remove_dir_all(&dir).unwrap();
    }
}
