"""A libtorrent peer as its own process, so the benchmark can measure it like any other client.

    /usr/bin/python3 bench/lt_peer.py seed     TORRENT SAVE_DIR --port N
    /usr/bin/python3 bench/lt_peer.py download TORRENT SAVE_DIR --port N

``seed`` checks the data, prints ``seeding`` on stderr and seeds until
SIGTERM/SIGINT. ``download`` exits 0 once every piece is verified and
libtorrent has written it to the files (not fsynced, like the other
clients). Session settings are the interop harness's ``lt_settings``:
libtorrent's defaults plus loopback-only listening, no DHT/LSD/UPnP/NAT-PMP,
no encryption, no uTP (``--utp``: uTP only, no TCP).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "interop"))

import peers  # noqa: E402  (after the path tweak)

lt = peers.lt


def _add(session, torrent: str, save_dir: str):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_dir
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    return session.add_torrent(atp)


def _alerts(session, wait_ms: int = 500):
    session.wait_for_alert(wait_ms)
    return session.pop_alerts()


def _fail(message: str) -> NoReturn:
    print(f"lt_peer: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def seed(session, torrent: str, save_dir: str) -> int:
    handle = _add(session, torrent, save_dir)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    announced = False
    while not stop:
        for alert in _alerts(session):
            if isinstance(alert, lt.torrent_error_alert):
                _fail(alert.message())
            if isinstance(alert, lt.torrent_checked_alert):
                if not handle.status().is_seeding:
                    _fail(f"data in {save_dir} does not match {torrent}")
                if not announced:
                    print("seeding", file=sys.stderr, flush=True)
                    announced = True
    return 0


def download(session, torrent: str, save_dir: str, timeout_s: float) -> int:
    handle = _add(session, torrent, save_dir)
    deadline = time.monotonic() + timeout_s
    finished = False
    while time.monotonic() < deadline:
        for alert in _alerts(session):
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                _fail(alert.message())
            if isinstance(alert, lt.torrent_finished_alert) and not finished:
                finished = True
                handle.flush_cache()
            elif isinstance(alert, lt.cache_flushed_alert) and finished:
                return 0
    st = handle.status()
    _fail(f"timed out after {timeout_s:.0f}s at {st.progress:.3f} with {st.num_peers} peers")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["seed", "download"])
    parser.add_argument("torrent")
    parser.add_argument("save_dir")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=3600, help="download: give up after this many seconds")
    parser.add_argument("--utp", action="store_true", help="uTP only (TCP off both ways)")
    args = parser.parse_args()
    transport = {"tcp": False, "utp": True} if args.utp else {}
    session = lt.session(peers.lt_settings(args.port, **transport))
    if args.mode == "seed":
        return seed(session, args.torrent, args.save_dir)
    return download(session, args.torrent, args.save_dir, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
