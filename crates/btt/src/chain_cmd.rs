//! `btt chain`: create a network (`init`), run one node (`run`), or run a whole local network of
//! validator processes in one command (`devnet`).
//!
//! `init` writes everything a network needs into one directory:
//! ```text
//! <dir>/genesis.json          chain id, parameters, balances, validator keys (public)
//! <dir>/accounts.json         funded dev accounts with their private keys (devnets only)
//! <dir>/node-<i>/config.toml  one node's config (paths relative to it)
//! <dir>/node-<i>/validator.key  its consensus keys (secret)
//! <dir>/node-<i>/fee.key      the secp256k1 key of its fee recipient account (secret)
//! <dir>/full-<i>/config.toml  a full node's config (with `--full-nodes`)
//! <dir>/full-<i>/node.key     its p2p identity key (secret)
//! ```
//! Full nodes take the ports after the validators' (RPC and p2p), and every validator lists
//! them as followers so it accepts their connections.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chain_consensus::{namespace, NodeKey, ValidatorKeys};
use chain_node::{
    Genesis, GenesisAccount, GenesisValidator, NodeConfig, P2pConfig, PeerConfig, RpcConfig,
    DEFAULT_BLOCK_INTERVAL_MS, DEFAULT_LEADER_TIMEOUT_MS,
};
use chain_state::{ChainParams, GovernedParams, Param};
use chain_types::{Address, Wei, U256};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

/// The devnet's chain id (BTTC uses 199 and 1029; this one is ours).
pub(crate) const DEVNET_CHAIN_ID: u64 = 7215;

/// `btt chain …`
#[derive(Args)]
pub(crate) struct ChainArgs {
    #[command(subcommand)]
    command: ChainCommand,
}

#[derive(Subcommand)]
enum ChainCommand {
    /// Write a genesis, validator keys, funded dev accounts and node configs into a directory.
    Init(InitArgs),
    /// Run one node from its config file until stopped.
    Run {
        /// The node's config file (as `btt chain init` writes it).
        #[arg(long, env = "BTT_CHAIN_CONFIG")]
        config: PathBuf,
    },
    /// Start a local network of validator processes on 127.0.0.1 and keep it running.
    Devnet(DevnetArgs),
}

#[derive(Args, Clone)]
struct InitArgs {
    /// Directory to write into (created; must not hold a genesis already).
    #[arg(long, env = "BTT_CHAIN_DIR")]
    dir: PathBuf,
    #[command(flatten)]
    net: NetworkArgs,
    /// Number of full nodes (follow and verify the chain, serve JSON-RPC, do not vote).
    #[arg(long, env = "BTT_FULL_NODES", default_value_t = 0)]
    full_nodes: usize,
    /// Number of standby validators: nodes with validator keys and a funded operator account
    /// that are not in the genesis set; they follow the chain until they stake with
    /// `btt stake create-validator` and an epoch boundary puts them in the active set.
    #[arg(long, env = "BTT_STANDBY", default_value_t = 0)]
    standby: usize,
    /// Blocks per epoch (the validator set changes only at epoch boundaries).
    #[arg(long, env = "BTT_EPOCH_LENGTH", default_value_t = chain_node::DEFAULT_EPOCH_LENGTH)]
    epoch_length: u64,
    /// Self-bond of each genesis validator, in BTT.
    #[arg(long, env = "BTT_GENESIS_STAKE", default_value = "100000")]
    stake: String,
    /// A governed parameter's genesis value, as NAME=VALUE in base units (wei, blocks, basis
    /// points), e.g. `--param voting_period_blocks=20`; repeatable. `btt gov propose --param`
    /// lists the names.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// EIP-155 chain id.
    #[arg(long, env = "BTT_CHAIN_ID", default_value_t = DEVNET_CHAIN_ID)]
    chain_id: u64,
    /// Number of funded dev accounts.
    #[arg(long, env = "BTT_DEV_ACCOUNTS", default_value_t = 10)]
    accounts: usize,
    /// Balance of each dev account, in BTT.
    #[arg(long, env = "BTT_DEV_BALANCE", default_value = "1000000")]
    balance: String,
    /// Print what was written as JSON.
    #[arg(long, env = "BTT_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    json: bool,
}

#[derive(Args)]
struct DevnetArgs {
    /// Directory of the network; reused if it already holds one (default: a new temporary one).
    #[arg(long, env = "BTT_CHAIN_DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    net: NetworkArgs,
    /// Print one JSON object (chain_id, rpc, accounts) once the network is ready.
    #[arg(long, env = "BTT_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    json: bool,
}

/// The size and ports of a network, shared by `init` and `devnet`.
#[derive(Args, Clone)]
struct NetworkArgs {
    /// Number of validators.
    #[arg(long, env = "BTT_VALIDATORS", default_value_t = 4)]
    validators: usize,
    /// First JSON-RPC port; validator i serves on this plus i, full node i on this plus the
    /// number of validators plus i.
    #[arg(long, env = "BTT_RPC_PORT", default_value_t = 8545)]
    rpc_port: u16,
    /// First p2p port, numbered like the RPC ports.
    #[arg(long, env = "BTT_P2P_PORT", default_value_t = 30300)]
    p2p_port: u16,
}

/// A funded dev account as `accounts.json` and `devnet --json` list it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DevAccount {
    address: Address,
    private_key: String,
}

pub(crate) fn run(a: ChainArgs) -> Result<()> {
    match a.command {
        ChainCommand::Init(a) => {
            let summary = init(&a)?;
            if a.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "wrote a {}-validator network with {} full nodes (chain id {}) to {}",
                    summary.configs.len(),
                    summary.full_node_configs.len(),
                    summary.chain_id,
                    a.dir.display()
                );
                for c in summary.configs.iter().chain(&summary.full_node_configs) {
                    println!("  btt chain run --config {}", c.display());
                }
            }
            Ok(())
        }
        ChainCommand::Run { config } => run_node(&config),
        ChainCommand::Devnet(a) => devnet(a),
    }
}

#[derive(Serialize)]
struct InitSummary {
    chain_id: u64,
    genesis: PathBuf,
    /// Validator configs, in validator order.
    configs: Vec<PathBuf>,
    /// Validator JSON-RPC URLs, in the same order.
    rpc: Vec<String>,
    /// Full-node configs.
    full_node_configs: Vec<PathBuf>,
    /// Full-node JSON-RPC URLs, in the same order.
    full_node_rpc: Vec<String>,
    /// Standby validator configs.
    standby_configs: Vec<PathBuf>,
    /// Standby validator JSON-RPC URLs, in the same order.
    standby_rpc: Vec<String>,
    /// Operator accounts (funded with the dev balance): the validators', then the standby
    /// validators', in order.
    operators: Vec<DevAccount>,
    accounts: Vec<DevAccount>,
}

/// A new random secp256k1 key: its hex and address.
fn new_account() -> Result<DevAccount> {
    loop {
        let secret: [u8; 32] = rand::random();
        if let Ok(key) = wallet::PrivateKey::from_bytes(&secret) {
            let address: Address = key.address().to_string().parse()?;
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            return Ok(DevAccount {
                address,
                private_key: format!("0x{hex}"),
            });
        }
    }
}

/// Creates the single-validator chain of `btt node` in `dir` (ports are set at each start).
pub(crate) fn init_local(dir: &Path) -> Result<()> {
    let net = NetworkArgs {
        validators: 1,
        rpc_port: 8545,
        p2p_port: 30300,
    };
    init_dev(dir, net)
}

/// A network of `net`'s size with the dev chain id and funded dev accounts.
fn init_dev(dir: &Path, net: NetworkArgs) -> Result<()> {
    init(&InitArgs {
        dir: dir.to_path_buf(),
        net,
        full_nodes: 0,
        standby: 0,
        epoch_length: chain_node::DEFAULT_EPOCH_LENGTH,
        stake: "100000".into(),
        params: Vec::new(),
        chain_id: DEVNET_CHAIN_ID,
        accounts: 10,
        balance: "1000000".into(),
        json: false,
    })?;
    Ok(())
}

fn init(a: &InitArgs) -> Result<InitSummary> {
    if a.net.validators == 0 {
        bail!("--validators must be at least 1");
    }
    let genesis_path = a.dir.join("genesis.json");
    if genesis_path.exists() {
        bail!(
            "{} already exists; choose another --dir or delete it",
            genesis_path.display()
        );
    }
    let balance = Wei::parse_btt(&a.balance).context("--balance")?;
    let stake = Wei::parse_btt(&a.stake).context("--stake")?;
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let ns = namespace(a.chain_id);
    let mut nodes = Vec::new();
    for i in 0..a.net.validators {
        let keys = ValidatorKeys::generate(rand::random());
        let fee = new_account()?;
        nodes.push((i, keys, fee));
    }
    let standby = (0..a.standby)
        .map(|_| Ok((ValidatorKeys::generate(rand::random()), new_account()?)))
        .collect::<Result<Vec<_>>>()?;
    let accounts = (0..a.accounts)
        .map(|_| new_account())
        .collect::<Result<Vec<_>>>()?;
    let operators: Vec<DevAccount> = nodes
        .iter()
        .map(|(_, _, fee)| fee.clone())
        .chain(standby.iter().map(|(_, op)| op.clone()))
        .collect();
    let params = ChainParams {
        chain_id: a.chain_id,
        ..ChainParams::default()
    };
    let genesis = Genesis {
        params,
        timestamp_ms: chain_node::now_ms(),
        alloc: accounts
            .iter()
            .chain(&operators)
            .map(|acc| (acc.address, GenesisAccount { balance: balance.0 }))
            .collect::<BTreeMap<_, _>>(),
        validators: nodes
            .iter()
            .map(|(_, keys, fee)| GenesisValidator {
                fee_recipient: fee.address,
                keys: keys.public(&ns),
                stake: stake.0,
                commission_bps: 1_000,
            })
            .collect(),
        epoch_length: a.epoch_length,
        governance: governed_params(&a.params)?,
    };
    genesis.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    genesis.save(&genesis_path)?;
    let total = a.net.validators + a.full_nodes + a.standby;
    if usize::from(a.net.p2p_port.max(a.net.rpc_port)) + total > usize::from(u16::MAX) {
        bail!("--rpc-port and --p2p-port leave no room for {total} nodes below port 65535");
    }
    // Node i (validators first, then full nodes) uses the base ports plus i.
    let p2p = |i: usize| SocketAddr::from(([127, 0, 0, 1], a.net.p2p_port + i as u16));
    let rpc = |i: usize| SocketAddr::from(([127, 0, 0, 1], a.net.rpc_port + i as u16));
    let full_keys: Vec<NodeKey> = (0..a.full_nodes)
        .map(|_| NodeKey::generate(rand::random()))
        .collect();
    let followers: Vec<PeerConfig> = full_keys
        .iter()
        .enumerate()
        .map(|(f, k)| PeerConfig {
            identity: k.identity_hex(),
            address: p2p(a.net.validators + f),
        })
        .collect();
    // Every node that may ever validate is in the address book: the genesis validators, then
    // the standby ones (numbered after the full nodes).
    let standby_index = |s: usize| a.net.validators + a.full_nodes + s;
    let validator_peers: Vec<PeerConfig> = nodes
        .iter()
        .map(|(j, k, _)| PeerConfig {
            identity: k.identity_hex(),
            address: p2p(*j),
        })
        .chain(standby.iter().enumerate().map(|(s, (k, _))| PeerConfig {
            identity: k.identity_hex(),
            address: p2p(standby_index(s)),
        }))
        .collect();
    let mut configs = Vec::new();
    for (i, keys, fee) in &nodes {
        let node_dir = a.dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir)?;
        write_secret(&node_dir.join("validator.key"), &keys.to_hex())?;
        write_secret(&node_dir.join("fee.key"), &fee.private_key)?;
        let config = NodeConfig {
            data_dir: PathBuf::from("data"),
            genesis: PathBuf::from("../genesis.json"),
            validator_key: Some(PathBuf::from("validator.key")),
            node_key: None,
            block_interval_ms: DEFAULT_BLOCK_INTERVAL_MS,
            leader_timeout_ms: DEFAULT_LEADER_TIMEOUT_MS,
            rpc: RpcConfig { listen: rpc(*i) },
            p2p: P2pConfig {
                listen: p2p(*i),
                peers: validator_peers
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| j != i)
                    .map(|(_, p)| p.clone())
                    .collect(),
                followers: followers.clone(),
            },
            equivocate: false,
        };
        let path = node_dir.join("config.toml");
        chain_node::write_atomic(&path, config.to_toml().as_bytes())?;
        configs.push(path);
    }
    let mut full_node_configs = Vec::new();
    for (f, key) in full_keys.iter().enumerate() {
        let node_dir = a.dir.join(format!("full-{f}"));
        std::fs::create_dir_all(&node_dir)?;
        write_secret(&node_dir.join("node.key"), &key.to_hex())?;
        let config = NodeConfig {
            data_dir: PathBuf::from("data"),
            genesis: PathBuf::from("../genesis.json"),
            validator_key: None,
            node_key: Some(PathBuf::from("node.key")),
            block_interval_ms: DEFAULT_BLOCK_INTERVAL_MS,
            leader_timeout_ms: DEFAULT_LEADER_TIMEOUT_MS,
            rpc: RpcConfig {
                listen: rpc(a.net.validators + f),
            },
            p2p: P2pConfig {
                listen: p2p(a.net.validators + f),
                peers: validator_peers.clone(),
                followers: Vec::new(),
            },
            equivocate: false,
        };
        let path = node_dir.join("config.toml");
        chain_node::write_atomic(&path, config.to_toml().as_bytes())?;
        full_node_configs.push(path);
    }
    let mut standby_configs = Vec::new();
    for (s, (keys, operator)) in standby.iter().enumerate() {
        let node_dir = a.dir.join(format!("standby-{s}"));
        std::fs::create_dir_all(&node_dir)?;
        write_secret(&node_dir.join("validator.key"), &keys.to_hex())?;
        write_secret(&node_dir.join("fee.key"), &operator.private_key)?;
        let config = NodeConfig {
            data_dir: PathBuf::from("data"),
            genesis: PathBuf::from("../genesis.json"),
            validator_key: Some(PathBuf::from("validator.key")),
            node_key: None,
            block_interval_ms: DEFAULT_BLOCK_INTERVAL_MS,
            leader_timeout_ms: DEFAULT_LEADER_TIMEOUT_MS,
            rpc: RpcConfig {
                listen: rpc(standby_index(s)),
            },
            p2p: P2pConfig {
                listen: p2p(standby_index(s)),
                // The whole address book, itself included: a validator outside the genesis
                // set must find its own address there.
                peers: validator_peers.clone(),
                followers: followers.clone(),
            },
            equivocate: false,
        };
        let path = node_dir.join("config.toml");
        chain_node::write_atomic(&path, config.to_toml().as_bytes())?;
        standby_configs.push(path);
    }
    let accounts_path = a.dir.join("accounts.json");
    write_secret(&accounts_path, &serde_json::to_string_pretty(&accounts)?)?;
    Ok(InitSummary {
        chain_id: a.chain_id,
        genesis: genesis_path,
        configs,
        rpc: (0..a.net.validators)
            .map(|i| format!("http://{}", rpc(i)))
            .collect(),
        full_node_configs,
        full_node_rpc: (a.net.validators..a.net.validators + a.full_nodes)
            .map(|i| format!("http://{}", rpc(i)))
            .collect(),
        standby_configs,
        standby_rpc: (0..a.standby)
            .map(|s| format!("http://{}", rpc(standby_index(s))))
            .collect(),
        operators,
        accounts,
    })
}

/// `--param NAME=VALUE` flags as genesis overrides, each checked against its bounds.
fn governed_params(flags: &[String]) -> Result<GovernedParams> {
    let mut out = GovernedParams::default();
    for flag in flags {
        let (name, value) = flag
            .split_once('=')
            .with_context(|| format!("--param {flag}: write NAME=VALUE"))?;
        let param = Param::from_name(name.trim()).with_context(|| {
            let names: Vec<&str> = Param::ALL.iter().map(|p| p.name()).collect();
            format!(
                "--param {flag}: unknown parameter; one of {}",
                names.join(", ")
            )
        })?;
        let value: U256 = value
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--param {flag}: the value is not a whole number"))?;
        param
            .check(value)
            .map_err(|e| anyhow::anyhow!("--param {flag}: {e}"))?;
        if out.0.insert(param, value).is_some() {
            bail!("--param {name} is given twice");
        }
    }
    Ok(out)
}

/// Writes a file only its owner can read.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

fn run_node(config: &Path) -> Result<()> {
    let config = NodeConfig::load(config)?;
    let rt = crate::runtime()?;
    rt.block_on(async {
        let node = chain_node::Node::start(&config).await?;
        eprintln!("chain node running; JSON-RPC on http://{}", node.rpc_addr());
        crate::shutdown_signal().await;
        eprintln!("stopping");
        node.stop().await?;
        anyhow::Ok(())
    })
}

/// The validator processes of a devnet; killed when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SIGTERM first so nodes stop cleanly; kill what is left after a grace period.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut self.0 {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn devnet(a: DevnetArgs) -> Result<()> {
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("btt-devnet-{}", std::process::id())),
    };
    if !dir.join("genesis.json").exists() {
        init_dev(&dir, a.net.clone())?;
    }
    let genesis = Genesis::load(&dir.join("genesis.json"))?;
    let accounts: Vec<DevAccount> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("accounts.json")).context("accounts.json")?,
    )?;
    let exe = std::env::current_exe()?;
    let mut children = Children(Vec::new());
    let mut rpcs = Vec::new();
    for i in 0..genesis.validators.len() {
        let node_dir = dir.join(format!("node-{i}"));
        let config_path = node_dir.join("config.toml");
        let config = NodeConfig::load(&config_path)?;
        rpcs.push(config.rpc.listen);
        let log = std::fs::File::create(node_dir.join("node.log"))?;
        let child = Command::new(&exe)
            .args(["chain", "run", "--config"])
            .arg(&config_path)
            .env(
                "BTT_LOG",
                std::env::var("BTT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start a validator process")?;
        children.0.push(child);
    }
    // Ready = every node answers JSON-RPC and has finalized a block after genesis.
    let rt = crate::runtime()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, addr) in rpcs.iter().enumerate() {
        let client =
            wallet::RpcClient::new(&format!("http://{addr}"))?.with_timeout(Duration::from_secs(2));
        loop {
            if let Some(status) = children.0[i].try_wait()? {
                bail!(
                    "validator {i} exited ({status}); see {}",
                    dir.join(format!("node-{i}/node.log")).display()
                );
            }
            if rt.block_on(client.block_number()).is_ok_and(|n| n >= 1) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the devnet did not finalize a block within 60 s; see the node logs in {}",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let rpc_urls: Vec<String> = rpcs.iter().map(|a| format!("http://{a}")).collect();
    if a.json {
        let out = serde_json::json!({
            "chain_id": genesis.params.chain_id,
            "rpc": rpc_urls,
            "accounts": accounts,
            "dir": dir,
        });
        println!("{out}");
    } else {
        println!(
            "devnet of {} validators running (chain id {}), data in {}",
            rpcs.len(),
            genesis.params.chain_id,
            dir.display()
        );
        println!("JSON-RPC:");
        for u in &rpc_urls {
            println!("  {u}");
        }
        println!("funded dev accounts (1,000,000 BTT each unless changed):");
        for acc in &accounts {
            println!("  {}  key {}", acc.address, acc.private_key);
        }
        println!("stop with Ctrl-C");
    }
    std::io::stdout().flush()?;
    rt.block_on(crate::shutdown_signal());
    drop(children);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(flags: &[&str]) -> String {
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        governed_params(&flags).map_or_else(|e| e.to_string(), |p| format!("accepted {p:?}"))
    }

    #[test]
    fn genesis_params_are_checked() -> Result<()> {
        let flags = [
            "voting_period_blocks=20".to_owned(),
            " quorum_bps = 5000".to_owned(),
        ];
        let got = governed_params(&flags)?;
        assert_eq!(got.get(Param::VotingPeriodBlocks), U256::from(20u64));
        assert_eq!(got.get(Param::QuorumBps), U256::from(5_000u64));
        assert_eq!(got.0.len(), 2);
        for (flag, want) in [
            ("gas_limit", "--param gas_limit: write NAME=VALUE"),
            (
                "gas_limt=5",
                "--param gas_limt=5: unknown parameter; one of gas_limit,",
            ),
            (
                "gas_limit=1.5",
                "--param gas_limit=1.5: the value is not a whole number",
            ),
            (
                "gas_limit=5",
                "--param gas_limit=5: gas_limit must be between 1000000 and 1000000000, not 5",
            ),
        ] {
            let err = refusal(&[flag]);
            assert!(err.starts_with(want), "{flag}: {err}");
        }
        assert_eq!(
            refusal(&["jail_blocks=5", "jail_blocks=6"]),
            "--param jail_blocks is given twice"
        );
        Ok(())
    }
}
