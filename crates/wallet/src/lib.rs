//! Keys, encrypted keystores and signing for BTT accounts (Ethereum-compatible).
//!
//! # Layout
//! - [`PrivateKey`] (secp256k1, wiped on drop, never printed) and [`Address`] (Keccak-256 of the
//!   public key, EIP-55 checksummed display and parsing).
//! - [`Signer`] signs 32-byte hashes with low `s` and a recovery id ([`Signature`]),
//!   `personal_sign` messages (EIP-191, [`hash_message`]) and EIP-712 structs ([`eip712`]).
//! - [`EncryptedKey`] is one keystore v3 file (Web3 Secret Storage): written with scrypt and
//!   AES-128-CTR, read with scrypt or PBKDF2-HMAC-SHA256, MAC checked in constant time.
//! - [`Keystore`] is a directory of such files named like geth's (`UTC--<time>--<address>`),
//!   written atomically with mode 0600.
//! - [`Password`] comes from an environment variable, the first line of a file, or a
//!   terminal prompt with echo off; it is wiped on drop and never printed.
//!
//! - [`RpcClient`] ([`client`]) talks JSON-RPC over HTTP to an Ethereum-compatible node
//!   (balances, nonces, fees, receipts), and [`sign_eip1559`] signs transfers for it.
//!
//! A private key leaves this crate only encrypted: [`PrivateKey`] has no `Display`, no serde
//! and no accessor for its bytes.
//!
//! ```
//! use wallet::{hash_message, Keystore, Password, ScryptParams};
//!
//! let dir = std::env::temp_dir().join(format!("wallet-doctest-{}", std::process::id()));
//! // Light scrypt keeps the example fast; real keys use the default (ScryptParams::STANDARD).
//! let keystore = Keystore::open(&dir)?.with_scrypt(ScryptParams::new(10, 8, 1)?);
//! let password = Password::new("correct horse battery staple");
//! let address = keystore.create(&password)?;
//! assert_eq!(keystore.list()?, vec![address]);
//!
//! let signer = keystore.unlock(&address, &password)?;
//! let signature = signer.sign_message("hello");
//! assert_eq!(signature.recover(&hash_message("hello"))?, address);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), wallet::Error>(())
//! ```
//!
//! # Dependencies
//! `secp256k1` is the libsecp256k1 binding alloy uses for sender recovery (same version), so
//! the chain links one copy of the C library. `sha3` provides Keccak-256 (also alloy's).
//! `scrypt`, `pbkdf2`, `hmac`, `sha2`, `aes` and `ctr` are the RustCrypto primitives the
//! keystore format names; `subtle` compares MACs in constant time; `zeroize` wipes secrets;
//! `rpassword` reads from the terminal without echo (safe code only, as the workspace
//! forbids `unsafe`). `chain-types`, `alloy-consensus` and `alloy-primitives` give the chain
//! client the exact transaction types and encodings the node uses; `tokio` carries its HTTP.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod address;
pub mod client;
mod dir;
pub mod eip712;
mod error;
mod hex;
mod key;
mod keyfile;
mod password;

pub use address::{keccak256, Address};
pub use client::{sign_eip1559, ClientError, Fees, RpcClient, SignedTx, TxReceipt};
pub use dir::Keystore;
pub use eip712::Eip712Domain;
pub use error::Error;
pub use key::{hash_message, PrivateKey, Signature, Signer};
pub use keyfile::{EncryptedKey, ScryptParams};
pub use password::Password;

/// Chain types in the client's API, re-exported so callers need no direct dependency.
pub use chain_types::{Wei, B256};
