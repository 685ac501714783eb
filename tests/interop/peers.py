"""Launchers for the programs in an interop swarm on 127.0.0.1.

Everything a test needs to run btt against real third-party BitTorrent
programs, with clean teardown:

* ``free_port`` picks listen ports from the OS (bind to port 0).
* ``Swarm`` owns one test's temporary directory and every process and
  libtorrent session started in it; ``Swarm.close`` stops them all.
* ``Tracker`` runs opentracker in whitelist mode and reads its scrape page.
* ``make_single_file`` / ``make_multi_file`` write deterministic data;
  ``assert_same_content`` compares whole trees by SHA-256.
* ``create_torrent_lt`` makes v1-only torrents with libtorrent;
  ``info_hash_hex`` computes the v1 info-hash independently of any client.
* ``LtSession`` is an in-process libtorrent peer (seed or download).
* ``Aria2``, ``Transmission`` and ``Btt`` start those programs.

No wait in here is a fixed sleep: every wait polls a condition against a
deadline and fails with a message naming the condition and the logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, TypeVar

try:
    import libtorrent as lt
except ImportError as exc:  # pragma: no cover - depends on the interpreter
    raise ImportError(
        "libtorrent is not importable from this interpreter. Run the suite with "
        "Debian's python: `/usr/bin/python3 -m pytest tests/interop` "
        "(install it with scripts/setup-test-env.sh)"
    ) from exc

REPO = Path(__file__).resolve().parents[2]

KIB = 1024
MIB = 1024 * KIB

# How often polling loops look at their condition.
POLL_S = 0.05

T = TypeVar("T")


class HarnessError(AssertionError):
    """A program in the swarm misbehaved or a wait ran out of time."""


class ProgramMissing(HarnessError):
    """A program the test needs is not installed; never a reason to skip."""


def require_program(name: str, hint: str = "run scripts/setup-test-env.sh as root") -> str:
    """Returns the absolute path of ``name`` on PATH, or raises ``ProgramMissing``."""
    path = shutil.which(name)
    if path is None:
        raise ProgramMissing(f"`{name}` is not installed or not on PATH; {hint}")
    return path


def wait_until(
    condition: Callable[[], Optional[T]],
    timeout_s: float,
    what: str,
    diagnostics: Callable[[], str] = lambda: "",
) -> T:
    """Polls ``condition`` until it returns a truthy value and returns that value.

    Raises ``HarnessError`` naming ``what`` (plus ``diagnostics()``) after
    ``timeout_s``. Exceptions raised by ``condition`` propagate: use them to
    fail fast (for example when a process exited early).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = diagnostics()
            raise HarnessError(
                f"timed out after {timeout_s:.0f}s waiting for {what}" + (f"\n{extra}" if extra else "")
            )
        time.sleep(POLL_S)


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------

_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that is free for both TCP and UDP right now.

    The OS picks it (bind to port 0), which avoids collisions with fixed
    ports and with other tests. A port is never handed out twice in one
    process, so two programs in one swarm cannot be given the same one.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if port in _handed_out:
                continue
            # opentracker, libtorrent and Transmission also use UDP on the same number.
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise HarnessError("could not find a free port on 127.0.0.1")


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """True if a TCP connection to ``host:port`` succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def _tail(path: Path, max_bytes: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-max_bytes:].decode("utf-8", "replace")


class Proc:
    """A child process in its own process group, with stdout/stderr in files.

    ``stop`` sends SIGTERM to the group, then SIGKILL if it has not exited
    within the grace period.
    """

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: Optional[dict] = None,
                 cwd: Optional[Path] = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        # The listen port, for programs that have one.
        self.port: Optional[int] = None

    def poll(self) -> Optional[int]:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text("utf-8", "replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")

    def logs(self) -> str:
        """The tail of both output files, for failure messages."""
        return (
            f"--- {self.name} (pid {self.pid}, exit {self.popen.poll()}) {' '.join(self.argv)}\n"
            f"--- stdout tail:\n{_tail(self.stdout_path)}\n--- stderr tail:\n{_tail(self.stderr_path)}"
        )

    def check_running(self) -> None:
        """Raises ``HarnessError`` if the process has exited."""
        rc = self.popen.poll()
        if rc is not None:
            raise HarnessError(f"{self.name} exited early with status {rc}\n{self.logs()}")

    def wait(self, timeout_s: float) -> int:
        """Waits for exit; on timeout stops the process and raises ``HarnessError``."""
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise HarnessError(f"{self.name} did not exit within {timeout_s:.0f}s\n{self.logs()}") from None

    def wait_exit(self, timeout_s: float, watch: Iterable["Proc"] = ()) -> int:
        """Waits for exit and returns the status; fails at once if a ``watch`` process exits first."""
        watch = list(watch)

        def exited() -> bool:
            if not self.alive():
                return True
            for p in watch:
                p.check_running()
            return False

        wait_until(exited, timeout_s, f"{self.name} to exit",
                   lambda: "\n".join(p.logs() for p in [self, *watch]))
        return self.popen.returncode

    def signal(self, sig: int) -> None:
        """Sends ``sig`` to the process group while its leader is alive."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = 10.0) -> Optional[int]:
        """SIGTERM to the group, SIGKILL after ``grace_s``; returns the exit status."""
        if self.popen.poll() is not None:
            return self.popen.returncode
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.popen.wait(timeout=grace_s)


# --------------------------------------------------------------------------
# Bencode (just enough to read .torrent files and tracker replies)
# --------------------------------------------------------------------------


def bdecode(data: bytes):
    """Decodes one bencoded value that spans all of ``data``; byte strings stay ``bytes``."""
    value, end = _bdecode_at(data, 0)
    if end != len(data):
        raise ValueError(f"trailing data after bencoded value at offset {end}")
    return value


def _bdecode_at(data: bytes, i: int):
    if i >= len(data):
        raise ValueError("truncated bencode")
    c = data[i : i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if c == b"l":
        i += 1
        items = []
        while data[i : i + 1] != b"e":
            item, i = _bdecode_at(data, i)
            items.append(item)
        return items, i + 1
    if c == b"d":
        i += 1
        items = {}
        while data[i : i + 1] != b"e":
            key, i = _bdecode_at(data, i)
            items[key], i = _bdecode_at(data, i)
        return items, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        n = int(data[i:colon])
        start = colon + 1
        if start + n > len(data):
            raise ValueError("truncated bencode string")
        return data[start : start + n], start + n
    raise ValueError(f"bad bencode at offset {i}")


def _info_span(data: bytes) -> tuple[int, int]:
    """Byte range of the top-level ``info`` value in a .torrent file."""
    if data[:1] != b"d":
        raise ValueError("a .torrent must be a bencoded dictionary")
    i = 1
    while data[i : i + 1] != b"e":
        key, i = _bdecode_at(data, i)
        start = i
        _, i = _bdecode_at(data, i)
        if key == b"info":
            return start, i
    raise ValueError("no info dictionary in torrent")


def info_hash_hex(torrent: Path) -> str:
    """The v1 info-hash (SHA-1 of the raw info dictionary bytes), lowercase hex."""
    data = Path(torrent).read_bytes()
    start, end = _info_span(data)
    return hashlib.sha1(data[start:end]).hexdigest()


def lt_info_hash_hex(torrent: Path) -> str:
    """The v1 info-hash as libtorrent parses it from ``torrent``, lowercase hex."""
    ti = lt.torrent_info(str(torrent))
    return str(ti.info_hashes().v1).lower()


# --------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------


def write_random_file(path: Path, size: int, seed: int) -> Path:
    """Writes ``size`` pseudo-random bytes derived from ``seed`` (same seed, same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    chunk = 4 * MIB
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(chunk, left)
            f.write(rng.randbytes(n))
            left -= n
    return path


def make_single_file(parent: Path, name: str, size: int, seed: int = 1) -> Path:
    """One file ``parent/name`` of ``size`` bytes; returns its path."""
    return write_random_file(parent / name, size, seed)


def multi_file_layout(piece_size: int) -> list[tuple[str, int]]:
    """Relative paths and sizes of the multi-file test torrent, in torrent order.

    Built around the piece size so that:
    * ``a.bin`` ends a third of the way into a piece, so the next piece spans
      the end of ``a.bin``, all of ``sub/small.bin`` and the start of
      ``sub/deep/c.bin`` (a piece across three files);
    * ``sub/small.bin`` is a tenth of a piece (a file smaller than a piece);
    * the last piece is short (total length is not a multiple of the piece size).
    """
    return [
        ("a.bin", 6 * piece_size + piece_size // 3),
        ("sub/small.bin", piece_size // 10),
        ("sub/deep/c.bin", 6 * piece_size + 7),
        ("z.bin", piece_size + piece_size // 2 + 1),
    ]


def make_multi_file(parent: Path, name: str, piece_size: int, seed: int = 2) -> Path:
    """A directory ``parent/name`` holding ``multi_file_layout(piece_size)``; returns it."""
    root = parent / name
    for index, (rel, size) in enumerate(multi_file_layout(piece_size)):
        write_random_file(root / rel, size, seed * 1000 + index)
    return root


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(MIB)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def content_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file below ``root`` (or of ``root`` itself if it is a file), by relative path."""
    root = Path(root)
    if root.is_file():
        return {root.name: _sha256_file(root)}
    return {
        str(p.relative_to(root)): _sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_same_content(expected: Path, actual: Path) -> None:
    """Fails unless ``actual`` holds exactly the files of ``expected`` with the same bytes."""
    if not Path(actual).exists():
        raise AssertionError(f"{actual} does not exist (expected a copy of {expected})")
    want = content_digest(expected)
    got = content_digest(actual)
    if Path(expected).is_file():
        want = {"": next(iter(want.values()))}
        got = {"": next(iter(got.values()))} if Path(actual).is_file() else got
    if want != got:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        differ = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        raise AssertionError(
            f"{actual} differs from {expected}: missing {missing}, unexpected {extra}, different bytes {differ}"
        )


# --------------------------------------------------------------------------
# Torrents
# --------------------------------------------------------------------------


LT_VERSION_FLAGS = {
    "v1": "v1_only",
    "v2": "v2_only",
    "hybrid": None,
}


def create_torrent_lt(content: Path, out: Path, piece_size: int, trackers: Iterable[str] = (),
                      private: bool = False, version: str = "v1", web_seeds: Iterable[str] = ()) -> Path:
    """Writes a torrent of ``content`` (a file or a directory) to ``out``.

    ``version`` is ``v1`` (the default: libtorrent's own default is hybrid
    with pad files, which aria2 does not handle, see INTEROP.md), ``v2`` or
    ``hybrid``. ``web_seeds`` become the BEP 19 ``url-list``.
    """
    content = Path(content).resolve()
    fs = lt.file_storage()
    lt.add_files(fs, str(content))
    if fs.num_files() == 0:
        raise HarnessError(f"no files found below {content}")
    flag = LT_VERSION_FLAGS[version]
    if flag is None:
        ct = lt.create_torrent(fs, piece_size)
    else:
        ct = lt.create_torrent(fs, piece_size, flags=getattr(lt.create_torrent, flag))
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    for url in web_seeds:
        ct.add_url_seed(url)
    if private:
        ct.set_priv(True)
    lt.set_piece_hashes(ct, str(content.parent))
    Path(out).write_bytes(lt.bencode(ct.generate()))
    return Path(out)


def lt_info_hashes(torrent: Path) -> dict:
    """libtorrent's view of a torrent's hashes: ``v1`` (40 hex) and ``v2`` (64 hex), each or None."""
    hashes = lt.torrent_info(str(torrent)).info_hashes()
    v1 = str(hashes.v1) if hashes.has_v1() else None
    v2 = str(hashes.v2) if hashes.has_v2() else None
    return {"v1": v1, "v2": v2}


def info_dict_bytes(torrent: Path) -> bytes:
    """The raw bytes of a torrent file's ``info`` dictionary."""
    data = Path(torrent).read_bytes()
    start, end = _info_span(data)
    return data[start:end]


# --------------------------------------------------------------------------
# opentracker
# --------------------------------------------------------------------------


class Tracker:
    """opentracker in whitelist mode on 127.0.0.1 (HTTP and UDP on one port).

    The port is reserved at construction so torrents can name ``url`` before
    the tracker starts; ``start`` takes the info-hashes it may serve.
    """

    def __init__(self, swarm: "Swarm", port: Optional[int] = None):
        self.swarm = swarm
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/announce"
        self.dir = swarm.dir / f"tracker-{self.port}"
        self.proc: Optional[Proc] = None

    def start(self, info_hashes: Iterable[str], timeout_s: float = 10.0) -> "Tracker":
        """Starts opentracker allowing ``info_hashes`` (hex) and waits until it accepts connections."""
        binary = require_program("opentracker")
        hashes = [h.lower() for h in info_hashes]
        for h in hashes:
            if not re.fullmatch(r"[0-9a-f]{40}", h):
                raise HarnessError(f"not a hex v1 info-hash: {h!r}")
        self.dir.mkdir(parents=True, exist_ok=True)
        # opentracker chroots into the directory and drops root for `nobody`,
        # which must still be able to read the whitelist.
        os.chmod(self.dir, 0o755)
        whitelist = self.dir / "whitelist"
        whitelist.write_text("".join(h + "\n" for h in hashes))
        os.chmod(whitelist, 0o644)
        argv = [binary, "-i", "127.0.0.1", "-p", str(self.port), "-P", str(self.port),
                "-d", str(self.dir), "-w", "whitelist"]
        self.proc = self.swarm.spawn(f"opentracker-{self.port}", argv)

        def up() -> bool:
            self.proc.check_running()
            return port_accepts(self.port)

        wait_until(up, timeout_s, f"opentracker to accept connections on port {self.port}", self.proc.logs)

        # The whitelist is loaded by a thread of its own, possibly after the
        # port opens; a refused first announce would stall a client for a
        # whole retry interval. A `stopped` announce registers no peer.
        def whitelisted() -> bool:
            self.proc.check_running()
            return all("failure reason" not in self.announce(h, port=1, event="stopped") for h in hashes)

        wait_until(whitelisted, timeout_s, "opentracker to load its whitelist", self.proc.logs)
        return self

    def stop(self) -> None:
        """Stops opentracker (it forgets every peer); ``start`` may be called again."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def announce(self, info_hash: str, port: int, left: int = 0, event: str = "",
                 peer_id: bytes = b"-XX0000-harness00000") -> dict:
        """One HTTP announce as a peer on 127.0.0.1:``port``; returns the decoded reply (keys as str)."""
        fields = {"peer_id": peer_id, "port": port, "uploaded": 0, "downloaded": 0, "left": left, "compact": 1}
        if event:
            fields["event"] = event
        query = urllib.parse.urlencode(fields)
        url = f"{self.url}?info_hash={urllib.parse.quote_from_bytes(bytes.fromhex(info_hash))}&{query}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            reply = bdecode(resp.read())
        return {k.decode(): v for k, v in reply.items()}

    def scrape(self, info_hash: str) -> dict:
        """The tracker's counts for ``info_hash``: ``complete``, ``incomplete``, ``downloaded``."""
        raw = bytes.fromhex(info_hash)
        url = f"http://127.0.0.1:{self.port}/scrape?info_hash={urllib.parse.quote_from_bytes(raw)}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            reply = bdecode(resp.read())
        if b"failure reason" in reply:
            raise HarnessError(f"tracker refused scrape: {reply[b'failure reason']!r}")
        entry = reply.get(b"files", {}).get(raw, {})
        return {k.decode(): v for k, v in entry.items()}

    def wait_for_seeders(self, info_hash: str, count: int = 1, timeout_s: float = 30.0,
                         watch: Iterable[Proc] = ()) -> None:
        """Waits until the tracker lists at least ``count`` seeders of ``info_hash``.

        This is how tests know a seeder has announced before a leecher
        starts: a leecher that announces first gets no peers and would not
        ask again for the whole announce interval. ``watch`` processes make
        the wait fail at once if they exit.
        """
        watch = list(watch)

        def ready() -> bool:
            for p in watch:
                p.check_running()
            return self.scrape(info_hash).get("complete", 0) >= count

        wait_until(ready, timeout_s, f"{count} seeder(s) of {info_hash} on the tracker",
                   lambda: "\n".join(p.logs() for p in watch) + f"\nscrape: {self.scrape(info_hash)}")


# --------------------------------------------------------------------------
# libtorrent (in-process)
# --------------------------------------------------------------------------


def lt_settings(port: int, dht_nodes: Optional[Iterable[tuple[str, int]]] = None, tcp: bool = True,
                utp: bool = False) -> dict:
    """libtorrent session settings for a loopback swarm (shared with the benchmark's peer script).

    Listen on 127.0.0.1 only; local peer discovery, UPnP and NAT-PMP off;
    encryption disabled; several connections from one IP allowed (every
    peer is 127.0.0.1). DHT is off unless ``dht_nodes`` is given: then it
    bootstraps from exactly those nodes, with the rules that keep one node
    per IP (and ignore loopback) switched off, since every node here is
    127.0.0.1. uTP is off by default (far slower than TCP over loopback);
    ``tcp=False, utp=True`` makes a uTP-only peer. (``LtSession`` adds
    ``dht_nodes`` with ``add_dht_node``.) Everything else is
    libtorrent's default.
    """
    cat = lt.alert.category_t
    mask = (cat.error_notification | cat.status_notification | cat.storage_notification
            | cat.tracker_notification | cat.connect_notification | cat.peer_notification
            | cat.dht_notification)
    settings = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": utp,
        "enable_incoming_utp": utp,
        "enable_outgoing_tcp": tcp,
        "enable_incoming_tcp": tcp,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.disabled),
        "allow_multiple_connections_per_ip": True,
        "alert_mask": int(mask),
        "user_agent": "btt-interop-harness",
    }
    if dht_nodes is not None:
        # The nodes are added with add_dht_node (LtSession): libtorrent treats bootstrap nodes as
        # routers and never puts them in its routing table, so a local mesh would not form.
        settings.update({
            "enable_dht": True,
            "dht_bootstrap_nodes": "",
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False,
            "dht_prefer_verified_node_ids": False,
        })
    return settings


class LtTorrent:
    """One torrent in an ``LtSession``."""

    def __init__(self, session: "LtSession", handle, name: str):
        self.session = session
        self.handle = handle
        self.name = name

    def status(self):
        """The libtorrent status; raises ``HarnessError`` if the torrent is in error."""
        self.session.pump()
        st = self.handle.status()
        if st.errc.value() != 0:
            raise HarnessError(f"libtorrent torrent {self.name} failed: {st.errc.message()}\n{self.session.logs()}")
        return st

    def connect_peer(self, host: str, port: int) -> None:
        """Dials ``host:port`` directly (needed for Transmission, which never dials loopback)."""
        self.handle.connect_peer((host, port))

    def wait_seeding(self, timeout_s: float = 60.0, watch: Iterable[Proc] = ()) -> None:
        """Waits until every piece is verified, then until libtorrent has flushed it to disk.

        ``watch`` processes (the other side) make the wait fail at once if they exit.
        """
        watch = list(watch)

        def done() -> bool:
            for p in watch:
                p.check_running()
            return self.status().is_seeding

        def diagnostics() -> str:
            st = self.handle.status()
            return (f"libtorrent {self.name}: state {st.state} progress {st.progress:.3f} peers {st.num_peers}\n"
                    + self.session.logs() + "\n" + "\n".join(p.logs() for p in watch))

        wait_until(done, timeout_s, f"libtorrent to have all of {self.name}", diagnostics)
        self.flush(timeout_s=30.0)

    def flush(self, timeout_s: float) -> None:
        """Makes libtorrent write everything it holds for this torrent to the files."""
        self.session.flushed.discard(self.handle)
        self.handle.flush_cache()
        wait_until(lambda: self.session.pump() or self.handle in self.session.flushed,
                   timeout_s, f"libtorrent to flush {self.name}", self.session.logs)


class LtSession:
    """An in-process libtorrent peer with ``lt_settings``."""

    def __init__(self, swarm: "Swarm", name: str = "libtorrent", port: Optional[int] = None,
                 plugins: bool = True, **settings):
        self.swarm = swarm
        self.name = name
        self.port = port or free_port()
        self.log_path = swarm.dir / f"{name}-{self.port}.alerts"
        # Handles whose cache_flushed_alert / torrent_checked_alert has arrived.
        self.flushed: set = set()
        self.checked: set = set()
        self.torrents: list[LtTorrent] = []
        # Without ``plugins`` libtorrent runs no ut_pex/ut_metadata/smart-ban extensions.
        flags = int(lt.session_flags_t.add_default_plugins) if plugins else 0
        self.session = lt.session(lt_settings(self.port, **settings), flags)
        for node in settings.get("dht_nodes") or ():
            self.session.add_dht_node(node)
        self._log = open(self.log_path, "w")
        # A thread drains alerts as they come so the log's times are right
        # even while the test is busy waiting on another program.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump_loop, name=f"{name}-alerts", daemon=True)
        self._thread.start()

    def _pump_loop(self) -> None:
        # Polls rather than blocking in wait_for_alert: the alert that call returns points into
        # storage that a pop_alerts on the test's thread frees, and touching it then crashes the
        # interpreter. Every libtorrent alert call happens under the lock, in pump().
        while not self._stop.wait(0.05):
            self.pump()

    def pump(self) -> None:
        """Drains pending alerts into the log; remembers flushed and checked torrents. Returns None."""
        with self._lock:
            if self._log.closed:
                return
            for alert in self.session.pop_alerts():
                if isinstance(alert, lt.cache_flushed_alert):
                    self.flushed.add(alert.handle)
                elif isinstance(alert, lt.torrent_checked_alert):
                    self.checked.add(alert.handle)
                self._log.write(f"{time.monotonic():.3f} {type(alert).__name__}: {alert.message()}\n")
            self._log.flush()

    def logs(self) -> str:
        self.pump()
        return f"--- {self.name} alerts tail:\n{_tail(self.log_path)}"

    def add(self, torrent: Path, save_path: Path) -> LtTorrent:
        """Adds ``torrent`` saving under ``save_path`` (existing data there is checked first)."""
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(str(torrent))
        atp.save_path = str(save_path)
        atp.flags &= ~lt.torrent_flags.auto_managed
        atp.flags &= ~lt.torrent_flags.paused
        handle = self.session.add_torrent(atp)
        t = LtTorrent(self, handle, Path(torrent).name)
        self.torrents.append(t)
        return t

    def add_magnet(self, uri: str, save_path: Path) -> LtTorrent:
        """Adds a magnet link; libtorrent fetches the metadata (and v2 piece layers) from peers."""
        atp = lt.parse_magnet_uri(uri)
        atp.save_path = str(save_path)
        atp.flags &= ~lt.torrent_flags.auto_managed
        atp.flags &= ~lt.torrent_flags.paused
        handle = self.session.add_torrent(atp)
        t = LtTorrent(self, handle, uri[:60])
        self.torrents.append(t)
        return t

    def seed(self, torrent: Path, save_path: Path, timeout_s: float = 60.0) -> LtTorrent:
        """Adds ``torrent`` over complete data and waits until the check says it is seeding."""
        t = self.add(torrent, save_path)

        def seeding() -> bool:
            st = t.status()
            if st.is_seeding:
                return True
            if t.handle in self.checked and not t.handle.status().is_seeding:
                raise HarnessError(f"libtorrent found only {st.progress:.3f} of {t.name} in {save_path}; "
                                   "the seed data does not match the torrent")
            return False

        wait_until(seeding, timeout_s, f"libtorrent to check and seed {t.name}", self.logs)
        return t

    def close(self) -> None:
        """Removes the torrents and drops the session."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.pump()
            for t in self.torrents:
                self.session.remove_torrent(t.handle)
            self.pump()
        finally:
            with self._lock:
                self._log.close()
            # Dropping the last reference shuts the session down (and blocks until it has).
            self.session = None
            self.torrents = []


# --------------------------------------------------------------------------
# aria2
# --------------------------------------------------------------------------

_ARIA2_COMMON = [
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--bt-require-crypto=false",
    "--bt-external-ip=127.0.0.1",
    "--file-allocation=none",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--auto-save-interval=0",
    "--bt-save-metadata=false",
    "--check-certificate=false",
    "--log-level=info",
]


class Aria2:
    """aria2c as a seeder or as a downloader."""

    def __init__(self, swarm: "Swarm"):
        self.swarm = swarm
        self.binary = require_program("aria2c")

    def _argv(self, name: str, torrent: Path, save_path: Path, port: int) -> list[str]:
        return [self.binary, *_ARIA2_COMMON, f"--listen-port={port}", f"--dht-listen-port={port}",
                f"--log={self.swarm.dir / (name + '.log')}", "-d", str(save_path), str(torrent)]

    def seed(self, torrent: Path, save_path: Path, port: Optional[int] = None,
             seed_minutes: float = 60) -> Proc:
        """Checks the data under ``save_path`` (-V) and seeds it until stopped.

        Returns once the process runs; use ``Tracker.wait_for_seeders`` to
        know when it has announced itself as a seeder.
        """
        port = port or free_port()
        name = f"aria2-seed-{port}"
        argv = self._argv(name, torrent, save_path, port)
        argv[1:1] = ["-V", "--seed-ratio=0.0", f"--seed-time={seed_minutes}", "--allow-overwrite=false"]
        proc = self.swarm.spawn(name, argv)
        proc.port = port
        return proc

    def download_argv(self, torrent: Path, save_path: Path, port: int, log_name: str) -> list[str]:
        """The aria2c command line of a download that exits 0 once complete (for the benchmark too)."""
        argv = self._argv(log_name, torrent, save_path, port)
        argv[1:1] = ["--seed-time=0", "--bt-stop-timeout=180"]
        return argv

    def download(self, torrent: Path, save_path: Path, port: Optional[int] = None) -> Proc:
        """Starts a download into ``save_path``; the process exits 0 once it is complete."""
        port = port or free_port()
        name = f"aria2-get-{port}"
        save_path.mkdir(parents=True, exist_ok=True)
        proc = self.swarm.spawn(name, self.download_argv(torrent, save_path, port, name))
        proc.port = port
        return proc


# --------------------------------------------------------------------------
# Transmission
# --------------------------------------------------------------------------

# Transmission's torrent status codes (RPC `status`).
TR_STOPPED, TR_CHECK_WAIT, TR_CHECK, TR_DOWNLOAD_WAIT, TR_DOWNLOAD, TR_SEED_WAIT, TR_SEED = range(7)


class Transmission:
    """A fresh transmission-daemon (own config dir, RPC port and peer port) in the foreground.

    Transmission never dials peers in 127.0.0.0/8, so the other side must
    connect to ``peer_port``. It also refuses a second leecher from an IP
    whose first one finished, hence one daemon per test.
    """

    def __init__(self, swarm: "Swarm", timeout_s: float = 20.0):
        self.swarm = swarm
        binary = require_program("transmission-daemon")
        require_program("transmission-remote")
        self.rpc_port = free_port()
        self.peer_port = free_port()
        self.config_dir = swarm.dir / f"transmission-{self.rpc_port}"
        self.download_dir = self.config_dir / "downloads"
        self.download_dir.mkdir(parents=True)
        settings = {
            "bind-address-ipv4": "127.0.0.1",
            "bind-address-ipv6": "::1",
            "blocklist-enabled": False,
            "dht-enabled": False,
            "download-dir": str(self.download_dir),
            "encryption": 0,
            "idle-seeding-limit-enabled": False,
            "incomplete-dir-enabled": False,
            "lpd-enabled": False,
            "message-level": 2,
            "peer-port": self.peer_port,
            "peer-port-random-on-start": False,
            "pex-enabled": False,
            "port-forwarding-enabled": False,
            "ratio-limit-enabled": False,
            "rpc-authentication-required": False,
            "rpc-bind-address": "127.0.0.1",
            "rpc-enabled": True,
            "rpc-port": self.rpc_port,
            "rpc-whitelist-enabled": False,
            "rpc-host-whitelist-enabled": False,
            "speed-limit-down-enabled": False,
            "speed-limit-up-enabled": False,
            "alt-speed-enabled": False,
            "start-added-torrents": True,
            "utp-enabled": False,
            "watch-dir-enabled": False,
        }
        (self.config_dir / "settings.json").write_text(json.dumps(settings, indent=1))
        argv = [binary, "-f", "-g", str(self.config_dir), "-p", str(self.rpc_port), "-P", str(self.peer_port),
                "-T", "-w", str(self.download_dir), "-O", "-Y", "-M", "--no-utp", "-et", "--log-info"]
        self.proc = swarm.spawn(f"transmission-{self.rpc_port}", argv)
        self.url = f"http://127.0.0.1:{self.rpc_port}/transmission/rpc"
        self.session_id = ""

        def rpc_up() -> bool:
            self.proc.check_running()
            try:
                self.rpc("session-get", {"fields": ["version"]})
                return port_accepts(self.peer_port)
            except (OSError, urllib.error.URLError):
                return False

        wait_until(rpc_up, timeout_s, f"transmission-daemon RPC on port {self.rpc_port} and peers on {self.peer_port}",
                   self.proc.logs)

    def rpc(self, method: str, arguments: Optional[dict] = None) -> dict:
        """Calls the JSON RPC, doing the 409 session-id handshake when asked to."""
        body = json.dumps({"method": method, "arguments": arguments or {}}).encode()
        for _ in range(3):
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"X-Transmission-Session-Id": self.session_id,
                                                  "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    reply = json.loads(resp.read())
            except urllib.error.HTTPError as e:
                if e.code == 409:
                    self.session_id = e.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise
            if reply.get("result") != "success":
                raise HarnessError(f"transmission RPC {method} failed: {reply.get('result')}")
            return reply.get("arguments", {})
        raise HarnessError("transmission RPC kept answering 409 (session id handshake failed)")

    def remote(self, *args: str) -> str:
        """Runs ``transmission-remote 127.0.0.1:RPC_PORT args…`` and returns its stdout."""
        out = subprocess.run(["transmission-remote", f"127.0.0.1:{self.rpc_port}", *args],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise HarnessError(f"transmission-remote {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def add(self, torrent: Path, download_dir: Optional[Path] = None) -> int:
        """Adds ``torrent`` (data under ``download_dir``, default the daemon's); returns its RPC id."""
        args = {"metainfo": base64.b64encode(Path(torrent).read_bytes()).decode(), "paused": False,
                "download-dir": str(download_dir or self.download_dir)}
        reply = self.rpc("torrent-add", args)
        added = reply.get("torrent-added") or reply.get("torrent-duplicate")
        if not added:
            raise HarnessError(f"transmission did not add {torrent}: {reply}")
        return int(added["id"])

    def announced(self, torrent_id: int) -> bool:
        """True once Transmission has had a successful reply from a tracker for ``torrent_id``."""
        stats = self.rpc("torrent-get", {"ids": [torrent_id], "fields": ["trackerStats"]})["torrents"][0]
        return any(t.get("hasAnnounced") and t.get("lastAnnounceSucceeded") for t in stats["trackerStats"])

    def wait_ready(self, torrent_id: int, status: int, timeout_s: float = 30.0) -> None:
        """Waits until ``torrent_id`` has ``status`` and its first announce has succeeded.

        Transmission drops peers that connect to a torrent before its first
        tracker reply (seen with 3.00: the connection is closed at once and
        the dialler only retries a minute later), so a peer must not dial it
        before this returns.
        """

        def ready() -> bool:
            self.proc.check_running()
            t = self.get(torrent_id)
            if status == TR_SEED and t["status"] in (TR_DOWNLOAD, TR_DOWNLOAD_WAIT) and t["percentDone"] < 1:
                raise HarnessError(f"transmission found only {t['percentDone']:.3f} of torrent {torrent_id}; "
                                   "the seed data does not match the torrent")
            return t["status"] == status and self.announced(torrent_id)

        wait_until(ready, timeout_s, f"transmission torrent {torrent_id} to reach status {status} and announce",
                   lambda: f"{self.get(torrent_id)}\n{self.proc.logs()}")

    def leech(self, torrent: Path, timeout_s: float = 30.0) -> int:
        """Adds ``torrent`` to download into the daemon's dir; returns once peers may dial it."""
        tid = self.add(torrent)
        self.wait_ready(tid, TR_DOWNLOAD, timeout_s)
        return tid

    def get(self, torrent_id: int) -> dict:
        """The RPC fields the harness uses for one torrent."""
        fields = ["id", "hashString", "status", "percentDone", "leftUntilDone", "error", "errorString",
                  "peersConnected", "haveValid", "totalSize"]
        torrents = self.rpc("torrent-get", {"ids": [torrent_id], "fields": fields})["torrents"]
        if not torrents:
            raise HarnessError(f"transmission has no torrent {torrent_id}")
        t = torrents[0]
        if t["error"]:
            raise HarnessError(f"transmission torrent error {t['error']}: {t['errorString']}\n{self.proc.logs()}")
        return t

    def seed(self, torrent: Path, download_dir: Path, timeout_s: float = 60.0) -> int:
        """Adds ``torrent`` over complete data under ``download_dir``; returns once it seeds and peers may dial it."""
        tid = self.add(torrent, download_dir)
        self.rpc("torrent-verify", {"ids": [tid]})
        self.wait_ready(tid, TR_SEED, timeout_s)
        return tid

    def wait_complete(self, torrent_id: int, timeout_s: float = 120.0, watch: Iterable[Proc] = ()) -> None:
        """Waits until Transmission has verified every piece of ``torrent_id``."""
        watch = list(watch)

        def done() -> bool:
            self.proc.check_running()
            for p in watch:
                p.check_running()
            t = self.get(torrent_id)
            return t["leftUntilDone"] == 0 and t["percentDone"] == 1

        wait_until(done, timeout_s, f"transmission to complete torrent {torrent_id}",
                   lambda: f"{self.get(torrent_id)}\n{self.proc.logs()}\n" + "\n".join(p.logs() for p in watch))


# --------------------------------------------------------------------------
# btt
# --------------------------------------------------------------------------


def btt_binary() -> Path:
    """``$BTT_BIN``, else ``<repo>/target/debug/btt``; raises ``ProgramMissing`` if absent."""
    path = Path(os.environ.get("BTT_BIN") or REPO / "target" / "debug" / "btt")
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ProgramMissing(
            f"btt binary not found at {path}: build it with `cargo build -p btt` "
            "or point BTT_BIN at one"
        )
    return path


def equivocator_binary() -> Path:
    """The ``btt-equivocator`` test node next to the btt binary (built with the workspace)."""
    path = btt_binary().parent / "btt-equivocator"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ProgramMissing(
            f"btt-equivocator not found at {path}: build it with `cargo build -p chain-node`"
        )
    return path


@dataclass
class BttResult:
    """A finished btt command."""

    returncode: int
    stdout: str
    stderr: str

    def json(self):
        """The JSON object btt printed on stdout (the last non-empty line)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"btt printed nothing on stdout; stderr:\n{self.stderr}")
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            return json.loads(self.stdout)


class Btt:
    """Runs the btt binary with a clean environment and a data dir inside the test's tmp dir.

    Every ``BTT_*`` variable of the caller's environment is dropped (they
    are the flags' env twins and would change behaviour), then
    ``BTT_DATA_DIR`` is set per process.
    """

    def __init__(self, swarm: "Swarm"):
        self.swarm = swarm
        self.binary = btt_binary()
        self._count = 0

    def env(self, name: str, discovery: bool = False) -> dict:
        """A clean environment for one btt process.

        Local service discovery is always off (it multicasts on every
        interface), and the DHT is off unless ``discovery`` is set (callers
        then pass ``--dht-bootstrap`` with 127.0.0.1 nodes), so a test never
        sends to the public DHT routers or to a multicast group: everything
        stays on 127.0.0.1.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("BTT_")}
        env["BTT_NO_LSD"] = "1"
        if not discovery:
            env["BTT_NO_DHT"] = "1"
        data_dir = self.swarm.dir / f"btt-data-{name}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env["BTT_DATA_DIR"] = str(data_dir)
        env.setdefault("RUST_BACKTRACE", "1")
        return env

    def _name(self, what: str) -> str:
        self._count += 1
        return f"btt-{what}-{self._count}"

    def run(self, *args, timeout_s: float = 60.0) -> BttResult:
        """Runs ``btt args…`` to completion and returns its status and output."""
        name = self._name(str(args[0]) if args else "run")
        argv = [str(self.binary), *map(str, args)]
        out = subprocess.run(argv, capture_output=True, timeout=timeout_s, env=self.env(name),
                             stdin=subprocess.DEVNULL)
        result = BttResult(out.returncode, out.stdout.decode("utf-8", "replace"),
                           out.stderr.decode("utf-8", "replace"))
        log = self.swarm.dir / f"{name}.log"
        log.write_text(f"$ {' '.join(argv)}\nexit {result.returncode}\n--- stdout\n{result.stdout}\n"
                       f"--- stderr\n{result.stderr}")
        self.swarm.log_files.append(log)
        return result

    def start(self, *args, discovery: bool = False) -> Proc:
        """Starts ``btt args…`` in the background (see ``env`` for ``discovery``)."""
        name = self._name(str(args[0]) if args else "proc")
        return self.swarm.spawn(name, [str(self.binary), *map(str, args)], env=self.env(name, discovery))

    def create(self, content: Path, out: Path, trackers: Iterable[str] = (), piece_size: Optional[int] = None,
               private: bool = False, extra: Iterable[str] = ()) -> Path:
        """``btt create``; fails the test if it exits non-zero."""
        args: list = ["create", content, "-o", out]
        for url in trackers:
            args += ["--tracker", url]
        if piece_size:
            args += ["--piece-size", piece_size]
        if private:
            args.append("--private")
        args += list(extra)
        res = self.run(*args)
        if res.returncode != 0:
            raise AssertionError(f"btt create exited {res.returncode}: {res.stderr}")
        return Path(out)

    def info_json(self, torrent: Path) -> dict:
        """``btt info --json`` parsed; fails the test if it exits non-zero."""
        res = self.run("info", torrent, "--json")
        if res.returncode != 0:
            raise AssertionError(f"btt info exited {res.returncode}: {res.stderr}")
        return res.json()

    def download(self, torrent, out: Path, listen_port: Optional[int] = None,
                 peers: Iterable[tuple[str, int]] = (), seed: bool = False, json_out: bool = True,
                 dht_bootstrap: Iterable[tuple[str, int]] = (), extra: Iterable[str] = ()) -> Proc:
        """Starts ``btt download`` of a .torrent path or a magnet link; it exits 0 once every piece
        is verified on disk. ``dht_bootstrap`` turns the DHT on with exactly those nodes."""
        out.mkdir(parents=True, exist_ok=True)
        args: list = ["download", torrent, "-o", out, "--listen-port", listen_port or free_port()]
        for host, port in peers:
            args += ["--peer", f"{host}:{port}"]
        dht_bootstrap = list(dht_bootstrap)
        for host, port in dht_bootstrap:
            args += ["--dht-bootstrap", f"{host}:{port}"]
        if seed:
            args.append("--seed")
        if json_out:
            args.append("--json")
        args += list(extra)
        return self.start(*args, discovery=bool(dht_bootstrap))

    def seed(self, torrent: Path, data: Path, listen_port: Optional[int] = None,
             peers: Iterable[tuple[str, int]] = (), timeout_s: float = 60.0,
             extra: Iterable[str] = (), discovery: bool = False) -> Proc:
        """Starts ``btt seed`` and waits for the ``seeding`` line on stderr (``discovery`` leaves
        the DHT and LSD on; pass ``--dht-bootstrap`` in ``extra`` to keep it on 127.0.0.1)."""
        port = listen_port or free_port()
        args: list = ["seed", torrent, data, "--listen-port", port]
        for host, p in peers:
            args += ["--peer", f"{host}:{p}"]
        args += list(extra)
        proc = self.start(*args, discovery=discovery)
        proc.port = port

        def seeding() -> bool:
            proc.check_running()
            return "seeding" in proc.stderr()

        wait_until(seeding, timeout_s, "btt seed to print `seeding` on stderr", proc.logs)
        return proc


# --------------------------------------------------------------------------
# A plain HTTP server (web seeds)
# --------------------------------------------------------------------------


class HttpServer:
    """``python3 -m http.server`` serving a directory on 127.0.0.1 (no Range support: it answers
    every request with the whole file, which web-seed clients must cope with)."""

    def __init__(self, swarm: "Swarm", directory: Path, timeout_s: float = 10.0):
        self.port = free_port()
        self.proc = swarm.spawn("http-server", ["/usr/bin/python3", "-m", "http.server", str(self.port),
                                                "--bind", "127.0.0.1", "--directory", str(directory)])
        self.url = f"http://127.0.0.1:{self.port}/"

        def up() -> bool:
            self.proc.check_running()
            return port_accepts(self.port)

        wait_until(up, timeout_s, "the HTTP server to accept connections", self.proc.logs)

    def requests(self) -> list[str]:
        """Request lines the server logged (``GET /path HTTP/1.1``)."""
        return re.findall(r'"(GET [^"]*)"', self.proc.stderr())


# --------------------------------------------------------------------------
# Swarm: one test's processes, sessions and files
# --------------------------------------------------------------------------


class Swarm:
    """Owns a test's tmp dir, processes and libtorrent sessions; ``close`` stops them all."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.sessions: list[LtSession] = []
        self.log_files: list[Path] = []
        self._btt: Optional[Btt] = None

    def spawn(self, name: str, argv: list, env: Optional[dict] = None) -> Proc:
        """Starts ``argv`` with its output in ``<name>.stdout``/``.stderr`` (names made unique)."""
        taken = {p.name for p in self.procs}
        unique, n = name, 1
        while unique in taken:
            n += 1
            unique = f"{name}-{n}"
        proc = Proc(unique, argv, self.dir, env=env)
        self.procs.append(proc)
        return proc

    def tracker(self, port: Optional[int] = None) -> Tracker:
        return Tracker(self, port)

    def libtorrent(self, name: str = "libtorrent", plugins: bool = True, **settings) -> LtSession:
        """A libtorrent session; ``settings`` go to ``lt_settings`` (dht_nodes, tcp, utp)."""
        session = LtSession(self, name=name, plugins=plugins, **settings)
        self.sessions.append(session)
        return session

    def aria2(self) -> Aria2:
        return Aria2(self)

    def http_server(self, directory: Path) -> HttpServer:
        return HttpServer(self, directory)

    def transmission(self) -> Transmission:
        return Transmission(self)

    @property
    def btt(self) -> Btt:
        if self._btt is None:
            self._btt = Btt(self)
        return self._btt

    def logs(self) -> str:
        """Tails of every log in the swarm, for a failed test's report."""
        parts = [p.logs() for p in self.procs]
        parts += [s.logs() for s in self.sessions if s.session is not None]
        parts += [f"--- {f.name}:\n{_tail(f)}" for f in self.log_files]
        for extra in sorted(self.dir.glob("*.log")):
            if extra not in self.log_files:
                parts.append(f"--- {extra.name} tail:\n{_tail(extra, 2000)}")
        return "\n".join(parts)

    def close(self) -> None:
        """Stops every process (newest first) and libtorrent session."""
        errors = []
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as e:  # keep stopping the others
                errors.append(f"{proc.name}: {e}")
        for session in self.sessions:
            try:
                session.close()
            except Exception as e:
                errors.append(f"{session.name}: {e}")
        if errors:
            raise HarnessError("teardown failed: " + "; ".join(errors))
