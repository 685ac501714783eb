//! Fast-resume records: which pieces were verified, so a restart need not hash them again.
//!
//! A record is a small bencoded file written atomically (temp file, fsync, rename) after the data files
//! were synced, so it never claims a piece whose bytes are not durable. On load it is trusted only if it
//! names the same torrent, has a bitfield of the right size and the files still have the lengths it
//! recorded (and, for a complete torrent, the same modification times); anything else falls back to a
//! full check. Pieces written after the last record (say, before a `kill -9`) are found by checking the
//! pieces the record does not cover.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bencode::Encoder;
use wire::Bitfield;

const VERSION: i64 = 1;

/// A decoded resume record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeData {
    /// The torrent's info-hash.
    pub info_hash: [u8; 20],
    /// Pieces verified when the record was written.
    pub pieces: Bitfield,
    /// (length, mtime seconds) per file when the record was written.
    pub files: Vec<(u64, i64)>,
}

/// File name of the record for `info_hash` inside `dir`.
pub fn path_for(dir: &Path, info_hash: &[u8; 20]) -> PathBuf {
    let hex: String = info_hash.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.resume"))
}

/// (length, mtime seconds) of each path, `None` when a file is missing.
pub fn file_stamps(paths: &[&Path]) -> Option<Vec<(u64, i64)>> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            let mtime = m
                .modified()
                .ok()?
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            Some((m.len(), mtime))
        })
        .collect()
}

impl ResumeData {
    /// Bencodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        e.dict_start();
        e.bytes(b"files").list_start();
        for (len, mtime) in &self.files {
            e.list_start().int(*len as i64).int(*mtime).end();
        }
        e.end();
        e.bytes(b"info-hash").bytes(&self.info_hash);
        e.bytes(b"pieces").bytes(self.pieces.as_bytes());
        e.bytes(b"version").int(VERSION);
        e.end();
        out
    }

    /// Decodes a record for a torrent of `num_pieces` pieces; `None` if it is not a valid record.
    pub fn decode(buf: &[u8], num_pieces: u32) -> Option<Self> {
        let v = bencode::decode(buf).ok()?;
        if v.get(b"version")?.as_int()? != VERSION {
            return None;
        }
        let info_hash: [u8; 20] = v.get(b"info-hash")?.as_bytes()?.try_into().ok()?;
        let pieces = Bitfield::from_bytes(v.get(b"pieces")?.as_bytes()?, num_pieces).ok()?;
        let files = v
            .get(b"files")?
            .as_list()?
            .iter()
            .map(|f| {
                let f = f.as_list()?;
                Some((
                    u64::try_from(f.first()?.as_int()?).ok()?,
                    f.get(1)?.as_int()?,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            info_hash,
            pieces,
            files,
        })
    }

    /// The pieces this record vouches for, given the torrent and the files as they are now.
    pub fn trusted_pieces(&self, info_hash: &[u8; 20], now: &[(u64, i64)]) -> Option<&Bitfield> {
        if &self.info_hash != info_hash || self.files.len() != now.len() {
            return None;
        }
        let complete = self.pieces.all();
        let same = self
            .files
            .iter()
            .zip(now)
            .all(|(a, b)| a.0 == b.0 && (!complete || a.1 == b.1));
        same.then_some(&self.pieces)
    }
}

/// Loads the record at `path`, `None` if absent or invalid.
pub fn load(path: &Path, num_pieces: u32) -> Option<ResumeData> {
    let buf = std::fs::read(path).ok()?;
    ResumeData::decode(&buf, num_pieces)
}

/// Atomically replaces the record at `path`.
pub fn save(path: &Path, data: &ResumeData) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("resume.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&data.encode())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResumeData {
        let mut pieces = Bitfield::new(10);
        pieces.set(0, true);
        pieces.set(9, true);
        ResumeData {
            info_hash: [7; 20],
            pieces,
            files: vec![(100, 5), (0, 6)],
        }
    }

    #[test]
    fn format_is_frozen() {
        let mut expected = b"d5:fileslli100ei5eeli0ei6eee9:info-hash20:".to_vec();
        expected.extend_from_slice(&[7; 20]);
        expected.extend_from_slice(b"6:pieces2:\x80\x407:versioni1ee");
        assert_eq!(sample().encode(), expected);
        assert_eq!(ResumeData::decode(&expected, 10), Some(sample()));
    }

    #[test]
    fn rejects_mismatches() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(ResumeData::decode(&bytes, 17), None, "wrong piece count");
        assert_eq!(
            ResumeData::decode(&bytes[..bytes.len() - 1], 10),
            None,
            "truncated"
        );
        assert!(
            r.trusted_pieces(&[8; 20], &[(100, 5), (0, 6)]).is_none(),
            "other torrent"
        );
        assert!(
            r.trusted_pieces(&[7; 20], &[(99, 5), (0, 6)]).is_none(),
            "file length changed"
        );
        assert!(
            r.trusted_pieces(&[7; 20], &[(100, 9), (0, 6)]).is_some(),
            "mtime ignored while incomplete"
        );
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_for(dir.path(), &[7; 20]);
        save(&p, &sample()).unwrap();
        assert_eq!(load(&p, 10), Some(sample()));
    }
}
