"""``btt node`` driven through its Transmission RPC by real Transmission clients.

A libtorrent seeder on 127.0.0.1 holds a v1 torrent of random data. A
client adds the .torrent to the node, the seeder dials the node's peer
port (the node has no other way to find it: no tracker, DHT off), and the
client watches the download reach 100 %, stops, starts and removes the
torrent. The downloaded file must hash like the original.

Clients:

* ``transmission-remote`` 3.00 (Debian's transmission-cli), the reference
  remote: its ``-l`` table is parsed column by column.
* ``transmission-rpc`` from PyPI (pinned in scripts/setup-test-env.sh),
  the client behind many Python tools; it requests every field RPC 17 has.

Plus the session-id handshake at the HTTP level: a request without the
``X-Transmission-Session-Id`` header, or with a stale one, gets 409 and
the current id; with it, 200.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import peers
from conftest import PIECE_SIZE
from node import BttNode

pytestmark = pytest.mark.btt

CONTENT_SIZE = 5 * peers.MIB + 777
TRANSFER_TIMEOUT_S = 90
# How often the seeder dials the node again while the download has not finished.
REDIAL_S = 3.0
SESSION_HEADER = "X-Transmission-Session-Id"


def _remote_program() -> str:
    return peers.require_program("transmission-remote", "apt-get install -y transmission-cli")


def _transmission_rpc():
    """The PyPI client, or ``ProgramMissing`` saying how to install it."""
    try:
        import transmission_rpc
    except ImportError:
        raise peers.ProgramMissing(
            "the transmission-rpc package is not installed for /usr/bin/python3: "
            "run scripts/setup-test-env.sh (pip install --break-system-packages transmission-rpc==7.0.11)"
        ) from None
    return transmission_rpc


class Remote:
    """``transmission-remote 127.0.0.1:PORT ...`` against one node."""

    def __init__(self, node: BttNode):
        self.binary = _remote_program()
        self.node = node

    def run(self, *args: str) -> str:
        argv = [self.binary, f"127.0.0.1:{self.node.http_port}", *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (
            f"{' '.join(argv)} exited {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
        )
        return out.stdout

    def rows(self) -> dict[int, dict]:
        """``-l`` parsed: id -> {"done", "status", "name", "line"}.

        The table is ``ID Done Have ETA Up Down Ratio Status Name``; Have
        and ETA may span two words ("4.2 MB", "10 sec"), Status too
        ("Up & Down"), so the columns are read from both ends.
        """
        out = self.run("-l")
        lines = out.splitlines()
        assert lines and lines[0].split()[:2] == ["ID", "Done"], out
        assert lines[-1].startswith("Sum:"), out
        header = lines[0]
        status_col = header.index("Status")
        name_col = header.index("Name")
        rows = {}
        for line in lines[1:-1]:
            tokens = line.split()
            tid = int(tokens[0].rstrip("*"))
            rows[tid] = {
                "done": tokens[1],
                "status": line[status_col:name_col].strip(),
                "name": line[name_col:].strip(),
                "line": line,
            }
        return rows


def _seed(swarm: peers.Swarm, tmp_path: Path, seed_dir: Path, name: str, seed: int):
    """Random content, its v1 torrent and a libtorrent seeder of it."""
    content = peers.make_single_file(seed_dir, name, CONTENT_SIZE, seed=seed)
    torrent = peers.create_torrent_lt(content, tmp_path / f"{name}.torrent", PIECE_SIZE)
    seeder = swarm.libtorrent("lt-seed")
    lt_torrent = seeder.seed(torrent, seed_dir)
    return content, torrent, lt_torrent


def _wait_complete(done, lt_torrent: peers.LtTorrent, node: BttNode, what: str, diagnostics) -> None:
    """Waits for ``done()`` while the seeder redials the node now and then.

    One dial is enough when it lands after the node has the torrent
    running; redialling covers a dial that raced the node's check of the
    (empty) download directory.
    """
    last_dial = [0.0]

    def complete() -> bool:
        if time.monotonic() - last_dial[0] >= REDIAL_S:
            lt_torrent.connect_peer("127.0.0.1", node.peer_port)
            last_dial[0] = time.monotonic()
        return done()

    peers.wait_until(complete, TRANSFER_TIMEOUT_S, what, diagnostics)


def _rpc(node: BttNode, body: dict, session_id: str | None):
    """One raw POST to /transmission/rpc: (status, headers (case-insensitive), JSON body or {})."""
    headers = {"Content-Type": "application/json"}
    if session_id is not None:
        headers[SESSION_HEADER] = session_id
    req = urllib.request.Request(f"{node.url}/transmission/rpc", data=json.dumps(body).encode(),
                                 method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, {}


def test_transmission_remote_drives_a_download(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt,
                                               seed_dir: Path):
    content, torrent, lt_torrent = _seed(swarm, tmp_path, seed_dir, "remote-sample.bin", seed=41)
    info_hash = peers.info_hash_hex(torrent)
    downloads = tmp_path / "remote-downloads"
    downloads.mkdir()
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    with BttNode(node_dir) as node:
        remote = Remote(node)
        session = remote.run("-si")
        assert "3.00 (btt " in session, session
        assert "RPC version: 17" in session, session

        added = remote.run("-a", str(torrent), "--download-dir", str(downloads))
        assert "success" in added, added
        rows = remote.rows()
        assert len(rows) == 1, rows
        (tid, row), = rows.items()
        assert row["name"] == content.name

        def diagnostics() -> str:
            return remote.run("-l") + remote.run("-t", str(tid), "-i") + "\n" + swarm.logs()

        _wait_complete(lambda: remote.rows()[tid]["done"] == "100%", lt_torrent, node,
                       "transmission-remote -l to show 100% done", diagnostics)
        peers.assert_same_content(content, downloads / content.name)

        info = remote.run("-t", str(tid), "-i")
        assert f"Hash: {info_hash}" in info, info
        assert f"Location: {downloads}" in info, info
        assert "Percent Done: 100%" in info, info
        assert f"Name: {content.name}" in info, info

        remote.run("-t", str(tid), "-S")
        peers.wait_until(lambda: remote.rows()[tid]["status"] == "Stopped", 30,
                         "the list to show the torrent Stopped", diagnostics)
        assert remote.rows()[tid]["done"] == "100%", "a stopped torrent keeps its progress"

        remote.run("-t", str(tid), "-s")
        peers.wait_until(lambda: remote.rows()[tid]["status"] in ("Idle", "Seeding", "Uploading"), 30,
                         "the list to show the torrent running again", diagnostics)
        status, body = node.api("GET", f"/api/v1/torrents/{info_hash}")
        assert status == 200 and body["torrent"]["state"] == "seeding", body

        stats = remote.run("-st")
        assert "CURRENT SESSION" in stats, stats

        remote.run("-t", str(tid), "-r")
        assert tid not in remote.rows()
        status, _ = node.api("GET", f"/api/v1/torrents/{info_hash}")
        assert status == 404
        # -r keeps the data (--remove-and-delete would not).
        peers.assert_same_content(content, downloads / content.name)


def test_transmission_rpc_client_drives_a_download(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt,
                                                   seed_dir: Path):
    transmission_rpc = _transmission_rpc()
    content, torrent, lt_torrent = _seed(swarm, tmp_path, seed_dir, "pyrpc-sample.bin", seed=42)
    info_hash = peers.info_hash_hex(torrent)
    downloads = tmp_path / "pyrpc-downloads"
    downloads.mkdir()
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    with BttNode(node_dir) as node:
        # The client does the 409 handshake and a session-get while connecting.
        client = transmission_rpc.Client(host="127.0.0.1", port=node.http_port, timeout=30)
        session = client.get_session()
        assert session.rpc_version == 17
        assert session.version.startswith("3.00 (btt ")
        assert session.peer_port == node.peer_port

        added = client.add_torrent(Path(torrent), download_dir=str(downloads))
        assert added.hashString == info_hash
        assert added.name == content.name
        again = client.add_torrent(torrent.read_bytes())
        assert again.id == added.id, "a duplicate answers with the torrent already there"
        assert [t.id for t in client.get_torrents()] == [added.id]

        def diagnostics() -> str:
            return f"{client.get_torrent(added.id).fields}\n{swarm.logs()}"

        _wait_complete(lambda: client.get_torrent(added.id).percent_done == 1.0, lt_torrent, node,
                       "transmission-rpc to see percentDone 1.0", diagnostics)
        # Every field RPC 17 has is asked for; check the ones a client shows.
        t = client.get_torrent(added.id)
        assert t.status == "seeding", t.fields
        assert t.total_size == CONTENT_SIZE
        assert t.left_until_done == 0
        assert t.download_dir == str(downloads)
        assert t.error == 0
        assert [(f.name, f.size, f.completed) for f in t.get_files()] == [(content.name, CONTENT_SIZE, CONTENT_SIZE)]
        assert t.fields["pieceCount"] == peers.lt.torrent_info(str(torrent)).num_pieces()
        assert info_hash in t.magnet_link
        peers.assert_same_content(content, downloads / content.name)

        client.stop_torrent(added.id)
        peers.wait_until(lambda: client.get_torrent(added.id).status == "stopped", 30,
                         "transmission-rpc to see the torrent stopped", diagnostics)
        client.start_torrent(added.id)
        peers.wait_until(lambda: client.get_torrent(added.id).status == "seeding", 30,
                         "transmission-rpc to see the torrent seeding again", diagnostics)

        stats = client.session_stats()
        assert stats.torrent_count == 1
        assert stats.active_torrent_count == 1

        client.remove_torrent(added.id, delete_data=True)
        assert client.get_torrents() == []
        assert not (downloads / content.name).exists(), "delete_data removes the downloaded file"


def test_session_id_handshake(tmp_path: Path, btt: peers.Btt):
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    body = {"method": "session-get", "arguments": {"fields": ["version", "rpc-version"]}, "tag": 5}
    with BttNode(node_dir) as node:
        status, headers, _ = _rpc(node, body, None)
        assert status == 409
        session_id = headers.get(SESSION_HEADER)
        assert session_id, dict(headers)

        status, headers, _ = _rpc(node, body, "stale-" + session_id)
        assert status == 409
        assert headers.get(SESSION_HEADER) == session_id

        status, _, reply = _rpc(node, body, session_id)
        assert status == 200
        assert reply["result"] == "success"
        assert reply["tag"] == 5
        assert reply["arguments"]["rpc-version"] == 17

        status, _, reply = _rpc(node, {"method": "no-such-method"}, session_id)
        assert status == 200
        assert reply["result"] == "method name not recognized"


def test_credentials_with_transmission_remote_and_transmission_rpc(tmp_path: Path, btt: peers.Btt):
    """A node with credentials: both clients get in with them and are refused without or with
    wrong ones; the web UI and native API are guarded the same way."""
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    remote = _remote_program()
    trpc = _transmission_rpc()
    with BttNode(node_dir, credentials=("admin", "pa55 word")) as node:
        addr = f"127.0.0.1:{node.http_port}"

        def remote_run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([remote, addr, *args], capture_output=True, text=True, timeout=60)

        ok = remote_run("-n", "admin:pa55 word", "-si")
        assert ok.returncode == 0, ok.stderr
        assert "RPC version: 17" in ok.stdout, ok.stdout
        for args in (("-si",), ("-n", "admin:wrong", "-si")):
            refused = remote_run(*args)
            assert refused.returncode != 0, refused.stdout
            assert "needs a user name and password" in refused.stdout + refused.stderr, refused.stderr

        client = trpc.Client(host="127.0.0.1", port=node.http_port, username="admin", password="pa55 word")
        assert client.get_session().rpc_version == 17
        with pytest.raises(trpc.error.TransmissionError):
            trpc.Client(host="127.0.0.1", port=node.http_port, username="admin", password="nope")

        for path in ("/", "/api/v1/torrents", "/metrics"):
            status, headers, _ = node.request("GET", path, auth=False)
            assert status == 401, path
            assert {k.lower(): v for k, v in headers.items()}.get("www-authenticate") == 'Basic realm="btt"'
            status, _, _ = node.request("GET", path)
            assert status == 200, path
