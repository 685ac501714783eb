//! The channel signer: a hot key, separate from the wallet key, that signs vouchers.
//!
//! A channel names its signer when it is opened, so a leaked signer key can spend at most the
//! unspent deposits of our open channels, never the wallet. The key lives unencrypted in one
//! file (it must sign without a password prompt, piece after piece): 64 hex digits and a
//! newline, mode 0600, written atomically (a temporary file, fsync, then linked into place
//! without replacing anything, then the directory fsynced). The key is never logged or shown.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use zeroize::Zeroizing;

/// Why the signer key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("signer key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a valid secp256k1 key in hex.
    #[error("signer key {0} is malformed (expected 64 hex digits): move it aside and a new key is created on the next start; channels opened with the old key can then no longer be paid from")]
    Malformed(PathBuf),
    /// Other users may read the file.
    #[error(
        "signer key {path} has mode {mode:o}, readable by other users: run `chmod 600 {path}`"
    )]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Loads or creates the channel signer key file.
#[derive(Debug, Clone, Copy)]
pub struct SignerKey;

impl SignerKey {
    /// The signer in `path`, creating the file with a fresh random key if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<wallet::Signer, KeyError> {
        match Self::load(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Self::create(path)
            }
            other => other,
        }
    }

    /// The signer in `path`; the file must exist, be private to its owner and hold the key.
    pub fn load(path: &Path) -> Result<wallet::Signer, KeyError> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                KeyError::Malformed(path.to_owned())
            } else {
                io(path)(e)
            }
        })?);
        let key = wallet::PrivateKey::from_hex(&text)
            .map_err(|_| KeyError::Malformed(path.to_owned()))?;
        Ok(wallet::Signer::new(key))
    }

    /// Writes a fresh key to `path` (which must not exist) and returns its signer. If another
    /// process created the file first, its key is loaded instead.
    fn create(path: &Path) -> Result<wallet::Signer, KeyError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        let key = loop {
            rand::rngs::OsRng.fill_bytes(&mut secret[..]);
            // Zero or ≥ the group order has probability ~2⁻¹²⁸; draw again.
            if let Ok(key) = wallet::PrivateKey::from_bytes(&secret) {
                break key;
            }
        };
        let mut text = Zeroizing::new(String::with_capacity(65));
        for b in secret.iter() {
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        text.push('\n');
        match write_atomic(path, text.as_bytes(), 0o600, false) {
            Ok(()) => Ok(wallet::Signer::new(key)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io(path)(e)),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old file or the new one,
/// never a mix: a temporary file beside it with `mode`, fsync, then into place, then the
/// directory fsynced. With `replace == false` an existing `path` is left alone and the error
/// kind is `AlreadyExists`.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    replace: bool,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        if replace {
            std::fs::rename(&tmp, path)?;
        } else {
            // A hard link never replaces an existing file, unlike rename.
            std::fs::hard_link(&tmp, path)?;
        }
        std::fs::File::open(dir)?.sync_all()
    })();
    // After a rename the temporary name is gone already; after a link it is a second name.
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.key");
        let a = SignerKey::load_or_create(&path).unwrap();
        let b = SignerKey::load_or_create(&path).unwrap();
        assert_eq!(a.address(), b.address());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(text[..64].bytes().all(|c| HEX.contains(&c)));
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_known_key_loads_with_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.key");
        // The secp256k1 key 1; its address is well known.
        let key = format!("0x{}1\n", "0".repeat(63));
        write_atomic(&path, key.as_bytes(), 0o600, false).unwrap();
        let s = SignerKey::load_or_create(&path).unwrap();
        assert_eq!(
            s.address().to_string(),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }

    #[test]
    fn a_malformed_file_is_a_clear_error_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.key");
        for body in [&b"not hex"[..], b"", &[0xff, 0xfe][..], &[b'0'; 64][..]] {
            std::fs::remove_file(&path).ok();
            write_atomic(&path, body, 0o600, false).unwrap();
            let err = SignerKey::load_or_create(&path).unwrap_err();
            assert!(matches!(err, KeyError::Malformed(_)), "{err}");
            assert!(err.to_string().contains("move it aside"));
            assert_eq!(std::fs::read(&path).unwrap(), body);
        }
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.key");
        SignerKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SignerKey::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.key");
        let s = SignerKey::load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!format!("{s:?}").contains(text.trim()));
    }

    #[test]
    fn write_atomic_without_replace_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o600, false).unwrap();
        let err = write_atomic(&path, b"two", 0o600, false).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomic(&path, b"three", 0o600, true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
