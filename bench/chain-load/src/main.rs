//! Open-loop transfer load against a local BTT chain devnet, measuring finalized throughput,
//! submit→finalized latency and validator CPU.
//!
//! # Layout
//!
//! 1. Read the devnet description (`btt chain devnet --json` output): chain id, RPC URLs, funded
//!    dev accounts, data directory.
//! 2. Derive fresh sender accounts (a separate set per offered rate, so a rate never inherits
//!    another's queued nonces) and fund them with batched transfers from the dev accounts.
//! 3. For each offered rate: pre-sign `rate × duration` EIP-1559 transfers, round-robin over the
//!    senders; each sender is pinned to one node (nodes include only what their own RPC received).
//!    A scheduler releases what is due every tick as one JSON-RPC batch per node, handed to a few
//!    keep-alive HTTP/1.1 connections per node. Submit time = when a batch is written.
//! 4. A follower polls `btt_status` on node 0 every 20 ms and fetches each new block
//!    (`eth_getBlockByNumber`, hashes only); a transaction is finalized when its hash is first seen
//!    in a block. Another task samples `btt_status` of every node (mempool depth, finality latency).
//! 5. Prints one table row per rate and writes a JSON summary.
//!
//! ```text
//! chain-load --devnet devnet.json [--rates 500,1000,2000] [--duration 20] [--senders 200]
//!            [--tick-ms 10] [--conns 4] [--drain 15] [--json-out FILE] [--quiet]
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod http;
mod keys;
mod procs;
mod rpc;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{B256, U256};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::http::Conn;
use crate::keys::{Fees, Key, Signed};

/// One gwei in wei.
const GWEI: u128 = 1_000_000_000;
/// Most requests in one JSON-RPC batch (the node's limit is 1000).
const MAX_BATCH: usize = 1000;
/// How often the follower asks for the finalized head.
const FOLLOW_EVERY: Duration = Duration::from_millis(20);
/// How often every node's `btt_status` is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    devnet: PathBuf,
    rates: Vec<u64>,
    duration: Duration,
    senders: usize,
    tick: Duration,
    conns: usize,
    drain: Duration,
    json_out: Option<PathBuf>,
    fund_btt: u64,
    max_fee_gwei: u128,
    tip_gwei: u128,
    quiet: bool,
}

impl Options {
    fn parse() -> Result<Self> {
        let mut o = Options {
            devnet: PathBuf::from("-"),
            rates: vec![500, 1000, 2000, 3000, 5000],
            duration: Duration::from_secs(20),
            senders: 200,
            tick: Duration::from_millis(10),
            conns: 4,
            drain: Duration::from_secs(15),
            json_out: None,
            fund_btt: 1000,
            max_fee_gwei: 10_000,
            tip_gwei: 1,
            quiet: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--quiet" {
                o.quiet = true;
                continue;
            }
            if flag == "-h" || flag == "--help" {
                println!("{}", USAGE);
                std::process::exit(0);
            }
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
            let num = || -> Result<u64> {
                value
                    .parse()
                    .with_context(|| format!("{flag} takes a whole number, not {value:?}"))
            };
            match flag.as_str() {
                "--devnet" => o.devnet = PathBuf::from(&value),
                "--rates" => {
                    o.rates = value
                        .split(',')
                        .map(|r| r.trim().parse::<u64>())
                        .collect::<Result<_, _>>()
                        .context("--rates takes a comma-separated list of tx/s")?
                }
                "--duration" => o.duration = Duration::from_secs(num()?),
                "--senders" => o.senders = num()? as usize,
                "--tick-ms" => o.tick = Duration::from_millis(num()?),
                "--conns" => o.conns = num()? as usize,
                "--drain" => o.drain = Duration::from_secs(num()?),
                "--json-out" => o.json_out = Some(PathBuf::from(&value)),
                "--fund-btt" => o.fund_btt = num()?,
                "--max-fee-gwei" => o.max_fee_gwei = u128::from(num()?),
                "--tip-gwei" => o.tip_gwei = u128::from(num()?),
                _ => bail!("unknown option {flag}\n{USAGE}"),
            }
        }
        if o.rates.is_empty() || o.rates.contains(&0) || o.senders == 0 || o.conns == 0 {
            bail!("--rates, --senders and --conns must be positive");
        }
        if o.tick.is_zero() || o.duration.is_zero() {
            bail!("--tick-ms and --duration must be positive");
        }
        Ok(o)
    }
}

const USAGE: &str = "usage: chain-load --devnet FILE|- [--rates 500,1000,2000,3000,5000] \
[--duration SECS] [--senders N] [--tick-ms MS] [--conns PER_NODE] [--drain SECS] \
[--json-out FILE] [--fund-btt BTT] [--max-fee-gwei G] [--tip-gwei G] [--quiet]";

/// What `btt chain devnet --json` prints.
struct Devnet {
    chain_id: u64,
    rpc: Vec<SocketAddr>,
    accounts: Vec<Key>,
    dir: Option<PathBuf>,
}

impl Devnet {
    fn load(path: &PathBuf) -> Result<Self> {
        let text = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        // The JSON is the last non-empty line (devnet may print logs before it).
        let line = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .context("no JSON object in the devnet description")?;
        let v: Value = serde_json::from_str(line).context("the devnet description is not JSON")?;
        let chain_id = v["chain_id"].as_u64().context("chain_id missing")?;
        let rpc = v["rpc"]
            .as_array()
            .context("rpc missing")?
            .iter()
            .map(|u| {
                let u = u.as_str().context("rpc URLs are strings")?;
                let hostport = u.trim_start_matches("http://").trim_end_matches('/');
                hostport
                    .parse::<SocketAddr>()
                    .with_context(|| format!("{u} is not http://ip:port"))
            })
            .collect::<Result<Vec<_>>>()?;
        let accounts = v["accounts"]
            .as_array()
            .context("accounts missing")?
            .iter()
            .map(|a| Key::from_hex(a["private_key"].as_str().context("private_key missing")?))
            .collect::<Result<Vec<_>>>()?;
        if rpc.is_empty() || accounts.is_empty() {
            bail!("the devnet has no RPC endpoints or no funded accounts");
        }
        Ok(Self {
            chain_id,
            rpc,
            accounts,
            dir: v["dir"].as_str().map(PathBuf::from),
        })
    }
}

/// Microseconds since the Unix epoch (one clock for us and the nodes' millisecond timestamps).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A block as the follower saw it.
#[derive(Debug, Clone)]
struct SeenBlock {
    /// Its height.
    number: u64,
    /// When the follower learned it was final.
    seen_us: u64,
    /// The proposer's timestamp in ms, when the block was the polled node's head.
    timestamp_ms: Option<u64>,
    txs: usize,
    gas_used: u64,
}

/// What the follower has seen so far.
#[derive(Default)]
struct Follow {
    blocks: Vec<SeenBlock>,
    /// Transaction hash → index into `blocks`.
    txs: HashMap<B256, usize>,
    errors: u64,
}

/// One `btt_status` sample of one node.
#[derive(Debug, Clone, Copy)]
struct StatusSample {
    at_us: u64,
    node: usize,
    mempool: u64,
    finality_ms: Option<u64>,
}

/// Follows finalized blocks on `addr` until `stop` is set.
async fn follow(
    addr: SocketAddr,
    state: Arc<Mutex<Follow>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    let mut conn = Conn::new(addr);
    let status = rpc::call(&mut conn, "btt_status", json!([])).await?;
    let mut last = status["height"]
        .as_u64()
        .context("btt_status has no height")?;
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let status = match rpc::call(&mut conn, "btt_status", json!([])).await {
            Ok(s) => s,
            Err(_) => {
                if let Ok(mut s) = state.lock() {
                    s.errors += 1;
                }
                continue;
            }
        };
        let seen_us = now_us();
        let Some(height) = status["height"].as_u64() else {
            continue;
        };
        if height <= last {
            continue;
        }
        let head_ts = status["finalizedTimestampMs"].as_u64();
        let mut fetched = Vec::new();
        let numbers: Vec<u64> = (last + 1..=height).collect();
        for chunk in numbers.chunks(MAX_BATCH) {
            let items: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    rpc::request(
                        i,
                        "eth_getBlockByNumber",
                        &json!([format!("{n:#x}"), false]),
                    )
                })
                .collect();
            match rpc::batch(&mut conn, &items).await {
                Ok(answers) => fetched.extend(answers),
                Err(_) => break,
            }
        }
        if fetched.len() != numbers.len() {
            if let Ok(mut s) = state.lock() {
                s.errors += 1;
            }
            continue;
        }
        let mut st = match state.lock() {
            Ok(s) => s,
            Err(_) => bail!("follower state poisoned"),
        };
        for (n, answer) in numbers.iter().zip(fetched) {
            let Ok(block) = answer else {
                st.errors += 1;
                continue;
            };
            let hashes: Vec<B256> = block["transactions"]
                .as_array()
                .map(|a| a.iter().filter_map(|h| h.as_str()?.parse().ok()).collect())
                .unwrap_or_default();
            let index = st.blocks.len();
            st.blocks.push(SeenBlock {
                number: *n,
                seen_us,
                timestamp_ms: if *n == height { head_ts } else { None },
                txs: hashes.len(),
                gas_used: rpc::quantity(&block["gasUsed"]).unwrap_or(0),
            });
            for h in hashes {
                st.txs.entry(h).or_insert(index);
            }
        }
        last = height;
    }
    Ok(())
}

/// Samples `btt_status` of every node until `stop` is set.
async fn sample_status(
    rpcs: Vec<SocketAddr>,
    out: Arc<Mutex<Vec<StatusSample>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut conns: Vec<Conn> = rpcs.iter().map(|a| Conn::new(*a)).collect();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        for (node, conn) in conns.iter_mut().enumerate() {
            if let Ok(s) = rpc::call(conn, "btt_status", json!([])).await {
                let sample = StatusSample {
                    at_us: now_us(),
                    node,
                    mempool: s["mempoolTxs"].as_u64().unwrap_or(0),
                    finality_ms: s["lastFinalityLatencyMs"].as_u64(),
                };
                if let Ok(mut v) = out.lock() {
                    v.push(sample);
                }
            }
        }
    }
}

/// Sends every `(node, request)` and fails on the first rejection (setup transactions only).
async fn send_all(rpcs: &[SocketAddr], txs: Vec<(usize, Signed)>) -> Result<Vec<B256>> {
    let mut by_node: BTreeMap<usize, Vec<Signed>> = BTreeMap::new();
    for (node, s) in txs {
        by_node.entry(node).or_default().push(s);
    }
    let mut hashes = Vec::new();
    for (node, txs) in by_node {
        let mut conn = Conn::new(rpcs[node]);
        for chunk in txs.chunks(MAX_BATCH) {
            let items: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, s)| rpc::request(i, "eth_sendRawTransaction", &json!([s.raw_hex])))
                .collect();
            for (answer, s) in rpc::batch(&mut conn, &items).await?.into_iter().zip(chunk) {
                if let Err(e) = answer {
                    bail!("node {node} refused funding transaction {}: {e}", s.hash);
                }
                hashes.push(s.hash);
            }
        }
    }
    Ok(hashes)
}

/// Funds `senders` from the dev accounts (dev account `j` submits to node `j % nodes`) and waits
/// until every funding transfer is final.
async fn fund(
    net: &Devnet,
    senders: &[Key],
    fees: Fees,
    amount: U256,
    follow: &Arc<Mutex<Follow>>,
) -> Result<()> {
    let nodes = net.rpc.len();
    let mut nonces = Vec::new();
    for (j, dev) in net.accounts.iter().enumerate() {
        let mut conn = Conn::new(net.rpc[j % nodes]);
        let n = rpc::call(
            &mut conn,
            "eth_getTransactionCount",
            json!([dev.address.to_string(), "pending"]),
        )
        .await?;
        nonces.push(rpc::quantity(&n)?);
    }
    let mut txs = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let j = i % net.accounts.len();
        let tx = keys::transfer(
            &net.accounts[j],
            net.chain_id,
            nonces[j],
            s.address,
            amount,
            fees,
        )?;
        nonces[j] += 1;
        txs.push((j % nodes, tx));
    }
    let hashes = send_all(&net.rpc, txs).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing = {
            let st = follow
                .lock()
                .map_err(|_| anyhow::anyhow!("follower state poisoned"))?;
            hashes.iter().filter(|h| !st.txs.contains_key(*h)).count()
        };
        if missing == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{missing} funding transfers were not finalized within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The follower reads one node; every node must have applied the funding before senders
    // submit to it, or its admission check still sees empty balances.
    let height = {
        let st = follow
            .lock()
            .map_err(|_| anyhow::anyhow!("follower state poisoned"))?;
        hashes
            .iter()
            .filter_map(|h| st.txs.get(h).map(|&i| st.blocks[i].number))
            .max()
            .unwrap_or(0)
    };
    for addr in &net.rpc {
        let mut conn = Conn::new(*addr);
        loop {
            let n = rpc::call(&mut conn, "eth_blockNumber", json!([])).await?;
            if rpc::quantity(&n)? >= height {
                break;
            }
            if Instant::now() > deadline {
                bail!("node {addr} did not reach height {height} within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// A batch of transaction indices handed to a node's connections.
struct Batch {
    ids: Vec<u32>,
}

/// What happened to one submitted transaction.
#[derive(Clone)]
struct Outcome {
    id: u32,
    sent_us: u64,
    error: Option<String>,
}

/// Sends batches from `rx` over one connection until the channel closes.
async fn sender_worker(
    addr: SocketAddr,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Batch>>>,
    requests: Arc<Vec<String>>,
) -> (Vec<Outcome>, Vec<u64>) {
    let mut conn = Conn::new(addr);
    let mut outcomes = Vec::new();
    let mut rtts = Vec::new();
    loop {
        let batch = { rx.lock().await.recv().await };
        let Some(batch) = batch else { break };
        let mut body = Vec::with_capacity(batch.ids.len() * 260);
        body.push(b'[');
        for (i, id) in batch.ids.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(requests[*id as usize].as_bytes());
        }
        body.push(b']');
        let sent_us = now_us();
        let answers = match conn.post(&body).await {
            Ok(bytes) => rpc::parse_batch_by_id(&bytes),
            Err(e) => Err(e),
        };
        rtts.push(now_us().saturating_sub(sent_us));
        match answers {
            Ok(mut by_id) => outcomes.extend(batch.ids.iter().map(|id| Outcome {
                id: *id,
                sent_us,
                error: match by_id.remove(&u64::from(*id)) {
                    Some(Ok(_)) => None,
                    Some(Err(e)) => Some(e),
                    None => Some("no answer in the batch".into()),
                },
            })),
            Err(e) => {
                let msg = format!("batch failed: {e}");
                outcomes.extend(batch.ids.iter().map(|id| Outcome {
                    id: *id,
                    sent_us,
                    error: Some(msg.clone()),
                }));
            }
        }
    }
    (outcomes, rtts)
}

/// Results of one offered rate.
#[derive(Debug, Clone, Default)]
struct StepResult {
    offered: u64,
    planned: usize,
    sent: usize,
    send_secs: f64,
    max_send_lag_ms: f64,
    rejected: usize,
    rejections: BTreeMap<String, usize>,
    finalized: usize,
    not_finalized: usize,
    sustained_tps: f64,
    overall_tps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    submit_to_proposal_p50_ms: Option<f64>,
    proposal_to_seen_p50_ms: Option<f64>,
    rpc_batch_p50_ms: f64,
    rpc_batch_p99_ms: f64,
    blocks_per_sec: f64,
    txs_per_block: f64,
    max_txs_per_block: usize,
    gas_per_block: f64,
    cpu_percent: Vec<Option<f64>>,
    loadgen_cpu_percent: f64,
    /// CPU used by everything else on the machine (other users' work), in % of one core.
    other_cpu_percent: f64,
    max_mempool: Vec<u64>,
    node_finality_p50_ms: Option<f64>,
    node_finality_max_ms: Option<u64>,
}

/// The `p`-quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Everything a step needs that outlives it.
struct Ctx {
    net: Devnet,
    opts: Options,
    fees: Fees,
    follow: Arc<Mutex<Follow>>,
    samples: Arc<Mutex<Vec<StatusSample>>>,
    pids: Vec<Option<u32>>,
}

fn cpu_snapshot(pids: &[Option<u32>]) -> Vec<Option<f64>> {
    pids.iter()
        .map(|p| p.and_then(|p| procs::cpu_seconds(p).ok()))
        .collect()
}

/// Runs one offered rate with its own `senders` (fresh, funded, nonce 0).
async fn run_step(ctx: &Ctx, rate: u64, senders: Arc<Vec<Key>>) -> Result<StepResult> {
    let nodes = ctx.net.rpc.len();
    let total = (rate as f64 * ctx.opts.duration.as_secs_f64()).round() as usize;
    // Transaction i: sender i % S with nonce i / S, to the next sender (any address will do).
    let chain_id = ctx.net.chain_id;
    let fees = ctx.fees;
    let signed: Vec<Signed> = {
        let senders = senders.clone();
        tokio::task::spawn_blocking(move || presign(&senders, total, chain_id, fees))
            .await
            .context("signing thread failed")??
    };
    let requests: Arc<Vec<String>> = Arc::new(
        signed
            .iter()
            .enumerate()
            .map(|(i, s)| rpc::request(i, "eth_sendRawTransaction", &json!([s.raw_hex])))
            .collect(),
    );
    let node_of = |i: usize| (i % senders.len()) % nodes;

    let mut txs_by_node: Vec<mpsc::UnboundedSender<Batch>> = Vec::new();
    let mut workers = Vec::new();
    for addr in &ctx.net.rpc {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..ctx.opts.conns {
            workers.push(tokio::spawn(sender_worker(
                *addr,
                rx.clone(),
                requests.clone(),
            )));
        }
        txs_by_node.push(tx);
    }

    let cpu0 = cpu_snapshot(&ctx.pids);
    let own0 = procs::own_cpu_seconds().unwrap_or(0.0);
    let machine0 = procs::machine_busy_seconds().unwrap_or(0.0);
    let t0 = Instant::now();
    let t0_us = now_us();
    let mut next = 0usize;
    let mut k = 0u32;
    let mut max_lag = Duration::ZERO;
    while next < total {
        k += 1;
        let at = t0 + ctx.opts.tick * k;
        tokio::time::sleep_until(at.into()).await;
        max_lag = max_lag.max(Instant::now().saturating_duration_since(at));
        let due = ((rate as f64 * t0.elapsed().as_secs_f64()) as usize).min(total);
        let mut per_node: Vec<Vec<u32>> = vec![Vec::new(); nodes];
        for i in next..due {
            per_node[node_of(i)].push(i as u32);
        }
        next = due;
        for (node, ids) in per_node.into_iter().enumerate() {
            for chunk in ids.chunks(MAX_BATCH) {
                let _ = txs_by_node[node].send(Batch {
                    ids: chunk.to_vec(),
                });
            }
        }
    }
    let send_secs = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_snapshot(&ctx.pids);
    let own1 = procs::own_cpu_seconds().unwrap_or(0.0);
    let machine1 = procs::machine_busy_seconds().unwrap_or(0.0);
    drop(txs_by_node);
    let mut outcomes = Vec::with_capacity(total);
    let mut rtts = Vec::new();
    for w in workers {
        let (o, r) = w.await.context("a sender task failed")?;
        outcomes.extend(o);
        rtts.extend(r);
    }
    outcomes.sort_by_key(|o| o.id);

    // Drain: wait until every accepted transfer is final, or the drain time passes.
    let accepted: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_none()).collect();
    let deadline = Instant::now() + ctx.opts.drain;
    loop {
        let missing = {
            let st = ctx
                .follow
                .lock()
                .map_err(|_| anyhow::anyhow!("follower state poisoned"))?;
            accepted
                .iter()
                .filter(|o| !st.txs.contains_key(&signed[o.id as usize].hash))
                .count()
        };
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let duration_us = ctx.opts.duration.as_micros() as u64;
    let warmup_us = (duration_us / 4).min(2_000_000);
    let window = (t0_us + warmup_us, t0_us + duration_us);
    let st = ctx
        .follow
        .lock()
        .map_err(|_| anyhow::anyhow!("follower state poisoned"))?;
    let mut latencies = Vec::new();
    let mut to_proposal = Vec::new();
    let mut from_proposal = Vec::new();
    let mut in_window = 0usize;
    let mut last_seen = t0_us;
    for o in &accepted {
        let Some(&b) = st.txs.get(&signed[o.id as usize].hash) else {
            continue;
        };
        let block = &st.blocks[b];
        latencies.push(block.seen_us.saturating_sub(o.sent_us) as f64 / 1000.0);
        if let Some(ts) = block.timestamp_ms {
            to_proposal.push((ts as f64) - o.sent_us as f64 / 1000.0);
            from_proposal.push(block.seen_us as f64 / 1000.0 - ts as f64);
        }
        if block.seen_us >= window.0 && block.seen_us < window.1 {
            in_window += 1;
        }
        last_seen = last_seen.max(block.seen_us);
    }
    let blocks: Vec<SeenBlock> = st
        .blocks
        .iter()
        .filter(|b| b.seen_us >= window.0 && b.seen_us < window.1)
        .cloned()
        .collect();
    let window_secs = (window.1 - window.0) as f64 / 1e6;
    let finalized = latencies.len();
    let latencies = sorted(latencies);
    let to_proposal = sorted(to_proposal);
    let from_proposal = sorted(from_proposal);
    let rtts = sorted(rtts.into_iter().map(|r| r as f64 / 1000.0).collect());
    drop(st);

    let mut rejections = BTreeMap::new();
    for o in &outcomes {
        if let Some(e) = &o.error {
            *rejections.entry(normalize_error(e)).or_insert(0) += 1;
        }
    }
    let samples: Vec<StatusSample> = ctx
        .samples
        .lock()
        .map(|s| {
            s.iter()
                .filter(|x| x.at_us >= t0_us && x.at_us < window.1)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let mut max_mempool = vec![0u64; nodes];
    for s in &samples {
        max_mempool[s.node] = max_mempool[s.node].max(s.mempool);
    }
    let node_finality = sorted(
        samples
            .iter()
            .filter(|s| s.at_us >= window.0)
            .filter_map(|s| s.finality_ms.map(|f| f as f64))
            .collect(),
    );
    let cpu_secs = ctx.opts.duration.as_secs_f64().max(send_secs);
    Ok(StepResult {
        offered: rate,
        planned: total,
        sent: outcomes.len(),
        send_secs,
        max_send_lag_ms: max_lag.as_secs_f64() * 1000.0,
        rejected: outcomes.len() - accepted.len(),
        rejections,
        finalized,
        not_finalized: accepted.len() - finalized,
        sustained_tps: in_window as f64 / window_secs,
        overall_tps: finalized as f64 / ((last_seen.saturating_sub(t0_us)) as f64 / 1e6).max(1e-9),
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        submit_to_proposal_p50_ms: (!to_proposal.is_empty()).then(|| quantile(&to_proposal, 0.5)),
        proposal_to_seen_p50_ms: (!from_proposal.is_empty()).then(|| quantile(&from_proposal, 0.5)),
        rpc_batch_p50_ms: quantile(&rtts, 0.5),
        rpc_batch_p99_ms: quantile(&rtts, 0.99),
        blocks_per_sec: blocks.len() as f64 / window_secs,
        txs_per_block: blocks.iter().map(|b| b.txs).sum::<usize>() as f64
            / blocks.len().max(1) as f64,
        max_txs_per_block: blocks.iter().map(|b| b.txs).max().unwrap_or(0),
        gas_per_block: blocks.iter().map(|b| b.gas_used as f64).sum::<f64>()
            / blocks.len().max(1) as f64,
        cpu_percent: cpu0
            .iter()
            .zip(&cpu1)
            .map(|(a, b)| Some((b.as_ref()? - a.as_ref()?) / cpu_secs * 100.0))
            .collect(),
        loadgen_cpu_percent: (own1 - own0) / cpu_secs * 100.0,
        other_cpu_percent: ((machine1 - machine0)
            - (own1 - own0)
            - cpu0
                .iter()
                .zip(&cpu1)
                .filter_map(|(a, b)| Some(b.as_ref()? - a.as_ref()?))
                .sum::<f64>())
            / cpu_secs
            * 100.0,
        max_mempool,
        node_finality_p50_ms: (!node_finality.is_empty()).then(|| quantile(&node_finality, 0.5)),
        node_finality_max_ms: node_finality.last().map(|f| *f as u64),
    })
}

/// Signs `total` transfers round-robin over `senders`, on every core.
fn presign(senders: &[Key], total: usize, chain_id: u64, fees: Fees) -> Result<Vec<Signed>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = total.div_ceil(threads).max(1);
    let s = senders.len();
    let one = |i: usize| {
        let to = senders[(i + 1) % s].address;
        keys::transfer(
            &senders[i % s],
            chain_id,
            (i / s) as u64,
            to,
            U256::from(1),
            fees,
        )
    };
    let parts: Vec<Result<Vec<Signed>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..total)
            .step_by(per)
            .map(|start| scope.spawn(move || (start..(start + per).min(total)).map(one).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a signing thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(total);
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// Groups error messages that differ only in numbers and addresses.
fn normalize_error(e: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('N');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in e.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out.chars().take(100).collect()
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
}

fn table(results: &[StepResult]) -> String {
    let mut s = String::new();
    s.push_str("| offered tx/s | sent | rejected | finalized tx/s | finalized | p50 ms | p99 ms | max ms | p50 to proposal / proposal to final ms | blocks/s | tx/block | CPU % per validator | load-gen CPU % | other CPU % | max mempool per node |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n");
    for r in results {
        let cpu: Vec<String> = r.cpu_percent.iter().map(|c| fmt_opt(*c, 0)).collect();
        let pool: Vec<String> = r.max_mempool.iter().map(u64::to_string).collect();
        s.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} % | {:.0} | {:.0} | {:.0} | {} / {} | {:.1} | {:.0} | {} | {:.0} | {:.0} | {} |\n",
            r.offered,
            r.sent,
            r.rejected,
            r.sustained_tps,
            r.finalized as f64 * 100.0 / r.planned.max(1) as f64,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            fmt_opt(r.submit_to_proposal_p50_ms, 0),
            fmt_opt(r.proposal_to_seen_p50_ms, 0),
            r.blocks_per_sec,
            r.txs_per_block,
            cpu.join(" / "),
            r.loadgen_cpu_percent,
            r.other_cpu_percent.max(0.0),
            pool.join(" / "),
        ));
    }
    s
}

fn to_json(r: &StepResult) -> Value {
    json!({
        "offered_tps": r.offered,
        "planned": r.planned,
        "sent": r.sent,
        "send_secs": r.send_secs,
        "max_send_lag_ms": r.max_send_lag_ms,
        "rejected": r.rejected,
        "rejections": r.rejections,
        "finalized": r.finalized,
        "accepted_not_finalized": r.not_finalized,
        "sustained_finalized_tps": r.sustained_tps,
        "overall_finalized_tps": r.overall_tps,
        "latency_ms": {"p50": r.p50_ms, "p99": r.p99_ms, "max": r.max_ms},
        "submit_to_proposal_p50_ms": r.submit_to_proposal_p50_ms,
        "proposal_to_seen_p50_ms": r.proposal_to_seen_p50_ms,
        "rpc_batch_ms": {"p50": r.rpc_batch_p50_ms, "p99": r.rpc_batch_p99_ms},
        "blocks_per_sec": r.blocks_per_sec,
        "txs_per_block": r.txs_per_block,
        "max_txs_per_block": r.max_txs_per_block,
        "gas_per_block": r.gas_per_block,
        "validator_cpu_percent": r.cpu_percent,
        "loadgen_cpu_percent": r.loadgen_cpu_percent,
        "other_cpu_percent": r.other_cpu_percent,
        "max_mempool_per_node": r.max_mempool,
        "node_finality_ms": {"p50": r.node_finality_p50_ms, "max": r.node_finality_max_ms},
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let opts = Options::parse()?;
    let net = Devnet::load(&opts.devnet)?;
    let nodes = net.rpc.len();
    let log = |m: String| {
        if !opts.quiet {
            eprintln!("chain-load: {m}");
        }
    };
    let pids = match &net.dir {
        Some(dir) => procs::validator_pids(dir, nodes),
        None => vec![None; nodes],
    };
    log(format!("{nodes} nodes, validator pids {pids:?}"));
    let fees = Fees {
        max_fee: opts.max_fee_gwei * GWEI,
        tip: opts.tip_gwei * GWEI,
    };

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follow_state = Arc::new(Mutex::new(Follow::default()));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let follower = tokio::spawn(follow(net.rpc[0], follow_state.clone(), stop.clone()));
    let sampler = tokio::spawn(sample_status(
        net.rpc.clone(),
        samples.clone(),
        stop.clone(),
    ));

    let seed = now_us();
    let per_step = opts.senders;
    let all: Vec<Key> = (0..(per_step * opts.rates.len()) as u64)
        .map(|i| Key::derived(seed, i))
        .collect::<Result<_>>()?;
    log(format!(
        "funding {} senders with {} BTT each",
        all.len(),
        opts.fund_btt
    ));
    let amount = U256::from(opts.fund_btt) * U256::from(10u64).pow(U256::from(18u64));
    let t = Instant::now();
    fund(&net, &all, fees, amount, &follow_state).await?;
    log(format!("funded in {:.1} s", t.elapsed().as_secs_f64()));

    let ctx = Ctx {
        net,
        opts: opts.clone(),
        fees,
        follow: follow_state.clone(),
        samples,
        pids,
    };
    let mut results = Vec::new();
    for (step, rate) in opts.rates.iter().enumerate() {
        let senders = Arc::new(all[step * per_step..(step + 1) * per_step].to_vec());
        log(format!(
            "offering {rate} tx/s for {} s from {per_step} senders",
            opts.duration.as_secs()
        ));
        let r = run_step(&ctx, *rate, senders).await?;
        log(format!(
            "{rate} tx/s: {:.0} finalized/s, p50 {:.0} ms, p99 {:.0} ms, {} rejected, {} not finalized",
            r.sustained_tps, r.p50_ms, r.p99_ms, r.rejected, r.not_finalized
        ));
        for (e, n) in &r.rejections {
            log(format!("  rejected {n}×: {e}"));
        }
        results.push(r);
        // Let the pools empty before the next rate.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.await;
    let follow_result = follower.await;
    let follower_errors = follow_state.lock().map_or(0, |s| s.errors);
    if let Ok(Err(e)) = follow_result {
        log(format!("the block follower stopped: {e}"));
    }

    print!("{}", table(&results));
    let summary = json!({
        "nodes": ctx.net.rpc.len(),
        "senders_per_rate": per_step,
        "duration_secs": opts.duration.as_secs(),
        "tick_ms": opts.tick.as_millis() as u64,
        "conns_per_node": opts.conns,
        "fees_gwei": {"max_fee": opts.max_fee_gwei, "tip": opts.tip_gwei},
        "follower_errors": follower_errors,
        "steps": results.iter().map(to_json).collect::<Vec<_>>(),
    });
    match &opts.json_out {
        Some(path) => std::fs::write(path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => println!("{summary}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn errors_group_without_their_numbers() {
        assert_eq!(
            normalize_error("nonce too low: address 0xab12, tx: 5 state: 7"),
            normalize_error("nonce too low: address 0xcd34, tx: 9 state: 12")
        );
    }

    #[test]
    fn presigned_transfers_run_round_robin_over_senders() {
        let senders: Vec<Key> = (0..3).map(|i| Key::derived(1, i).unwrap()).collect();
        let fees = Fees { max_fee: 1, tip: 1 };
        let a = presign(&senders, 7, 7215, fees).unwrap();
        assert_eq!(a.len(), 7);
        let b = keys::transfer(
            &senders[1],
            7215,
            1,
            senders[2].address,
            U256::from(1),
            fees,
        )
        .unwrap();
        assert_eq!(a[4].hash, b.hash);
    }
}
