//! A directory of keystore files, laid out like geth's `keystore/`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Address, EncryptedKey, Error, Password, PrivateKey, ScryptParams, Signer};

/// Largest file we read while scanning the directory; keystore files are about 500 bytes.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A keystore directory: one `UTC--<timestamp>--<address>` JSON file per key, mode 0600, in a
/// directory created with mode 0700.
///
/// Files are found by their contents (the `address` field), not their names, so keys copied
/// from geth, Clef or other tools that write the address work as they are.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
    scrypt: ScryptParams,
}

impl Keystore {
    /// Opens `dir`, creating it (and its parents) with mode 0700 if it does not exist.
    ///
    /// New keys use [`ScryptParams::STANDARD`] unless [`with_scrypt`](Self::with_scrypt) says
    /// otherwise.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        if !dir.is_dir() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(&dir)
                .map_err(|e| Error::io("create keystore directory", &dir, e))?;
        }
        Ok(Self {
            dir,
            scrypt: ScryptParams::STANDARD,
        })
    }

    /// Uses `params` for keys created or imported from now on.
    pub fn with_scrypt(mut self, params: ScryptParams) -> Self {
        self.scrypt = params;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Generates a new key, stores it encrypted under `password` and returns its address.
    pub fn create(&self, password: &Password) -> Result<Address, Error> {
        self.store(&PrivateKey::generate(), password)
    }

    /// Stores the key given as hex (64 digits, optional `0x`) under `password`.
    ///
    /// Fails with [`Error::KeyExists`] if the directory already holds a key for that address.
    pub fn import(&self, private_key_hex: &str, password: &Password) -> Result<Address, Error> {
        self.store(&PrivateKey::from_hex(private_key_hex)?, password)
    }

    /// Stores `key` under `password`; fails with [`Error::KeyExists`] if its address is taken.
    pub fn store(&self, key: &PrivateKey, password: &Password) -> Result<Address, Error> {
        let address = key.address();
        if let Some(path) = self.find(&address)?.into_iter().next() {
            return Err(Error::KeyExists { address, path });
        }
        let json = EncryptedKey::encrypt(key, password, self.scrypt).to_json();
        let name = format!("UTC--{}--{:x}", utc_timestamp(SystemTime::now()), address);
        write_new_file(&self.dir, &name, json.as_bytes())?;
        Ok(address)
    }

    /// The addresses of all keys in the directory, sorted, each once.
    ///
    /// Files that are not keystores, or do not name their address, are skipped.
    pub fn list(&self) -> Result<Vec<Address>, Error> {
        let mut addresses: Vec<Address> = self.scan()?.into_iter().map(|(a, _)| a).collect();
        addresses.sort();
        addresses.dedup();
        Ok(addresses)
    }

    /// The key files for `address` (usually one), in name order.
    pub fn find(&self, address: &Address) -> Result<Vec<PathBuf>, Error> {
        Ok(self
            .scan()?
            .into_iter()
            .filter(|(a, _)| a == address)
            .map(|(_, path)| path)
            .collect())
    }

    /// Decrypts the key for `address` with `password`.
    ///
    /// With several files for one address, the first that decrypts wins.
    pub fn unlock(&self, address: &Address, password: &Password) -> Result<Signer, Error> {
        let paths = self.find(address)?;
        if paths.is_empty() {
            return Err(Error::UnknownAddress {
                address: *address,
                dir: self.dir.clone(),
            });
        }
        let mut last = Error::WrongPassword;
        for path in paths {
            let json = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            match EncryptedKey::from_json(&json).and_then(|f| f.decrypt(password)) {
                Ok(key) => return Ok(Signer::new(key)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `(address, path)` for every readable keystore file, sorted by file name.
    fn scan(&self) -> Result<Vec<(Address, PathBuf)>, Error> {
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io("read", &self.dir, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &self.dir, e))?;
            let name = entry.file_name();
            // Skip editor backups, our own temporary files and other hidden files, as geth does.
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.ends_with('~') {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
                continue;
            }
            let Ok(json) = fs::read(&path) else { continue };
            if let Some(address) = EncryptedKey::from_json(&json)
                .ok()
                .and_then(|k| k.address())
            {
                found.push((address, path));
            }
        }
        found.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(found)
    }
}

/// Writes `dir/name` atomically with mode 0600: a hidden temporary file is written and synced,
/// then hard-linked to its final name (which fails rather than replace an existing file).
fn write_new_file(dir: &Path, name: &str, contents: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("write", &tmp, e))?;
        fs::hard_link(&tmp, &path).map_err(|e| Error::io("create", &path, e))?;
        // Make the new name durable; a failure here leaves a complete file, so it is ignored.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// `2006-01-02T15-04-05.000000000Z` in UTC, the timestamp geth puts in key file names.
fn utc_timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), using the
/// era-based algorithm (400-year cycles of 146 097 days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keyfile::tests::test_params;

    fn keystore(dir: &Path) -> Keystore {
        Keystore::open(dir.join("keystore"))
            .unwrap()
            .with_scrypt(test_params())
    }

    #[test]
    fn timestamps_match_geth_format() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00-00-00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(951_827_696, 123_456_789); // 2000-02-29 12:34:56
        assert_eq!(utc_timestamp(t), "2000-02-29T12-34-56.123456789Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_399); // 2100-02-28 23:59:59
        assert_eq!(utc_timestamp(t), "2100-02-28T23-59-59.000000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_200); // 2024-03-01
        assert_eq!(utc_timestamp(t), "2024-03-01T00-00-00.000000000Z");
    }

    #[test]
    fn create_list_unlock() {
        let tmp = tempfile::tempdir().unwrap();
        let ks = keystore(tmp.path());
        assert_eq!(ks.list().unwrap(), vec![]);
        let password = Password::new("pw");
        let a = ks.create(&password).unwrap();
        let b = ks.create(&password).unwrap();
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(ks.list().unwrap(), expected);

        let signer = ks.unlock(&a, &password).unwrap();
        assert_eq!(signer.address(), a);
        assert!(matches!(
            ks.unlock(&a, &Password::new("nope")),
            Err(Error::WrongPassword)
        ));
        assert!(matches!(
            ks.unlock(&Address([9; 20]), &password),
            Err(Error::UnknownAddress { .. })
        ));

        // File names follow geth: UTC--<timestamp>--<lowercase address>.
        let path = &ks.find(&a).unwrap()[0];
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("UTC--"), "{name}");
        assert!(name.ends_with(&format!("--{a:x}")), "{name}");
        assert_eq!(
            name.len(),
            "UTC--2006-01-02T15-04-05.000000000Z--".len() + 40
        );
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(ks.dir()).unwrap().count(), 2);
    }

    #[test]
    fn import_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let ks = keystore(tmp.path());
        let secret = "0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
        let password = Password::new("pw");
        let address = ks.import(secret, &password).unwrap();
        assert_eq!(address, PrivateKey::from_hex(secret).unwrap().address());
        let before = fs::read(&ks.find(&address).unwrap()[0]).unwrap();
        let again = ks.import(&secret[2..], &Password::new("other"));
        assert!(matches!(again, Err(Error::KeyExists { .. })));
        assert_eq!(ks.find(&address).unwrap().len(), 1);
        assert_eq!(fs::read(&ks.find(&address).unwrap()[0]).unwrap(), before);
        assert!(matches!(
            ks.import("0x1234", &password),
            Err(Error::InvalidPrivateKey)
        ));
        // The imported key signs for its address.
        let signer = ks.unlock(&address, &password).unwrap();
        let hash = crate::keccak256(b"m");
        assert_eq!(signer.sign_hash(&hash).recover(&hash).unwrap(), address);
    }

    #[test]
    fn junk_files_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let ks = keystore(tmp.path());
        let a = ks.create(&Password::new("pw")).unwrap();
        fs::write(ks.dir().join("README"), "not a key").unwrap();
        fs::write(ks.dir().join(".hidden"), "{}").unwrap();
        fs::write(ks.dir().join("big"), vec![b' '; 100_000]).unwrap();
        fs::create_dir(ks.dir().join("subdir")).unwrap();
        // A copy (backup) of the key file under another name is found but listed once.
        let original = ks.find(&a).unwrap()[0].clone();
        fs::copy(&original, ks.dir().join("backup.json")).unwrap();
        assert_eq!(ks.list().unwrap(), vec![a]);
        assert_eq!(ks.find(&a).unwrap().len(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn file_and_directory_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let ks = Keystore::open(tmp.path().join("a/b/keystore"))
            .unwrap()
            .with_scrypt(test_params());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(ks.dir()), 0o700);
        let a = ks.create(&Password::new("pw")).unwrap();
        assert_eq!(mode(&ks.find(&a).unwrap()[0]), 0o600);
        // Reopening an existing directory works and leaves it alone.
        let again = Keystore::open(ks.dir()).unwrap();
        assert_eq!(again.list().unwrap(), vec![a]);
    }

    #[test]
    fn open_fails_clearly_on_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, "x").unwrap();
        let err = Keystore::open(&file).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot create keystore directory"),
            "{err}"
        );
    }
}
