"""The ``btt node`` web UI driven in headless Chromium.

A libtorrent seeder on 127.0.0.1 holds a v1 torrent of random data. The
browser (``js/ui_flow.mjs`` with playwright-core and Debian's chromium)
opens the node's page, adds the .torrent through the file input with the
seeder's address in the extra-peers field, waits for the row to show
100 %, opens the detail panel and finds the seeder in the peers tab, and
takes desktop and phone screenshots into ``target/test-artifacts/ui/``.
Then the native API must report the torrent seeding and the downloaded
file must hash like the original.

The node drops seeds once it is a seed itself, so a second libtorrent
peer, a leecher whose download is capped far below the seeder's upload,
is in the extra-peers field too: it is still fetching from the node when
the row reaches 100 %, and it is the peer row the detail panel must
show. The seeder's upload is capped as well, so the download lasts a few
seconds and the rate graph has something to draw.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import peers
from conftest import PIECE_SIZE
from node import BttNode

pytestmark = pytest.mark.btt

JS_DIR = Path(__file__).resolve().parent / "js"
ARTIFACTS = peers.REPO / "target" / "test-artifacts" / "ui"
UI_TIMEOUT_S = 180
SEED_RATE_BYTES_PER_S = 2 * peers.MIB
# The leecher needs ~45 s for the content: long after the node has it all.
LEECH_RATE_BYTES_PER_S = 128 * peers.KIB
CONTENT_SIZE = 6 * peers.MIB + 4321


def _ui_programs() -> tuple[str, str]:
    """Node.js and Chromium paths, or ``ProgramMissing`` saying how to install them."""
    node = peers.require_program("node", "install Node.js 18+ (scripts/setup-test-env.sh)")
    if not (JS_DIR / "node_modules" / "playwright-core").is_dir():
        raise peers.ProgramMissing(f"playwright-core is not installed in {JS_DIR}: run `npm ci` there")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        raise peers.ProgramMissing(f"Chromium not found at {chromium}: `apt-get install -y chromium` "
                                   "(or point CHROMIUM at a Chromium binary)")
    return node, chromium


def _rate_limited(session: peers.LtSession, **limits: int) -> None:
    """Applies session rate ``limits`` to every peer, loopback included.

    libtorrent puts peers on local networks in a peer class without limits;
    filing every IPv4 address under the global class makes the limits bite.
    """
    session.session.apply_settings(limits)
    everyone = peers.lt.ip_filter()
    everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << peers.lt.session.global_peer_class_id)
    session.session.set_peer_class_filter(everyone)


def _screenshot_dir(name: str) -> Path:
    """A fresh ``target/test-artifacts/ui/<name>`` (old screenshots would mislead a reader)."""
    out = ARTIFACTS / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def test_web_ui_adds_a_torrent_file_and_shows_it_complete(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt,
                                                          seed_dir: Path):
    node_js, chromium = _ui_programs()
    content = peers.make_single_file(seed_dir, "ui-sample.bin", CONTENT_SIZE, seed=33)
    torrent = peers.create_torrent_lt(content, tmp_path / "ui-sample.torrent", PIECE_SIZE)
    info_hash = peers.info_hash_hex(torrent)

    seeder = swarm.libtorrent("lt-seed")
    _rate_limited(seeder, upload_rate_limit=SEED_RATE_BYTES_PER_S)
    seeder.seed(torrent, seed_dir)
    leecher = swarm.libtorrent("lt-leech")
    _rate_limited(leecher, download_rate_limit=LEECH_RATE_BYTES_PER_S)
    leech_dir = tmp_path / "leech"
    leech_dir.mkdir()
    leecher.add(torrent, leech_dir)
    extra_peers = f"127.0.0.1:{seeder.port},127.0.0.1:{leecher.port}"

    shots = _screenshot_dir("web_ui_flow")
    with BttNode(tmp_path / "node") as node:
        argv = [node_js, str(JS_DIR / "ui_flow.mjs"), "--url", node.url, "--torrent", str(torrent),
                "--peer", extra_peers, "--screenshots", str(shots), "--chromium", chromium]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=UI_TIMEOUT_S, cwd=JS_DIR)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"ui_flow.mjs did not finish within {UI_TIMEOUT_S}s\n"
                                 f"stdout:\n{e.stdout}\nstderr:\n{e.stderr}\n{node.logs()}\n{swarm.logs()}") from None
        assert proc.returncode == 0, (
            f"ui_flow.mjs exited {proc.returncode} (screenshots in {shots})\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n{node.logs()}\n{swarm.logs()}"
        )
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert lines, f"ui_flow.mjs printed nothing on stdout\nstderr:\n{proc.stderr}"
        summary = json.loads(lines[-1])
        assert summary["ok"] is True
        assert summary["hash"] == info_hash
        assert summary["name"] == content.name
        # After completion the node keeps only peers that still need pieces: the leecher.
        assert f"127.0.0.1:{leecher.port}" in summary["peers"], summary
        num_pieces = peers.lt.torrent_info(str(torrent)).num_pieces()
        assert summary["pieces"] == {"have": num_pieces, "total": num_pieces}
        for png in ("desktop-list.png", "desktop-peers.png", "desktop-pieces.png", "phone.png"):
            assert (shots / png).stat().st_size > 0, f"no screenshot {png} in {shots}"

        # What the page showed, the API must say too: the torrent is complete and seeding.
        status, body = node.api("GET", f"/api/v1/torrents/{info_hash}")
        assert status == 200, body
        t = body["torrent"]
        assert t["hash"] == info_hash
        assert t["state"] == "seeding", t
        assert t["progress"] == 1
        assert t["size_bytes"] == CONTENT_SIZE
        assert t["have_bytes"] == CONTENT_SIZE
        assert t["pieces_have"] == t["pieces_total"] == num_pieces

        status, files = node.api("GET", f"/api/v1/torrents/{info_hash}/files")
        assert status == 200, files
        assert [(f["path"], f["length"], f["bytes_completed"]) for f in files["files"]] == [
            (content.name, CONTENT_SIZE, CONTENT_SIZE)
        ]

        # The bytes on disk are the seeder's bytes.
        peers.assert_same_content(content, Path(t["download_dir"]) / content.name)
