//! Transmission RPC over HTTP: the session-id handshake, session methods, adding, reading,
//! starting, stopping and removing torrents, and bad input that must change nothing.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use metainfo::Torrent;
use serde_json::{json, Value};

use crate::{data, make_torrent, TestNode};

const RPC: &str = "/transmission/rpc";
const PIECE: u32 = 16384;

/// One RPC call with the right session id; asserts HTTP 200 and the echoed tag.
async fn rpc(node: &TestNode, method: &str, args: Value) -> Value {
    let sid = node.session_id().await;
    let body = json!({"method": method, "arguments": args, "tag": 7});
    let (status, reply) = node
        .raw(
            "POST",
            RPC,
            &[
                (api::SESSION_HEADER, sid),
                ("Content-Type", "application/json".into()),
            ],
            body.to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{method}: {reply}");
    assert_eq!(reply["tag"], 7, "{method}: {reply}");
    reply
}

/// An RPC call that must succeed; returns its arguments.
async fn ok(node: &TestNode, method: &str, args: Value) -> Value {
    let reply = rpc(node, method, args).await;
    assert_eq!(reply["result"], "success", "{method}: {reply}");
    reply["arguments"].clone()
}

/// `torrent-get` of some fields for every torrent.
async fn get_all(node: &TestNode, fields: &[&str]) -> Vec<Value> {
    let args = ok(node, "torrent-get", json!({"fields": fields})).await;
    args["torrents"].as_array().unwrap().clone()
}

/// Polls one torrent until `cond` holds on its fields.
async fn wait_torrent(
    node: &TestNode,
    id: u64,
    fields: &[&str],
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let args = ok(node, "torrent-get", json!({"ids": id, "fields": fields})).await;
        let t = args["torrents"][0].clone();
        if cond(&t) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "torrent {id} never got there: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A two-file torrent whose complete data is in `dir/<name>`.
fn complete_torrent(dir: &Path, name: &str, seed: u64) -> Torrent {
    let a = data(40_000, seed);
    let b = data(9_000, seed + 1);
    make_torrent(dir, name, &[("a.bin", &a), ("sub/b.bin", &b)], PIECE)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn session_id_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path()).await;
    let body = json!({"method": "session-get"}).to_string();

    let r = node.reply("POST", RPC, &[], body.as_bytes()).await;
    assert_eq!(r.status, 409);
    let sid = r.header("x-transmission-session-id").unwrap().to_string();
    assert_eq!(sid, node.session_id().await);

    let stale = node
        .reply(
            "POST",
            RPC,
            &[(api::SESSION_HEADER, "0".into())],
            body.as_bytes(),
        )
        .await;
    assert_eq!(stale.status, 409);
    assert_eq!(
        stale.header("x-transmission-session-id"),
        Some(sid.as_str())
    );

    let (status, reply) = node
        .raw(
            "POST",
            RPC,
            &[(api::SESSION_HEADER, sid.clone())],
            body.as_bytes(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(reply["result"], "success");

    // transmission-remote posts to the path with a trailing slash.
    let (status, reply) = node
        .raw(
            "POST",
            "/transmission/rpc/",
            &[(api::SESSION_HEADER, sid.clone())],
            body.as_bytes(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(reply["result"], "success");
    assert_eq!(
        node.reply("POST", "/transmission/rpc/", &[], body.as_bytes())
            .await
            .status,
        409
    );

    // GET needs the id too, and is not the RPC.
    assert_eq!(node.reply("GET", RPC, &[], b"").await.status, 409);
    assert_eq!(
        node.reply("GET", RPC, &[(api::SESSION_HEADER, sid.clone())], b"")
            .await
            .status,
        405
    );
    node.stop().await;
}

#[tokio::test]
async fn envelope_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path()).await;
    let sid = node.session_id().await;
    let h = [(api::SESSION_HEADER, sid)];

    let (status, reply) = node.raw("POST", RPC, &h, b"{not json").await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{reply}"
    );
    let (status, _) = node.raw("POST", RPC, &h, b"[1, 2]").await;
    assert_eq!(status, 400);
    let (status, _) = node
        .raw(
            "POST",
            RPC,
            &h,
            br#"{"method": "session-get", "arguments": 3}"#,
        )
        .await;
    assert_eq!(status, 400);

    // RPC-level failures are HTTP 200 with a result string.
    let reply = rpc(&node, "torrent-explode", json!({})).await;
    assert_eq!(reply["result"], "method name not recognized");
    let (status, reply) = node.raw("POST", RPC, &h, br#"{"arguments": {}}"#).await;
    assert_eq!(status, 200);
    assert_eq!(reply["result"], "no method name");
    assert!(reply.get("tag").is_none());
    let reply = rpc(&node, "torrent-get", json!({})).await;
    assert_eq!(reply["result"], "no fields specified");
    let reply = rpc(
        &node,
        "torrent-get",
        json!({"fields": ["id"], "ids": {"x": 1}}),
    )
    .await;
    assert_ne!(reply["result"], "success");
    let reply = rpc(&node, "blocklist-update", json!({})).await;
    assert_ne!(reply["result"], "success");
    node.stop().await;
}

#[tokio::test]
async fn session_methods() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path()).await;
    std::fs::create_dir_all(&node.downloads).unwrap();

    let s = ok(&node, "session-get", json!({})).await;
    let version = s["version"].as_str().unwrap();
    assert!(version.starts_with("3.00 (btt "), "{version}");
    // What Sonarr and Radarr check: the leading number is at least 2.40.
    let leading: f64 = version.split(' ').next().unwrap().parse().unwrap();
    assert!(leading >= 2.40);
    assert_eq!(s["rpc-version"], 17);
    assert_eq!(s["rpc-version-minimum"], 1);
    assert_eq!(s["download-dir"], node.downloads.display().to_string());
    assert_eq!(s["peer-port"], node.library.session().listen_port());
    assert_eq!(s["session-id"], node.session_id().await);
    for key in [
        "speed-limit-down",
        "speed-limit-down-enabled",
        "speed-limit-up",
        "speed-limit-up-enabled",
        "seedRatioLimit",
        "seedRatioLimited",
        "config-dir",
        "start-added-torrents",
        "dht-enabled",
        "pex-enabled",
        "utp-enabled",
        "units",
    ] {
        assert!(s.get(key).is_some(), "session-get lacks {key}");
    }
    assert_eq!(s["dht-enabled"], false);

    // RPC 16's `fields` narrows the answer.
    let some = ok(
        &node,
        "session-get",
        json!({"fields": ["version", "peer-port", "bogus"]}),
    )
    .await;
    let mut keys: Vec<&String> = some.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["peer-port", "version"]);

    // session-set accepts anything and changes nothing it does not know.
    ok(
        &node,
        "session-set",
        json!({"speed-limit-down": 5, "no-such-key": true}),
    )
    .await;

    let stats = ok(&node, "session-stats", json!({})).await;
    assert_eq!(stats["torrentCount"], 0);
    assert_eq!(stats["activeTorrentCount"], 0);
    assert_eq!(stats["pausedTorrentCount"], 0);
    for part in ["cumulative-stats", "current-stats"] {
        for key in [
            "uploadedBytes",
            "downloadedBytes",
            "filesAdded",
            "sessionCount",
            "secondsActive",
        ] {
            assert!(stats[part][key].is_u64(), "{part}.{key}: {stats}");
        }
    }

    let free = ok(&node, "free-space", json!({"path": node.downloads})).await;
    assert_eq!(free["path"], node.downloads.display().to_string());
    assert!(free["size-bytes"].as_u64().unwrap() > 0, "{free}");
    let missing = rpc(&node, "free-space", json!({"path": "/no/such/dir"})).await;
    assert_ne!(missing["result"], "success");

    let port = ok(&node, "port-test", json!({})).await;
    assert_eq!(port["port-is-open"], false);
    node.stop().await;
}

#[tokio::test]
async fn add_get_stop_start_remove() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node")).await;
    let src = dir.path().join("src");
    let t = complete_torrent(&src, "pair", 5);
    let hash = t.info_hash.to_hex();
    let bytes = t.to_bytes();

    let added = ok(
        &node,
        "torrent-add",
        json!({"metainfo": b64(&bytes), "download-dir": src, "paused": false, "labels": ["x"]}),
    )
    .await;
    let a = &added["torrent-added"];
    assert_eq!(a["hashString"], hash);
    assert_eq!(a["name"], "pair");
    let id = a["id"].as_u64().unwrap();

    // The data is all there: the check finds it and the torrent seeds.
    let fields = [
        "id",
        "name",
        "hashString",
        "status",
        "percentDone",
        "totalSize",
        "sizeWhenDone",
        "leftUntilDone",
        "haveValid",
        "downloadDir",
        "error",
        "errorString",
        "eta",
        "files",
        "fileStats",
        "pieceCount",
        "pieceSize",
        "pieces",
        "magnetLink",
        "metadataPercentComplete",
        "isPrivate",
        "trackers",
        "trackerStats",
        "labels",
        "queuePosition",
        "peersConnected",
        "peers",
        "uploadRatio",
        "noSuchField",
    ];
    let got = wait_torrent(&node, id, &fields, |t| t["status"] == 6).await;
    assert_eq!(got["id"], id);
    assert_eq!(got["name"], "pair");
    assert_eq!(got["hashString"], hash);
    assert_eq!(got["totalSize"], 49_000);
    assert_eq!(got["sizeWhenDone"], 49_000);
    assert_eq!(got["leftUntilDone"], 0);
    assert_eq!(got["haveValid"], 49_000);
    assert_eq!(got["percentDone"], 1.0);
    assert_eq!(got["downloadDir"], src.display().to_string());
    assert_eq!(got["error"], 0);
    assert_eq!(got["errorString"], "");
    assert_eq!(got["eta"], -1);
    assert_eq!(
        got["files"],
        json!([
            {"name": "pair/a.bin", "length": 40_000, "bytesCompleted": 40_000},
            {"name": "pair/sub/b.bin", "length": 9_000, "bytesCompleted": 9_000},
        ])
    );
    assert_eq!(
        got["fileStats"][1],
        json!({"bytesCompleted": 9_000, "wanted": true, "priority": 0})
    );
    assert_eq!(got["pieceCount"], 3);
    assert_eq!(got["pieceSize"], PIECE);
    // Three pieces, all verified: 0b1110_0000.
    assert_eq!(got["pieces"], b64(&[0xe0]));
    assert!(got["magnetLink"].as_str().unwrap().contains(&hash), "{got}");
    assert_eq!(got["metadataPercentComplete"], 1.0);
    assert_eq!(got["isPrivate"], false);
    assert_eq!(got["trackers"], json!([]));
    assert_eq!(got["labels"], json!([]));
    assert_eq!(got["queuePosition"], 0);
    assert_eq!(got["peersConnected"], 0);
    assert_eq!(got["peers"], json!([]));
    assert_eq!(got["uploadRatio"], 0.0);
    assert!(got.get("noSuchField").is_none());
    assert_eq!(got.as_object().unwrap().len(), fields.len() - 1);

    // Adding it again answers with the one already there.
    let dup = ok(&node, "torrent-add", json!({"metainfo": b64(&bytes)})).await;
    assert_eq!(
        dup["torrent-duplicate"],
        json!({"id": id, "name": "pair", "hashString": hash})
    );
    assert!(dup.get("torrent-added").is_none());
    assert_eq!(get_all(&node, &["id"]).await.len(), 1);

    ok(&node, "torrent-stop", json!({"ids": [id]})).await;
    let stopped = wait_torrent(&node, id, &["status", "percentDone"], |t| t["status"] == 0).await;
    assert_eq!(
        stopped["percentDone"], 1.0,
        "a stopped torrent keeps its progress"
    );
    let stats = ok(&node, "session-stats", json!({})).await;
    assert_eq!(stats["pausedTorrentCount"], 1);
    assert_eq!(stats["activeTorrentCount"], 0);

    ok(&node, "torrent-start", json!({"ids": hash})).await;
    wait_torrent(&node, id, &["status"], |t| t["status"] == 6).await;
    ok(&node, "torrent-verify", json!({"ids": id})).await;
    wait_torrent(&node, id, &["status"], |t| t["status"] == 6).await;
    ok(&node, "torrent-reannounce", json!({"ids": id})).await;
    ok(
        &node,
        "torrent-set",
        json!({"ids": id, "uploadLimit": 10, "labels": ["a"]}),
    )
    .await;

    // Removing without deleting data keeps the files.
    ok(
        &node,
        "torrent-remove",
        json!({"ids": [id], "delete-local-data": false}),
    )
    .await;
    assert!(get_all(&node, &["id"]).await.is_empty());
    assert!(src.join("pair/a.bin").is_file());
    node.stop().await;
}

#[tokio::test]
async fn add_by_filename_and_remove_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node")).await;
    let src = dir.path().join("src");
    let t = complete_torrent(&src, "byname", 9);
    let file = dir.path().join("byname.torrent");
    std::fs::write(&file, t.to_bytes()).unwrap();

    let added = ok(
        &node,
        "torrent-add",
        json!({"filename": file, "download-dir": src, "paused": true}),
    )
    .await;
    let id = added["torrent-added"]["id"].as_u64().unwrap();
    assert_eq!(added["torrent-added"]["hashString"], t.info_hash.to_hex());
    let got = wait_torrent(&node, id, &["status"], |_| true).await;
    assert_eq!(got["status"], 0, "added paused");

    ok(
        &node,
        "torrent-remove",
        json!({"ids": id, "delete-local-data": true}),
    )
    .await;
    assert!(get_all(&node, &["id"]).await.is_empty());
    assert!(!src.join("byname/a.bin").exists());
    assert!(!src.join("byname/sub/b.bin").exists());
    node.stop().await;
}

#[tokio::test]
async fn bad_additions_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path()).await;

    let cases = [
        json!({"metainfo": "***not base64***"}),
        json!({"metainfo": b64(b"d4:infoi1ee")}),
        json!({"metainfo": b64(b"not bencode at all")}),
        json!({"filename": dir.path().join("missing.torrent")}),
    ];
    for args in cases {
        let reply = rpc(&node, "torrent-add", args.clone()).await;
        let result = reply["result"].as_str().unwrap();
        assert_ne!(result, "success", "{args}");
        assert!(reply["arguments"].get("torrent-added").is_none());
        if args.get("metainfo").is_some() {
            assert!(
                result.starts_with("invalid or corrupt torrent file"),
                "{result}"
            );
        }
    }
    let garbage = dir.path().join("garbage.torrent");
    std::fs::write(&garbage, b"hello").unwrap();
    let reply = rpc(&node, "torrent-add", json!({"filename": garbage})).await;
    assert!(reply["result"]
        .as_str()
        .unwrap()
        .starts_with("invalid or corrupt torrent file"));
    let reply = rpc(
        &node,
        "torrent-add",
        json!({"filename": "magnet:?xt=urn:btih:zz"}),
    )
    .await;
    assert_ne!(reply["result"], "success");
    let reply = rpc(&node, "torrent-add", json!({"paused": true})).await;
    assert_eq!(reply["result"], "no filename or metainfo specified");

    assert!(get_all(&node, &["id"]).await.is_empty());
    assert_eq!(
        ok(&node, "session-stats", json!({})).await["torrentCount"],
        0
    );
    node.stop().await;
}

#[tokio::test]
async fn ids_forms_table_format_and_queue() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node")).await;
    let src = dir.path().join("src");
    let mut ids = Vec::new();
    let mut hashes = Vec::new();
    for (i, name) in ["one", "two", "three"].iter().enumerate() {
        let t = complete_torrent(&src, name, 100 + i as u64 * 10);
        let added = ok(
            &node,
            "torrent-add",
            json!({"metainfo": b64(&t.to_bytes()), "download-dir": src, "paused": true}),
        )
        .await;
        ids.push(added["torrent-added"]["id"].as_u64().unwrap());
        hashes.push(t.info_hash.to_hex());
    }
    let names = |v: &Value| -> Vec<String> {
        v["torrents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };

    let all = ok(&node, "torrent-get", json!({"fields": ["name"]})).await;
    assert_eq!(names(&all), ["one", "two", "three"]);
    let one = ok(
        &node,
        "torrent-get",
        json!({"fields": ["name"], "ids": ids[1]}),
    )
    .await;
    assert_eq!(names(&one), ["two"]);
    let by_hash = ok(
        &node,
        "torrent-get",
        json!({"fields": ["name"], "ids": hashes[2]}),
    )
    .await;
    assert_eq!(names(&by_hash), ["three"]);
    // Mixed list, an unknown id and an unknown hash (left out, not an error).
    let mixed = ok(
        &node,
        "torrent-get",
        json!({"fields": ["name"], "ids": [ids[2], hashes[0], 999, "00".repeat(20)]}),
    )
    .await;
    assert_eq!(names(&mixed), ["three", "one"]);
    let none = ok(
        &node,
        "torrent-get",
        json!({"fields": ["name"], "ids": [999]}),
    )
    .await;
    assert_eq!(names(&none), Vec::<String>::new());
    let recent = ok(
        &node,
        "torrent-get",
        json!({"fields": ["name"], "ids": "recently-active"}),
    )
    .await;
    assert!(recent["removed"].is_array());

    let table = ok(
        &node,
        "torrent-get",
        json!({"fields": ["id", "name"], "ids": [ids[0]], "format": "table"}),
    )
    .await;
    assert_eq!(table["torrents"], json!([["id", "name"], [ids[0], "one"]]));

    let queue = |v: Value| -> Vec<u64> {
        let mut ts: Vec<(u64, u64)> = v["torrents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["queuePosition"].as_u64().unwrap(),
                    t["id"].as_u64().unwrap(),
                )
            })
            .collect();
        ts.sort();
        ts.into_iter().map(|(_, id)| id).collect()
    };
    let fields = json!({"fields": ["id", "queuePosition"]});
    assert_eq!(queue(ok(&node, "torrent-get", fields.clone()).await), ids);
    ok(&node, "queue-move-top", json!({"ids": [ids[2]]})).await;
    assert_eq!(
        queue(ok(&node, "torrent-get", fields.clone()).await),
        [ids[2], ids[0], ids[1]]
    );
    ok(&node, "queue-move-bottom", json!({"ids": [ids[2]]})).await;
    assert_eq!(queue(ok(&node, "torrent-get", fields.clone()).await), ids);
    ok(&node, "queue-move-up", json!({"ids": [ids[1]]})).await;
    assert_eq!(
        queue(ok(&node, "torrent-get", fields.clone()).await),
        [ids[1], ids[0], ids[2]]
    );
    ok(&node, "queue-move-down", json!({"ids": [ids[1]]})).await;
    assert_eq!(queue(ok(&node, "torrent-get", fields.clone()).await), ids);

    // No ids: every torrent (Transmission's rule, for removal too).
    ok(&node, "torrent-remove", json!({})).await;
    assert!(get_all(&node, &["id"]).await.is_empty());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speed_limits_apply_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let node = TestNode::start(&tmp.path().join("node")).await;
    let t = complete_torrent(&tmp.path().join("src"), "limited", 21);
    let added = ok(
        &node,
        "torrent-add",
        json!({"metainfo": b64(&t.to_bytes()), "paused": true}),
    )
    .await;
    let id = added["torrent-added"]["id"].as_u64().unwrap();

    // Session limits: on with a value, read back in kB/s, in force in the engine in bytes/s.
    ok(
        &node,
        "session-set",
        json!({"speed-limit-down": 250, "speed-limit-down-enabled": true, "speed-limit-up-enabled": true}),
    )
    .await;
    let s = ok(&node, "session-get", json!({})).await;
    assert_eq!(s["speed-limit-down"], 250);
    assert_eq!(s["speed-limit-down-enabled"], true);
    assert_eq!(
        s["speed-limit-up"], 100,
        "enabled without a value: Transmission's default"
    );
    assert_eq!(node.library.session_limits(), (250_000, 100_000));
    ok(
        &node,
        "session-set",
        json!({"speed-limit-down-enabled": false}),
    )
    .await;
    assert_eq!(node.library.session_limits(), (0, 100_000));
    // A bad value is an error and changes nothing.
    let r = rpc(&node, "session-set", json!({"speed-limit-up": "fast"})).await;
    assert!(
        r["result"].as_str().unwrap().contains("whole number"),
        "{r}"
    );
    assert_eq!(node.library.session_limits(), (0, 100_000));

    // Torrent limits, kept by the library.
    ok(
        &node,
        "torrent-set",
        json!({"ids": [id], "downloadLimit": 64, "downloadLimited": true}),
    )
    .await;
    let got = get_all(
        &node,
        &[
            "id",
            "downloadLimit",
            "downloadLimited",
            "uploadLimit",
            "uploadLimited",
        ],
    )
    .await;
    assert_eq!(
        got[0],
        json!({"id": id, "downloadLimit": 64, "downloadLimited": true, "uploadLimit": 100, "uploadLimited": false})
    );
    let (_, view) = node
        .raw("GET", &format!("/api/v1/torrents/{id}"), &[], b"")
        .await;
    assert_eq!(view["torrent"]["download_limit"], 64_000);
    ok(
        &node,
        "torrent-set",
        json!({"ids": [id], "downloadLimited": false}),
    )
    .await;
    let got = get_all(&node, &["downloadLimited"]).await;
    assert_eq!(got[0]["downloadLimited"], false);
    node.stop().await;
}
