//! `btt torrent …`: drive a running `btt node` through its HTTP API.

use std::path::PathBuf;

use anyhow::{Context, Result};
use api::client::NodeClient;
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// `btt torrent`
#[derive(Args)]
pub(crate) struct TorrentArgs {
    /// The node's HTTP address.
    #[arg(long, env = "BTT_NODE", default_value = api::client::DEFAULT_NODE_URL, global = true)]
    node: String,
    /// User name, when the node asks for one.
    #[arg(long, env = "BTT_HTTP_USERNAME", global = true)]
    username: Option<String>,
    /// Password, when the node asks for one.
    #[arg(long, env = "BTT_HTTP_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, env = "BTT_JSON", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    json: bool,
    #[command(subcommand)]
    command: TorrentCommand,
}

#[derive(Subcommand)]
enum TorrentCommand {
    /// Add a .torrent file, a magnet link or an http:// URL of a .torrent.
    Add {
        /// File path, magnet link or URL.
        source: String,
        /// Download directory on the node (absolute).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Add without starting.
        #[arg(long)]
        paused: bool,
        /// Peer to dial, IP:PORT (repeatable).
        #[arg(long = "peer", value_delimiter = ',')]
        peers: Vec<String>,
    },
    /// List torrents.
    Ls {
        /// Only torrents in this state (downloading, seeding, stopped, checking, error, metadata, active).
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one torrent with its files and peers.
    Info {
        /// Id or info-hash.
        id: String,
    },
    /// Start a torrent.
    Start {
        /// Id or info-hash.
        id: String,
    },
    /// Stop a torrent.
    Stop {
        /// Id or info-hash.
        id: String,
    },
    /// Remove a torrent.
    Rm {
        /// Id or info-hash.
        id: String,
        /// Delete its downloaded files too.
        #[arg(long)]
        delete_data: bool,
    },
}

pub(crate) fn run(a: TorrentArgs) -> Result<()> {
    let creds = match (&a.username, &a.password) {
        (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
        _ => None,
    };
    let client = NodeClient::new(&a.node, creds)?;
    let rt = crate::runtime()?;
    rt.block_on(async {
        match a.command {
            TorrentCommand::Add {
                source,
                dir,
                paused,
                peers,
            } => {
                let mut body = if source.starts_with("magnet:") {
                    json!({"magnet": source})
                } else if source.starts_with("http://") {
                    json!({"url": source})
                } else {
                    let bytes =
                        std::fs::read(&source).with_context(|| format!("cannot read {source}"))?;
                    json!({"torrent": base64::engine::general_purpose::STANDARD.encode(bytes)})
                };
                body["paused"] = json!(paused);
                body["peers"] = json!(peers);
                if let Some(d) = dir {
                    body["download_dir"] = json!(d);
                }
                let r = client.call("POST", "/api/v1/torrents", Some(&body)).await?;
                print_one(&r["torrent"], a.json);
            }
            TorrentCommand::Ls { state } => {
                let path = match state {
                    Some(s) => format!("/api/v1/torrents?limit=1000&state={s}"),
                    None => "/api/v1/torrents?limit=1000".into(),
                };
                let r = client.call("GET", &path, None).await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&r["torrents"])?);
                } else {
                    println!(
                        "{:>4}  {:>6}  {:>11}  {:>10}  {:>10}  {:>5}  name",
                        "id", "done", "state", "down/s", "up/s", "peers"
                    );
                    for t in r["torrents"].as_array().into_iter().flatten() {
                        print_row(t);
                    }
                }
            }
            TorrentCommand::Info { id } => {
                let r = client
                    .call("GET", &format!("/api/v1/torrents/{id}"), None)
                    .await?;
                let files = client
                    .call("GET", &format!("/api/v1/torrents/{id}/files"), None)
                    .await?;
                let peers = client
                    .call("GET", &format!("/api/v1/torrents/{id}/peers"), None)
                    .await?;
                if a.json {
                    let mut all = r.clone();
                    all["files"] = files["files"].clone();
                    all["peers"] = peers["peers"].clone();
                    println!("{}", serde_json::to_string_pretty(&all)?);
                } else {
                    let t = &r["torrent"];
                    print_row(t);
                    println!("hash      {}", t["hash"].as_str().unwrap_or(""));
                    println!("dir       {}", t["download_dir"].as_str().unwrap_or(""));
                    println!("magnet    {}", r["magnet"].as_str().unwrap_or(""));
                    if let Some(e) = t["error"].as_str() {
                        println!("error     {e}");
                    }
                    for f in files["files"].as_array().into_iter().flatten() {
                        println!(
                            "file      {:>6.1}%  {:>12}  {}",
                            f["progress"].as_f64().unwrap_or(0.0) * 100.0,
                            f["length"],
                            f["path"].as_str().unwrap_or("")
                        );
                    }
                    for p in peers["peers"].as_array().into_iter().flatten() {
                        println!(
                            "peer      {}  {}  {}",
                            p["addr"].as_str().unwrap_or(""),
                            p["transport"].as_str().unwrap_or(""),
                            p["client"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            TorrentCommand::Start { id } => {
                let r = client
                    .call(
                        "POST",
                        &format!("/api/v1/torrents/{id}/start"),
                        Some(&json!({})),
                    )
                    .await?;
                print_one(&r["torrent"], a.json);
            }
            TorrentCommand::Stop { id } => {
                let r = client
                    .call(
                        "POST",
                        &format!("/api/v1/torrents/{id}/stop"),
                        Some(&json!({})),
                    )
                    .await?;
                print_one(&r["torrent"], a.json);
            }
            TorrentCommand::Rm { id, delete_data } => {
                let r = client
                    .call(
                        "DELETE",
                        &format!("/api/v1/torrents/{id}?delete_data={delete_data}"),
                        None,
                    )
                    .await?;
                if a.json {
                    println!("{r}");
                } else {
                    println!("removed {}", r["removed"]);
                }
            }
        }
        anyhow::Ok(())
    })
}

fn print_one(t: &Value, json: bool) {
    if json {
        println!("{t}");
    } else {
        print_row(t);
    }
}

fn print_row(t: &Value) {
    println!(
        "{:>4}  {:>5.1}%  {:>11}  {:>10}  {:>10}  {:>5}  {}",
        t["id"],
        t["progress"].as_f64().unwrap_or(0.0) * 100.0,
        t["state"].as_str().unwrap_or("?"),
        format!(
            "{}/s",
            crate::progress::bytes(t["download_rate"].as_u64().unwrap_or(0))
        ),
        format!(
            "{}/s",
            crate::progress::bytes(t["upload_rate"].as_u64().unwrap_or(0))
        ),
        t["peers"],
        t["name"].as_str().unwrap_or("")
    );
}
