//! The node's HTTP control plane: the native API with server-sent events, Transmission RPC,
//! Prometheus metrics and the web UI, all on one listener.
//!
//! # Layout
//! - [`Library`] (`library.rs`): the node's torrents, persisted, each driven by an actor that
//!   reconciles start/stop/remove requests with the engine session.
//! - [`views`]: the JSON shapes of the native API, built from engine snapshots.
//! - `server.rs`: [`Server`], the router, and the guards every request passes (Host check against
//!   DNS rebinding, basic auth when not on loopback, the Transmission session-id handshake on every
//!   request that changes state, a body limit), and [`ApiError`] with its mapping to HTTP statuses.
//! - `native.rs`: `/api/v1` (documented in `docs/api.md`), with `/api/v1/events` as SSE.
//! - `transmission.rs`: `POST /transmission/rpc` in Transmission's legacy dialect, so
//!   transmission-remote, Sonarr/Radarr and Flood work unchanged.
//! - `metrics.rs`: `/metrics` in the Prometheus text format.
//! - [`chain`]: what the node shows of the chain and the wallet, read over JSON-RPC from the
//!   in-process node or a remote one.
//! - `node_market.rs`: [`NodeMarket`], the node's side of the Speed market (opt-in): the
//!   extension every torrent gets, the settlement task, the market panel.
//! - `ui.rs`: the web UI, three files embedded in the binary.
//! - [`client`]: a small HTTP client of the native API, for the `btt torrent` commands.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let session = engine::Session::start(engine::Config::default()).await?;
//! let library = api::Library::open(session, api::LibraryConfig {
//!     dir: "state".into(),
//!     download_dir: "downloads".into(),
//!     resume_dir: "state/resume".into(),
//!     market: None,
//! })
//! .await?;
//! let server = api::Server::start(api::Config::default(), library, api::chain::ChainSource::off()).await?;
//! println!("web UI on http://{}/", server.local_addr());
//! # Ok(()) }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod chain;
pub mod client;
mod library;
mod metrics;
mod native;
mod node_market;
mod server;
mod transmission;
mod ui;
pub mod views;

pub use library::{
    AddOptions, Desired, Event, Library, LibraryConfig, LibraryError, Source, TorrentId,
    MAX_TORRENT_BYTES,
};
pub use node_market::{Claim, NodeMarket, Settlement, CLAIM_EVERY};
pub use server::{
    ApiError, Config, Credentials, Server, ServerError, DEFAULT_MAX_BODY_BYTES, SESSION_HEADER,
};

/// The version reported to clients (`version` in Transmission's `session-get`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
