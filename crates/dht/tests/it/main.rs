//! Integration tests: real DHT nodes on 127.0.0.1 talking over UDP.
//!
//! Every wait polls a condition under a deadline; nothing sleeps to synchronise.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dht::{Config, Dht, Error, MutableItem, SigningKey};

const DEADLINE: Duration = Duration::from_secs(60);

fn config(bootstrap: &[SocketAddr]) -> Config {
    Config {
        bootstrap: bootstrap.iter().map(|a| a.to_string()).collect(),
        bind_address: Ipv4Addr::LOCALHOST,
        port: Some(0),
        ..Default::default()
    }
}

/// A fresh directory under the system temp dir, unique per test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dht-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `check` until it yields `Some`, failing the test after [`DEADLINE`].
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::task::yield_now().await;
    }
}

/// A network of `n` nodes: the first has no bootstrap node, the others bootstrap from it.
/// Returns once every node has found at least one other.
async fn network(n: usize) -> Vec<Dht> {
    let first = Dht::start(config(&[])).unwrap();
    let seed = first.local_addr();
    let mut nodes = vec![first];
    for _ in 1..n {
        nodes.push(Dht::start(config(&[seed])).unwrap());
    }
    for node in &nodes[1..] {
        until("a node to bootstrap", || async {
            node.bootstrapped().await.then_some(())
        })
        .await;
    }
    nodes
}

/// Runs `get_peers` lookups until one yields `want`; returns every address seen in that lookup.
async fn find_peer(node: &Dht, info_hash: [u8; 20], want: SocketAddr) -> HashSet<SocketAddr> {
    until("the announced peer", || async {
        let mut seen = HashSet::new();
        let mut lookup = node.get_peers(info_hash);
        while let Some(batch) = lookup.next().await {
            seen.extend(batch);
        }
        seen.contains(&want).then_some(seen)
    })
    .await
}

async fn announce(node: &Dht, info_hash: [u8; 20], port: u16) {
    until("an announce to succeed", || async {
        node.announce_peer(info_hash, Some(port)).await.ok()
    })
    .await
}

#[tokio::test]
async fn announced_peer_is_found_with_its_explicit_port() {
    let nodes = network(5).await;
    let (a, b) = (&nodes[1], &nodes[4]);
    let info_hash = [0x11; 20];
    announce(a, info_hash, 45555).await;

    let seen = find_peer(b, info_hash, "127.0.0.1:45555".parse().unwrap()).await;
    // Exactly the announced address: the TCP port we gave, not the node's UDP port.
    assert_eq!(seen, HashSet::from(["127.0.0.1:45555".parse().unwrap()]));
    assert_ne!(a.local_addr().port(), 45555);
}

#[tokio::test]
async fn routing_table_is_saved_and_bootstraps_the_next_run() {
    let nodes = network(4).await;
    let dir = temp_dir("table");
    let path = dir.join("dht-nodes");

    let first_run = Dht::start(Config {
        routing_table_path: Some(path.clone()),
        ..config(&[nodes[0].local_addr()])
    })
    .unwrap();
    let known = until("the routing table to fill", || async {
        let table = first_run.routing_table().await;
        (table.len() >= 2).then_some(table)
    })
    .await;
    first_run.shutdown().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("btt-dht-nodes 1"));
    let saved: HashSet<SocketAddr> = lines.map(|l| l.parse().unwrap()).collect();
    let network_addrs: HashSet<SocketAddr> = nodes.iter().map(|n| n.local_addr()).collect();
    assert!(saved.len() >= known.len().min(2), "saved {saved:?}");
    assert!(saved.is_subset(&network_addrs), "saved {saved:?}");
    assert!(!dir.join(".dht-nodes.tmp").exists());

    // No configured bootstrap at all: only the saved table can get this node online.
    let second_run = Dht::start(Config {
        routing_table_path: Some(path.clone()),
        ..config(&[])
    })
    .unwrap();
    let info_hash = [0x22; 20];
    announce(&nodes[2], info_hash, 40001).await;
    find_peer(&second_run, info_hash, "127.0.0.1:40001".parse().unwrap()).await;
    second_run.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn corrupt_or_unwritable_table_never_stops_the_node() {
    let nodes = network(3).await;
    let dir = temp_dir("corrupt");
    let path = dir.join("dht-nodes");
    std::fs::write(&path, b"\x00\xffnot a table\n1.2.3.4:0\n").unwrap();

    let node = Dht::start(Config {
        routing_table_path: Some(path.clone()),
        ..config(&[nodes[0].local_addr()])
    })
    .unwrap();
    until("the node to bootstrap", || async {
        node.bootstrapped().await.then_some(())
    })
    .await;
    until("a save", || async {
        (node.save_routing_table().unwrap() > 0).then_some(())
    })
    .await;
    node.shutdown().unwrap();
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("btt-dht-nodes 1\n127.0.0.1:"));

    // A directory that does not exist: the node runs; saving reports what to fix.
    let missing = dir.join("no-such-dir").join("dht-nodes");
    let node = Dht::start(Config {
        routing_table_path: Some(missing.clone()),
        ..config(&[nodes[0].local_addr()])
    })
    .unwrap();
    until("the node to bootstrap", || async {
        node.bootstrapped().await.then_some(())
    })
    .await;
    let err = until("a failed save", || async {
        node.save_routing_table().err()
    })
    .await;
    assert!(matches!(err, Error::SaveTable { .. }), "{err:?}");
    assert!(err.to_string().contains("check that the directory exists"));
    assert!(node.shutdown().is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bep44_immutable_and_mutable_round_trips() {
    let nodes = network(4).await;
    let (a, b) = (&nodes[1], &nodes[3]);

    let value = b"host 127.0.0.1:7000 has 3 TiB free";
    let target = until("an immutable put", || async {
        a.put_immutable(value).await.ok()
    })
    .await;
    assert_eq!(target, dht::immutable_target(value));
    let got = until("the immutable value", || async {
        b.get_immutable(target).await
    })
    .await;
    assert_eq!(got, value);

    let key = SigningKey::from_bytes(&[9; 32]);
    let item = MutableItem::sign(&key, b"v1", 1, Some(b"hosts")).unwrap();
    until("a mutable put", || async {
        a.put_mutable(&item, None).await.ok()
    })
    .await;
    let got = until("the mutable item", || async {
        b.get_mutable(&key.public_key(), Some(b"hosts")).await
    })
    .await;
    assert_eq!(got, item);
    assert_eq!((got.value(), got.seq()), (&b"v1"[..], 1));

    let too_big = vec![0; dht::MAX_VALUE_BYTES + 1];
    assert!(matches!(
        a.put_immutable(&too_big).await,
        Err(Error::ValueTooLarge { .. })
    ));
}

/// A KRPC ping with a 4-byte transaction id, which every node here answers unless read-only.
fn ping(to: SocketAddr) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut msg = b"d1:ad2:id20:".to_vec();
    msg.extend_from_slice(&[b'p'; 20]);
    msg.extend_from_slice(b"e1:q4:ping1:t4:tid01:y1:qe");
    socket.send_to(&msg, to).unwrap();
    let mut buf = [0u8; 1500];
    socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

#[tokio::test]
async fn read_only_node_queries_but_never_answers() {
    let nodes = network(4).await;
    let reader = Dht::start(Config {
        read_only: true,
        ..config(&[nodes[0].local_addr()])
    })
    .unwrap();
    assert!(reader.is_read_only());
    assert!(!reader.info().await.serving);

    let info_hash = [0x33; 20];
    announce(&nodes[2], info_hash, 40002).await;
    find_peer(&reader, info_hash, "127.0.0.1:40002".parse().unwrap()).await;
    // And it may announce itself.
    until("a read-only announce", || async {
        reader.announce_peer([0x44; 20], Some(40003)).await.ok()
    })
    .await;
    find_peer(&nodes[3], [0x44; 20], "127.0.0.1:40003".parse().unwrap()).await;

    // A normal node answers a ping (and says it is not read-only); the read-only one stays
    // silent.
    let reply = ping(nodes[1].local_addr()).expect("a normal node answers");
    assert!(reply.windows(7).any(|w| w == b"2:roi0e"));
    assert_eq!(ping(reader.local_addr()), None);
}

#[tokio::test]
async fn busy_port_is_reported_with_the_flag_to_change_it() {
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let err = Dht::start(Config {
        port: Some(port),
        ..config(&[])
    })
    .unwrap_err();
    assert!(matches!(err, Error::PortInUse { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "dht udp port 127.0.0.1:{port} is already in use: choose a different port with --dht-port"
        )
    );
}
