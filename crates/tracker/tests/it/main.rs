//! Announces over real sockets on 127.0.0.1 to tiny in-test HTTP and UDP trackers.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tracker::{AnnounceRequest, Client, Config, Error, Event};

const INFO_HASH: [u8; 20] =
    *b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14";
const PEER_ID: [u8; 20] = *b"-BT0001-123456789012";

fn request(event: Event) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: INFO_HASH,
        peer_id: PEER_ID,
        port: 51413,
        uploaded: 10,
        downloaded: 20,
        left: 12345,
        event,
        num_want: Some(30),
        key: 0x0102_0304,
        tracker_id: None,
    }
}

fn fast_client() -> Client {
    Client::new(Config {
        http_timeout: Duration::from_secs(5),
        udp_base_timeout: Duration::from_millis(100),
        udp_max_retries: 3,
    })
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Serves one HTTP connection: reads the request head, answers `response`, closes. Yields the
/// request head.
async fn http_tracker(response: Vec<u8>) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let head = read_head(&mut stream).await;
        stream.write_all(&response).await.unwrap();
        stream.shutdown().await.unwrap();
        head
    });
    (addr, task)
}

async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "client closed before finishing the request"
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn http_compact_announce() {
    let body = b"d8:completei2e10:incompletei1e8:intervali900e5:peers12:\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x02\xc8\xd56:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x5010:tracker id2:T1e";
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    let (addr, server) = http_tracker(response).await;

    let url = format!("http://{addr}/announce?passkey=s3cret");
    let resp = fast_client()
        .announce(&url, &request(Event::Started))
        .await
        .unwrap();
    assert_eq!(
        resp.peers,
        addrs(&["127.0.0.1:6881", "127.0.0.2:51413", "[::1]:80"])
    );
    assert_eq!(resp.interval, Duration::from_secs(900));
    assert_eq!((resp.complete, resp.incomplete), (Some(2), Some(1)));
    assert_eq!(resp.tracker_id.as_deref(), Some("T1"));

    let head = server.await.unwrap();
    let expected_line = "GET /announce?passkey=s3cret&info_hash=%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14\
        &peer_id=-BT0001-123456789012&port=51413&uploaded=10&downloaded=20&left=12345&compact=1\
        &event=started&numwant=30&key=01020304 HTTP/1.1\r\n";
    assert!(head.starts_with(expected_line), "{head}");
    assert!(head.contains(&format!("\r\nHost: {addr}\r\n")), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
}

#[tokio::test]
async fn http_chunked_read_to_eof_and_dict_peers() {
    // Chunked, with the bencoded body split mid-token across chunks.
    let body: &[u8] = b"d8:intervali60e5:peersld2:ip9:127.0.0.94:porti7000eeee";
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(7) {
        response.extend(format!("{:x}\r\n", part.len()).bytes());
        response.extend_from_slice(part);
        response.extend(b"\r\n");
    }
    response.extend(b"0\r\n\r\n");
    let (addr, server) = http_tracker(response).await;
    let resp = fast_client()
        .announce(&format!("http://{addr}/a"), &request(Event::None))
        .await
        .unwrap();
    assert_eq!(resp.peers, addrs(&["127.0.0.9:7000"]));
    let head = server.await.unwrap();
    assert!(!head.contains("event="), "{head}");

    // No length at all: the body runs to the end of the connection.
    let (addr, server) = http_tracker(b"HTTP/1.0 200 OK\r\n\r\nd8:intervali61ee".to_vec()).await;
    let resp = fast_client()
        .announce(&format!("http://{addr}/a"), &request(Event::Completed))
        .await
        .unwrap();
    assert_eq!(resp.interval, Duration::from_secs(61));
    assert!(server.await.unwrap().contains("&event=completed&"));
}

#[tokio::test]
async fn http_failure_reason_and_error_status() {
    let body = b"d14:failure reason20:unregistered torrente";
    let mut response =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    response.extend_from_slice(body);
    let (addr, _server) = http_tracker(response).await;
    let err = fast_client()
        .announce(&format!("http://{addr}/a"), &request(Event::Started))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::TrackerFailure(m) if m == "unregistered torrent"),
        "{err}"
    );

    let (addr, _server) =
        http_tracker(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec())
            .await;
    let err = fast_client()
        .announce(&format!("http://{addr}/a"), &request(Event::Started))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::HttpStatus { status: 404, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn http_times_out_on_a_silent_tracker() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Client::new(Config {
        http_timeout: Duration::from_millis(200),
        ..Config::default()
    });
    let req = request(Event::Started);
    let url = format!("http://{addr}/a");
    let announce = client.announce(&url, &req);
    let silent = async {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        // Hold the connection open without answering until the client gives up.
        std::future::pending::<()>().await;
    };
    let err = tokio::select! {
        result = announce => result.unwrap_err(),
        () = silent => unreachable!(),
    };
    assert!(
        matches!(err, Error::HttpTimeout(d) if d == Duration::from_millis(200)),
        "{err}"
    );
}

/// What the in-test UDP tracker does with each datagram it receives.
#[derive(Clone, Copy)]
enum Udp {
    /// Answer a connect with this connection id.
    Connect(u64),
    /// Answer a connect twice, as a network that duplicates datagrams would.
    ConnectTwice(u64),
    /// Drop the datagram (simulates loss).
    Drop,
    /// Answer an announce with two peers.
    Announce,
    /// Answer with an error packet.
    Error,
}

type UdpServer = JoinHandle<(Vec<Vec<u8>>, UdpSocket)>;

/// Runs `script` against the datagrams it receives; see [`udp_packets`].
async fn udp_tracker(script: Vec<Udp>) -> (SocketAddr, UdpServer) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for step in script {
            let mut buf = [0u8; 2048];
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            let packet = buf[..n].to_vec();
            let tx = &packet[12..16];
            let reply: Vec<u8> = match step {
                Udp::Drop => Vec::new(),
                Udp::Connect(id) | Udp::ConnectTwice(id) => {
                    [&[0, 0, 0, 0][..], tx, &id.to_be_bytes()].concat()
                }
                Udp::Announce => [
                    &[0, 0, 0, 1][..],
                    tx,
                    &[0, 0, 0x07, 0x08], // interval 1800
                    &[0, 0, 0, 4],       // leechers
                    &[0, 0, 0, 9],       // seeders
                    &[10, 1, 2, 3, 0x1a, 0xe1],
                    &[127, 0, 0, 1, 0, 0], // port 0: dropped
                    &[192, 168, 0, 1, 0xc8, 0xd5],
                ]
                .concat(),
                Udp::Error => [&[0, 0, 0, 3][..], tx, b"torrent not registered"].concat(),
            };
            if !reply.is_empty() {
                socket.send_to(&reply, from).await.unwrap();
            }
            if let Udp::ConnectTwice(_) = step {
                socket.send_to(&reply, from).await.unwrap();
            }
            seen.push(packet);
        }
        (seen, socket)
    });
    (addr, task)
}

/// Every datagram the tracker received: those its script handled plus any still queued. Call it
/// after the client returned, so anything the client sent is already queued on loopback.
async fn udp_packets(server: UdpServer) -> Vec<Vec<u8>> {
    let (mut packets, socket) = server.await.unwrap();
    let socket = socket.into_std().unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        packets.push(buf[..n].to_vec());
    }
    packets
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[tokio::test]
async fn udp_connect_then_announce_and_reuse_connection_id() {
    let (addr, server) = udp_tracker(vec![
        Udp::Connect(0xfeed_f00d),
        Udp::Announce,
        Udp::Announce,
    ])
    .await;
    let client = fast_client();
    let url = format!("udp://{addr}/announce");

    let resp = client
        .announce(&url, &request(Event::Started))
        .await
        .unwrap();
    assert_eq!(resp.peers, addrs(&["10.1.2.3:6881", "192.168.0.1:51413"]));
    assert_eq!(resp.interval, Duration::from_secs(1800));
    assert_eq!((resp.complete, resp.incomplete), (Some(9), Some(4)));

    // Within a minute the cached connection id is reused: no second connect.
    let resp = client
        .clone()
        .announce(&url, &request(Event::Completed))
        .await
        .unwrap();
    assert_eq!(resp.peers.len(), 2);

    let packets = udp_packets(server).await;
    let [connect, first, second] = &packets[..] else {
        panic!("expected 3 packets, got {}", packets.len())
    };
    assert_eq!(connect.len(), 16);
    assert_eq!(be_u64(connect, 0), 0x0417_2710_1980);
    assert_eq!(be_u32(connect, 8), 0);
    for (announce, event) in [(first, 2), (second, 1)] {
        assert_eq!(announce.len(), 98);
        assert_eq!(be_u64(announce, 0), 0xfeed_f00d, "connection id");
        assert_eq!(be_u32(announce, 8), 1, "action");
        assert_eq!(announce[16..36], INFO_HASH);
        assert_eq!(announce[36..56], PEER_ID);
        assert_eq!(be_u64(announce, 56), 20, "downloaded");
        assert_eq!(be_u64(announce, 64), 12345, "left");
        assert_eq!(be_u64(announce, 72), 10, "uploaded");
        assert_eq!(be_u32(announce, 80), event, "event");
        assert_eq!(be_u32(announce, 88), 0x0102_0304, "key");
        assert_eq!(be_u32(announce, 92), 30, "num_want");
        assert_eq!(announce[96..98], 51413u16.to_be_bytes(), "port");
    }
    // The announce carries the connect's transaction id (one per exchange).
    assert_eq!(connect[12..16], first[12..16]);
}

#[tokio::test]
async fn udp_retransmits_after_loss() {
    let (addr, server) =
        udp_tracker(vec![Udp::Drop, Udp::Connect(7), Udp::Drop, Udp::Announce]).await;
    let resp = fast_client()
        .announce(&format!("udp://{addr}"), &request(Event::None))
        .await
        .unwrap();
    assert_eq!(resp.peers.len(), 2);
    let packets = udp_packets(server).await;
    let actions: Vec<u32> = packets.iter().map(|p| be_u32(p, 8)).collect();
    assert_eq!(actions, [0, 0, 1, 1]);
    assert_eq!(
        packets[0], packets[1],
        "a retransmission repeats the packet"
    );
    assert_eq!(packets[2], packets[3]);
}

#[tokio::test]
async fn udp_ignores_a_duplicate_connect_answer() {
    let (addr, server) = udp_tracker(vec![Udp::ConnectTwice(5), Udp::Announce]).await;
    let resp = fast_client()
        .announce(&format!("udp://{addr}"), &request(Event::None))
        .await
        .unwrap();
    assert_eq!(resp.peers.len(), 2);
    let actions: Vec<u32> = udp_packets(server)
        .await
        .iter()
        .map(|p| be_u32(p, 8))
        .collect();
    assert_eq!(actions, [0, 1], "one connect, one announce, nothing resent");
}

#[tokio::test]
async fn udp_error_action_is_a_tracker_failure() {
    let (addr, _server) = udp_tracker(vec![Udp::Connect(1), Udp::Error]).await;
    let err = fast_client()
        .announce(&format!("udp://{addr}"), &request(Event::Started))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::TrackerFailure(m) if m == "torrent not registered"),
        "{err}"
    );
}

#[tokio::test]
async fn udp_gives_up_after_max_retries() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let addr = silent.local_addr().unwrap();
    let client = Client::new(Config {
        udp_base_timeout: Duration::from_millis(10),
        udp_max_retries: 2,
        ..Config::default()
    });
    let err = client
        .announce(&format!("udp://{addr}"), &request(Event::Started))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UdpTimeout { attempts: 3 }), "{err}");
    // Exactly n = 0, 1, 2 were sent: three connect requests.
    let mut count = 0;
    let mut buf = [0u8; 64];
    while let Ok(n) = silent.recv(&mut buf) {
        assert_eq!(n, 16);
        count += 1;
    }
    assert_eq!(count, 3);
}
