#!/usr/bin/python3
"""DHT interop check between our `dht` crate and libtorrent, on 127.0.0.1 only.

Usage: /usr/bin/python3 crates/dht/tests/lt_interop.py PATH/TO/dht_probe [-v] [--strict]

Build the probe first: `cargo build -p dht --example dht_probe` (target/debug/examples/dht_probe).
Needs Debian's python3-libtorrent (2.0.x); exits 2 if it is missing, 1 if a check fails.

What it does:
 1. starts a small libtorrent DHT network (three sessions meshed with `add_dht_node`);
 2. a libtorrent session seeds a torrent and announces it to the DHT; our probe, bootstrapped
    from ONE libtorrent node only, finds the seeder's TCP listen port with get_peers (once as a
    normal node, once read-only);
 3. our probe announces an info-hash with an explicit port; a libtorrent session finds it with
    `dht_get_peers`;
 4. BEP 43: libtorrent adds a normal probe node to its routing table, but not a read-only one;
 5. (known gap, reported as XFAIL unless --strict) a libtorrent session bootstrapped ONLY
    from our probe node looks up a peer through it: mainline 8.0.1 answers only queries whose
    transaction id is exactly 4 bytes, and libtorrent sends 2-byte ids.

Settings libtorrent needs on a one-IP network (see the report printed at the end):
 - `dht_bootstrap_nodes=""` and `add_dht_node()` for the mesh: nodes given as bootstrap nodes are
   "router nodes", which libtorrent never puts in its routing table, so a network built only
   from them stays empty;
 - `dht_restrict_routing_ips=False`: otherwise libtorrent keeps one node per IP in its routing
   table (all of ours are 127.0.0.1), the mesh never forms and our normal node is never added;
 - `dht_restrict_search_ips=False`: not needed by this small network (checked with
   LT_INTEROP_SETTINGS), set so bigger one-IP lookups do not collapse to one node;
 - `dht_ignore_dark_internet` can stay at its default (True): loopback is not filtered;
 - `enable_lsd/upnp/natpmp=False` to keep everything on loopback.
"""

import hashlib
import json
import os
import queue
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import libtorrent as lt
except ImportError:
    print("python3-libtorrent is missing: apt-get install -y python3-libtorrent "
          "and run this with /usr/bin/python3", file=sys.stderr)
    sys.exit(2)

VERBOSE = "-v" in sys.argv
HOST = "127.0.0.1"
FAILURES = []


def log(*args):
    print("[lt_interop]", *args, flush=True)


def check(ok, what):
    log(("PASS " if ok else "FAIL ") + what)
    if not ok:
        FAILURES.append(what)
    return ok


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1, below the ephemeral range when possible."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((HOST, port))
            u.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


def wait_until(what, predicate, timeout):
    """Polls `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    log("timed out waiting for " + what)
    return None


def lt_session(port, **extra):
    settings = {
        "listen_interfaces": "%s:%d" % (HOST, port),
        "enable_dht": True,
        # Router nodes never enter libtorrent's routing table; we mesh with add_dht_node instead.
        "dht_bootstrap_nodes": "",
        # All nodes share 127.0.0.1; by default libtorrent keeps one node per IP.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert_category.dht | lt.alert_category.dht_operation
        | lt.alert_category.status | lt.alert_category.error
        | (lt.alert_category.dht_log if VERBOSE else 0),
    }
    # Experiments: LT_INTEROP_SETTINGS='{"dht_restrict_routing_ips": true}' overrides settings.
    settings.update(json.loads(os.environ.get("LT_INTEROP_SETTINGS", "{}")))
    settings.update(extra)
    return lt.session(settings)


class Node:
    """One libtorrent session and the alerts it has produced so far."""

    def __init__(self, name, **extra):
        self.name = name
        self.port = free_port()
        self.ses = lt_session(self.port, **extra)
        self.alerts = []

    def pump(self):
        # An alert object is only valid until the next pop_alerts(): copy what we need now.
        for a in self.ses.pop_alerts():
            what = a.what()
            if VERBOSE:
                log(self.name, what, a.message()[:300])
            if what == "dht_stats":
                self.alerts.append((what, (
                    sum(b["num_nodes"] for b in a.routing_table),
                    sum(b["num_replacements"] for b in a.routing_table))))
            elif what == "dht_get_peers_reply":
                self.alerts.append((what, (str(a.info_hash), [(p[0], p[1]) for p in a.peers()])))

    def table_size(self, timeout=5):
        """(live nodes, replacement nodes) in libtorrent's routing table."""
        self.alerts = [a for a in self.alerts if a[0] != "dht_stats"]
        self.ses.post_dht_stats()

        def stats():
            self.pump()
            for what, value in self.alerts:
                if what == "dht_stats":
                    return value
            return None

        return wait_until(self.name + " dht stats", stats, timeout) or (0, 0)

    def live_nodes(self):
        """Addresses in libtorrent's routing table (live buckets), from its saved DHT state."""
        state = self.ses.save_state().get(b"dht state", {})
        out = set()
        for compact in state.get(b"nodes", []):
            if len(compact) == 6:
                out.add("%d.%d.%d.%d:%d" % (compact[0], compact[1], compact[2], compact[3],
                                            int.from_bytes(compact[4:6], "big")))
        return out

    def find_peer(self, info_hash_hex, want, timeout):
        """Repeats dht_get_peers until a reply lists `want` (ip, port)."""
        ih = lt.sha1_hash(bytes.fromhex(info_hash_hex))
        deadline = time.monotonic() + timeout
        seen = set()
        while time.monotonic() < deadline:
            self.ses.dht_get_peers(ih)
            round_end = min(deadline, time.monotonic() + 5)
            while time.monotonic() < round_end:
                self.pump()
                for what, value in self.alerts:
                    if what == "dht_get_peers_reply" and value[0] == info_hash_hex:
                        seen.update(value[1])
                self.alerts = [a for a in self.alerts if a[0] != "dht_get_peers_reply"]
                if want in seen:
                    return True, seen
                time.sleep(0.1)
        return False, seen


class Probe:
    """Our dht_probe example binary, read line by line as JSON."""

    def __init__(self, binary, *args):
        self.args = [binary, "--bind", HOST] + [str(a) for a in args]
        if VERBOSE:
            log("run", " ".join(self.args))
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=None if VERBOSE else subprocess.DEVNULL, text=True,
                                     env=env)
        self.lines = queue.Queue()
        self.events = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"event": "garbage", "line": line})
        self.lines.put(None)

    def wait_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event is None:
                return None
            if VERBOSE:
                log("probe", event)
            self.events.append(event)
            if event.get("event") in (name, "error"):
                return event
        return None

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # ends --linger
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.kill()
                self.proc.wait()


def make_torrent(directory):
    path = os.path.join(directory, "payload.bin")
    with open(path, "wb") as f:
        f.write(bytes(random.getrandbits(8) for _ in range(64 * 1024)))
    fs = lt.file_storage()
    lt.add_files(fs, path)
    t = lt.create_torrent(fs, 16 * 1024, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(t, directory)
    return lt.torrent_info(t.generate())


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    probe_bin = sys.argv[1]
    if not os.access(probe_bin, os.X_OK):
        print("not an executable: %s (cargo build -p dht --example dht_probe)" % probe_bin,
              file=sys.stderr)
        return 2
    log("libtorrent", lt.__version__)
    work = tempfile.mkdtemp(prefix="dht-lt-interop-")
    probes = []
    try:
        # 1. A libtorrent DHT of three meshed nodes.
        nodes = [Node("lt%d" % i) for i in range(3)]
        for a in nodes:
            for b in nodes:
                if a is not b:
                    a.ses.add_dht_node((HOST, b.port))
        for n in nodes:
            size = wait_until(n.name + " routing table", lambda: n.table_size()[0] >= 2, 30)
            check(bool(size), "%s (port %d) has both other libtorrent nodes in its routing table"
                  % (n.name, n.port))
        seeder, entry, finder = nodes

        # 2. libtorrent seeds and announces; our probe finds the seeder's TCP port.
        ti = make_torrent(work)
        ih = str(ti.info_hashes().v1)
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = work
        atp.flags |= lt.torrent_flags.seed_mode
        handle = seeder.ses.add_torrent(atp)
        handle.force_dht_announce()
        seeder_port = seeder.ses.listen_port()
        log("seeding %s on tcp %d" % (ih, seeder_port))
        for read_only in (False, True):
            mode = "read-only" if read_only else "normal"
            args = ["--bootstrap", "%s:%d" % (HOST, entry.port), "--get-peers", ih,
                    "--expect-port", seeder_port, "--timeout", 60]
            if read_only:
                args.append("--read-only")
            p = Probe(probe_bin, *args)
            probes.append(p)
            p.wait_event("listening", 10)
            done = p.wait_event("done", 75)
            peers = [e["addr"] for e in p.events if e.get("event") == "peer"]
            check(bool(done and done.get("ok")) and "%s:%d" % (HOST, seeder_port) in peers,
                  "our %s node bootstrapped from one libtorrent node finds the libtorrent seeder "
                  "%s:%d via get_peers (got %s)" % (mode, HOST, seeder_port, peers))
            p.stop()

        # 3. Our probe announces with an explicit port; libtorrent finds it.
        ih2 = hashlib.sha1(os.urandom(20)).hexdigest()
        fake_bt_port = free_port()
        p = Probe(probe_bin, "--bootstrap", "%s:%d" % (HOST, entry.port), "--announce", ih2,
                  "--port", fake_bt_port, "--timeout", 60, "--linger", 120)
        probes.append(p)
        listening = p.wait_event("listening", 10)
        announced = p.wait_event("announced", 65)
        check(announced is not None, "our node announced %s to libtorrent nodes" % ih2)
        found, seen = finder.find_peer(ih2, (HOST, fake_bt_port), 60)
        check(found, "libtorrent finds the peer we announced, %s:%d (got %s)"
              % (HOST, fake_bt_port, sorted(seen)))

        # 4. BEP 43: a normal node that queried libtorrent enters its routing table, a read-only
        # one does not. Both query the same fresh libtorrent node at the same time; once the
        # normal one is in its table, the read-only one has had the same chance.
        lone = Node("lt-bep43")
        lone.ses.add_dht_node((HOST, seeder.port))
        wait_until(lone.name + " table", lambda: lone.table_size()[0] >= 1, 30)
        pair = {}
        for read_only in (False, True):
            args = ["--bootstrap", "%s:%d" % (HOST, lone.port), "--get-peers", ih,
                    "--expect-port", seeder_port, "--timeout", 30, "--linger", 60]
            if read_only:
                args.append("--read-only")
            q = Probe(probe_bin, *args)
            probes.append(q)
            started = q.wait_event("listening", 10)
            pair[read_only] = (q, started["addr"] if started else "?")
        for q, _ in pair.values():
            q.wait_event("done", 40)
        rw_addr, ro_addr = pair[False][1], pair[True][1]
        added = wait_until("libtorrent to add " + rw_addr,
                           lambda: rw_addr in lone.live_nodes(), 30)
        table = lone.live_nodes()
        check(bool(added), "libtorrent adds our normal node %s to its routing table (table: %s)"
              % (rw_addr, sorted(table)))
        check(ro_addr not in table, "libtorrent keeps our read-only node %s out of its routing "
              "table (table: %s)" % (ro_addr, sorted(table)))
        for q, _ in pair.values():
            q.stop()

        # 5. Known gap: libtorrent bootstrapped only from our node. mainline 8.0.1 decodes a
        # query only when its transaction id `t` is exactly 4 bytes; libtorrent uses 2-byte ids,
        # so our node never answers libtorrent's queries. Reported, not failed (--strict fails).
        if listening:
            ours = listening["addr"].split(":")
            lone = Node("lt-via-ours")
            lone.ses.add_dht_node((ours[0], int(ours[1])))
            found, seen = lone.find_peer(ih2, (HOST, fake_bt_port), 15)
            if "--strict" in sys.argv:
                check(found, "libtorrent bootstrapped only from our node finds a peer through it")
            elif found:
                log("XPASS libtorrent bootstrapped only from our node found a peer through it: "
                    "the 2-byte transaction id gap is gone; make this a hard check")
            else:
                log("XFAIL (known) libtorrent cannot use our node as its only entry point: "
                    "mainline 8.0.1 ignores queries whose transaction id is not 4 bytes "
                    "(libtorrent sends 2)")
        p.stop()
    finally:
        for p in probes:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)

    if FAILURES:
        log("%d check(s) failed" % len(FAILURES))
        return 1
    log("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
