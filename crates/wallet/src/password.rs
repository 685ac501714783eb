//! Keystore passwords from an environment variable, a file or the terminal.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::Error;

/// A keystore password, wiped from memory when dropped.
///
/// `Debug` prints `Password(<redacted>)`; there is no `Display` and no serde support.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password the caller already has.
    pub fn new(password: impl Into<String>) -> Self {
        Self(Zeroizing::new(password.into()))
    }

    /// Reads the password from the environment variable `name` (its whole value).
    pub fn from_env(name: &str) -> Result<Self, Error> {
        std::env::var(name)
            .map(Self::new)
            .map_err(|_| Error::PasswordEnvMissing(name.into()))
    }

    /// Reads the first line of the file at `path`, without its line ending (`\n` or `\r\n`).
    ///
    /// An empty first line gives the empty password, as geth does.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let contents = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| Error::io("read password file", path, e))?,
        );
        let line = contents.split('\n').next().unwrap_or("");
        Ok(Self::new(line.strip_suffix('\r').unwrap_or(line)))
    }

    /// Asks on the terminal (`/dev/tty`) with echo off.
    pub fn prompt(prompt: &str) -> Result<Self, Error> {
        rpassword::prompt_password(prompt)
            .map(Self::new)
            .map_err(|e| Error::io("read a password from", "/dev/tty", e))
    }

    /// Asks twice on the terminal, for a new password; fails if the two differ.
    pub fn prompt_new(prompt: &str, confirm_prompt: &str) -> Result<Self, Error> {
        let first = Self::prompt(prompt)?;
        let second = Self::prompt(confirm_prompt)?;
        if first.0 != second.0 {
            return Err(Error::PasswordMismatch);
        }
        Ok(first)
    }

    /// The password bytes fed to the KDF.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_file_takes_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        for (contents, expected) in [
            ("hunter2\n", "hunter2"),
            ("hunter2\r\nsecond line\n", "hunter2"),
            ("no newline", "no newline"),
            (" spaces kept \n", " spaces kept "),
            ("\n", ""),
            ("", ""),
        ] {
            let path = dir.path().join("pw");
            std::fs::write(&path, contents).unwrap();
            assert_eq!(
                Password::from_file(&path).unwrap().as_bytes(),
                expected.as_bytes()
            );
        }
        let missing = Password::from_file(dir.path().join("missing"));
        assert!(matches!(missing, Err(Error::Io { .. })));
    }

    #[test]
    fn from_env() {
        // Read-only: setting variables while other test threads read the environment is racy.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            Password::from_env("PATH").unwrap().as_bytes(),
            path.as_bytes()
        );
        let missing = Password::from_env("BTT_WALLET_TEST_UNSET_VARIABLE");
        assert!(matches!(missing, Err(Error::PasswordEnvMissing(_))));
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("BTT_WALLET_TEST_UNSET_VARIABLE"));
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?}", Password::new("hunter2"));
        assert_eq!(shown, "Password(<redacted>)");
    }
}
