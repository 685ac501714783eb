//! `btt node`: the daemon. A torrent session, the chain (a single-validator chain in-process, a
//! remote node, or none), and the HTTP API, Transmission RPC and web UI on one port.
//!
//! Settings come from, in rising priority: built-in defaults, the TOML config file
//! (`$XDG_CONFIG_HOME/btt/<network>/node.toml` unless `--config` names one), environment
//! variables, and flags. Every config key has a flag and an environment twin (see `docs/node.md`).
//!
//! Data layout under the data directory (`$XDG_DATA_HOME/btt/<network>` by default):
//! `torrents/` (the torrent list and .torrent files), `session/` (resume records, DHT nodes),
//! `downloads/` (the default download directory), `chain/` (the local chain), `market/` (the
//! Speed market's books and channel signer key). The wallet's keystore is `btt wallet`'s own
//! (see `--keystore`).
//!
//! The Speed market (`docs/speed.md`) is off by default. `--market true` (or a selling price,
//! `--sell-reserve`) turns it on: every torrent then sells on the node's terms when a reserve is
//! set, buys within its own budget (given per torrent through the API, zero by default), and due
//! earnings are claimed every 30 s and all of them when the node stops.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// `btt node`
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct NodeArgs {
    /// Config file (TOML). Default: $XDG_CONFIG_HOME/btt/<network>/node.toml when it exists.
    #[arg(long, env = "BTT_CONFIG")]
    config: Option<PathBuf>,
    /// Network name; data and config live in a subfolder of this name. [config: network]
    #[arg(long, env = "BTT_NETWORK")]
    network: Option<String>,
    /// Data directory. [config: data_dir] (default: $XDG_DATA_HOME/btt/<network>)
    #[arg(long, env = "BTT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Wallet keystore shown in the UI. [config: keystore] (default: <data_dir>/keystore when
    /// --data-dir is given, else $XDG_DATA_HOME/btt/keystore, where `btt wallet` keeps keys)
    #[arg(long, env = "BTT_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// Where new torrents download to. [config: download_dir] (default: <data_dir>/downloads)
    #[arg(long, env = "BTT_DOWNLOAD_DIR")]
    download_dir: Option<PathBuf>,
    /// Address of the HTTP API, Transmission RPC and web UI. [config: http.listen] (default: 127.0.0.1:9091)
    #[arg(long, env = "BTT_HTTP")]
    http: Option<SocketAddr>,
    /// User name for HTTP basic auth (required to listen beyond loopback). [config: http.username]
    #[arg(long, env = "BTT_HTTP_USERNAME")]
    http_username: Option<String>,
    /// Password for HTTP basic auth. [config: http.password]
    #[arg(long, env = "BTT_HTTP_PASSWORD", hide_env_values = true)]
    http_password: Option<String>,
    /// TCP/uTP port for peers (0 picks a free one). [config: peer.listen_port] (default: 6881)
    #[arg(long, env = "BTT_LISTEN_PORT")]
    listen_port: Option<u16>,
    /// Address for peers. [config: peer.listen_ip] (default: 0.0.0.0)
    #[arg(long, env = "BTT_LISTEN_IP")]
    listen_ip: Option<IpAddr>,
    /// Most peer connections per torrent. [config: peer.max_connections] (default: 50)
    #[arg(long, env = "BTT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Peers unchoked at once, plus one optimistic. [config: peer.upload_slots] (default: 8)
    #[arg(long, env = "BTT_UPLOAD_SLOTS")]
    upload_slots: Option<usize>,
    /// Download limit, bytes per second, 0 = none. [config: peer.download_limit]
    #[arg(long, env = "BTT_DOWNLOAD_LIMIT")]
    download_limit: Option<u64>,
    /// Upload limit, bytes per second, 0 = none. [config: peer.upload_limit]
    #[arg(long, env = "BTT_UPLOAD_LIMIT")]
    upload_limit: Option<u64>,
    /// DHT on or off. [config: peer.dht] (default: true)
    #[arg(long, env = "BTT_DHT")]
    dht: Option<bool>,
    /// DHT bootstrap nodes, HOST:PORT, comma-separated. [config: peer.dht_bootstrap] (default: the public routers)
    #[arg(long, env = "BTT_DHT_BOOTSTRAP", value_delimiter = ',')]
    dht_bootstrap: Option<Vec<String>>,
    /// Local service discovery on or off. [config: peer.lsd] (default: true)
    #[arg(long, env = "BTT_LSD")]
    lsd: Option<bool>,
    /// Peer exchange on or off. [config: peer.pex] (default: true)
    #[arg(long, env = "BTT_PEX")]
    pex: Option<bool>,
    /// uTP on or off. [config: peer.utp] (default: true)
    #[arg(long, env = "BTT_UTP")]
    utp: Option<bool>,
    /// Chain: `local` (a single validator in this process), `remote` (use --chain-rpc) or `off`. [config: chain.mode] (default: local)
    #[arg(long, env = "BTT_CHAIN")]
    chain: Option<ChainMode>,
    /// JSON-RPC URL of a remote chain node. [config: chain.rpc]
    #[arg(long, env = "BTT_CHAIN_RPC")]
    chain_rpc: Option<String>,
    /// Where the local chain serves JSON-RPC. [config: chain.rpc_listen] (default: 127.0.0.1:8545)
    #[arg(long, env = "BTT_CHAIN_RPC_LISTEN")]
    chain_rpc_listen: Option<SocketAddr>,
    /// Where the local chain's consensus listens. [config: chain.p2p_listen] (default: 127.0.0.1:30300)
    #[arg(long, env = "BTT_CHAIN_P2P_LISTEN")]
    chain_p2p_listen: Option<SocketAddr>,
    /// Speed market on or off. [config: market.enabled] (default: false; on when --sell-reserve is given)
    #[arg(long, env = "BTT_MARKET")]
    market: Option<bool>,
    /// Sell upload on every torrent at no less than this price, wei per byte (turns the market on). [config: market.sell_reserve]
    #[arg(long, env = "BTT_SELL_RESERVE")]
    sell_reserve: Option<u64>,
    /// Paid upload slots per round when selling. [config: market.paid_slots] (default: 4)
    #[arg(long, env = "BTT_PAID_SLOTS")]
    paid_slots: Option<u32>,
    /// Share of upload kept free for peers who do not pay, percent. [config: market.free_share] (default: 20)
    #[arg(long, env = "BTT_FREE_SHARE")]
    free_share: Option<u32>,
    /// File holding the market wallet's hex private key on its first line. [config: market.key_file]
    #[arg(long, env = "BTT_MARKET_KEY_FILE")]
    market_key_file: Option<PathBuf>,
    /// The market wallet's address in the keystore (see --keystore, --password-file). [config: market.from]
    #[arg(long, env = "BTT_MARKET_FROM")]
    market_from: Option<String>,
    /// File holding the keystore password on its first line. [config: market.password_file]
    #[arg(long, env = "BTT_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// The market's books and channel signer key. [config: market.dir] (default: <data_dir>/market)
    #[arg(long, env = "BTT_MARKET_DIR")]
    market_dir: Option<PathBuf>,
    /// Log format: `text` or `json`. [config: log.format] (default: text)
    #[arg(long, env = "BTT_LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

/// Where chain data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChainMode {
    /// A single-validator chain in this process.
    Local,
    /// A chain node elsewhere (`chain.rpc`).
    Remote,
    /// No chain.
    Off,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The config file, and the effective configuration after env and flags.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    network: Option<String>,
    data_dir: Option<PathBuf>,
    download_dir: Option<PathBuf>,
    keystore: Option<PathBuf>,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    peer: PeerSection,
    #[serde(default)]
    chain: ChainSection,
    #[serde(default)]
    market: MarketSection,
    #[serde(default)]
    log: LogSection,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    listen: Option<SocketAddr>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSection {
    listen_port: Option<u16>,
    listen_ip: Option<IpAddr>,
    max_connections: Option<usize>,
    upload_slots: Option<usize>,
    download_limit: Option<u64>,
    upload_limit: Option<u64>,
    dht: Option<bool>,
    dht_bootstrap: Option<Vec<String>>,
    lsd: Option<bool>,
    pex: Option<bool>,
    utp: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainSection {
    mode: Option<ChainMode>,
    rpc: Option<String>,
    rpc_listen: Option<SocketAddr>,
    p2p_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketSection {
    enabled: Option<bool>,
    sell_reserve: Option<u64>,
    paid_slots: Option<u32>,
    free_share: Option<u32>,
    key_file: Option<PathBuf>,
    from: Option<String>,
    password_file: Option<PathBuf>,
    dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    format: Option<LogFormat>,
}

/// Everything resolved.
#[derive(Debug, Clone)]
struct Settings {
    network: String,
    data_dir: PathBuf,
    download_dir: PathBuf,
    keystore: PathBuf,
    http: SocketAddr,
    credentials: Option<api::Credentials>,
    session: crate::SessionArgs,
    chain: ChainMode,
    chain_rpc: Option<String>,
    chain_rpc_listen: SocketAddr,
    chain_p2p_listen: SocketAddr,
    market: MarketSettings,
    log_format: LogFormat,
}

/// The Speed market's settings, resolved (keys are read only when the node starts).
#[derive(Debug, Clone)]
struct MarketSettings {
    enabled: bool,
    sell_reserve: Option<u64>,
    paid_slots: u32,
    free_share: u32,
    key_file: Option<PathBuf>,
    from: Option<String>,
    password_file: Option<PathBuf>,
    dir: PathBuf,
}

impl MarketSettings {
    /// The selling terms, checked; `None` when the node does not sell.
    fn terms(&self) -> Result<Option<market::SellerTerms>> {
        crate::market_cmd::SellArgs {
            reserve: self.sell_reserve,
            paid_slots: self.paid_slots,
            free_share: self.free_share,
        }
        .terms()
    }
}

/// Reads the config file and merges env and flags over it.
fn resolve(a: &NodeArgs) -> Result<(Settings, FileConfig)> {
    let pre_network = a.network.clone().unwrap_or_else(|| "local".into());
    let (path, required) = match &a.config {
        Some(p) => (p.clone(), true),
        None => (
            crate::xdg_dir("XDG_CONFIG_HOME", ".config")
                .join(&pre_network)
                .join("node.toml"),
            false,
        ),
    };
    let file: FileConfig = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("config file {} is invalid", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => FileConfig::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let network = a
        .network
        .clone()
        .or(file.network.clone())
        .unwrap_or_else(|| "local".into());
    if network.is_empty()
        || !network
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("network name {network:?} must be letters, digits, '-' or '_'");
    }
    let explicit_data_dir = a.data_dir.clone().or(file.data_dir.clone());
    let data_dir = absolute(
        &explicit_data_dir
            .clone()
            .unwrap_or_else(|| crate::xdg_dir("XDG_DATA_HOME", ".local/share").join(&network)),
    )?;
    // Keys belong to the user, not to a network: by default the node shows the keystore that
    // `btt wallet` uses, `<data dir>/keystore` with the same data dir.
    let keystore = absolute(
        &a.keystore
            .clone()
            .or(file.keystore.clone())
            .unwrap_or_else(|| match &explicit_data_dir {
                Some(_) => data_dir.join("keystore"),
                None => crate::xdg_dir("XDG_DATA_HOME", ".local/share").join("keystore"),
            }),
    )?;
    let download_dir = absolute(
        &a.download_dir
            .clone()
            .or(file.download_dir.clone())
            .unwrap_or_else(|| data_dir.join("downloads")),
    )?;
    let http = a
        .http
        .or(file.http.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9091)));
    let username = a.http_username.clone().or(file.http.username.clone());
    let password = a.http_password.clone().or(file.http.password.clone());
    let credentials = match (username, password) {
        (Some(username), Some(password)) => Some(api::Credentials { username, password }),
        (None, None) => None,
        _ => bail!("give both an HTTP user name and a password, or neither"),
    };
    let p = &file.peer;
    let dht = a.dht.or(p.dht).unwrap_or(true);
    let session = crate::SessionArgs {
        listen_port: a.listen_port.or(p.listen_port).unwrap_or(6881),
        listen_ip: a
            .listen_ip
            .or(p.listen_ip)
            .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        peers: Vec::new(),
        data_dir: Some(data_dir.join("session")),
        download_limit: a.download_limit.or(p.download_limit).unwrap_or(0),
        upload_limit: a.upload_limit.or(p.upload_limit).unwrap_or(0),
        max_connections: a.max_connections.or(p.max_connections).unwrap_or(50),
        upload_slots: a.upload_slots.or(p.upload_slots).unwrap_or(8),
        log_interval: 5,
        discovery: crate::DiscoveryArgs {
            no_dht: !dht,
            dht_bootstrap: a
                .dht_bootstrap
                .clone()
                .or(p.dht_bootstrap.clone())
                .unwrap_or_default(),
            dht_port: None,
            dht_read_only: false,
            no_lsd: !a.lsd.or(p.lsd).unwrap_or(true),
            no_pex: !a.pex.or(p.pex).unwrap_or(true),
            no_utp: !a.utp.or(p.utp).unwrap_or(true),
        },
    };
    let chain = a.chain.or(file.chain.mode).unwrap_or(ChainMode::Local);
    let chain_rpc = a.chain_rpc.clone().or(file.chain.rpc.clone());
    if chain == ChainMode::Remote && chain_rpc.is_none() {
        bail!("chain mode remote needs the node's JSON-RPC URL: --chain-rpc http://HOST:PORT");
    }
    let m = &file.market;
    let sell_reserve = a.sell_reserve.or(m.sell_reserve);
    let enabled = match a.market.or(m.enabled) {
        Some(false) if sell_reserve.is_some() => bail!(
            "the market is off but a selling price is set (--sell-reserve / market.sell_reserve): \
             drop the price, or turn the market on with --market true"
        ),
        Some(on) => on,
        None => sell_reserve.is_some(),
    };
    let market = MarketSettings {
        enabled,
        sell_reserve,
        paid_slots: a.paid_slots.or(m.paid_slots).unwrap_or(4),
        free_share: a.free_share.or(m.free_share).unwrap_or(20),
        key_file: a.market_key_file.clone().or(m.key_file.clone()),
        from: a.market_from.clone().or(m.from.clone()),
        password_file: a.password_file.clone().or(m.password_file.clone()),
        dir: absolute(
            &a.market_dir
                .clone()
                .or(m.dir.clone())
                .unwrap_or_else(|| data_dir.join("market")),
        )?,
    };
    if market.enabled {
        if chain == ChainMode::Off {
            bail!(
                "the Speed market needs a chain for its payment channels, but the chain is off: \
                 run with --chain local or --chain remote --chain-rpc URL, or turn the market off \
                 (--market false, no --sell-reserve)"
            );
        }
        match (&market.key_file, &market.from) {
            (Some(_), Some(_)) => bail!(
                "both --market-key-file and --market-from name the market wallet's key: give one"
            ),
            (None, None) => bail!(
                "the market is on but no wallet key was given: pass --market-key-file FILE, or \
                 --market-from ADDRESS --password-file FILE (a key in the keystore)"
            ),
            _ => {}
        }
        market.terms()?;
    }
    let settings = Settings {
        network,
        data_dir,
        download_dir,
        keystore,
        http,
        credentials,
        session,
        chain,
        chain_rpc,
        chain_rpc_listen: a
            .chain_rpc_listen
            .or(file.chain.rpc_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8545))),
        chain_p2p_listen: a
            .chain_p2p_listen
            .or(file.chain.p2p_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 30300))),
        market,
        log_format: a.log_format.or(file.log.format).unwrap_or(LogFormat::Text),
    };
    Ok((settings, file))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current directory")?
        .join(p))
}

/// The effective configuration as a config file would say it.
fn effective_toml(s: &Settings) -> Result<String> {
    let d = &s.session.discovery;
    let file = FileConfig {
        network: Some(s.network.clone()),
        data_dir: Some(s.data_dir.clone()),
        download_dir: Some(s.download_dir.clone()),
        keystore: Some(s.keystore.clone()),
        http: HttpSection {
            listen: Some(s.http),
            username: s.credentials.as_ref().map(|c| c.username.clone()),
            // Never printed.
            password: s.credentials.as_ref().map(|_| "<set>".into()),
        },
        peer: PeerSection {
            listen_port: Some(s.session.listen_port),
            listen_ip: Some(s.session.listen_ip),
            max_connections: Some(s.session.max_connections),
            upload_slots: Some(s.session.upload_slots),
            download_limit: Some(s.session.download_limit),
            upload_limit: Some(s.session.upload_limit),
            dht: Some(!d.no_dht),
            dht_bootstrap: Some(d.dht_bootstrap.clone()),
            lsd: Some(!d.no_lsd),
            pex: Some(!d.no_pex),
            utp: Some(!d.no_utp),
        },
        chain: ChainSection {
            mode: Some(s.chain),
            rpc: s.chain_rpc.clone(),
            rpc_listen: Some(s.chain_rpc_listen),
            p2p_listen: Some(s.chain_p2p_listen),
        },
        market: MarketSection {
            enabled: Some(s.market.enabled),
            sell_reserve: s.market.sell_reserve,
            paid_slots: Some(s.market.paid_slots),
            free_share: Some(s.market.free_share),
            key_file: s.market.key_file.clone(),
            from: s.market.from.clone(),
            password_file: s.market.password_file.clone(),
            dir: Some(s.market.dir.clone()),
        },
        log: LogSection {
            format: Some(s.log_format),
        },
    };
    Ok(toml::to_string(&file)?)
}

/// The log format asked for by flag, env or config file (for setting up logging before the rest).
pub(crate) fn log_format(a: &NodeArgs) -> LogFormat {
    resolve(a)
        .map(|(s, _)| s.log_format)
        .unwrap_or(LogFormat::Text)
}

pub(crate) fn run(a: NodeArgs) -> Result<()> {
    let (settings, _) = resolve(&a)?;
    if a.print_config {
        print!("{}", effective_toml(&settings)?);
        return Ok(());
    }
    let rt = crate::runtime()?;
    rt.block_on(serve(settings))
}

async fn serve(s: Settings) -> Result<()> {
    for dir in [&s.data_dir, &s.download_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _lock = lock_data_dir(&s.data_dir)?;
    let chain_node = match s.chain {
        ChainMode::Local => Some(start_local_chain(&s).await?),
        _ => None,
    };
    let chain = match (s.chain, &chain_node) {
        (ChainMode::Local, Some(node)) => {
            api::chain::ChainSource::local(&format!("http://{}", node.rpc_addr()))?
        }
        (ChainMode::Remote, _) => {
            api::chain::ChainSource::remote(s.chain_rpc.as_deref().unwrap_or_default())?
        }
        _ => api::chain::ChainSource::off(),
    };
    let market = match chain.rpc_url() {
        Some(url) if s.market.enabled => Some(start_market(&s, url).await?),
        _ => None,
    };
    let session = crate::start_session(&s.session).await?;
    let library = api::Library::open(
        session.clone(),
        api::LibraryConfig {
            dir: s.data_dir.join("torrents"),
            download_dir: s.download_dir.clone(),
            resume_dir: s.data_dir.join("session").join("resume"),
            market: market.clone(),
        },
    )
    .await?;
    let settlement = market
        .as_ref()
        .map(|m| m.start_settlement(api::CLAIM_EVERY));
    let server = api::Server::start(
        api::Config {
            listen: s.http,
            credentials: s.credentials.clone(),
            network: s.network.clone(),
            keystore_dir: Some(s.keystore.clone()),
            ..api::Config::default()
        },
        library.clone(),
        chain.clone(),
    )
    .await?;
    let addr = server.local_addr();
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    println!(
        "btt node: web UI and API on http://{host}:{}/ (network {}, data {}, peers on port {}, chain {})",
        addr.port(),
        s.network,
        s.data_dir.display(),
        session.listen_port(),
        match chain.rpc_url() {
            Some(url) => format!("{:?} at {url}", s.chain).to_lowercase(),
            None => "off".into(),
        }
    );
    tracing::info!(http = %addr, peer_port = session.listen_port(), "node running");
    crate::shutdown_signal().await;
    eprintln!("btt node: stopping (writing resume records)");
    server.stop().await;
    library.shutdown().await;
    // After the library: the last vouchers are in the book. Before the local chain stops: the
    // claims go to it.
    if let Some(settlement) = settlement {
        let claims = settlement.stop().await;
        let failed = claims.iter().filter(|c| c.result.is_err()).count();
        if failed > 0 {
            eprintln!(
                "btt node: {failed} claims failed; run `btt market claim` with this node's \
                 market dir and chain later"
            );
        }
    }
    if let Some(node) = chain_node {
        node.stop().await?;
    }
    Ok(())
}

/// Opens the market: the wallet key, the chain at `rpc_url`, the channel signer and the books.
async fn start_market(s: &Settings, rpc_url: &str) -> Result<std::sync::Arc<api::NodeMarket>> {
    let m = &s.market;
    let terms = m.terms()?;
    let args = crate::market_cmd::MarketArgs {
        chain_rpc: rpc_url.to_string(),
        wallet_key_file: m.key_file.clone(),
        keystore: m.from.as_ref().map(|_| s.keystore.clone()),
        from: m.from.clone(),
        password_file: m.password_file.clone(),
        market_dir: Some(m.dir.clone()),
    };
    let node = crate::market_cmd::start(&args, &s.data_dir, terms.clone()).await?;
    match &terms {
        Some(t) => eprintln!(
            "{}",
            crate::market_cmd::describe_terms(t, node.wallet, rpc_url)
        ),
        None => eprintln!(
            "market on: buying only, within each torrent's own budget (none by default), from \
             {} on {rpc_url}",
            node.wallet
        ),
    }
    Ok(std::sync::Arc::new(api::NodeMarket::new(
        node.market,
        node.books,
        terms,
    )))
}

/// Takes an exclusive lock on `<data_dir>/node.lock` for the life of the process, so two nodes
/// never share a data directory. The kernel drops the lock when the process dies, `kill -9`
/// included, so a stale lock file never blocks a restart.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File> {
    let path = data_dir.join("node.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "another btt node is using {}; stop it, or give this one its own --data-dir",
            data_dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Starts the in-process single-validator chain, creating it on first start.
async fn start_local_chain(s: &Settings) -> Result<chain_node::Node> {
    let dir = s.data_dir.join("chain");
    let config_path = dir.join("node-0").join("config.toml");
    if !config_path.exists() {
        if dir.join("genesis.json").exists() {
            bail!(
                "{} has a genesis but no node-0/config.toml; move the directory away to start a new local chain",
                dir.display()
            );
        }
        crate::chain_cmd::init_local(&dir)?;
    }
    let mut config = chain_node::NodeConfig::load(&config_path)?;
    config.rpc.listen = s.chain_rpc_listen;
    config.p2p.listen = s.chain_p2p_listen;
    chain_node::Node::start(&config).await.with_context(|| {
        format!(
            "cannot start the local chain (JSON-RPC {}, p2p {}); choose other ports with --chain-rpc-listen/--chain-p2p-listen or run with --chain off",
            s.chain_rpc_listen, s.chain_p2p_listen
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "network = \"test\"\ndata_dir = \"/srv/btt\"\n[http]\nlisten = \"127.0.0.1:9999\"\n[peer]\nlisten_port = 7000\nupload_slots = 3\n[chain]\nmode = \"off\"\n",
        )
        .unwrap();
        let a = NodeArgs {
            config: Some(path.clone()),
            listen_port: Some(7001),
            ..NodeArgs::default()
        };
        let (s, _) = resolve(&a).unwrap();
        assert_eq!(s.network, "test");
        assert_eq!(s.data_dir, PathBuf::from("/srv/btt"));
        assert_eq!(s.download_dir, PathBuf::from("/srv/btt/downloads"));
        assert_eq!(s.keystore, PathBuf::from("/srv/btt/keystore"));
        assert_eq!(s.http, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(s.session.listen_port, 7001);
        assert_eq!(s.session.upload_slots, 3);
        assert_eq!(s.session.max_connections, 50);
        assert_eq!(s.chain, ChainMode::Off);
        // The printed config reads back to the same settings.
        let printed = effective_toml(&s).unwrap();
        std::fs::write(&path, printed).unwrap();
        let (again, _) = resolve(&NodeArgs {
            config: Some(path),
            ..NodeArgs::default()
        })
        .unwrap();
        assert_eq!(again.session.listen_port, 7001);
        assert_eq!(again.chain_rpc_listen, s.chain_rpc_listen);
    }

    #[test]
    fn bad_config_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "[peer]\nlisten_prot = 1\n").unwrap();
        let err = resolve(&NodeArgs {
            config: Some(path),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("node.toml is invalid"),
            "{err:#}"
        );
        let err = resolve(&NodeArgs {
            chain: Some(ChainMode::Remote),
            config: Some(dir.path().join("missing.toml")),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
    }

    #[test]
    fn one_node_per_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("another btt node is using"),
            "{err}"
        );
        drop(first);
        lock_data_dir(dir.path()).unwrap();
    }

    #[test]
    fn the_market_is_off_by_default_and_checked_when_on() {
        let base = || NodeArgs {
            network: Some("x".into()),
            data_dir: Some("/tmp/btt-x".into()),
            ..NodeArgs::default()
        };
        // An explicit, empty config file: nothing from the user's own.
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("node.toml");
        std::fs::write(&empty, "").unwrap();
        let args = |f: &dyn Fn(&mut NodeArgs)| {
            let mut a = base();
            a.config = Some(empty.clone());
            f(&mut a);
            a
        };
        let (s, _) = resolve(&args(&|_| {})).unwrap();
        assert!(!s.market.enabled);
        assert_eq!(s.market.dir, PathBuf::from("/tmp/btt-x/market"));
        assert!(effective_toml(&s)
            .unwrap()
            .contains("[market]\nenabled = false\n"));

        let err = |f: &dyn Fn(&mut NodeArgs)| format!("{:#}", resolve(&args(f)).unwrap_err());
        assert!(err(&|a| {
            a.sell_reserve = Some(1000);
            a.chain = Some(ChainMode::Off);
        })
        .contains("needs a chain"));
        assert!(err(&|a| a.sell_reserve = Some(1000)).contains("no wallet key"));
        assert!(err(&|a| {
            a.market = Some(false);
            a.sell_reserve = Some(1000);
        })
        .contains("market is off but a selling price"));
        assert!(err(&|a| {
            a.sell_reserve = Some(1000);
            a.market_key_file = Some("/k".into());
            a.free_share = Some(101);
        })
        .contains("above 100 percent"));
        assert!(err(&|a| {
            a.market = Some(true);
            a.market_key_file = Some("/k".into());
            a.market_from = Some("0x00".into());
        })
        .contains("give one"));

        // A reserve turns selling on; the printed config reads back to the same market.
        let (s, _) = resolve(&args(&|a| {
            a.sell_reserve = Some(1000);
            a.paid_slots = Some(2);
            a.market_key_file = Some("/k".into());
        }))
        .unwrap();
        assert!(s.market.enabled);
        let terms = s.market.terms().unwrap().unwrap();
        assert_eq!(terms.auction.reserve_price, 1000);
        assert_eq!(terms.auction.paid_slots, 2);
        assert_eq!(terms.auction.free_share_bps, 2000);
        std::fs::write(&empty, effective_toml(&s).unwrap()).unwrap();
        let (again, _) = resolve(&args(&|_| {})).unwrap();
        assert!(again.market.enabled);
        assert_eq!(again.market.sell_reserve, Some(1000));
        assert_eq!(again.market.paid_slots, 2);
        assert_eq!(again.market.key_file, Some(PathBuf::from("/k")));
        // Buying only: the market on without a reserve sells nothing.
        std::fs::write(&empty, "").unwrap();
        let (s, _) = resolve(&args(&|a| {
            a.market = Some(true);
            a.market_key_file = Some("/k".into());
        }))
        .unwrap();
        assert!(s.market.enabled);
        assert!(s.market.terms().unwrap().is_none());
    }

    #[test]
    fn half_credentials_are_refused() {
        let err = resolve(&NodeArgs {
            http_username: Some("u".into()),
            network: Some("x".into()),
            data_dir: Some("/tmp/x".into()),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("user name and a password"));
    }
}
