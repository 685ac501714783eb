//! Tests of the `btt` binary as users run it: real processes on 127.0.0.1.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use metainfo::Torrent;

/// The binary with discovery that would leave 127.0.0.1 (the public DHT routers, LSD multicast)
/// turned off.
fn btt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_btt"));
    c.env_remove("BTT_LOG");
    c.env("BTT_NO_DHT", "1").env("BTT_NO_LSD", "1");
    c
}

/// Kills the child on drop so a failing test leaves no process behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_data(path: &Path, len: usize) {
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Starts `btt seed` and returns it with the port it listens on (read from its stderr).
fn start_seeder(torrent: &Path, dir: &Path, state: &Path, extra: &[&str]) -> (Guard, u16) {
    let mut child = btt()
        .args(["seed"])
        .arg(torrent)
        .arg(dir)
        .args([
            "--listen-ip",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--data-dir",
        ])
        .arg(state)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("seeder exited before listening")
            .unwrap();
        if let Some(rest) = line.split(" on port ").nth(1) {
            break rest.trim().parse::<u16>().unwrap();
        }
    };
    // Keep draining stderr so the seeder never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Guard(child), port)
}

/// Pieces whose bytes on disk match the torrent's hashes.
fn verified_on_disk(torrent: &Torrent, file: &Path) -> Vec<u32> {
    let data = std::fs::read(file).unwrap_or_default();
    (0..torrent.info.num_pieces())
        .filter(|&i| {
            let start = torrent.info.piece_offset(i) as usize;
            let end = start + torrent.info.piece_size(i) as usize;
            end <= data.len()
                && metainfo::create::hash_piece(&data[start..end])
                    == *torrent.info.piece_hash(i).unwrap()
        })
        .collect()
}

fn download_cmd(torrent: &Path, out: &Path, state: &Path, port: u16) -> Command {
    let mut c = btt();
    c.arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args([
            "--listen-ip",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--json",
            "--peer",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(state);
    c
}

#[test]
fn kill_9_mid_download_then_restart_fetches_no_verified_piece_again() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src/blob.bin");
    write_data(&src, 6 << 20);
    let torrent_path = tmp.path().join("blob.torrent");
    let st = btt()
        .arg("create")
        .arg(&src)
        .arg("-o")
        .arg(&torrent_path)
        .args(["--piece-size", "32768"])
        .status()
        .unwrap();
    assert!(st.success());
    let torrent = Torrent::from_bytes(&std::fs::read(&torrent_path).unwrap()).unwrap();
    let total = torrent.info.num_pieces();

    // A seeder limited to 1.5 MB/s makes the download take a few seconds.
    let (_seed, port) = start_seeder(
        &torrent_path,
        &tmp.path().join("src"),
        &tmp.path().join("seed-state"),
        &["--upload-limit", "1500000"],
    );
    let out = tmp.path().join("out");
    let state = tmp.path().join("leech-state");
    let mut leech = Guard(
        download_cmd(&torrent_path, &out, &state, port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let file: PathBuf = out.join("blob.bin");
    let deadline = Instant::now() + Duration::from_secs(60);
    while verified_on_disk(&torrent, &file).len() < (total / 3) as usize {
        assert!(Instant::now() < deadline, "download made no progress");
        assert!(
            leech.0.try_wait().unwrap().is_none(),
            "download ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    leech.0.kill().unwrap(); // SIGKILL
    leech.0.wait().unwrap();
    let before = verified_on_disk(&torrent, &file);
    assert!(
        !before.is_empty() && (before.len() as u32) < total,
        "killed mid-download: {} of {total}",
        before.len()
    );

    let output = download_cmd(&torrent_path, &out, &state, port)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "restart failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["pieces_total"], total);
    assert_eq!(
        summary["pieces_resumed"],
        before.len(),
        "every piece verified before the kill is kept"
    );
    assert_eq!(
        summary["pieces_downloaded"],
        total - before.len() as u32,
        "no verified piece is fetched again"
    );
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&src).unwrap());
}

#[test]
fn malformed_and_truncated_torrents_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("f.bin");
    write_data(&src, 100_000);
    let good = tmp.path().join("good.torrent");
    assert!(btt()
        .arg("create")
        .arg(&src)
        .arg("-o")
        .arg(&good)
        .status()
        .unwrap()
        .success());
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("not bencode", b"hello world".to_vec()),
        ("no info", b"d8:announce3:urle".to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, data) in cases {
        let path = tmp.path().join(format!("{what}.torrent"));
        std::fs::write(&path, data).unwrap();
        for args in [
            vec!["info"],
            vec![
                "download",
                "-o",
                "x",
                "--listen-port",
                "0",
                "--listen-ip",
                "127.0.0.1",
            ],
        ] {
            let out = btt()
                .arg(args[0])
                .arg(&path)
                .args(&args[1..])
                .output()
                .unwrap();
            assert!(!out.status.success(), "{what}: {args:?} succeeded");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().count(), 1, "{what}: {err}");
            assert!(
                err.starts_with("error: ") && err.contains("is not a valid torrent"),
                "{what}: {err}"
            );
        }
    }
    assert!(
        !tmp.path().join("x").exists(),
        "nothing is created for a bad torrent"
    );
}

#[test]
fn info_json_describes_a_created_multi_file_torrent() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(&tmp.path().join("set/a.bin"), 70_000);
    write_data(&tmp.path().join("set/sub/b.bin"), 10);
    let t = tmp.path().join("set.torrent");
    let ok = btt()
        .arg("create")
        .arg(tmp.path().join("set"))
        .arg("-o")
        .arg(&t)
        .args([
            "--tracker",
            "http://127.0.0.1:1/announce",
            "--tracker",
            "udp://127.0.0.1:2",
            "--piece-size",
            "16384",
            "--private",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = btt().arg("info").arg(&t).arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parsed = Torrent::from_bytes(&std::fs::read(&t).unwrap()).unwrap();
    assert_eq!(v["info_hash"], parsed.info_hash.to_hex());
    assert_eq!(v["num_pieces"], 5);
    assert_eq!(v["total_length"], 70_010);
    assert_eq!(v["private"], true);
    assert_eq!(
        v["files"],
        serde_json::json!([{"path": "set/a.bin", "length": 70000}, {"path": "set/sub/b.bin", "length": 10}])
    );
    assert_eq!(
        v["trackers"],
        serde_json::json!([["http://127.0.0.1:1/announce"], ["udp://127.0.0.1:2"]])
    );
}

#[test]
fn wallet_new_import_list_with_password_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let key = tmp.path().join("key");
    // The key from the web3.js documentation, with its well-known address.
    std::fs::write(
        &key,
        "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318\n",
    )
    .unwrap();
    let wallet = |args: &[&str]| {
        btt()
            .arg("wallet")
            .args(args)
            .arg("--data-dir")
            .arg(tmp.path())
            .arg("--password-file")
            .arg(&pw)
            .arg("--json")
            .output()
            .unwrap()
    };
    let out = wallet(&["import", "--key-file", key.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["address"], "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");

    let out = wallet(&["new"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let out = wallet(&["list"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["addresses"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.contains(&serde_json::json!(
        "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    )));
    assert!(list.contains(&created["address"]));

    // Importing the same key again is refused and changes nothing; the secret is never printed.
    let out = wallet(&["import", "--key-file", key.to_str().unwrap()]);
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("4c0883a69102937d"), "secret printed: {all}");
    assert!(!all.contains("correct horse"), "password printed: {all}");
    let files = std::fs::read_dir(tmp.path().join("keystore"))
        .unwrap()
        .count();
    assert_eq!(files, 2);
}

#[test]
fn bad_magnet_links_fail_with_one_line_and_touch_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for (link, why) in [
        ("magnet:?xt=urn:btih:zz", "not a valid magnet link"),
        ("magnet:?dn=no-hash", "not a valid magnet link"),
        ("magnet:?xt=urn:btmh:1220abcd", "not a valid magnet link"),
    ] {
        let out_dir = tmp.path().join("out");
        let data_dir = tmp.path().join("data");
        let out = btt()
            .args(["download", link, "-o"])
            .arg(&out_dir)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-port", "0"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{link} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{link}: {stderr}");
        assert!(stderr.contains(why), "{link}: {stderr}");
        assert!(
            !out_dir.exists() && !data_dir.exists(),
            "{link} left files behind"
        );
    }
}
