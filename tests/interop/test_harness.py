"""Sanity tests of the harness itself: third-party programs among themselves.

Nothing here runs btt. If these fail, the harness or the machine is broken
and the btt results mean nothing; if they pass, a failing btt test points
at btt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import peers
from conftest import PIECE_SIZE

pytestmark = pytest.mark.harness


def _torrent(tmp_path: Path, content: Path, tracker: peers.Tracker) -> tuple[Path, str]:
    """A libtorrent-made v1 torrent of ``content`` announcing to ``tracker``, and its info-hash."""
    torrent = peers.create_torrent_lt(content, tmp_path / f"{content.name}.torrent", PIECE_SIZE, [tracker.url])
    return torrent, peers.info_hash_hex(torrent)


def test_data_is_deterministic_and_layout_has_edge_cases(tmp_path: Path):
    a = peers.make_multi_file(tmp_path / "a", "m", PIECE_SIZE, seed=5)
    b = peers.make_multi_file(tmp_path / "b", "m", PIECE_SIZE, seed=5)
    c = peers.make_multi_file(tmp_path / "c", "m", PIECE_SIZE, seed=6)
    assert peers.content_digest(a) == peers.content_digest(b)
    assert peers.content_digest(a) != peers.content_digest(c)

    sizes = [size for _, size in peers.multi_file_layout(PIECE_SIZE)]
    assert any(size < PIECE_SIZE for size in sizes), "a file smaller than a piece"
    assert sum(sizes) % PIECE_SIZE != 0, "a short last piece"
    # Some piece must hold bytes of three files: find the files each piece touches.
    bounds, offset = [], 0
    for size in sizes:
        bounds.append((offset, offset + size))
        offset += size
    touched = [
        sum(1 for lo, hi in bounds if lo < (p + 1) * PIECE_SIZE and hi > p * PIECE_SIZE)
        for p in range(-(-offset // PIECE_SIZE))
    ]
    assert max(touched) >= 3, touched


def test_info_hash_and_bencode_agree_with_libtorrent(tmp_path: Path, single_content: Path, multi_content: Path):
    for content in (single_content, multi_content):
        torrent = peers.create_torrent_lt(content, tmp_path / f"{content.name}.torrent", PIECE_SIZE,
                                          ["http://127.0.0.1:1/announce"])
        assert peers.info_hash_hex(torrent) == peers.lt_info_hash_hex(torrent)
        meta = peers.bdecode(torrent.read_bytes())
        info = meta[b"info"]
        assert info[b"piece length"] == PIECE_SIZE
        assert b"meta version" not in info, "libtorrent made a v2/hybrid torrent; v1_only was ignored"
        assert meta[b"announce"] == b"http://127.0.0.1:1/announce"
    with pytest.raises(ValueError):
        peers.bdecode(torrent.read_bytes()[:-1])


def test_free_ports_are_distinct():
    ports = {peers.free_port() for _ in range(20)}
    assert len(ports) == 20


def test_tracker_whitelist(tmp_path: Path, tracker: peers.Tracker, single_content: Path):
    torrent, ih = _torrent(tmp_path, single_content, tracker)
    tracker.start([ih])
    assert tracker.scrape(ih).get("complete", 0) == 0
    reply = tracker.announce(ih, port=4321, left=0)
    assert "failure reason" not in reply, reply
    assert tracker.scrape(ih)["complete"] == 1
    # Unlisted info-hashes are refused: the tracker really runs in whitelist mode.
    other = "0123456789abcdef0123456789abcdef01234567"
    assert b"not authorized" in tracker.announce(other, port=4321)["failure reason"]


def test_libtorrent_to_libtorrent(tmp_path: Path, swarm: peers.Swarm, tracker: peers.Tracker, content: Path):
    torrent, ih = _torrent(tmp_path, content, tracker)
    tracker.start([ih])
    swarm.libtorrent("lt-seed").seed(torrent, content.parent)
    tracker.wait_for_seeders(ih)

    out = tmp_path / "out"
    leecher = swarm.libtorrent("lt-leech").add(torrent, out)
    leecher.wait_seeding(timeout_s=60)
    peers.assert_same_content(content, out / content.name)


def test_libtorrent_to_aria2(tmp_path: Path, swarm: peers.Swarm, tracker: peers.Tracker, content: Path):
    torrent, ih = _torrent(tmp_path, content, tracker)
    tracker.start([ih])
    swarm.libtorrent("lt-seed").seed(torrent, content.parent)
    tracker.wait_for_seeders(ih)

    out = tmp_path / "out"
    aria2 = swarm.aria2().download(torrent, out)
    assert aria2.wait(timeout_s=90) == 0, aria2.logs()
    peers.assert_same_content(content, out / content.name)


def test_aria2_to_libtorrent(tmp_path: Path, swarm: peers.Swarm, tracker: peers.Tracker, content: Path):
    torrent, ih = _torrent(tmp_path, content, tracker)
    tracker.start([ih])
    seeder = swarm.aria2().seed(torrent, content.parent)
    tracker.wait_for_seeders(ih, watch=[seeder])

    out = tmp_path / "out"
    leecher = swarm.libtorrent("lt-leech").add(torrent, out)
    leecher.wait_seeding(timeout_s=60, watch=[seeder])
    peers.assert_same_content(content, out / content.name)


def test_transmission_to_libtorrent(tmp_path: Path, swarm: peers.Swarm, tracker: peers.Tracker,
                                    multi_content: Path):
    content = multi_content
    torrent, ih = _torrent(tmp_path, content, tracker)
    tracker.start([ih])
    transmission = swarm.transmission()
    transmission.seed(torrent, content.parent)
    tracker.wait_for_seeders(ih, watch=[transmission.proc])
    assert ih in transmission.remote("-t", ih, "-i").lower()

    out = tmp_path / "out"
    leecher = swarm.libtorrent("lt-leech").add(torrent, out)
    # Transmission never dials 127.0.0.0/8 peers: the leecher must dial it.
    leecher.connect_peer("127.0.0.1", transmission.peer_port)
    leecher.wait_seeding(timeout_s=120, watch=[transmission.proc])
    peers.assert_same_content(content, out / content.name)


def test_libtorrent_to_transmission(tmp_path: Path, swarm: peers.Swarm, tracker: peers.Tracker,
                                   single_content: Path):
    content = single_content
    torrent, ih = _torrent(tmp_path, content, tracker)
    tracker.start([ih])
    seeder = swarm.libtorrent("lt-seed").seed(torrent, content.parent)
    transmission = swarm.transmission()
    tid = transmission.leech(torrent)
    # Transmission never dials 127.0.0.0/8 peers: the seeder must dial it.
    seeder.connect_peer("127.0.0.1", transmission.peer_port)
    transmission.wait_complete(tid, timeout_s=120)
    peers.assert_same_content(content, transmission.download_dir / content.name)


def test_content_comparison_catches_differences(tmp_path: Path):
    a = peers.make_multi_file(tmp_path / "a", "m", PIECE_SIZE, seed=7)
    b = peers.make_multi_file(tmp_path / "b", "m", PIECE_SIZE, seed=7)
    peers.assert_same_content(a, b)
    small = b / "sub" / "small.bin"
    data = bytearray(small.read_bytes())
    data[-1] ^= 1
    small.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="small.bin"):
        peers.assert_same_content(a, b)
    small.unlink()
    with pytest.raises(AssertionError, match="missing"):
        peers.assert_same_content(a, b)
    with pytest.raises(AssertionError, match="does not exist"):
        peers.assert_same_content(a, tmp_path / "nowhere")
