//! Four validators and a full node on 127.0.0.1 through the production entry point.

use chain_consensus::{
    namespace, start, ChainApp, Config, GossipHandler, NodeKey, ProposalCtx, Role, ValidatorInfo,
    ValidatorKeys, Verdict,
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
    /// A full node's app: building or verifying is a bug.
    follower: bool,
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
        assert!(!self.follower, "a full node was asked to build");
        let mut block = genesis();
        block.header.parent_hash = parent.hash();
        block.header.number = parent.header.number + 1;
        block.header.timestamp_ms = ctx.now_ms.max(parent.header.timestamp_ms + 1);
        Some(block)
    }

    fn verify(&mut self, parent: &Block, block: &Block, _ctx: &ProposalCtx) -> Verdict {
        assert!(!self.follower, "a full node was asked to verify");
        if block.header.timestamp_ms > parent.header.timestamp_ms {
            Verdict::Valid
        } else {
            Verdict::Invalid("timestamp".into())
        }
    }

    fn committee(&self, epoch: u64) -> Option<Vec<ValidatorInfo>> {
        // One epoch in these tests: only the genesis committee is ever asked for.
        assert_eq!(epoch, 0, "asked for a later committee");
        None
    }

    fn finalized_height(&self) -> u64 {
        self.applied
            .lock()
            .unwrap()
            .last_key_value()
            .map_or(0, |(h, _)| *h)
    }

    fn finalized(&mut self, block: &Block) -> Result<(), String> {
        let mut applied = self.applied.lock().unwrap();
        // In height order: every block extends the previous one.
        if let Some(parent) = block.header.number.checked_sub(1) {
            let last = applied.last_key_value().map(|(h, hash)| (*h, *hash));
            if let Some((height, hash)) = last {
                assert!(block.header.number <= height + 1, "height skipped");
                if height == parent {
                    assert_eq!(block.header.parent_hash, hash, "applied a fork");
                }
            }
        }
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

/// Logs to stderr when `BTT_TEST_LOG` holds a filter (e.g. `debug`).
fn init_logs() {
    if let Ok(filter) = std::env::var("BTT_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Waits on `handle`'s status channel (not on a timer) until it has applied `height`.
async fn wait_applied(handle: &chain_consensus::Handle, height: u64, secs: u64, what: &str) {
    let mut watcher = handle.subscribe();
    tokio::time::timeout(Duration::from_secs(secs), async {
        watcher
            .wait_for(|s| s.applied.is_some_and(|a| a.height >= height))
            .await
            .unwrap();
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{what} did not reach height {height}: {:?}",
            handle.status()
        )
    });
}

/// Every height of `record` from 0 to its top, each with `reference`'s hash where it has one.
fn assert_same_chain(record: &BTreeMap<u64, B256>, reference: &BTreeMap<u64, B256>, who: &str) {
    let top = *record.keys().last().unwrap();
    assert!(record.keys().copied().eq(0..=top), "{who} has gaps");
    assert_eq!(record[&0], genesis().hash());
    for (h, hash) in record {
        if let Some(other) = reference.get(h) {
            assert_eq!(other, hash, "{who} disagrees at height {h}");
        }
    }
}

/// Gossips `message` from `from` until every node in `to` has received it. Gossip is best
/// effort (only to peers connected at that moment, and connections among freshly started
/// nodes still churn), so it is sent again each second; duplicates are drained.
async fn deliver_gossip(
    from: &chain_consensus::Handle,
    message: &[u8],
    rxs: &mut [tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>],
    to: &[usize],
) {
    let mut missing: Vec<usize> = to.to_vec();
    for _ in 0..30 {
        from.gossip(message.to_vec());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        for &i in to {
            if !missing.contains(&i) {
                continue;
            }
            if let Ok(Some(got)) = tokio::time::timeout_at(deadline, rxs[i].recv()).await {
                assert_eq!(got, message, "node {i} received other bytes");
                missing.retain(|&m| m != i);
            }
        }
        if missing.is_empty() {
            break;
        }
    }
    assert!(missing.is_empty(), "gossip never reached nodes {missing:?}");
    // Let resent copies arrive, then drop them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for &i in to {
        while rxs[i].try_recv().is_ok() {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_and_a_full_node_over_tcp() {
    init_logs();
    let ns = namespace(CHAIN_ID);
    let keys: Vec<_> = (0..4u8)
        .map(|i| ValidatorKeys::generate([100 + i; 32]))
        .collect();
    let node_key = NodeKey::generate([200; 32]);
    let validators: Vec<_> = keys.iter().map(|k| k.public(&ns)).collect();
    // Four validators, then the full node.
    let addrs = free_ports(5);
    let dir = scratch_dir();
    let mut handles = Vec::new();
    let mut applied = Vec::new();
    let (gossip_txs, mut gossip_rxs): (Vec<_>, Vec<_>) = (0..5)
        .map(|_| tokio::sync::mpsc::unbounded_channel::<Vec<u8>>())
        .unzip();
    let config = |i: usize| Config {
        chain_id: CHAIN_ID,
        validators: validators.clone(),
        me: match keys.get(i) {
            Some(k) => Role::Validator(k.clone()),
            None => Role::Follower(node_key.clone()),
        },
        listen: addrs[i],
        peers: keys
            .iter()
            .zip(&addrs)
            .map(|(k, a)| (k.identity_hex(), *a))
            .collect(),
        followers: vec![(node_key.identity_hex(), addrs[4])],
        storage_dir: dir.join(format!("n{i}")),
        leader_timeout_ms: 1_000,
        max_block_bytes: 1 << 20,
        epoch_length: u64::MAX,
        equivocate: false,
        on_gossip: Some({
            let tx = gossip_txs[i].clone();
            GossipHandler(Arc::new(move |m| {
                let _ = tx.send(m);
            }))
        }),
    };
    for i in 0..5 {
        let record = Arc::new(Mutex::new(BTreeMap::new()));
        applied.push(record.clone());
        let app = App {
            applied: record,
            follower: i == 4,
        };
        handles.push(start(config(i), app).unwrap());
    }
    let full = 4;

    let target = 10;
    for (i, h) in handles.iter().enumerate() {
        wait_applied(h, target, 90, &format!("node {i}")).await;
    }

    // Everyone, the full node included, applied the same blocks, in order, from genesis on.
    let first = applied[0].lock().unwrap().clone();
    for (i, record) in applied.iter().enumerate() {
        assert_same_chain(&record.lock().unwrap(), &first, &format!("node {i}"));
    }
    let status = handles[full].status();
    let finality = status.applied.unwrap();
    assert_eq!(Some(&finality.hash), first.get(&finality.height));

    // Gossip from validator 0 reaches every other node, byte for byte, and not itself; gossip
    // from the full node reaches every validator (that is how it forwards transactions).
    deliver_gossip(
        &handles[0],
        b"pending transactions",
        &mut gossip_rxs,
        &[1, 2, 3, 4],
    )
    .await;
    assert!(gossip_rxs[0].try_recv().is_err());
    deliver_gossip(
        &handles[full],
        b"from the full node",
        &mut gossip_rxs,
        &[0, 1, 2, 3],
    )
    .await;
    assert!(gossip_rxs[full].try_recv().is_err());

    let status = handles[0].status();
    let finality = status.applied.unwrap();
    assert_eq!(
        Some(&finality.hash),
        applied[0].lock().unwrap().get(&finality.height)
    );
    assert!(status.finalized_tip >= finality.height);

    // Stop validator 3 and the full node, let the others go on, restart both from their
    // storage: they resume from what marshal recorded and catch up.
    let cfg3 = config(3);
    let cfg_full = config(full);
    handles.pop().unwrap().stop();
    handles.pop().unwrap().stop();
    let ahead = handles[0].status().applied.unwrap().height + 5;
    wait_applied(&handles[0], ahead, 60, "validator 0 with three validators").await;
    for i in [3, full] {
        let before_restart = *applied[i].lock().unwrap().keys().last().unwrap();
        assert!(before_restart < ahead);
    }
    let restart = |cfg, i: usize| {
        let app = App {
            applied: applied[i].clone(),
            follower: i == full,
        };
        start(cfg, app).unwrap()
    };
    handles.push(restart(cfg3, 3));
    handles.push(restart(cfg_full, full));
    wait_applied(&handles[3], ahead, 60, "restarted validator 3").await;
    wait_applied(&handles[full], ahead, 60, "restarted full node").await;
    let reference = applied[0].lock().unwrap().clone();
    for i in [3, full] {
        assert_same_chain(
            &applied[i].lock().unwrap(),
            &reference,
            &format!("restarted node {i}"),
        );
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
        follower: false,
    };
    let cfg = |validators: Vec<_>, peers: Vec<_>| Config {
        chain_id: CHAIN_ID,
        validators,
        me: Role::Validator(keys[0].clone()),
        listen: addrs[0],
        peers,
        followers: Vec::new(),
        storage_dir: std::env::temp_dir().join("chain-consensus-never-created"),
        leader_timeout_ms: 1_000,
        max_block_bytes: 1 << 20,
        on_gossip: None,
        epoch_length: u64::MAX,
        equivocate: false,
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

    // A follower entry that names a validator.
    let mut with_follower = cfg(validators.clone(), peers.clone());
    with_follower.followers = vec![(keys[2].identity_hex(), addrs[2])];
    let err = start(with_follower, app()).unwrap_err();
    assert!(matches!(
        err,
        chain_consensus::Error::FollowerIsValidator(_)
    ));

    // A full node that is not told where the validators are.
    let mut follower = cfg(validators.clone(), peers[1..].to_vec());
    follower.me = Role::Follower(NodeKey::generate([9; 32]));
    let err = start(follower, app()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no address for validator {}: add it to the peer list",
            keys[0].identity_hex()
        )
    );

    // Not in the set.
    validators.remove(0);
    let err = start(cfg(validators, peers[1..].to_vec()), app()).unwrap_err();
    assert!(matches!(err, chain_consensus::Error::NotAValidator(_)));
}
