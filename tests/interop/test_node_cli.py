"""`btt torrent …` drives a running `btt node` through its HTTP API.

A libtorrent seeder on 127.0.0.1 provides the data; the CLI adds the torrent,
lists it, shows it, stops, starts and removes it (with its data), and every
step is checked against the node's API.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import peers
from node import BttNode

pytestmark = pytest.mark.btt


def _cli(node: BttNode, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(peers.btt_binary()), "torrent", "--node", node.url, *args],
                       capture_output=True, text=True, timeout=60)
    if ok:
        assert r.returncode == 0, f"btt torrent {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


def test_btt_torrent_commands(swarm: peers.Swarm, tmp_path: Path):
    content = peers.make_multi_file(tmp_path / "src", "album", 64 * peers.KIB, seed=11)
    torrent = peers.create_torrent_lt(content, tmp_path / "album.torrent", 64 * peers.KIB)
    info_hash = peers.info_hash_hex(torrent)
    lt = swarm.libtorrent("seeder")
    lt.seed(torrent, content.parent)

    with BttNode(tmp_path / "node") as node:
        added = json.loads(_cli(node, "add", str(torrent), "--peer", f"127.0.0.1:{lt.port}", "--json").stdout)
        assert added["hash"] == info_hash
        tid = added["id"]
        node.wait_torrent(tid, lambda t: t["state"] == "seeding", "the download to finish")
        peers.assert_same_content(content, node.data_dir / "downloads" / "album")

        listed = json.loads(_cli(node, "ls", "--json").stdout)
        assert [(t["id"], t["hash"], t["progress"]) for t in listed] == [(tid, info_hash, 1.0)]
        text = _cli(node, "ls").stdout
        assert "100.0%" in text and "seeding" in text and "album" in text, text

        info = json.loads(_cli(node, "info", info_hash, "--json").stdout)
        assert info["torrent"]["id"] == tid
        assert sum(f["length"] for f in info["files"]) == info["torrent"]["size_bytes"]
        assert all(f["progress"] == 1.0 for f in info["files"])

        assert json.loads(_cli(node, "stop", str(tid), "--json").stdout)["state"] == "stopped"
        assert node.torrent(tid)["state"] == "stopped"
        assert json.loads(_cli(node, "start", str(tid), "--json").stdout)["state"] in (
            "checking", "downloading", "seeding")
        node.wait_torrent(tid, lambda t: t["state"] == "seeding", "the torrent to seed again")

        # Errors reach the user in the node's words, and change nothing.
        r = _cli(node, "add", "magnet:?dn=no-hash", ok=False)
        assert r.returncode != 0 and "invalid magnet link" in r.stderr, r.stderr
        r = _cli(node, "stop", "999", ok=False)
        assert r.returncode != 0 and "no torrent 999" in r.stderr, r.stderr
        r = _cli(node, "add", str(torrent), ok=False)
        assert r.returncode != 0 and "already added" in r.stderr, r.stderr
        assert len(json.loads(_cli(node, "ls", "--json").stdout)) == 1

        # A second node on the same data directory is refused while the first runs.
        second = subprocess.run(
            [str(peers.btt_binary()), "node", "--data-dir", str(node.data_dir), "--chain", "off",
             "--http", f"127.0.0.1:{peers.free_port()}", "--listen-port", str(peers.free_port()),
             "--dht", "false", "--lsd", "false"],
            capture_output=True, text=True, timeout=60)
        assert second.returncode != 0, second.stdout
        assert "another btt node is using" in second.stderr, second.stderr

        _cli(node, "rm", str(tid), "--delete-data")
        assert json.loads(_cli(node, "ls", "--json").stdout) == []
        assert not (node.data_dir / "downloads" / "album").exists()

    # No node listening: a clear error.
    r = subprocess.run([str(peers.btt_binary()), "torrent", "--node", f"http://127.0.0.1:{peers.free_port()}", "ls"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "is `btt node` running there?" in r.stderr, r.stderr
