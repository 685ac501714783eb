"""Fixtures for the interop suite.

Run with Debian's python, where libtorrent imports::

    /usr/bin/python3 -m pytest tests/interop

Tests never skip: a missing program is a failure (in CI and locally), so a
green run always means every flow really ran. Tests marked ``harness``
exercise only third-party programs and validate this harness; tests
marked ``btt`` run the btt binary (``$BTT_BIN`` or ``target/debug/btt``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import peers

# Small torrents keep the suite quick: a few MiB in 256 KiB pieces.
PIECE_SIZE = 256 * peers.KIB
SINGLE_SIZE = 4 * peers.MIB + 12345


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turns every skip into a failure and attaches the swarm's logs to failed tests."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipping is not allowed in the interop suite (a missing program is a failure): {reason}"
    if report.failed and call.when == "call":
        swarm = item.funcargs.get("swarm") if hasattr(item, "funcargs") else None
        if isinstance(swarm, peers.Swarm):
            report.sections.append(("swarm logs", swarm.logs()))


@pytest.fixture
def swarm(tmp_path: Path):
    """A ``peers.Swarm`` in the test's tmp dir; every process and session in it is stopped afterwards."""
    s = peers.Swarm(tmp_path / "swarm")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def tracker(swarm: peers.Swarm) -> peers.Tracker:
    """A tracker with its port reserved; call ``start(info_hashes)`` once the torrents exist."""
    return swarm.tracker()


@pytest.fixture
def btt(swarm: peers.Swarm) -> peers.Btt:
    """The btt launcher; fails (never skips) when the binary is missing."""
    return _btt_or_fail(swarm)


def _btt_or_fail(swarm: peers.Swarm) -> peers.Btt:
    try:
        return swarm.btt
    except peers.ProgramMissing as e:
        message = str(e)
    pytest.fail(message, pytrace=False)


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    """Where the original data lives (the seeder's save path)."""
    d = tmp_path / "seed"
    d.mkdir()
    return d


@pytest.fixture
def single_content(seed_dir: Path) -> Path:
    """A single file of a little over 4 MiB (the last piece is short)."""
    return peers.make_single_file(seed_dir, "single.bin", SINGLE_SIZE, seed=11)


@pytest.fixture
def multi_content(seed_dir: Path) -> Path:
    """A directory with a piece spanning three files and a file smaller than a piece."""
    return peers.make_multi_file(seed_dir, "multi", PIECE_SIZE, seed=22)


@pytest.fixture(params=["single", "multi"])
def content(request) -> Path:
    """Each of the single-file and multi-file contents in turn."""
    return request.getfixturevalue(f"{request.param}_content")


@pytest.fixture
def make_torrent(tmp_path: Path, swarm: peers.Swarm):
    """``make_torrent(maker, content, trackers)``: a v1 torrent made by "libtorrent" or "btt".

    Piece size is ``PIECE_SIZE`` either way; the file is written next to the
    test's other files and its path returned.
    """

    def make(maker: str, content: Path, trackers=(), private: bool = False) -> Path:
        out = tmp_path / f"{content.name}.{maker}.torrent"
        if maker == "libtorrent":
            return peers.create_torrent_lt(content, out, PIECE_SIZE, trackers, private=private)
        if maker == "btt":
            return _btt_or_fail(swarm).create(content, out, trackers=trackers, piece_size=PIECE_SIZE, private=private)
        raise ValueError(f"unknown torrent maker {maker!r}")

    return make
