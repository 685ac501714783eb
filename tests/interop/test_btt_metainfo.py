"""``btt create`` and ``btt info`` against libtorrent's reading of the same torrents.

btt's torrents need not be byte-identical to libtorrent's (optional keys
may differ, and so may the info-hash); what must hold is that libtorrent
parses btt's torrent, reports the same info-hash as ``btt info --json``,
and sees the same files, pieces and trackers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import peers
from conftest import PIECE_SIZE

pytestmark = pytest.mark.btt

TRACKER = "http://127.0.0.1:6969/announce"


def _json_files(info: dict) -> list[tuple[str, int]]:
    """``files`` of ``btt info --json`` as (path relative to the torrent's top directory, length).

    The contract names the keys but not the path form, so both a string
    ("sub/small.bin") and a list of components are accepted, with or
    without the torrent name as first component; a single-file torrent's
    path is its name.
    """
    out = []
    for f in info["files"]:
        path = f["path"]
        parts = [str(p) for p in path] if isinstance(path, list) else str(path).split("/")
        if len(parts) > 1 and parts[0] == info["name"]:
            parts = parts[1:]
        out.append(("/".join(parts), int(f["length"])))
    return out


def _lt_files(ti) -> list[tuple[str, int]]:
    """The same view of the files as libtorrent parses them (pad files excluded)."""
    fs = ti.files()
    out = []
    for i in range(fs.num_files()):
        if fs.file_flags(i) & peers.lt.file_storage.flag_pad_file:
            continue
        parts = Path(fs.file_path(i)).parts
        if ti.num_files() > 1 or len(parts) > 1:
            parts = parts[1:]
        out.append(("/".join(parts) or ti.name(), fs.file_size(i)))
    return out


def _lt_tiers(ti) -> list[list[str]]:
    """Announce URLs grouped by tier, as libtorrent reads them."""
    tiers: dict[int, list[str]] = {}
    for t in ti.trackers():
        tiers.setdefault(t.tier, []).append(t.url)
    return [tiers[k] for k in sorted(tiers)]


def _check_info_matches_libtorrent(info: dict, torrent: Path) -> None:
    ti = peers.lt.torrent_info(str(torrent))
    assert info["info_hash"] == peers.lt_info_hash_hex(torrent) == peers.info_hash_hex(torrent)
    assert info["name"] == ti.name()
    assert info["piece_length"] == ti.piece_length()
    assert info["num_pieces"] == ti.num_pieces()
    assert info["total_length"] == ti.total_size()
    assert sorted(_json_files(info)) == sorted(_lt_files(ti))
    assert info["trackers"] == _lt_tiers(ti)
    assert info["private"] is ti.priv()


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_btt_create_is_read_by_libtorrent_with_the_same_info_hash(btt: peers.Btt, make_torrent, content: Path,
                                                                  private: bool):
    torrent = make_torrent("btt", content, [TRACKER], private=private)
    info = btt.info_json(torrent)
    _check_info_matches_libtorrent(info, torrent)

    ti = peers.lt.torrent_info(str(torrent))
    assert ti.piece_length() == PIECE_SIZE
    assert [t.url for t in ti.trackers()] == [TRACKER]
    assert ti.priv() is private
    assert info["trackers"] == [[TRACKER]]
    on_disk = [content] if content.is_file() else [p for p in content.rglob("*") if p.is_file()]
    assert info["total_length"] == sum(p.stat().st_size for p in on_disk)
    assert len(info["files"]) == len(on_disk)


def test_btt_info_reads_libtorrent_torrents(btt: peers.Btt, make_torrent, content: Path):
    torrent = make_torrent("libtorrent", content, [TRACKER])
    info = btt.info_json(torrent)
    _check_info_matches_libtorrent(info, torrent)
    assert info["private"] is False


def test_btt_info_text_names_the_info_hash(btt: peers.Btt, make_torrent, single_content: Path):
    torrent = make_torrent("libtorrent", single_content, [TRACKER])
    res = btt.run("info", torrent)
    assert res.returncode == 0, res.stderr
    assert peers.info_hash_hex(torrent) in res.stdout.lower()


def _malformed(kind: str, good: bytes) -> bytes:
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "one-byte-short":
        return good[:-1]
    if kind == "empty":
        return b""
    if kind == "not-bencode":
        return b"this is not a torrent file\n"
    if kind == "no-info":
        return b"d8:announce30:http://127.0.0.1:6969/announcee"
    if kind == "bad-pieces":
        # `pieces` length not a multiple of 20.
        return b"d4:infod6:lengthi10e4:name1:a12:piece lengthi16384e6:pieces19:" + b"x" * 19 + b"ee"
    raise ValueError(kind)


MALFORMED = ["truncated", "one-byte-short", "empty", "not-bencode", "no-info", "bad-pieces"]


def _assert_clean_failure(res: peers.BttResult, what: str) -> None:
    assert res.returncode not in (0, 101) and res.returncode > 0, (
        f"{what} exited {res.returncode} (0 = accepted bad input, 101 = panic, < 0 = signal)\n{res.stderr}")
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{what} should explain the error in one line on stderr, got:\n{res.stderr}"
    assert "panicked" not in res.stderr


@pytest.mark.parametrize("kind", MALFORMED)
def test_btt_info_rejects_malformed_torrent(tmp_path: Path, btt: peers.Btt, single_content: Path, kind: str):
    good = peers.create_torrent_lt(single_content, tmp_path / "good.torrent", PIECE_SIZE, [TRACKER]).read_bytes()
    bad = tmp_path / f"{kind}.torrent"
    bad.write_bytes(_malformed(kind, good))
    _assert_clean_failure(btt.run("info", bad), f"btt info on a {kind} torrent")
    _assert_clean_failure(btt.run("info", bad, "--json"), f"btt info --json on a {kind} torrent")


@pytest.mark.parametrize("kind", ["truncated", "not-bencode"])
def test_btt_download_rejects_malformed_torrent(tmp_path: Path, btt: peers.Btt, single_content: Path, kind: str):
    good = peers.create_torrent_lt(single_content, tmp_path / "good.torrent", PIECE_SIZE, [TRACKER]).read_bytes()
    bad = tmp_path / f"{kind}.torrent"
    bad.write_bytes(_malformed(kind, good))
    out = tmp_path / "out"
    out.mkdir()
    res = btt.run("download", bad, "-o", out, "--listen-port", peers.free_port(), timeout_s=30)
    _assert_clean_failure(res, f"btt download of a {kind} torrent")
    assert list(out.iterdir()) == [], "a rejected torrent must not create files"
