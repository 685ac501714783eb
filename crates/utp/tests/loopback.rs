//! The tokio driver over real UDP on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utp::{SocketConfig, UtpSocket};

fn localhost() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_64_mib_with_exact_bytes() {
    const LEN: usize = 64 << 20;
    let server = UtpSocket::bind(localhost()).await.unwrap();
    let client = UtpSocket::bind(localhost()).await.unwrap();
    let addr = server.local_addr().unwrap();

    let mut data = vec![0u8; LEN];
    rand::rngs::SmallRng::seed_from_u64(64).fill_bytes(&mut data);
    let want = Sha1::digest(&data);

    let reader = tokio::spawn(async move {
        let stream = server.accept().await.unwrap();
        let (mut r, _w) = stream.into_split();
        let mut hasher = Sha1::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n;
        }
        (total, hasher.finalize())
    });
    let start = Instant::now();
    let mut stream = client.connect(addr).await.unwrap();
    stream.write_all(&data).await.unwrap();
    stream.shutdown().await.unwrap();
    let (total, got) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .unwrap()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(total, LEN);
    assert_eq!(got, want);
    let stats = stream.stats();
    eprintln!(
        "64 MiB over uTP loopback in {secs:.2} s = {:.1} MB/s ({} packets, {} retransmitted)",
        LEN as f64 / secs / 1e6,
        stats.packets_sent,
        stats.packets_retransmitted
    );
}

#[tokio::test]
async fn echo_both_directions_and_clean_close() {
    let server = UtpSocket::bind(localhost()).await.unwrap();
    let client = UtpSocket::bind(localhost()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let echo = tokio::spawn(async move {
        let s = server.accept().await.unwrap();
        assert_eq!(s.peer_addr().ip(), std::net::Ipv4Addr::LOCALHOST);
        let (mut r, mut w) = s.into_split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
        server
    });
    let s = client.connect(addr).await.unwrap();
    assert_eq!(s.peer_addr(), addr);
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..100u32 {
            w.write_all(&i.to_be_bytes().repeat(1000)).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert_eq!(got.len(), 400_000);
    for (i, chunk) in got.chunks(4000).enumerate() {
        assert_eq!(chunk, (i as u32).to_be_bytes().repeat(1000));
    }
    let server = echo.await.unwrap();
    drop(r);
    // Both sides finished their FIN exchange: the connections leave the maps.
    for _ in 0..100 {
        if server.connection_count() == 0 && client.connection_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "connections linger: server {} client {}",
        server.connection_count(),
        client.connection_count()
    );
}

#[tokio::test]
async fn connect_fails_after_the_configured_timeout() {
    // A bound UDP socket that never answers.
    let silent = tokio::net::UdpSocket::bind(localhost()).await.unwrap();
    let mut config = SocketConfig::default();
    config.conn.connect_timeout = Duration::from_millis(800);
    let client = UtpSocket::bind_with_config(localhost(), config)
        .await
        .unwrap();
    let start = Instant::now();
    let err = client
        .connect(silent.local_addr().unwrap())
        .await
        .unwrap_err();
    let waited = start.elapsed();
    assert!(
        matches!(err, utp::Error::Connection(utp::ConnError::ConnectTimedOut)),
        "{err}"
    );
    assert!(
        waited >= Duration::from_millis(750) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    // It retransmitted its SYN meanwhile.
    let mut buf = [0u8; 64];
    let mut syns = 0;
    while let Ok((n, _)) = silent.try_recv_from(&mut buf) {
        assert_eq!(buf[0], 0x41);
        assert_eq!(n, 20);
        syns += 1;
    }
    assert_eq!(syns, 2);
    assert_eq!(client.connection_count(), 0);
}

#[tokio::test]
async fn ignores_non_utp_datagrams_and_resets_unknown_connections() {
    let server = UtpSocket::bind(localhost()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let raw = tokio::net::UdpSocket::bind(localhost()).await.unwrap();
    raw.send_to(
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        addr,
    )
    .await
    .unwrap();
    raw.send_to(&[0xff; 3], addr).await.unwrap();
    // An ST_DATA for a connection that does not exist.
    let mut data = [0u8; 24];
    data[0] = 0x01;
    data[2..4].copy_from_slice(&777u16.to_be_bytes());
    raw.send_to(&data, addr).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), raw.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 20);
    assert_eq!(buf[0], 0x31, "ST_RESET");
    assert_eq!(&buf[2..4], &777u16.to_be_bytes());
    // The socket still works.
    let client = UtpSocket::bind(localhost()).await.unwrap();
    let (a, b) = tokio::join!(server.accept(), client.connect(addr));
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    b.write_all(b"still alive").await.unwrap();
    drop(b);
    let mut got = String::new();
    a.read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "still alive");
}

#[tokio::test]
async fn many_connections_share_one_socket() {
    let server = UtpSocket::bind(localhost()).await.unwrap();
    let client = UtpSocket::bind(localhost()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let acceptor = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let mut s = server.accept().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let mut v = Vec::new();
                s.read_to_end(&mut v).await.unwrap();
                s.write_all(&v).await.unwrap();
                s.shutdown().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        server
    });
    let mut clients = Vec::new();
    for i in 0..20u8 {
        let c = client.clone();
        clients.push(tokio::spawn(async move {
            let s = c.connect(addr).await.unwrap();
            let (mut r, mut w) = s.into_split();
            let msg = vec![i; 10_000 + usize::from(i)];
            w.write_all(&msg).await.unwrap();
            w.shutdown().await.unwrap();
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    acceptor.await.unwrap();
}

#[test]
fn halves_are_send_and_static() {
    fn check<T: Send + 'static>() {}
    check::<utp::OwnedReadHalf>();
    check::<utp::OwnedWriteHalf>();
    check::<utp::UtpStream>();
}

/// Runs `tests/interop_libtorrent.py` against the `utp_probe` example that `cargo test` builds
/// beside this test (needs Debian's `python3-libtorrent`, which `scripts/setup-test-env.sh`
/// installs): both directions over uTP only, exact bytes.
#[test]
fn interop_with_libtorrent() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop_libtorrent.py");
    // target/<profile>/deps/loopback-… → target/<profile>/examples/utp_probe
    let exe = std::env::current_exe().unwrap();
    let probe = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/utp_probe");
    assert!(probe.exists(), "{} was not built", probe.display());
    let status = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg("all")
        .env("UTP_PROBE", &probe)
        .status()
        .unwrap();
    assert!(status.success());
}
