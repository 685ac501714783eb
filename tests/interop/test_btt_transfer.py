"""btt exchanging whole torrents with libtorrent, aria2 and Transmission.

Every flow runs for a single-file and a multi-file v1 torrent through a
local opentracker, and compares the received files with the originals by
SHA-256. Who made the torrent varies so both makers meet every client:

=========================  ==================  ==================
flow                       single-file         multi-file
=========================  ==================  ==================
btt downloads (from X)     ``btt create``      libtorrent
btt seeds (to X)           libtorrent          ``btt create``
=========================  ==================  ==================

Transmission never dials 127.0.0.0/8 peers, so btt dials it with ``--peer``
in both directions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import peers

pytestmark = pytest.mark.btt

# Transmission decides interest/unchoke every 10 s and seeds slowly; the others are quick.
TRANSFER_TIMEOUT_S = 90
TRANSMISSION_TIMEOUT_S = 150


@dataclass
class Case:
    """One torrent ready to transfer: its original content and a tracker that knows it."""

    content: Path
    torrent: Path
    info_hash: str
    num_pieces: int
    total_length: int
    tracker: peers.Tracker


def _case(request, make_torrent, tracker: peers.Tracker, makers: dict) -> Case:
    layout = request.param
    content = request.getfixturevalue(f"{layout}_content")
    torrent = make_torrent(makers[layout], content, [tracker.url])
    ih = peers.info_hash_hex(torrent)
    tracker.start([ih])
    ti = peers.lt.torrent_info(str(torrent))
    return Case(content, torrent, ih, ti.num_pieces(), ti.total_size(), tracker)


@pytest.fixture(params=["single", "multi"])
def download_case(request, make_torrent, tracker) -> Case:
    """A torrent for btt to download: single-file made by btt, multi-file by libtorrent."""
    return _case(request, make_torrent, tracker, {"single": "btt", "multi": "libtorrent"})


@pytest.fixture(params=["single", "multi"])
def seed_case(request, make_torrent, tracker) -> Case:
    """A torrent for btt to seed: single-file made by libtorrent, multi-file by btt."""
    return _case(request, make_torrent, tracker, {"single": "libtorrent", "multi": "btt"})


def _finish_download(proc: peers.Proc, case: Case, out: Path, timeout_s: float,
                     watch: tuple = ()) -> dict:
    """Waits for ``btt download`` to exit 0, checks its JSON report and the files; returns the report."""
    rc = proc.wait_exit(timeout_s, watch=watch)
    assert rc == 0, f"btt download exited {rc}\n{proc.logs()}"
    peers.assert_same_content(case.content, out / case.content.name)

    lines = [line for line in proc.stdout().splitlines() if line.strip()]
    assert lines, f"btt download --json printed nothing on stdout\n{proc.logs()}"
    report = json.loads(lines[-1])
    assert report["info_hash"] == case.info_hash
    assert report["pieces_total"] == case.num_pieces
    assert report["pieces_resumed"] == 0
    assert report["pieces_downloaded"] == case.num_pieces
    assert report["hash_failures"] == 0
    assert report["banned_peers"] == []
    # Endgame may fetch a few blocks twice; anything near double is a bug.
    assert case.total_length <= report["bytes_downloaded"] < 2 * case.total_length, report
    return report


def _stop_seeder(seeder: peers.Proc) -> None:
    """btt seed must exit 0 on SIGTERM."""
    rc = seeder.stop()
    assert rc == 0, f"btt seed exited {rc} on SIGTERM\n{seeder.logs()}"


# ---------------------------------------------------------------- btt downloads


def test_btt_downloads_from_libtorrent(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt, download_case: Case):
    case = download_case
    swarm.libtorrent("lt-seed").seed(case.torrent, case.content.parent)
    case.tracker.wait_for_seeders(case.info_hash)

    out = tmp_path / "out"
    proc = btt.download(case.torrent, out)
    _finish_download(proc, case, out, TRANSFER_TIMEOUT_S)


def test_btt_downloads_from_aria2(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt, download_case: Case):
    case = download_case
    seeder = swarm.aria2().seed(case.torrent, case.content.parent)
    case.tracker.wait_for_seeders(case.info_hash, watch=[seeder])

    out = tmp_path / "out"
    proc = btt.download(case.torrent, out)
    _finish_download(proc, case, out, TRANSFER_TIMEOUT_S, watch=(seeder,))


def test_btt_downloads_from_transmission(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt,
                                         download_case: Case):
    case = download_case
    transmission = swarm.transmission()
    transmission.seed(case.torrent, case.content.parent)
    case.tracker.wait_for_seeders(case.info_hash, watch=[transmission.proc])

    out = tmp_path / "out"
    proc = btt.download(case.torrent, out, peers=[("127.0.0.1", transmission.peer_port)])
    _finish_download(proc, case, out, TRANSMISSION_TIMEOUT_S, watch=(transmission.proc,))


# ---------------------------------------------------------------- btt seeds


def test_libtorrent_downloads_from_btt(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt, seed_case: Case):
    case = seed_case
    seeder = btt.seed(case.torrent, case.content.parent)
    case.tracker.wait_for_seeders(case.info_hash, watch=[seeder])

    out = tmp_path / "out"
    leecher = swarm.libtorrent("lt-leech").add(case.torrent, out)
    leecher.wait_seeding(timeout_s=TRANSFER_TIMEOUT_S, watch=[seeder])
    peers.assert_same_content(case.content, out / case.content.name)
    _stop_seeder(seeder)


def test_aria2_downloads_from_btt(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt, seed_case: Case):
    case = seed_case
    seeder = btt.seed(case.torrent, case.content.parent)
    case.tracker.wait_for_seeders(case.info_hash, watch=[seeder])

    out = tmp_path / "out"
    aria2 = swarm.aria2().download(case.torrent, out)
    assert aria2.wait_exit(TRANSFER_TIMEOUT_S, watch=[seeder]) == 0, aria2.logs()
    peers.assert_same_content(case.content, out / case.content.name)
    _stop_seeder(seeder)


def test_transmission_downloads_from_btt(swarm: peers.Swarm, btt: peers.Btt, seed_case: Case):
    case = seed_case
    transmission = swarm.transmission()
    tid = transmission.leech(case.torrent)
    # Transmission will not dial a loopback peer: btt must dial it.
    seeder = btt.seed(case.torrent, case.content.parent, peers=[("127.0.0.1", transmission.peer_port)])
    transmission.wait_complete(tid, timeout_s=TRANSMISSION_TIMEOUT_S, watch=[seeder])
    peers.assert_same_content(case.content, transmission.download_dir / case.content.name)
    _stop_seeder(seeder)


# ---------------------------------------------------------------- btt to btt


def test_btt_downloads_from_btt(tmp_path: Path, btt: peers.Btt, seed_case: Case):
    case = seed_case
    seeder = btt.seed(case.torrent, case.content.parent)
    case.tracker.wait_for_seeders(case.info_hash, watch=[seeder])

    out = tmp_path / "out"
    proc = btt.download(case.torrent, out)
    _finish_download(proc, case, out, TRANSFER_TIMEOUT_S, watch=(seeder,))
    _stop_seeder(seeder)


def test_btt_download_resumes_complete_data(tmp_path: Path, btt: peers.Btt, seed_case: Case):
    """Over data that is already complete, btt verifies it and exits 0 without any peer."""
    case = seed_case
    res = btt.run("download", case.torrent, "-o", case.content.parent, "--listen-port", peers.free_port(),
                  "--json", timeout_s=TRANSFER_TIMEOUT_S)
    assert res.returncode == 0, res.stderr
    report = res.json()
    assert report["info_hash"] == case.info_hash
    assert report["pieces_total"] == case.num_pieces
    assert report["pieces_resumed"] == case.num_pieces
    assert report["pieces_downloaded"] == 0
    assert report["bytes_downloaded"] == 0
    assert report["hash_failures"] == 0
