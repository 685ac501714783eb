//! BitTorrent Mainline DHT (BEP 5, BEP 44) adapter over the `mainline` crate.
//!
//! The engine uses it to find and announce peers for torrents; the storage network uses BEP 44
//! items. Callers see only this crate's types, so `mainline` can be upgraded or replaced here.
//!
//! # Layout
//! - [`Config`] / [`Dht::start`]: bind the UDP socket, pick bootstrap nodes (configured ones plus
//!   nodes saved by an earlier run), start the node. `mainline` runs the protocol on its own actor
//!   thread; no async runtime is needed, and the `async fn`s here work under any executor.
//! - [`Dht::get_peers`] → [`PeerStream`] (addresses as nodes answer) and [`Dht::announce_peer`]
//!   (BEP 5).
//! - [`Dht::put_immutable`] / [`Dht::get_immutable`] and [`Dht::put_mutable`] /
//!   [`Dht::get_mutable`] with [`SigningKey`], [`PublicKey`], [`MutableItem`] (BEP 44).
//! - `table`: the saved routing table, a versioned text file replaced atomically; written every
//!   [`Config::save_interval`] and at shutdown by a small thread, read at start. A missing or
//!   corrupt file is logged and ignored.
//! - [`Error`]: one enum whose messages say what to do.
//!
//! Read-only mode ([`Config::read_only`]) is BEP 43: the node queries but never answers, and its
//! requests carry `ro=1` so other nodes (libtorrent included) keep it out of their routing tables.
//!
//! # Interop notes (checked against libtorrent 2.0.8 by `tests/lt_interop.py`)
//! - Lookups and announces work both ways, also on a one-IP (loopback) network: `mainline`
//!   treats loopback/private addresses as valid for any node id (BEP 42) and keeps several nodes
//!   per IP when their ids differ.
//! - `mainline` answers a query only if its transaction id is exactly 4 bytes; libtorrent sends 2,
//!   so libtorrent cannot use our node as an entry point (our own queries are unaffected).
//! - IPv4 only: `mainline` ignores IPv6 nodes and peers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dht::Error> {
//! let node = dht::Dht::start(dht::Config {
//!     routing_table_path: Some("dht-nodes.txt".into()),
//!     ..Default::default()
//! })?;
//! let info_hash = [0xab; 20];
//! node.announce_peer(info_hash, Some(51413)).await?;
//! let mut peers = node.get_peers(info_hash);
//! while let Some(batch) = peers.next().await {
//!     println!("{batch:?}");
//! }
//! node.shutdown()
//! # }
//! ```
//!
//! BEP 44 addresses can be computed without a node:
//!
//! ```
//! let key = dht::SigningKey::from_bytes(&[1; 32]);
//! let item = dht::MutableItem::sign(&key, b"host at 203.0.113.7", 1, Some(b"btfs")).unwrap();
//! assert_eq!(item.target(), key.public_key().target(Some(b"btfs")));
//! assert_eq!(dht::immutable_target(b"Hello World!")[..2], [0xe5, 0xf9]);
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bep44;
mod config;
mod error;
mod node;
mod table;

pub use bep44::{
    immutable_target, MutableItem, PublicKey, SigningKey, MAX_SALT_BYTES, MAX_VALUE_BYTES,
};
pub use config::{Config, DEFAULT_BOOTSTRAP, DEFAULT_SAVE_INTERVAL};
pub use error::Error;
pub use node::{Dht, NodeInfo, PeerStream};
