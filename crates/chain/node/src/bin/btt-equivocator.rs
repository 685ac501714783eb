//! `btt-equivocator --config <node config>`: runs a chain node exactly like `btt chain run`,
//! except that as a validator it also signs a conflicting vote next to each of its honest
//! notarize votes. For test networks only: it exists so tests can watch a real equivocation
//! be detected, submitted as evidence and slashed. It is not part of the `btt` program.

use std::path::PathBuf;
use std::process::ExitCode;

use chain_node::{Node, NodeConfig};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let config = match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--config"), Some(path), None) => PathBuf::from(path),
        _ => {
            eprintln!("usage: btt-equivocator --config <node config.toml>");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("btt-equivocator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path) -> Result<(), chain_node::Error> {
    let mut config = NodeConfig::load(path)?;
    config.equivocate = true;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| chain_node::Error::Start(e.to_string()))?;
    runtime.block_on(async {
        let node = Node::start(&config).await?;
        eprintln!(
            "equivocating chain node running; JSON-RPC on http://{}",
            node.rpc_addr()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| chain_node::Error::Start(e.to_string()))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        node.stop().await
    })
}
