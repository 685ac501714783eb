//! The native API over HTTP: a real download driven through it, bad input, restarts, events.

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{data, make_torrent, seeder, TestNode};

const LIMIT: Duration = Duration::from_secs(60);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_stop_start_and_remove_with_data() {
    let tmp = tempfile::tempdir().unwrap();
    let a = data(1_500_000, 1);
    let b = data(700_001, 2);
    let src = tmp.path().join("src");
    let t = make_torrent(&src, "set", &[("a.bin", &a), ("sub/b.bin", &b)], 256 * 1024);
    let (_seed_session, _h, seed_addr) = seeder(&t, &src, &tmp.path().join("seed-state")).await;
    let node = TestNode::start(&tmp.path().join("node")).await;

    let (status, body) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t.to_bytes()), "peers": [seed_addr.to_string()]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["torrent"]["id"].as_u64().unwrap();
    assert_eq!(id, 1);
    assert_eq!(body["torrent"]["hash"], t.info_hash.to_hex());
    assert_eq!(body["torrent"]["name"], "set");
    assert_eq!(body["torrent"]["size_bytes"], 2_200_001);

    let done = node.wait_for(id, LIMIT, |t| t["state"] == "seeding").await;
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["have_bytes"], 2_200_001);
    assert_eq!(done["pieces_have"], done["pieces_total"]);
    assert_eq!(std::fs::read(node.downloads.join("set/a.bin")).unwrap(), a);
    assert_eq!(
        std::fs::read(node.downloads.join("set/sub/b.bin")).unwrap(),
        b
    );

    let (_, files) = node.raw("GET", "/api/v1/torrents/1/files", &[], b"").await;
    assert_eq!(
        files["files"],
        json!([
            {"index": 0, "path": "a.bin", "length": 1_500_000, "bytes_completed": 1_500_000, "progress": 1.0},
            {"index": 1, "path": "sub/b.bin", "length": 700_001, "bytes_completed": 700_001, "progress": 1.0},
        ])
    );
    // 9 pieces: eight full bytes' worth of bits is 0xff, then one bit of the ninth.
    let (_, pieces) = node
        .raw(
            "GET",
            &format!("/api/v1/torrents/{}/pieces", t.info_hash.to_hex()),
            &[],
            b"",
        )
        .await;
    assert_eq!(pieces["piece_count"], 9);
    assert_eq!(pieces["bitfield"], "ff80");
    let (status, peers) = node.raw("GET", "/api/v1/torrents/1/peers", &[], b"").await;
    assert_eq!(status, 200);
    assert!(peers["peers"].is_array());

    let (status, stopped) = node.call("POST", "/api/v1/torrents/1/stop", None).await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["torrent"]["state"], "stopped");
    // Progress of a stopped torrent comes from its resume record.
    assert_eq!(stopped["torrent"]["progress"], 1.0);
    let (_, list) = node
        .raw("GET", "/api/v1/torrents?state=stopped", &[], b"")
        .await;
    assert_eq!(list["total"], 1);
    let (_, list) = node
        .raw("GET", "/api/v1/torrents?state=active", &[], b"")
        .await;
    assert_eq!(list["total"], 0);

    let (status, started) = node.call("POST", "/api/v1/torrents/1/start", None).await;
    assert_eq!(status, 200, "{started}");
    node.wait_for(id, LIMIT, |t| t["state"] == "seeding").await;

    let torrent_file = node
        .state
        .join("torrents")
        .join(format!("{}.torrent", t.info_hash.to_hex()));
    assert!(torrent_file.exists());
    let (status, removed) = node
        .call("DELETE", "/api/v1/torrents/1?delete_data=true", None)
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["removed"], 1);
    assert!(!node.downloads.join("set").exists(), "data was not deleted");
    assert!(
        node.downloads.exists(),
        "the download directory itself must stay"
    );
    assert!(!torrent_file.exists());
    let (_, list) = node.raw("GET", "/api/v1/torrents", &[], b"").await;
    assert_eq!(list["total"], 0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = make_torrent(
        &tmp.path().join("src"),
        "one",
        &[("f", &data(40_000, 3))],
        16384,
    );
    let node = TestNode::start(&tmp.path().join("node")).await;
    let sid = node.session_id().await;
    let with_sid = |extra: &[(&'static str, String)]| {
        let mut h = vec![(api::SESSION_HEADER, sid.clone())];
        h.extend_from_slice(extra);
        h
    };

    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("POST", "/api/v1/torrents", b"{not json".to_vec(), 400, "invalid JSON body"),
        ("POST", "/api/v1/torrents", b"{}".to_vec(), 400, "exactly one of"),
        ("POST", "/api/v1/torrents", br#"{"torrent":"***"}"#.to_vec(), 400, "invalid base64"),
        ("POST", "/api/v1/torrents", format!(r#"{{"torrent":"{}"}}"#, b64(b"d4:infoi1ee")).into_bytes(), 400, "invalid torrent file"),
        ("POST", "/api/v1/torrents", br#"{"magnet":"magnet:?dn=nohash"}"#.to_vec(), 400, "invalid magnet link"),
        ("POST", "/api/v1/torrents", br#"{"magnet":"http://x"}"#.to_vec(), 400, "invalid magnet link"),
        ("POST", "/api/v1/torrents", br#"{"magnet":"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567","colour":1}"#.to_vec(), 400, "unknown field"),
        ("POST", "/api/v1/torrents", format!(r#"{{"torrent":"{}","peers":["nope"]}}"#, b64(&t.to_bytes())).into_bytes(), 400, "is not IP:PORT"),
        ("POST", "/api/v1/torrents", format!(r#"{{"torrent":"{}","download_dir":"relative/dir"}}"#, b64(&t.to_bytes())).into_bytes(), 400, "not an absolute path"),
        ("POST", "/api/v1/torrents", vec![b' '; 2 << 20], 413, ""),
        ("GET", "/api/v1/torrents/99", vec![], 404, "no torrent 99"),
        ("GET", "/api/v1/torrents/nothex/files", vec![], 404, "no torrent"),
        ("POST", "/api/v1/torrents/7/start", vec![], 404, "no torrent 7"),
        ("POST", "/api/v1/torrents/7/stop", vec![], 404, "no torrent 7"),
        ("DELETE", "/api/v1/torrents/7", vec![], 404, "no torrent 7"),
        ("GET", "/api/v1/torrents?state=sleeping", vec![], 400, "unknown state"),
        ("GET", "/api/v1/torrents?limit=0", vec![], 400, "limit must be"),
        ("GET", "/api/v1/torrents?offset=-1", vec![], 400, ""),
        ("GET", "/api/v1/nothing", vec![], 404, "no such endpoint"),
    ];
    for (method, path, body, want, message) in cases {
        let (status, reply) = node
            .raw(
                method,
                path,
                &with_sid(&[("Content-Type", "application/json".into())]),
                &body,
            )
            .await;
        assert_eq!(status, want, "{method} {path}: {reply}");
        if status != 413 {
            let text = reply["error"]["message"].as_str().unwrap_or_default();
            assert!(text.contains(message), "{method} {path}: {reply}");
        }
    }

    // Without the session id, or with a stale one: 409 and the current id.
    let good = format!(r#"{{"torrent":"{}"}}"#, b64(&t.to_bytes()));
    for headers in [vec![], vec![(api::SESSION_HEADER, "stale".to_string())]] {
        let r = node
            .reply("POST", "/api/v1/torrents", &headers, good.as_bytes())
            .await;
        assert_eq!(r.status, 409);
        assert_eq!(r.header("x-transmission-session-id"), Some(sid.as_str()));
    }
    // A page on another origin resolving to us (DNS rebinding) is refused.
    let (status, _) = node
        .raw(
            "GET",
            "/api/v1/torrents",
            &[("Host", "evil.example:9091".into())],
            b"",
        )
        .await;
    assert_eq!(status, 403);

    // Nothing of the above added anything.
    let (_, list) = node.raw("GET", "/api/v1/torrents", &[], b"").await;
    assert_eq!(list["total"], 0, "{list}");
    assert!(!node.state.join("torrents/library.json").exists());

    // Now a good add, paused, then the same torrent again.
    let (status, body) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t.to_bytes()), "paused": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["torrent"]["state"], "stopped");
    let (status, body) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t.to_bytes())})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "duplicate");
    // Raw .torrent bytes are accepted too; the same torrent is a duplicate there as well.
    let r = node
        .reply(
            "POST",
            "/api/v1/torrents",
            &with_sid(&[("Content-Type", "application/x-bittorrent".into())]),
            &t.to_bytes(),
        )
        .await;
    assert_eq!(r.status, 409);
    let (_, list) = node.raw("GET", "/api/v1/torrents", &[], b"").await;
    assert_eq!(list["total"], 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_ids_and_choices_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let t1 = make_torrent(&src, "first", &[("f", &data(50_000, 4))], 16384);
    let t2 = make_torrent(&src, "second", &[("f", &data(60_000, 5))], 16384);
    let root = tmp.path().join("node");
    let node = TestNode::start(&root).await;
    let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=later";
    for body in [
        json!({"torrent": b64(&t1.to_bytes()), "paused": true}),
        json!({"torrent": b64(&t2.to_bytes())}),
        json!({"magnet": magnet, "paused": true}),
    ] {
        let (status, reply) = node.call("POST", "/api/v1/torrents", Some(body)).await;
        assert_eq!(status, 201, "{reply}");
    }
    // Removing the second leaves a gap in the ids; the next add never reuses it.
    let (status, _) = node.call("DELETE", "/api/v1/torrents/2", None).await;
    assert_eq!(status, 200);
    node.stop().await;

    let node = TestNode::start(&root).await;
    let (_, list) = node.raw("GET", "/api/v1/torrents", &[], b"").await;
    let got: Vec<(u64, String, String)> = list["torrents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_u64().unwrap(),
                t["name"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "first".to_string(), "stopped".to_string()),
            (3, "later".to_string(), "stopped".to_string()),
        ]
    );
    let (status, reply) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t2.to_bytes()), "paused": true})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(reply["torrent"]["id"], 4);
    let (_, detail) = node.raw("GET", "/api/v1/torrents/3", &[], b"").await;
    assert_eq!(detail["magnet"], magnet);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_starts_with_a_snapshot_and_reports_additions() {
    let tmp = tempfile::tempdir().unwrap();
    let t = make_torrent(
        &tmp.path().join("src"),
        "ev",
        &[("f", &data(30_000, 6))],
        16384,
    );
    let node = TestNode::start(&tmp.path().join("node")).await;
    let mut stream = tokio::net::TcpStream::connect(node.server.local_addr())
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = vec![0u8; 8192];
    while !seen.contains("event: torrents") {
        let n = tokio::time::timeout(LIMIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    let (status, _) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t.to_bytes()), "paused": true})),
        )
        .await;
    assert_eq!(status, 201);
    while !seen.contains("event: added") {
        let n = tokio::time::timeout(LIMIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.contains(&format!("\"hash\":\"{}\"", t.info_hash.to_hex())),
        "{seen}"
    );
    // Starting it (no peers, no data: it goes to downloading) is reported as a state change.
    let (status, _) = node.call("POST", "/api/v1/torrents/1/start", None).await;
    assert_eq!(status, 200);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !seen.contains("event: state") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no state event: {}",
                    &seen[seen.len().saturating_sub(3000)..]
                )
            })
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let state_event = &seen[seen.find("event: state").unwrap()..];
    let data_line = state_event
        .lines()
        .find(|l| l.starts_with("data: "))
        .unwrap();
    let ev: serde_json::Value = serde_json::from_str(&data_line["data: ".len()..]).unwrap();
    assert_eq!(ev["torrent"]["id"], 1);
    assert_eq!(ev["torrent"]["state"], "downloading", "{ev}");
    drop(stream);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_when_set_and_beyond_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let session = engine::Session::start(crate::session_config(&tmp.path().join("s")))
        .await
        .unwrap();
    let library = api::Library::open(
        session,
        api::LibraryConfig {
            dir: tmp.path().join("t"),
            download_dir: tmp.path().join("d"),
            resume_dir: tmp.path().join("s/resume"),
            market: None,
        },
    )
    .await
    .unwrap();
    // Beyond loopback without credentials: refused before anything is bound.
    let err = api::Server::start(
        api::Config {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..api::Config::default()
        },
        library.clone(),
        api::chain::ChainSource::off(),
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(err, api::ServerError::NeedsCredentials(_)),
        "{err}"
    );

    let server = api::Server::start(
        api::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            credentials: Some(api::Credentials {
                username: "admin".into(),
                password: "s3cret".into(),
            }),
            ..api::Config::default()
        },
        library.clone(),
        api::chain::ChainSource::off(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", server.local_addr());
    let get = |auth: Option<&'static str>, path: &'static str| {
        let url = url.clone();
        async move {
            let headers: Vec<(&str, String)> = auth
                .map(|a| vec![("Authorization", format!("Basic {}", b64(a.as_bytes())))])
                .unwrap_or_default();
            api::client::http_request(
                "GET",
                &format!("{url}{path}"),
                &headers,
                b"",
                1 << 20,
                LIMIT,
            )
            .await
            .unwrap()
        }
    };
    for path in ["/", "/api/v1/torrents", "/metrics"] {
        let r = get(None, path).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"btt\""));
        assert_eq!(get(Some("admin:wrong"), path).await.status, 401, "{path}");
        assert_eq!(get(Some("admin:s3cret"), path).await.status, 200, "{path}");
    }
    // The client sends them and does the session handshake itself.
    let client = api::client::NodeClient::new(&url, Some(("admin", "s3cret"))).unwrap();
    let list = client.call("GET", "/api/v1/torrents", None).await.unwrap();
    assert_eq!(list["total"], 0);
    let err = client
        .call("POST", "/api/v1/torrents", Some(&json!({"magnet": "bad"})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid magnet link"), "{err}");
    let wrong = api::client::NodeClient::new(&url, Some(("admin", "nope"))).unwrap();
    assert!(matches!(
        wrong.call("GET", "/api/v1/torrents", None).await,
        Err(api::client::ClientError::Api { status: 401, .. })
    ));
    server.stop().await;
    library.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_links_and_urls_are_fetched_then_downloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let payload = data(600_000, 8);
    let t = make_torrent(&src, "by-magnet.bin", &[("x", &payload)], 65536);
    let (_seed_session, _h, seed_addr) = seeder(&t, &src, &tmp.path().join("seed-state")).await;
    let node = TestNode::start(&tmp.path().join("node")).await;

    // A magnet link: metadata comes from the seeder (BEP 9), then the data.
    let magnet = format!("magnet:?xt=urn:btih:{}&dn=by-magnet", t.info_hash.to_hex());
    let (status, body) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"magnet": magnet, "peers": [seed_addr.to_string()]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["torrent"]["name"], "by-magnet");
    let id = body["torrent"]["id"].as_u64().unwrap();
    let done = node.wait_for(id, LIMIT, |t| t["state"] == "seeding").await;
    assert_eq!(
        done["name"], "by-magnet.bin",
        "the name comes from the fetched metadata"
    );
    assert_eq!(
        std::fs::read(node.downloads.join("by-magnet.bin/x")).unwrap(),
        payload
    );
    // The fetched metadata is kept, so a restart needs no peer to know the torrent.
    let stored = node
        .state
        .join("torrents")
        .join(format!("{}.torrent", t.info_hash.to_hex()));
    assert_eq!(
        metainfo::Torrent::from_bytes(&std::fs::read(stored).unwrap())
            .unwrap()
            .info_hash,
        t.info_hash
    );

    // A URL: the node fetches the .torrent over HTTP. A one-shot server hands it out.
    let other = make_torrent(&src, "by-url.bin", &[("y", &data(70_000, 9))], 16384);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/files/by-url.torrent",
        listener.local_addr().unwrap()
    );
    let bytes = other.to_bytes();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = vec![0u8; 4096];
        let n = sock.read(&mut req).await.unwrap();
        let head = String::from_utf8_lossy(&req[..n]).to_string();
        sock.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-bittorrent\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        sock.write_all(&bytes).await.unwrap();
        head
    });
    let (status, body) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"url": url, "paused": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["torrent"]["hash"], other.info_hash.to_hex());
    assert!(server
        .await
        .unwrap()
        .starts_with("GET /files/by-url.torrent HTTP/1.1\r\n"));
    // A URL that does not answer is a clear error and adds nothing.
    let (status, body) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"url": "http://127.0.0.1:1/none.torrent"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot fetch"));
    let (_, list) = node.raw("GET", "/api/v1/torrents", &[], b"").await;
    assert_eq!(list["total"], 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_change_live_and_torrent_limits_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let t = make_torrent(
        &tmp.path().join("src"),
        "lim",
        &[("f", &data(20_000, 10))],
        16384,
    );
    let root = tmp.path().join("node");
    let node = TestNode::start(&root).await;
    let (status, _) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t.to_bytes()), "paused": true})),
        )
        .await;
    assert_eq!(status, 201);

    let (status, s) = node
        .call(
            "PATCH",
            "/api/v1/session",
            Some(json!({"download_limit": 1_000_000})),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (s["download_limit"].as_u64(), s["upload_limit"].as_u64()),
        (Some(1_000_000), Some(0))
    );
    assert_eq!(node.library.session().rate_limits(), (1_000_000, 0));

    let (status, v) = node
        .call(
            "PATCH",
            "/api/v1/torrents/1",
            Some(json!({"upload_limit": 5000})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["torrent"]["upload_limit"], 5000);
    assert_eq!(v["torrent"]["download_limit"], 0);
    for (body, want) in [
        (json!({"upload": 1}), 400),
        (json!({"upload_limit": -1}), 400),
        (json!({"upload_limit": "x"}), 400),
    ] {
        let (status, r) = node.call("PATCH", "/api/v1/torrents/1", Some(body)).await;
        assert_eq!(status, want, "{r}");
    }
    let (status, _) = node
        .call(
            "PATCH",
            "/api/v1/torrents/9",
            Some(json!({"upload_limit": 1})),
        )
        .await;
    assert_eq!(status, 404);
    node.stop().await;

    let node = TestNode::start(&root).await;
    let (_, v) = node.raw("GET", "/api/v1/torrents/1", &[], b"").await;
    assert_eq!(v["torrent"]["upload_limit"], 5000, "{v}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_sorts_and_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let node = TestNode::start(&tmp.path().join("node")).await;
    for (i, name) in ["charlie", "alpha", "bravo"].iter().enumerate() {
        let t = make_torrent(&src, name, &[("f", &data(10_000, 20 + i as u64))], 16384);
        let (status, _) = node
            .call(
                "POST",
                "/api/v1/torrents",
                Some(json!({"torrent": b64(&t.to_bytes()), "paused": true})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["torrents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = node.raw("GET", "/api/v1/torrents?limit=2", &[], b"").await;
    assert_eq!(
        (page["total"].as_u64(), names(&page)),
        (Some(3), vec!["charlie".into(), "alpha".into()])
    );
    let (_, page) = node
        .raw("GET", "/api/v1/torrents?limit=2&offset=2", &[], b"")
        .await;
    assert_eq!(names(&page), vec!["bravo".to_string()]);
    let (_, page) = node
        .raw("GET", "/api/v1/torrents?sort=name", &[], b"")
        .await;
    assert_eq!(
        names(&page),
        vec!["alpha".to_string(), "bravo".into(), "charlie".into()]
    );
    let (_, page) = node.raw("GET", "/api/v1/torrents?q=AV", &[], b"").await;
    assert_eq!(
        (page["total"].as_u64(), names(&page)),
        (Some(1), vec!["bravo".to_string()])
    );
    let (_, page) = node
        .raw("GET", "/api/v1/torrents?state=seeding", &[], b"")
        .await;
    assert_eq!(page["total"], 0);
    let (_, page) = node.raw("GET", "/api/v1/torrents?offset=9", &[], b"").await;
    assert_eq!((page["total"].as_u64(), names(&page).len()), (Some(3), 0));
    node.stop().await;
}
