//! Four validators on 127.0.0.1 through the production entry point.

use chain_consensus::{
    namespace, start, ChainApp, Config, GossipHandler, ProposalCtx, ValidatorKeys, Verdict,
};
use chain_types::{Block, Header, B256};
use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

const CHAIN_ID: u64 = 7215;

/// Empty blocks; records what it applies.
struct App {
    applied: Arc<Mutex<BTreeMap<u64, B256>>>,
}

fn genesis() -> Block {
    Block {
        header: Header {
            transactions_root: chain_types::transactions_root(&[]),
            gas_limit: 30_000_000,
            ..Default::default()
        },
        transactions: Vec::new(),
    }
}

impl ChainApp for App {
    fn genesis(&self) -> Block {
        genesis()
    }

    fn build(&mut self, parent: &Block, ctx: &ProposalCtx) -> Option<Block> {
        let mut block = genesis();
        block.header.parent_hash = parent.hash();
        block.header.number = parent.header.number + 1;
        block.header.timestamp_ms = ctx.now_ms.max(parent.header.timestamp_ms + 1);
        Some(block)
    }

    fn verify(&mut self, parent: &Block, block: &Block, _ctx: &ProposalCtx) -> Verdict {
        if block.header.timestamp_ms > parent.header.timestamp_ms {
            Verdict::Valid
        } else {
            Verdict::Invalid("timestamp".into())
        }
    }

    fn finalized(&mut self, block: &Block) -> Result<(), String> {
        let mut applied = self.applied.lock().unwrap();
        applied.insert(block.header.number, block.hash());
        Ok(())
    }
}

fn free_ports(n: usize) -> Vec<SocketAddr> {
    // Hold all listeners at once so the OS hands out distinct ports, then release them.
    let listeners: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "chain-consensus-tcp-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_finalize_over_tcp() {
    let ns = namespace(CHAIN_ID);
    let keys: Vec<_> = (0..4u8)
        .map(|i| ValidatorKeys::generate([100 + i; 32]))
        .collect();
    let validators: Vec<_> = keys.iter().map(|k| k.public(&ns)).collect();
    let addrs = free_ports(4);
    let dir = scratch_dir();
    let mut handles = Vec::new();
    let mut applied = Vec::new();
    let (gossip_txs, mut gossip_rxs): (Vec<_>, Vec<_>) = (0..4)
        .map(|_| tokio::sync::mpsc::unbounded_channel::<Vec<u8>>())
        .unzip();
    let config = |i: usize| Config {
        chain_id: CHAIN_ID,
        validators: validators.clone(),
        me: keys[i].clone(),
        listen: addrs[i],
        peers: keys
            .iter()
            .zip(&addrs)
            .map(|(k, a)| (k.identity_hex(), *a))
            .collect(),
        storage_dir: dir.join(format!("v{i}")),
        leader_timeout_ms: 1_000,
        max_block_bytes: 1 << 20,
        on_gossip: Some({
            let tx = gossip_txs[i].clone();
            GossipHandler(Arc::new(move |m| {
                let _ = tx.send(m);
            }))
        }),
    };
    for i in 0..keys.len() {
        let record = Arc::new(Mutex::new(BTreeMap::new()));
        applied.push(record.clone());
        handles.push(start(config(i), App { applied: record }).unwrap());
    }

    // Wait on the status channels (not on a timer) for every node to apply height 10.
    let target = 10;
    let mut watchers: Vec<_> = handles.iter().map(|h| h.subscribe()).collect();
    tokio::time::timeout(Duration::from_secs(90), async {
        for w in &mut watchers {
            w.wait_for(|s| s.applied.is_some_and(|a| a.height >= target))
                .await
                .unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| {
        let heights: Vec<_> = handles.iter().map(|h| h.status()).collect();
        panic!("not all validators reached height {target}: {heights:?}")
    });

    // Everyone applied the same blocks, in order, from genesis (height 0) on.
    let first = applied[0].lock().unwrap().clone();
    for record in &applied {
        let record = record.lock().unwrap();
        assert!(record
            .keys()
            .copied()
            .eq(0..=*record.keys().last().unwrap()));
        assert_eq!(record[&0], genesis().hash());
        for (h, hash) in record.iter() {
            if let Some(other) = first.get(h) {
                assert_eq!(other, hash, "validators disagree at height {h}");
            }
        }
    }
    // Gossip from validator 0 reaches every other validator, byte for byte, and not itself.
    handles[0].gossip(b"pending transactions".to_vec());
    for rx in &mut gossip_rxs[1..] {
        let got = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("gossip arrives")
            .unwrap();
        assert_eq!(got, b"pending transactions");
    }
    assert!(gossip_rxs[0].try_recv().is_err());

    let status = handles[0].status();
    let finality = status.applied.unwrap();
    assert_eq!(Some(&finality.hash), first.get(&finality.height));
    assert!(status.finalized_tip >= finality.height);

    // Stop validator 3, let the others go on, restart it from its storage: it resumes from
    // what marshal recorded and catches up.
    let cfg3 = config(3);
    handles.pop().unwrap().stop();
    let ahead = handles[0].status().applied.unwrap().height + 5;
    let mut w0 = handles[0].subscribe();
    tokio::time::timeout(Duration::from_secs(60), async {
        w0.wait_for(|s| s.applied.is_some_and(|a| a.height >= ahead))
            .await
            .unwrap();
    })
    .await
    .expect("three validators keep finalizing");
    let before_restart = *applied[3].lock().unwrap().keys().last().unwrap();
    assert!(before_restart < ahead);
    handles.push(
        start(
            cfg3,
            App {
                applied: applied[3].clone(),
            },
        )
        .unwrap(),
    );
    let mut w3 = handles[3].subscribe();
    tokio::time::timeout(Duration::from_secs(60), async {
        w3.wait_for(|s| s.applied.is_some_and(|a| a.height >= ahead))
            .await
            .unwrap();
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "restarted validator did not catch up: {:?}",
            handles[3].status()
        )
    });
    let restarted = applied[3].lock().unwrap().clone();
    let reference = applied[0].lock().unwrap().clone();
    assert!(restarted
        .keys()
        .copied()
        .eq(0..=*restarted.keys().last().unwrap()));
    for (h, hash) in &restarted {
        assert_eq!(reference.get(h).unwrap_or(hash), hash, "fork at height {h}");
    }

    for h in handles {
        h.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn start_refuses_bad_configuration() {
    let ns = namespace(CHAIN_ID);
    let keys: Vec<_> = (0..4u8)
        .map(|i| ValidatorKeys::generate([50 + i; 32]))
        .collect();
    let mut validators: Vec<_> = keys.iter().map(|k| k.public(&ns)).collect();
    let addrs = free_ports(4);
    let peers: Vec<_> = keys
        .iter()
        .zip(&addrs)
        .map(|(k, a)| (k.identity_hex(), *a))
        .collect();
    let app = || App {
        applied: Arc::default(),
    };
    let cfg = |validators: Vec<_>, peers: Vec<_>| Config {
        chain_id: CHAIN_ID,
        validators,
        me: keys[0].clone(),
        listen: addrs[0],
        peers,
        storage_dir: std::env::temp_dir().join("chain-consensus-never-created"),
        leader_timeout_ms: 1_000,
        max_block_bytes: 1 << 20,
        on_gossip: None,
    };

    // A proof of possession made for another chain.
    let mut bad = validators.clone();
    bad[3].pop = keys[3].public(&namespace(1)).pop;
    let err = start(cfg(bad, peers.clone()), app()).unwrap_err();
    assert!(
        err.to_string().starts_with("validator #3"),
        "unexpected error: {err}"
    );

    // A validator without an address.
    let err = start(cfg(validators.clone(), peers[..3].to_vec()), app()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no address for validator {}: add it to the peer list",
            keys[3].identity_hex()
        )
    );

    // Not in the set.
    validators.remove(0);
    let err = start(cfg(validators, peers[1..].to_vec()), app()).unwrap_err();
    assert!(matches!(err, chain_consensus::Error::NotAValidator(_)));
}
