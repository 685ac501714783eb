"""`btt node` restarted mid-download (gracefully and with SIGKILL) continues where it was.

A libtorrent seeder on 127.0.0.1 holds the data; the node downloads it with a
download limit so that the restart lands mid-transfer. After the restart the
torrent keeps its id, none of the pieces it had is fetched again (the bytes
received after the restart stay within what was missing, plus endgame slack),
and the finished file matches the source by SHA-256.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import peers
from node import BttNode

pytestmark = pytest.mark.btt

SIZE = 12 * peers.MIB + 4321
PIECE = 256 * peers.KIB
# 3 MB/s: the transfer takes about four seconds, long enough to land a restart in it.
LIMIT_BYTES_PER_S = 3_000_000


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_restart_mid_download_continues(swarm: peers.Swarm, tmp_path: Path, kill: bool):
    content = peers.make_single_file(tmp_path / "src", "payload.bin", SIZE, seed=7)
    torrent = peers.create_torrent_lt(content, tmp_path / "payload.torrent", PIECE)
    lt = swarm.libtorrent("seeder")
    lt.seed(torrent, content.parent)

    with BttNode(tmp_path / "node", extra_args=["--download-limit", str(LIMIT_BYTES_PER_S)]) as node:
        status, body = node.api("POST", "/api/v1/torrents", {
            "torrent": base64.b64encode(torrent.read_bytes()).decode(),
            "peers": [f"127.0.0.1:{lt.port}"],
        })
        assert status == 201, body
        tid = body["torrent"]["id"]
        total = body["torrent"]["pieces_total"]

        before = node.wait_torrent(
            tid, lambda t: t["pieces_have"] >= total // 4, "a quarter of the pieces", timeout_s=60)
        assert before["state"] == "downloading", before
        node.restart(kill=kill)

        after = node.torrent(tid)
        assert after["hash"] == before["hash"]
        assert after["name"] == "payload.bin"
        # Everything verified before the restart is still there: from the resume record after a
        # graceful stop, or found by the start-up check after SIGKILL.
        resumed = node.wait_torrent(tid, lambda t: t["state"] in ("downloading", "seeding"),
                                    "the torrent to resume", timeout_s=60)
        assert resumed["pieces_have"] >= before["pieces_have"], (before, resumed)

        done = node.wait_torrent(tid, lambda t: t["state"] == "seeding", "the download to finish", 120)
        assert done["progress"] == 1.0
        # Only what was missing at the restart was fetched again (endgame may duplicate a few
        # blocks, never whole pieces already on disk).
        missing = SIZE - before["have_bytes"]
        assert done["downloaded_bytes"] <= missing + 2 * PIECE, (before, done)
        peers.assert_same_content(content, node.data_dir / "downloads" / "payload.bin")
