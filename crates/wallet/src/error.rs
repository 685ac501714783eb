//! The crate's error type.

use std::path::PathBuf;

use crate::Address;

/// Why a wallet operation failed.
///
/// Messages never contain a password or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The keystore's MAC does not match: the password is wrong or the file was altered.
    #[error("wrong password or corrupt keystore: check the password and try again")]
    WrongPassword,
    /// The keystore file is not a well-formed version 3 keystore.
    #[error("malformed keystore: {0}; the file is not an Ethereum v3 keystore")]
    MalformedKeystore(String),
    /// The keystore uses a cipher, KDF or version we do not read.
    #[error("unsupported keystore: {0}; only version 3 with aes-128-ctr and scrypt or pbkdf2 (hmac-sha256) can be read")]
    UnsupportedKeystore(String),
    /// KDF parameters outside the range we accept (they would take too much memory or time).
    #[error("keystore KDF parameters out of range: {0}")]
    KdfParams(String),
    /// Bytes that are not a valid secp256k1 private key.
    #[error("invalid private key: expected 32 bytes (64 hex digits, optional 0x) that are a valid secp256k1 scalar")]
    InvalidPrivateKey,
    /// Text that is not a 20-byte hex address.
    #[error("invalid address {0:?}: expected 0x followed by 40 hex digits")]
    InvalidAddress(String),
    /// A mixed-case address whose EIP-55 checksum does not match.
    #[error("address {0} has a wrong EIP-55 checksum: check for a typo, or write it all in lowercase to skip the check")]
    AddressChecksum(String),
    /// A signature that does not recover to a public key.
    #[error("invalid signature: it does not recover to a public key")]
    InvalidSignature,
    /// A key for this address is already in the keystore directory.
    #[error("a key for {address} already exists at {}; refusing to overwrite it", path.display())]
    KeyExists {
        /// The address whose key exists.
        address: Address,
        /// The existing key file.
        path: PathBuf,
    },
    /// No key file for this address in the keystore directory.
    #[error("no key for {address} in {}; list the keys there or import this one", dir.display())]
    UnknownAddress {
        /// The address asked for.
        address: Address,
        /// The keystore directory searched.
        dir: PathBuf,
    },
    /// The environment variable meant to hold a password is not set.
    #[error("environment variable {0} is not set (or not UTF-8): export it, or give the password another way")]
    PasswordEnvMissing(String),
    /// The two passwords typed at a prompt differ.
    #[error("the passwords do not match: try again")]
    PasswordMismatch,
    /// A file or terminal operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What we were doing ("read", "write", "create directory", …).
        action: &'static str,
        /// The path involved (`/dev/tty` for prompts).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
