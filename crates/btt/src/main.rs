//! `btt`: the command-line BitTorrent client.
//!
//! # Layout
//! - `create`, `info`: metainfo tools.
//! - `download`, `seed`: run a session for one torrent, with a progress bar on a terminal and a log
//!   line per interval otherwise; `--budget` (buy) and `--reserve` (sell) turn the Speed market
//!   on (`market_cmd`), which is off otherwise.
//! - `market`: the market's books (channels, earnings) and claims.
//! - `stake`, `gov`: proof of stake and governance on the BTT chain (`stake_cmd`, `gov_cmd`).
//!
//! Every flag has an environment-variable twin (`--listen-port` ⇔ `BTT_LISTEN_PORT`).

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use engine::{AddTorrent, Config, Session, Stats, TorrentHandle};
use metainfo::Torrent;

mod chain_cmd;
mod demo;
mod gov_cmd;
mod market_cmd;
mod node_cmd;
mod progress;
mod stake_cmd;
mod torrent_cmd;
mod wallet_cmd;

#[derive(Parser)]
#[command(name = "btt", version, about = "BitTorrent client and node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a .torrent file from a file or directory.
    Create(CreateArgs),
    /// Show what a .torrent file contains.
    Info(InfoArgs),
    /// Download a torrent; exits 0 once every piece is verified on disk.
    Download(DownloadArgs),
    /// Check existing data and seed it until stopped.
    Seed(SeedArgs),
    /// Self-contained run: create a torrent of generated data, seed it and download it over 127.0.0.1.
    Demo(DemoArgs),
    /// Keys (Ethereum keystore v3 files) and BTT transfers: new, import, list, balance, send.
    Wallet(wallet_cmd::WalletArgs),
    /// Run the BTT chain: create a network, run a node, or start a local devnet.
    Chain(chain_cmd::ChainArgs),
    /// Run the node: torrents, the chain, the HTTP API, Transmission RPC and the web UI.
    Node(node_cmd::NodeArgs),
    /// Drive a running node: add, ls, info, start, stop, rm.
    Torrent(torrent_cmd::TorrentArgs),
    /// The Speed market's books: channels, earnings, and claiming vouchers on chain.
    Market(market_cmd::MarketCmdArgs),
    /// Proof of stake: validators, delegations, rewards, double-signing evidence.
    Stake(stake_cmd::StakeArgs),
    /// On-chain governance: proposals (parameter change, text, treasury spend) and votes.
    Gov(gov_cmd::GovArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// Size of the generated data in MiB.
    #[arg(long, env = "BTT_DEMO_SIZE_MB", default_value_t = 256)]
    size_mb: u64,
    /// Piece size in bytes (default: chosen by size).
    #[arg(long, env = "BTT_PIECE_SIZE")]
    piece_size: Option<u32>,
    /// Keep the generated files instead of deleting them.
    #[arg(long, env = "BTT_DEMO_KEEP", value_parser = clap::builder::BoolishValueParser::new())]
    keep: bool,
}

#[derive(Args)]
struct CreateArgs {
    /// File or directory to share.
    path: PathBuf,
    /// Where to write the .torrent file.
    #[arg(short, long, env = "BTT_OUTPUT")]
    output: PathBuf,
    /// Tracker announce URL (repeat for backups, one tier each).
    #[arg(long = "tracker", env = "BTT_TRACKER", value_delimiter = ',')]
    trackers: Vec<String>,
    /// Piece size in bytes: a power of two, at least 16384. Default: chosen by total size.
    #[arg(long, env = "BTT_PIECE_SIZE")]
    piece_size: Option<u32>,
    /// Mark the torrent private (BEP 27): trackers only, no DHT or PEX.
    #[arg(long, env = "BTT_PRIVATE", value_parser = clap::builder::BoolishValueParser::new())]
    private: bool,
    /// Comment stored in the torrent.
    #[arg(long, env = "BTT_COMMENT")]
    comment: Option<String>,
    /// Make a BitTorrent v2-only torrent (BEP 52: per-file SHA-256 Merkle trees).
    #[arg(long, env = "BTT_V2", conflicts_with = "hybrid")]
    v2: bool,
    /// Make a hybrid torrent: v1 and v2 at once, with pad files, readable by every client.
    #[arg(long, env = "BTT_HYBRID", value_parser = clap::builder::BoolishValueParser::new())]
    hybrid: bool,
    /// Web seed URL (BEP 19) serving the files (repeatable).
    #[arg(long = "web-seed", env = "BTT_WEB_SEED", value_delimiter = ',')]
    web_seeds: Vec<String>,
}

#[derive(Args)]
struct InfoArgs {
    /// The .torrent file.
    torrent: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, env = "BTT_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    json: bool,
}

#[derive(Args, Clone, Debug)]
struct SessionArgs {
    /// TCP port to accept peers on (0 picks a free one).
    #[arg(long, env = "BTT_LISTEN_PORT", default_value_t = 6881)]
    listen_port: u16,
    /// Address to accept peers on.
    #[arg(long, env = "BTT_LISTEN_IP", default_value = "0.0.0.0")]
    listen_ip: IpAddr,
    /// Peer to dial besides tracker peers (repeatable).
    #[arg(long = "peer", env = "BTT_PEER", value_delimiter = ',')]
    peers: Vec<SocketAddr>,
    /// Directory for resume records (default: $XDG_DATA_HOME/btt).
    #[arg(long, env = "BTT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Download limit in bytes per second (0 = unlimited).
    #[arg(long, env = "BTT_DOWNLOAD_LIMIT", default_value_t = 0)]
    download_limit: u64,
    /// Upload limit in bytes per second (0 = unlimited).
    #[arg(long, env = "BTT_UPLOAD_LIMIT", default_value_t = 0)]
    upload_limit: u64,
    /// Most peer connections.
    #[arg(long, env = "BTT_MAX_CONNECTIONS", default_value_t = 50)]
    max_connections: usize,
    /// Peers unchoked at once (plus one optimistic unchoke).
    #[arg(long, env = "BTT_UPLOAD_SLOTS", default_value_t = 8)]
    upload_slots: usize,
    /// Seconds between progress log lines when not on a terminal.
    #[arg(long, env = "BTT_LOG_INTERVAL", default_value_t = 5)]
    log_interval: u64,
    #[command(flatten)]
    discovery: DiscoveryArgs,
}

#[derive(Args, Clone, Debug)]
struct DiscoveryArgs {
    /// Turn the DHT off (peers then come only from trackers, PEX, LSD and `--peer`).
    #[arg(long, env = "BTT_NO_DHT", value_parser = clap::builder::BoolishValueParser::new())]
    no_dht: bool,
    /// DHT node to bootstrap from, HOST:PORT (repeatable; default: the public routers).
    #[arg(
        long = "dht-bootstrap",
        env = "BTT_DHT_BOOTSTRAP",
        value_delimiter = ','
    )]
    dht_bootstrap: Vec<String>,
    /// UDP port of the DHT node (default: a free one).
    #[arg(long, env = "BTT_DHT_PORT")]
    dht_port: Option<u16>,
    /// Query the DHT without serving it (BEP 43 read-only node).
    #[arg(long, env = "BTT_DHT_READ_ONLY", value_parser = clap::builder::BoolishValueParser::new())]
    dht_read_only: bool,
    /// Turn local service discovery (BEP 14 multicast on the LAN) off.
    #[arg(long, env = "BTT_NO_LSD", value_parser = clap::builder::BoolishValueParser::new())]
    no_lsd: bool,
    /// Turn peer exchange (BEP 11) off.
    #[arg(long, env = "BTT_NO_PEX", value_parser = clap::builder::BoolishValueParser::new())]
    no_pex: bool,
    /// Turn uTP (BEP 29) off: TCP only, both ways.
    #[arg(long, env = "BTT_NO_UTP", value_parser = clap::builder::BoolishValueParser::new())]
    no_utp: bool,
}

#[derive(Args)]
struct DownloadArgs {
    /// The .torrent file, or a magnet link (`magnet:?xt=urn:btih:…`).
    torrent: String,
    /// Directory to download into.
    #[arg(short, long, env = "BTT_OUTPUT")]
    output: PathBuf,
    /// Keep seeding after the download completes, until stopped.
    #[arg(long, env = "BTT_SEED", value_parser = clap::builder::BoolishValueParser::new())]
    seed: bool,
    /// Print a JSON summary on stdout at the end.
    #[arg(long, env = "BTT_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    json: bool,
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    buy: market_cmd::BuyArgs,
    #[command(flatten)]
    market: market_cmd::MarketArgs,
}

#[derive(Args)]
struct SeedArgs {
    /// The .torrent file.
    torrent: PathBuf,
    /// Directory holding the torrent's data.
    dir: PathBuf,
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    sell: market_cmd::SellArgs,
    #[command(flatten)]
    market: market_cmd::MarketArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet_terminal = std::io::stderr().is_terminal();
    let default = if quiet_terminal { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BTT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let json_logs = matches!(&cli.command, Command::Node(a) if node_cmd::log_format(a) == node_cmd::LogFormat::Json);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(quiet_terminal && !json_logs)
        .with_target(false);
    if json_logs {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Create(a) => create(a),
        Command::Info(a) => info(a),
        Command::Download(a) => runtime().and_then(|rt| rt.block_on(download(a))),
        Command::Seed(a) => runtime().and_then(|rt| rt.block_on(seed(a))),
        Command::Wallet(a) => {
            let dir = data_dir(&a.data_dir);
            wallet_cmd::run(a, dir)
        }
        Command::Chain(a) => chain_cmd::run(a),
        Command::Node(a) => node_cmd::run(a),
        Command::Torrent(a) => torrent_cmd::run(a),
        Command::Market(a) => {
            let dir = data_dir(&a.data_dir);
            market_cmd::run(a, dir)
        }
        Command::Stake(a) => stake_cmd::run(a),
        Command::Gov(a) => gov_cmd::run(a),
        Command::Demo(a) => {
            runtime().and_then(|rt| rt.block_on(demo::run(a.size_mb, a.piece_size, a.keep)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn load_torrent(path: &Path) -> Result<Torrent> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // The metainfo error already names its cause; adding it as context would print it twice.
    Torrent::from_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid torrent: {e}", path.display()))
}

fn create(a: CreateArgs) -> Result<()> {
    let opts = engine::create::CreateOptions {
        piece_length: a.piece_size,
        trackers: a.trackers,
        private: a.private,
        comment: a.comment,
        version: if a.v2 {
            metainfo::MetaVersion::V2
        } else if a.hybrid {
            metainfo::MetaVersion::Hybrid
        } else {
            metainfo::MetaVersion::V1
        },
        web_seeds: a.web_seeds,
        creation_date: Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        ),
    };
    let t = engine::create::create_torrent(&a.path, &opts)?;
    std::fs::write(&a.output, t.to_bytes())
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    eprintln!(
        "created {} ({} in {} pieces of {}), info-hash {}",
        a.output.display(),
        progress::bytes(t.info.total_length),
        t.info.num_pieces(),
        progress::bytes(u64::from(t.info.piece_length)),
        t.info_hash
    );
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    let t = load_torrent(&a.torrent)?;
    let files: Vec<(String, u64)> = (0..t.info.files.len())
        .filter(|&i| !t.info.files[i].pad)
        .map(|i| {
            (
                t.info.file_path(i).display().to_string(),
                t.info.files[i].length,
            )
        })
        .collect();
    if a.json {
        let v = serde_json::json!({
            "info_hash": t.info_hash.to_hex(),
            "info_hash_v1": t.info_hashes.v1.map(|h| h.to_hex()),
            "info_hash_v2": t.info_hashes.v2.map(|h| h.to_hex()),
            "version": version_name(t.info.version),
            "web_seeds": t.url_list,
            "name": t.info.name,
            "piece_length": t.info.piece_length,
            "num_pieces": t.info.num_pieces(),
            "total_length": t.info.total_length,
            "private": t.info.private,
            "files": files.iter().map(|(p, l)| serde_json::json!({"path": p, "length": l})).collect::<Vec<_>>(),
            "trackers": t.trackers(),
            "comment": t.comment,
            "created_by": t.created_by,
            "creation_date": t.creation_date,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("name:         {}", t.info.name);
    println!("version:      {}", version_name(t.info.version));
    if let Some(h) = t.info_hashes.v1 {
        println!("info-hash v1: {}", h.to_hex());
    }
    if let Some(h) = t.info_hashes.v2 {
        println!("info-hash v2: {}", h.to_hex());
    }
    println!(
        "size:         {} ({} bytes)",
        progress::bytes(t.info.total_length),
        t.info.total_length
    );
    println!(
        "pieces:       {} × {}",
        t.info.num_pieces(),
        progress::bytes(u64::from(t.info.piece_length))
    );
    println!(
        "private:      {}",
        if t.info.private { "yes" } else { "no" }
    );
    if let Some(c) = &t.comment {
        println!("comment:      {c}");
    }
    if let Some(c) = &t.created_by {
        println!("created by:   {c}");
    }
    for (i, tier) in t.trackers().iter().enumerate() {
        println!("tracker tier {i}: {}", tier.join(" "));
    }
    println!("files:");
    for (p, l) in files {
        println!("  {p} ({})", progress::bytes(l));
    }
    Ok(())
}

fn version_name(v: metainfo::MetaVersion) -> &'static str {
    match v {
        metainfo::MetaVersion::V1 => "v1",
        metainfo::MetaVersion::V2 => "v2",
        metainfo::MetaVersion::Hybrid => "hybrid",
    }
}

fn data_dir(arg: &Option<PathBuf>) -> PathBuf {
    match arg {
        Some(d) => d.clone(),
        None => xdg_dir("XDG_DATA_HOME", ".local/share"),
    }
}

/// `$VAR/btt`, else `$HOME/<fallback>/btt` (the XDG base-directory rule), else `.btt`.
pub(crate) fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    if let Some(x) = std::env::var_os(var).filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("btt");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(fallback).join("btt"),
        None => PathBuf::from(".btt"),
    }
}

pub(crate) async fn start_session(s: &SessionArgs) -> Result<Session> {
    let data_dir = data_dir(&s.data_dir);
    let d = &s.discovery;
    let dht = (!d.no_dht).then(|| dht::Config {
        bootstrap: if d.dht_bootstrap.is_empty() {
            dht::Config::default().bootstrap
        } else {
            d.dht_bootstrap.clone()
        },
        bind_address: match s.listen_ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
        },
        port: d.dht_port,
        read_only: d.dht_read_only,
        routing_table_path: Some(data_dir.join("dht-nodes")),
        ..dht::Config::default()
    });
    let config = Config {
        utp: !d.no_utp,
        lsd: !d.no_lsd,
        pex: !d.no_pex,
        dht,
        listen: SocketAddr::new(s.listen_ip, s.listen_port),
        data_dir,
        max_connections: s.max_connections.max(1) * 4,
        max_connections_per_torrent: s.max_connections.max(1),
        upload_slots: s.upload_slots.max(1),
        download_rate_limit: s.download_limit,
        upload_rate_limit: s.upload_limit,
        ..Config::default()
    };
    Ok(Session::start(config).await?)
}

pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn download(a: DownloadArgs) -> Result<()> {
    // Bad input fails before any socket is opened.
    enum Source {
        File(Box<Torrent>),
        Magnet(metainfo::Magnet),
    }
    let source = if a.torrent.starts_with("magnet:") {
        Source::Magnet(
            metainfo::Magnet::parse(&a.torrent)
                .map_err(|e| anyhow::anyhow!("not a valid magnet link: {e}"))?,
        )
    } else {
        Source::File(Box::new(load_torrent(Path::new(&a.torrent))?))
    };
    let budget = a.buy.budget()?;
    let market = match budget {
        Some(_) => Some(market_cmd::start(&a.market, &data_dir(&a.session.data_dir), None).await?),
        None => None,
    };
    let session = start_session(&a.session).await?;
    let (torrent, mut peers) = match source {
        Source::File(t) => (*t, Vec::new()),
        Source::Magnet(magnet) => tokio::select! {
            r = resolve_magnet(&session, &magnet, &a.session) => r?,
            _ = shutdown_signal() => bail!("interrupted while fetching the torrent's metadata"),
        },
    };
    peers.extend(a.session.peers.iter().copied());
    let mut add = AddTorrent::new(torrent, a.output.clone());
    add.web_seeds = add.torrent.url_list.clone();
    add.peers = peers;
    let speed = match (&market, budget) {
        (Some(m), Some(b)) => {
            eprintln!("{}", b.describe(m.wallet, &a.market.chain_rpc));
            let t = m.market.torrent(
                add.torrent.info_hash.0,
                u64::from(add.torrent.info.piece_length),
                add.torrent.info.total_length,
                b.bidder(),
            );
            add.extension = Some(t.clone());
            Some((t, b))
        }
        _ => None,
    };
    let handle = session.add_torrent(add).await?;
    tracing::info!("listening on port {}", session.listen_port());
    let started = Instant::now();
    let outcome = tokio::select! {
        r = watch_progress(&handle, a.session.log_interval) => r,
        _ = shutdown_signal() => Err(anyhow::anyhow!("interrupted before the download completed")),
    };
    let stats = handle.stats();
    if a.json {
        let mut summary = summary_json(&handle, &stats, started.elapsed());
        if let Some((t, b)) = &speed {
            let m = t.stats();
            summary["market"] = serde_json::json!({
                "spent": market_cmd::wei(m.spent),
                "earned": market_cmd::wei(m.earned),
                "budget": market_cmd::wei(b.budget),
                "locked": market.as_ref().map(|n| market_cmd::wei(n.books.channels().locked())),
            });
        }
        println!("{summary}");
    }
    if let Err(e) = outcome {
        session.shutdown().await;
        return Err(e);
    }
    eprintln!(
        "completed: {} in {:.1} s ({} pieces downloaded, {} already on disk)",
        progress::bytes(stats.total_length),
        started.elapsed().as_secs_f64(),
        stats.pieces_downloaded,
        stats.pieces_resumed
    );
    if let (Some((t, b)), Some(m)) = (&speed, &market) {
        eprintln!(
            "market: spent {} BTT of the {} BTT budget; {} BTT of deposits still locked in \
             channels (see `btt market channels`)",
            market_cmd::btt(t.stats().spent),
            market_cmd::btt(b.budget),
            market_cmd::btt(m.books.channels().locked())
        );
    }
    if a.seed {
        eprintln!(
            "seeding on port {}; stop with Ctrl-C",
            session.listen_port()
        );
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = handle.wait_stopped() => {}
        }
    }
    session.shutdown().await;
    Ok(())
}

/// The torrent behind a magnet link: from the metadata cache in the data dir if an earlier run
/// fetched it, else from peers (then cached, so a restarted download resumes without peers
/// having to serve the metadata again). Returns it with the peers that answered.
async fn resolve_magnet(
    session: &Session,
    magnet: &metainfo::Magnet,
    args: &SessionArgs,
) -> Result<(Torrent, Vec<SocketAddr>)> {
    let cache_dir = data_dir(&args.data_dir).join("metadata");
    let key = magnet
        .info_hash_v1
        .map(|h| h.to_hex())
        .or_else(|| magnet.info_hash_v2.map(|h| h.to_hex()))
        .unwrap_or_default();
    let cached = cache_dir.join(format!("{key}.torrent"));
    if let Ok(bytes) = std::fs::read(&cached) {
        if let Ok(t) = Torrent::from_bytes(&bytes) {
            if magnet.matches(&t) {
                tracing::info!("metadata found in {}", cached.display());
                return Ok((t, magnet.peers.clone()));
            }
        }
    }
    eprintln!("fetching metadata for {key} …");
    let fetched = session.fetch_metadata(magnet, args.peers.clone()).await?;
    let write = std::fs::create_dir_all(&cache_dir).and_then(|()| {
        let tmp = cached.with_extension("tmp");
        std::fs::write(&tmp, fetched.torrent.to_bytes())?;
        std::fs::rename(&tmp, &cached)
    });
    if let Err(e) = write {
        tracing::warn!("cannot cache the metadata in {}: {e}", cached.display());
    }
    Ok((fetched.torrent, fetched.peers))
}

fn summary_json(handle: &TorrentHandle, s: &Stats, elapsed: Duration) -> serde_json::Value {
    let hex: String = handle
        .info_hash()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({
        "info_hash": hex,
        "complete": s.pieces_have == s.pieces_total,
        "pieces_total": s.pieces_total,
        "pieces_have": s.pieces_have,
        "pieces_resumed": s.pieces_resumed,
        "pieces_downloaded": s.pieces_downloaded,
        "bytes_downloaded": s.bytes_downloaded,
        "bytes_uploaded": s.bytes_uploaded,
        "hash_failures": s.hash_failures,
        "banned_peers": s.banned_peers,
        "seconds": elapsed.as_secs_f64(),
    })
}

/// Shows progress until the torrent completes (Ok) or fails (Err).
pub(crate) async fn watch_progress(handle: &TorrentHandle, log_interval_s: u64) -> Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let period = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(log_interval_s.max(1))
    };
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    let mut bar = progress::Bar::new(terminal);
    loop {
        tokio::select! {
            r = handle.wait_complete() => {
                bar.finish(&handle.stats());
                return r.map_err(Into::into);
            }
            _ = tick.tick() => bar.show(&handle.stats()),
        }
    }
}

async fn seed(a: SeedArgs) -> Result<()> {
    let torrent = load_torrent(&a.torrent)?;
    if !a.dir.is_dir() {
        bail!(
            "{} is not a directory; pass the directory that holds the torrent's data",
            a.dir.display()
        );
    }
    let terms = a.sell.terms()?;
    let market = match &terms {
        Some(t) => {
            let m = market_cmd::start(&a.market, &data_dir(&a.session.data_dir), Some(t.clone()))
                .await?;
            eprintln!(
                "{}",
                market_cmd::describe_terms(t, m.wallet, &a.market.chain_rpc)
            );
            Some(m)
        }
        None => None,
    };
    let session = start_session(&a.session).await?;
    let mut add = AddTorrent::new(torrent, a.dir.clone());
    add.seed_only = true;
    add.web_seeds = add.torrent.url_list.clone();
    add.peers = a.session.peers.clone();
    let speed = market.as_ref().map(|m| {
        let t = m.market.torrent(
            add.torrent.info_hash.0,
            u64::from(add.torrent.info.piece_length),
            0,
            speed::BidderConfig {
                budget: speed::Amount::ZERO,
                daily_cap: None,
                max_price: 0,
                top_up_low_water_pieces: 2,
            },
        );
        add.extension = Some(t.clone());
        t
    });
    let handle = session.add_torrent(add).await?;
    eprintln!(
        "seeding {} on port {}",
        hex(&handle.info_hash()),
        session.listen_port()
    );
    let mut tick = tokio::time::interval(Duration::from_secs(a.session.log_interval.max(1)));
    tick.tick().await;
    let mut claim_tick = tokio::time::interval(CLAIM_EVERY);
    claim_tick.tick().await;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut failed = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = claim_tick.tick(), if market.is_some() => {
                if let Some(m) = &market {
                    let claims = m.books.settler().claim_due(market_cmd::now_s()).await;
                    market_cmd::log_claims(&claims);
                }
            }
            s = handle.wait_stopped() => {
                if let engine::State::Failed(e) = s {
                    failed = Some(e);
                }
                break;
            }
            _ = tick.tick() => {
                let s = handle.stats();
                tracing::info!(
                    "seeding: {} peers, up {}/s, uploaded {}",
                    s.peers, progress::bytes(s.upload_rate_bytes_per_s), progress::bytes(s.bytes_uploaded)
                );
                if let (Some(m), Some(t)) = (&market, &speed) {
                    let e = m.books.settler().earnings(market_cmd::now_s());
                    let st = t.stats();
                    tracing::info!(
                        "market: earned {} BTT this run ({} paying of {} speed peers, clearing price {}); claimable {} BTT, claimed {} BTT",
                        market_cmd::btt(st.earned),
                        st.paying_peers,
                        st.speed_peers,
                        st.clearing_price.map_or_else(|| "none".to_string(), |p| format!("{p} wei/byte")),
                        market_cmd::btt(e.claimable),
                        market_cmd::btt(e.claimed)
                    );
                }
            }
        }
    }
    session.shutdown().await;
    if let Some(m) = &market {
        // Vouchers are worth nothing to us until claimed: claim everything held before exiting,
        // also when the torrent failed.
        let claims = m.books.settler().claim_all().await;
        let total = market_cmd::log_claims(&claims);
        let e = m.books.settler().earnings(market_cmd::now_s());
        eprintln!(
            "market: claimed {} BTT on exit; {} BTT claimed in all, {} BTT still claimable (books in {})",
            market_cmd::btt(total),
            market_cmd::btt(e.claimed),
            market_cmd::btt(e.claimable),
            m.dir.display()
        );
    }
    if let Some(e) = failed {
        bail!("seeding stopped: {e}");
    }
    Ok(())
}

/// How often a seller claims the vouchers that are due.
const CLAIM_EVERY: Duration = Duration::from_secs(30);

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}
