//! A one-shot DHT client for interop tests: starts a node, optionally announces and/or looks up
//! an info-hash, and prints one JSON object per line on stdout.
//!
//! ```text
//! dht_probe [--bind IP] [--dht-port N] [--bootstrap HOST:PORT]... [--read-only]
//!           [--announce HEX --port N] [--get-peers HEX [--expect-port N]]
//!           [--timeout SECS] [--linger SECS]
//! ```
//!
//! Events: `{"event":"listening","addr":…}`, `{"event":"announced","info_hash":…,"port":…}`,
//! `{"event":"peer","addr":…}`, `{"event":"done","ok":…}`, `{"event":"error","message":…}`.
//! `--get-peers` repeats lookups until a peer (with `--expect-port`, that port) is found or the
//! timeout passes; `--announce` retries until one node accepted it. `--linger` keeps the node
//! running afterwards (so other programs can use it) until the time passes or stdin closes.
//! Exit status 0 when everything asked for succeeded.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(Default)]
struct Args {
    bind: Option<Ipv4Addr>,
    dht_port: u16,
    bootstrap: Vec<String>,
    read_only: bool,
    announce: Option<[u8; 20]>,
    port: Option<u16>,
    get_peers: Option<[u8; 20]>,
    expect_port: Option<u16>,
    timeout: Duration,
    linger: Duration,
}

fn parse_hex20(s: &str) -> anyhow::Result<[u8; 20]> {
    if s.len() != 40 {
        bail!("info-hash must be 40 hex digits, got {s:?}");
    }
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).context("info-hash is not hex")?;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bind" => args.bind = Some(value()?.parse()?),
            "--dht-port" => args.dht_port = value()?.parse()?,
            "--bootstrap" => args.bootstrap.push(value()?),
            "--read-only" => args.read_only = true,
            "--announce" => args.announce = Some(parse_hex20(&value()?)?),
            "--port" => args.port = Some(value()?.parse()?),
            "--get-peers" => args.get_peers = Some(parse_hex20(&value()?)?),
            "--expect-port" => args.expect_port = Some(value()?.parse()?),
            "--timeout" => args.timeout = Duration::from_secs_f64(value()?.parse()?),
            "--linger" => args.linger = Duration::from_secs_f64(value()?.parse()?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let node = dht::Dht::start(dht::Config {
        bootstrap: args.bootstrap.clone(),
        bind_address: args.bind.unwrap_or(Ipv4Addr::LOCALHOST),
        port: Some(args.dht_port),
        read_only: args.read_only,
        ..Default::default()
    })?;
    println!(
        "{{\"event\":\"listening\",\"addr\":\"{}\",\"read_only\":{}}}",
        node.local_addr(),
        args.read_only
    );
    let deadline = Instant::now() + args.timeout;
    let mut ok = true;

    if let Some(info_hash) = args.announce {
        let mut announced = false;
        while Instant::now() < deadline {
            match node.announce_peer(info_hash, args.port).await {
                Ok(()) => {
                    announced = true;
                    break;
                }
                Err(e) => eprintln!("announce: {e}; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if announced {
            println!(
                "{{\"event\":\"announced\",\"info_hash\":\"{}\",\"port\":{}}}",
                hex(&info_hash),
                args.port.map_or("null".to_owned(), |p| p.to_string())
            );
        }
        ok &= announced;
    }

    if let Some(info_hash) = args.get_peers {
        let mut found = false;
        'lookups: while Instant::now() < deadline {
            let mut peers = node.get_peers(info_hash);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, peers.next()).await {
                    Ok(Some(batch)) => {
                        for addr in batch {
                            println!("{{\"event\":\"peer\",\"addr\":\"{addr}\"}}");
                            if args.expect_port.is_none_or(|p| p == addr.port()) {
                                found = true;
                            }
                        }
                        if found {
                            break 'lookups;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => break 'lookups,
                }
            }
            // The lookup ended without the peer; ask again shortly (the seeder may announce late).
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ok &= found;
    }

    println!("{{\"event\":\"done\",\"ok\":{ok}}}");
    if !args.linger.is_zero() {
        // A plain thread, so a reader still blocked on stdin never delays exit.
        let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
            let _ = closed.send(());
        });
        let _ = tokio::time::timeout(args.linger, stdin_closed).await;
    }
    node.shutdown()?;
    Ok(ok)
}

fn main() {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?
            .block_on(run(args))
    });
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            let message = format!("{e:#}").replace('\\', "\\\\").replace('"', "\\\"");
            println!("{{\"event\":\"error\",\"message\":\"{message}\"}}");
            std::process::exit(2);
        }
    }
}
