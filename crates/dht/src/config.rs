//! How a [`crate::Dht`] node starts.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// The public routers new nodes ask first (the same list `mainline` uses).
pub const DEFAULT_BOOTSTRAP: [&str; 4] = mainline::DEFAULT_BOOTSTRAP_NODES;

/// How often the routing table is written to [`Config::routing_table_path`] while running.
pub const DEFAULT_SAVE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Start-up settings of a DHT node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Nodes to ask first, as `host:port`; host names are resolved once at start.
    /// Empty means none (the first node of a private network). Defaults to [`DEFAULT_BOOTSTRAP`].
    pub bootstrap: Vec<String>,
    /// Local IPv4 address of the UDP socket. Defaults to `0.0.0.0` (all interfaces).
    pub bind_address: Ipv4Addr,
    /// UDP port. `None`: 6881 if free, otherwise any free port. `Some(0)`: any free port.
    /// `Some(p)`: exactly `p`, or [`crate::Error::PortInUse`].
    pub port: Option<u16>,
    /// Client-only mode (BEP 43): never answer queries; requests carry `ro=1`, so other nodes do
    /// not put us in their routing tables. Lookups, announces and BEP 44 still work.
    pub read_only: bool,
    /// Where the routing table is saved (periodically and at shutdown) and read at start. Saved
    /// nodes are used as bootstrap nodes in addition to [`Config::bootstrap`].
    pub routing_table_path: Option<PathBuf>,
    /// How often the routing table is saved while running.
    pub save_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bootstrap: DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect(),
            bind_address: Ipv4Addr::UNSPECIFIED,
            port: None,
            read_only: false,
            routing_table_path: None,
            save_interval: DEFAULT_SAVE_INTERVAL,
        }
    }
}
