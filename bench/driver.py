"""Loopback download benchmark: btt against libtorrent and aria2 on one machine.

Run through ``bench/run.sh`` (which builds btt in release mode first), or
directly with Debian's python::

    /usr/bin/python3 bench/driver.py

One seeder and one leecher exchange a single-file torrent over 127.0.0.1,
found through a local opentracker. Each row is a seeder → leecher pair and a
variant: a v1 torrent over TCP (the main rows), the same data as a v2-only
or hybrid torrent over TCP, or the v1 torrent over uTP only. Each cell is
the median of ``BENCH_RUNS`` runs. The
leecher is a separate process run under GNU time, timed from its start to
its exit on completion; CPU seconds (user + system) and peak RSS are the
leecher's. Before every run the tracker and seeder are fresh, the output
directory is empty and (when allowed) the page cache is dropped; the
seeder's check then reads the source back into the cache, so every run
starts the same way: source hot, destination empty. Every download is
checked against the source's SHA-256 after the timer stops.

The machine's own limits are measured too (SHA-1 on one core, loopback TCP,
disk write), since a BitTorrent transfer on one machine cannot beat them.

Environment:
    BENCH_SIZE_MB      torrent size in MiB (default 1024)
    BENCH_PIECE_KB     piece size in KiB (default 1024)
    BENCH_RUNS         runs per row; cells are medians (default 3)
    BENCH_ROWS         comma-separated subset of rows, e.g. "libtorrent-libtorrent,libtorrent-btt-v2"
                       (seeder-leecher, then -v2, -hybrid or -utp for those variants)
    BENCH_DIR          where the data goes (default: a new dir under /var/tmp, removed afterwards)
    BENCH_DROP_CACHES  1 to drop the page cache before each run (default 1; needs root)
    BTT_BIN            the btt binary (default <repo>/target/release/btt); rows with btt are
                       skipped, with a note, when it does not exist
    BENCH_BTT_NOTE     a note from run.sh about why btt is missing

Output: a markdown table on stdout, also written to bench/out/ with the
raw runs as JSON.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests" / "interop"))

import peers  # noqa: E402  (after the path tweak)

PY = "/usr/bin/python3"
TIME = "/usr/bin/time"
MB = 1_000_000  # throughput is in decimal megabytes per second

# (seeder, leecher, variant): "v1" is the v1 torrent over TCP; "v2" and "hybrid" the same data
# as BEP 52 torrents over TCP; "utp" the v1 torrent over uTP only.
ALL_ROWS = [
    ("libtorrent", "libtorrent", "v1"),
    ("libtorrent", "btt", "v1"),
    ("btt", "btt", "v1"),
    ("btt", "libtorrent", "v1"),
    ("libtorrent", "aria2", "v1"),
    ("libtorrent", "libtorrent", "v2"),
    ("libtorrent", "btt", "v2"),
    ("btt", "btt", "v2"),
    ("libtorrent", "libtorrent", "hybrid"),
    ("libtorrent", "btt", "hybrid"),
    ("libtorrent", "libtorrent", "utp"),
    ("libtorrent", "btt", "utp"),
    ("btt", "btt", "utp"),
]
REFERENCE = ("libtorrent", "libtorrent", "v1")


def row_key(seeder: str, leecher: str, variant: str) -> str:
    return f"{seeder}-{leecher}" + ("" if variant == "v1" else f"-{variant}")


class BenchError(Exception):
    """One run failed; the row reports it instead of a number."""


@dataclass
class Config:
    size_mib: int
    piece_kib: int
    runs: int
    rows: list
    base_dir: Path
    own_base_dir: bool
    drop_caches: bool
    btt_bin: Optional[Path]
    btt_note: str

    @classmethod
    def from_env(cls) -> "Config":
        size = int(os.environ.get("BENCH_SIZE_MB", "1024"))
        piece = int(os.environ.get("BENCH_PIECE_KB", "1024"))
        runs = int(os.environ.get("BENCH_RUNS", "3"))
        if size <= 0 or piece <= 0 or piece & (piece - 1) or runs <= 0:
            raise SystemExit("bench: BENCH_SIZE_MB and BENCH_RUNS must be positive, BENCH_PIECE_KB a power of two")
        rows = ALL_ROWS
        if os.environ.get("BENCH_ROWS"):
            wanted = [r.strip() for r in os.environ["BENCH_ROWS"].split(",") if r.strip()]
            keys = {row_key(*r): r for r in ALL_ROWS}
            unknown = [w for w in wanted if w not in keys]
            if unknown:
                raise SystemExit(f"bench: unknown rows {unknown} in BENCH_ROWS; choose from {', '.join(keys)}")
            rows = [r for r in ALL_ROWS if row_key(*r) in wanted]
        if os.environ.get("BENCH_DIR"):
            base, own = Path(os.environ["BENCH_DIR"]), False
            base.mkdir(parents=True, exist_ok=True)
        else:
            # /var/tmp rather than /tmp: /tmp is often a tmpfs, and this must be a disk.
            base, own = Path(tempfile.mkdtemp(prefix="btt-bench-", dir="/var/tmp")), True
        btt_bin = Path(os.environ.get("BTT_BIN") or REPO / "target" / "release" / "btt")
        note = os.environ.get("BENCH_BTT_NOTE", "")
        if note and not os.environ.get("BTT_BIN"):
            # run.sh could not build btt: an older binary would measure the wrong code.
            btt_bin = None
        elif not (btt_bin.is_file() and os.access(btt_bin, os.X_OK)):
            note = note or f"no btt binary at {btt_bin} (build it with `cargo build --release -p btt` or set BTT_BIN)"
            btt_bin = None
        return cls(size, piece, runs, rows, base, own, os.environ.get("BENCH_DROP_CACHES", "1") == "1",
                   btt_bin, note)


@dataclass
class Run:
    seconds: float
    cpu_s: float
    rss_kib: int


@dataclass
class Row:
    seeder: str
    leecher: str
    variant: str = "v1"
    runs: list = field(default_factory=list)
    skipped: str = ""
    failed: str = ""

    @property
    def name(self) -> str:
        suffix = {"v1": "", "v2": " (v2)", "hybrid": " (hybrid)", "utp": " (uTP)"}[self.variant]
        return f"{self.seeder} → {self.leecher}{suffix}"

    def median(self, attr: str) -> Optional[float]:
        values = [getattr(r, attr) for r in self.runs]
        return statistics.median(values) if values else None


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Machine limits
# --------------------------------------------------------------------------


def sha1_per_core() -> tuple[float, str]:
    """SHA-1 bytes/s on one core, from `openssl speed` (python hashlib if openssl is missing)."""
    if shutil.which("openssl"):
        out = subprocess.run(["openssl", "speed", "-bytes", "1048576", "-seconds", "3", "sha1"],
                             capture_output=True, text=True, timeout=120)
        match = re.search(r"^sha1\s+([\d.]+)k\s*$", out.stdout, re.MULTILINE)
        if out.returncode == 0 and match:
            return float(match.group(1)) * 1000, "openssl speed -bytes 1048576 sha1"
    block = os.urandom(1 << 20)
    h = hashlib.sha1()
    start = time.perf_counter()
    for _ in range(512):
        h.update(block)
    return 512 * len(block) / (time.perf_counter() - start), "python hashlib, 1 MiB blocks"


def loopback_tcp(total: int) -> tuple[float, str]:
    """One-stream TCP bytes/s over 127.0.0.1 (iperf3 when installed, else python sockets)."""
    if shutil.which("iperf3"):
        port = peers.free_port()
        server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            peers.wait_until(lambda: peers.port_accepts(port), 10, "iperf3 server")
            out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(total), "-J"],
                                 capture_output=True, text=True, timeout=300)
            bps = json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]
            return bps / 8, f"iperf3, one stream, {total >> 20} MiB"
        finally:
            server.kill()
            server.wait()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    chunk = 1 << 20

    def send() -> None:
        with socket.create_connection(listener.getsockname()) as s:
            block = b"\0" * chunk
            left = total
            while left > 0:
                s.sendall(block[: min(chunk, left)])
                left -= chunk

    sender = threading.Thread(target=send)
    sender.start()
    conn, _ = listener.accept()
    buf = bytearray(chunk)
    got = 0
    start = time.perf_counter()
    with conn:
        while got < total:
            n = conn.recv_into(buf)
            if n == 0:
                break
            got += n
    elapsed = time.perf_counter() - start
    sender.join()
    listener.close()
    return got / elapsed, f"python sockets, one stream, {total >> 20} MiB"


def disk_write(directory: Path, mib: int) -> tuple[float, str]:
    """Sequential write bytes/s including fdatasync, from dd."""
    target = directory / "dd.bin"
    try:
        out = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}", "conv=fdatasync"],
                             capture_output=True, text=True, timeout=600)
        match = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", out.stderr)
        if out.returncode != 0 or not match:
            raise BenchError(f"dd failed: {out.stderr.strip()}")
        return int(match.group(1)) / float(match.group(2)), f"dd bs=1M count={mib} conv=fdatasync"
    finally:
        target.unlink(missing_ok=True)


# --------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------


class Bench:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.size = cfg.size_mib << 20
        self.timeout_s = max(180.0, cfg.size_mib / 5)  # at worst 5 MiB/s
        self.cache_note = ""
        self.filesystem = _fs_of(cfg.base_dir)
        if cfg.btt_bin is not None:
            # peers.Btt finds the binary through this variable.
            os.environ["BTT_BIN"] = str(cfg.btt_bin)

    def prepare(self) -> None:
        for program in ("opentracker", "aria2c"):
            peers.require_program(program)
        if not Path(TIME).exists():
            raise SystemExit(f"bench: {TIME} (GNU time) is missing; install the `time` package")
        self.src_dir = self.cfg.base_dir / "src"
        self.src_dir.mkdir(exist_ok=True)
        self.content = self.src_dir / f"bench-{self.cfg.size_mib}MiB.bin"
        log(f"writing {self.cfg.size_mib} MiB of test data to {self.content}")
        peers.write_random_file(self.content, self.size, seed=1)
        self.digest = peers.content_digest(self.content)[self.content.name]
        self.tracker_port = peers.free_port()
        # One torrent per version, all made by libtorrent over the same file. The tracker knows
        # each by the hash peers announce: v1 (also for the hybrid) or the truncated v2 hash.
        self.torrents: dict[str, tuple[Path, str]] = {}
        for version in sorted({r[2] for r in self.cfg.rows} | {"v1"}):
            kind = "v1" if version == "utp" else version
            torrent = self.cfg.base_dir / f"bench-{kind}.torrent"
            if not torrent.exists():
                peers.create_torrent_lt(self.content, torrent, self.cfg.piece_kib * 1024,
                                        [f"http://127.0.0.1:{self.tracker_port}/announce"], version=kind)
            hashes = peers.lt_info_hashes(torrent)
            self.torrents[version] = (torrent, hashes["v1"] or hashes["v2"][:40])

    def drop_caches(self) -> None:
        if not self.cfg.drop_caches:
            self.cache_note = "page cache not dropped (BENCH_DROP_CACHES=0)"
            return
        try:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            self.cache_note = "page cache dropped before each run"
        except OSError as e:
            self.cache_note = f"page cache not dropped ({e.strerror}; needs root)"

    def start_seeder(self, swarm: peers.Swarm, kind: str, variant: str) -> peers.Proc:
        port = peers.free_port()
        torrent = self.torrents[variant][0]
        if kind == "libtorrent":
            utp = ["--utp"] if variant == "utp" else []
            proc = swarm.spawn("seed-libtorrent", [PY, BENCH / "lt_peer.py", "seed", torrent, self.src_dir,
                                                   "--port", port, *utp])
        elif kind == "btt":
            # TCP rows measure TCP: btt would otherwise try uTP first.
            extra = [] if variant == "utp" else ["--no-utp"]
            proc = swarm.btt.seed(torrent, self.src_dir, listen_port=port, timeout_s=self.timeout_s,
                                  extra=extra)
        else:
            raise ValueError(kind)
        return proc

    def leecher_argv(self, swarm: peers.Swarm, kind: str, variant: str, out: Path) -> tuple[list, Optional[dict]]:
        port = peers.free_port()
        torrent = self.torrents[variant][0]
        if kind == "libtorrent":
            utp = ["--utp"] if variant == "utp" else []
            return [PY, BENCH / "lt_peer.py", "download", torrent, out, "--port", port,
                    "--timeout", self.timeout_s, *utp], None
        if kind == "btt":
            extra = [] if variant == "utp" else ["--no-utp"]
            return [swarm.btt.binary, "download", torrent, "-o", out, "--listen-port", port,
                    "--json", *extra], swarm.btt.env("leech")
        if kind == "aria2":
            argv = swarm.aria2().download_argv(torrent, out, port, "leech-aria2")
            # Per-message info logging would cost aria2 CPU the others do not spend.
            return [a if not a.startswith("--log-level=") else "--log-level=warn" for a in argv], None
        raise ValueError(kind)

    def run_once(self, row: Row, index: int) -> Run:
        run_dir = self.cfg.base_dir / "runs" / f"{row_key(row.seeder, row.leecher, row.variant)}-{index}"
        swarm = peers.Swarm(run_dir)
        ok = False
        info_hash = self.torrents[row.variant][1]
        try:
            self.drop_caches()
            tracker = swarm.tracker(port=self.tracker_port).start([info_hash])
            seeder = self.start_seeder(swarm, row.seeder, row.variant)
            tracker.wait_for_seeders(info_hash, timeout_s=self.timeout_s, watch=[seeder])

            out = run_dir / "out"
            out.mkdir()
            argv, env = self.leecher_argv(swarm, row.leecher, row.variant, out)
            time_file = run_dir / "leecher.time"
            timed = [TIME, "-f", "%e %U %S %M", "-o", time_file, *argv]
            start = time.monotonic()
            leecher = swarm.spawn(f"leech-{row.leecher}", timed, env=env)
            rc = leecher.wait_exit(self.timeout_s, watch=[seeder])
            seconds = time.monotonic() - start
            if rc != 0:
                raise BenchError(f"{row.leecher} exited {rc}\n{leecher.logs()}")
            last = time_file.read_text().strip().splitlines()[-1]
            _elapsed, user, system, rss = last.split()
            got = peers.content_digest(out / self.content.name).get(self.content.name)
            if got != self.digest:
                raise BenchError(f"{row.leecher} finished but its file differs from the source")
            ok = True
            return Run(seconds=seconds, cpu_s=float(user) + float(system), rss_kib=int(rss))
        except peers.HarnessError as e:
            raise BenchError(str(e)) from None
        finally:
            try:
                swarm.close()
            finally:
                if ok:
                    shutil.rmtree(run_dir, ignore_errors=True)
                else:
                    log(f"logs of the failed run kept in {run_dir}")

    def run(self) -> list[Row]:
        rows = [Row(s, l, v) for s, l, v in self.cfg.rows]
        for row in rows:
            if self.cfg.btt_bin is None and "btt" in (row.seeder, row.leecher):
                row.skipped = self.cfg.btt_note
        # Rounds rather than row after row, so slow drift of the machine spreads over every row.
        for index in range(self.cfg.runs):
            for row in rows:
                if row.skipped or row.failed:
                    continue
                log(f"run {index + 1}/{self.cfg.runs}: {row.name}")
                try:
                    r = self.run_once(row, index)
                except BenchError as e:
                    row.failed = str(e).splitlines()[0]
                    log(f"{row.name} failed: {e}")
                    continue
                row.runs.append(r)
                log(f"  {r.seconds:.2f} s, {self.size / r.seconds / MB:.1f} MB/s, "
                    f"cpu {r.cpu_s:.2f} s, rss {r.rss_kib / 1024:.0f} MiB")
        return rows


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _versions(btt_bin: Optional[Path]) -> list[str]:
    out = [f"libtorrent {peers.lt.__version__} (python3-libtorrent)"]
    aria = subprocess.run(["aria2c", "--version"], capture_output=True, text=True).stdout.splitlines()
    out.append(aria[0] if aria else "aria2 (unknown version)")
    if btt_bin is not None:
        v = subprocess.run([str(btt_bin), "--version"], capture_output=True, text=True)
        out.append((v.stdout.strip() or "btt") + f" ({btt_bin})")
    return out


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{model}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, Linux {platform.release()}"


def _fs_of(path: Path) -> str:
    out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def _ratio(value: Optional[float], ref: Optional[float]) -> str:
    if value is None or not ref:
        return "–"
    return f"{value / ref:.2f}×"


def render(cfg: Config, bench: Bench, rows: list[Row], limits: list[tuple[str, float, str]]) -> str:
    size = bench.size
    ref = next((r for r in rows if (r.seeder, r.leecher, r.variant) == REFERENCE and r.runs), None)
    ref_speed = size / ref.median("seconds") if ref else None
    ref_cpu = ref.median("cpu_s") if ref else None
    ref_rss = ref.median("rss_kib") if ref else None
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### Loopback download, {cfg.size_mib} MiB single file, {cfg.piece_kib} KiB pieces",
        "",
        f"{now}; {_machine()}; data on {bench.filesystem} ({cfg.base_dir}).",
        f"One seeder, one leecher, 127.0.0.1 through opentracker; median of {cfg.runs} run(s); "
        f"{bench.cache_note or 'page cache not touched'}.",
        "Time is from leecher start to its exit once every piece is verified; CPU (user + system) and "
        "peak RSS are the leecher's (GNU time). MB = 10^6 bytes. Ratios are against libtorrent → libtorrent "
        "(speed and CPU: higher speed, lower CPU is better).",
        "",
        "Versions: " + "; ".join(_versions(cfg.btt_bin)) + ".",
        "",
        "| seeder → leecher | seconds | MB/s | speed vs lt→lt | leecher CPU s | CPU vs lt→lt "
        "| leecher peak RSS MiB | RSS vs lt→lt |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for row in rows:
        if not row.runs:
            why = row.skipped or row.failed or "no runs"
            lines.append(f"| {row.name} | – | – | – | – | – | – | – |")
            notes.append(f"{row.name}: {'skipped' if row.skipped else 'failed'}: {why}")
            continue
        secs = row.median("seconds")
        speed = size / secs
        cpu = row.median("cpu_s")
        rss = row.median("rss_kib")
        lines.append(
            f"| {row.name} | {secs:.2f} | {speed / MB:.1f} | {_ratio(speed, ref_speed)} | {cpu:.2f} "
            f"| {_ratio(cpu, ref_cpu)} | {rss / 1024:.0f} | {_ratio(rss, ref_rss)} |"
        )
        if row.failed:
            notes.append(f"{row.name}: only {len(row.runs)} of {cfg.runs} runs succeeded: {row.failed}")
    lines += ["", "Limits of this machine (a transfer on one machine cannot beat these):", "",
              "| limit | MB/s | how |", "|---|---:|---|"]
    for name, bps, how in limits:
        lines.append(f"| {name} | {bps / MB:.0f} | {how} |")
    if any(r.leecher == "aria2" and r.runs for r in rows):
        notes.append("aria2 spends about 3 s of every run on 1-second ticks: it dials peers on the next tick, "
                     "tries an encrypted handshake first and redials in plain text after the seeder "
                     "(encryption disabled) refuses it, and announces completion before exiting.")
    def speed_of(seeder: str, leecher: str, variant: str) -> Optional[float]:
        r = next((r for r in rows if (r.seeder, r.leecher, r.variant) == (seeder, leecher, variant) and r.runs), None)
        return size / r.median("seconds") if r else None

    for variant, label in (("v2", "v2"), ("hybrid", "hybrid"), ("utp", "uTP")):
        for seeder, leecher in (("libtorrent", "btt"), ("btt", "btt"), ("libtorrent", "libtorrent")):
            base, other = speed_of(seeder, leecher, "v1"), speed_of(seeder, leecher, variant)
            if base and other:
                notes.append(f"{seeder} → {leecher}: {label} runs at {other / base:.2f}× the v1/TCP speed.")
    if any(r.leecher == "libtorrent" and r.runs for r in rows):
        notes.append("libtorrent 2.x maps the files into memory, so its peak RSS grows with the torrent size.")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main() -> int:
    cfg = Config.from_env()
    bench = Bench(cfg)
    try:
        bench.prepare()
        rows = bench.run()
        log("measuring the machine's limits")
        limits = []
        bps, how = sha1_per_core()
        limits.append(("SHA-1, one core", bps, how))
        bps, how = loopback_tcp(bench.size)
        limits.append(("loopback TCP", bps, how))
        try:
            bps, how = disk_write(cfg.base_dir, cfg.size_mib)
            limits.append(("disk write", bps, how))
        except BenchError as e:
            log(str(e))
    finally:
        if cfg.own_base_dir:
            shutil.rmtree(cfg.base_dir, ignore_errors=True)

    report = render(cfg, bench, rows, limits)
    out_dir = BENCH / "out"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    md = out_dir / f"bench-{stamp}.md"
    md.write_text(report)
    (out_dir / "latest.md").write_text(report)
    raw = {
        "size_mib": cfg.size_mib, "piece_kib": cfg.piece_kib, "runs": cfg.runs, "cache": bench.cache_note,
        "rows": [{"seeder": r.seeder, "leecher": r.leecher, "skipped": r.skipped, "failed": r.failed,
                  "runs": [asdict(x) for x in r.runs]} for r in rows],
        "limits": [{"name": n, "bytes_per_s": b, "how": h} for n, b, h in limits],
    }
    (out_dir / f"bench-{stamp}.json").write_text(json.dumps(raw, indent=1))
    print(report)
    log(f"wrote {md}")
    return 0 if all(r.runs or r.skipped for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
