#!/usr/bin/python3
"""uTP interop with libtorrent 2.0.8 on 127.0.0.1 (TCP disabled in libtorrent, so uTP is the only way).

usage: /usr/bin/python3 crates/utp/tests/interop_libtorrent.py [fetch|serve|all]
  fetch: libtorrent seeds; `utp_probe fetch` dials it, handshakes, checks the bitfield and downloads
         every piece with SHA-1 verification.
  serve: libtorrent leeches; it dials `utp_probe serve` (connect_peer) and downloads and hash-checks
         the whole payload from it.
Env: SIZE_MIB (default 8), IDLE_SECS (fetch stays quiet this long before downloading), UTP_PROBE (path to the binary; default: built with cargo).
Needs Debian's python3-libtorrent (import from /usr/bin/python3).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import libtorrent as lt

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
SIZE = int(os.environ.get("SIZE_MIB", "8")) * 1024 * 1024
PIECE = 256 * 1024


def probe_binary():
    if os.environ.get("UTP_PROBE"):
        return os.environ["UTP_PROBE"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(CRATE, "target"))
    subprocess.run(["cargo", "build", "--example", "utp_probe"], cwd=CRATE, check=True)
    return os.path.join(target, "debug", "examples", "utp_probe")


def make_torrent(directory):
    path = os.path.join(directory, "payload.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(SIZE))
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, PIECE, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, directory)
    ti = lt.torrent_info(ct.generate())
    pieces = b"".join(bytes(ti.hash_for_piece(i)) for i in range(ti.num_pieces()))
    return ti, path, pieces


def session():
    s = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
        "enable_outgoing_utp": True,
        "enable_incoming_utp": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "out_enc_policy": lt.enc_policy.disabled,
        "in_enc_policy": lt.enc_policy.disabled,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification
        | lt.alert.category_t.connect_notification,
    })
    return s


def dump_alerts(s):
    for a in s.pop_alerts():
        print("   [lt]", type(a).__name__, a.message(), flush=True)


def t_fetch(binary):
    print(f"== utp_probe downloads {SIZE >> 20} MiB from a libtorrent seed over uTP", flush=True)
    d = tempfile.mkdtemp(prefix="utp-interop-")
    try:
        ti, _, pieces = make_torrent(d)
        hashes = os.path.join(d, "pieces.bin")
        with open(hashes, "wb") as f:
            f.write(pieces)
        s = session()
        h = s.add_torrent({"ti": ti, "save_path": d})
        deadline = time.time() + 30
        while not h.status().is_seeding:
            assert time.time() < deadline, "libtorrent never reached seeding"
            time.sleep(0.1)
        port = s.listen_port()
        ih = str(ti.info_hashes().v1)
        r = subprocess.run([binary, "fetch", f"127.0.0.1:{port}", ih, str(ti.total_size()), str(PIECE), hashes],
                           capture_output=True, text=True,
                           timeout=180 + int(os.environ.get("IDLE_SECS", "0")))
        for line in r.stdout.splitlines():
            print("   [probe]", line, flush=True)
        dump_alerts(s)
        ok = r.returncode == 0 and "DOWNLOADED" in r.stdout and "BITFIELD" in r.stdout
        if not ok:
            print("   [probe stderr]", r.stderr[-2000:])
        return ok
    finally:
        shutil.rmtree(d, ignore_errors=True)


def t_serve(binary):
    print(f"== libtorrent downloads {SIZE >> 20} MiB from utp_probe over uTP (libtorrent dials)", flush=True)
    d = tempfile.mkdtemp(prefix="utp-interop-")
    try:
        ti, payload, _ = make_torrent(d)
        leech_dir = os.path.join(d, "leech")
        os.mkdir(leech_dir)
        p = subprocess.Popen([binary, "serve", str(ti.info_hashes().v1), payload, str(PIECE)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        assert line.startswith("LISTEN "), line
        probe_port = int(line.split()[1])
        s = session()
        h = s.add_torrent({"ti": ti, "save_path": leech_dir})
        t0 = time.time()
        h.connect_peer(("127.0.0.1", probe_port))
        done = False
        while time.time() - t0 < 120:
            if h.status().is_seeding:
                done = True
                break
            time.sleep(0.05)
        secs = time.time() - t0
        dump_alerts(s)
        if done:
            print(f"   libtorrent finished and hash-checked {ti.total_size()} bytes in {secs:.2f} s"
                  f" = {ti.total_size() / secs / 1e6:.1f} MB/s", flush=True)
            with open(payload, "rb") as a, open(os.path.join(leech_dir, "payload.bin"), "rb") as b:
                done = a.read() == b.read()
            print("   files identical:", done)
        # libtorrent drops a seed once it is a seed itself; the probe then sees the stream end.
        del h
        s.pause()
        del s
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            print("   probe did not see the connection end within 30 s")
        for line in out.splitlines():
            print("   [probe]", line, flush=True)
        if not done:
            print("   [probe stderr]", err[-2000:])
        return done
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    binary = probe_binary()
    ok = True
    if which in ("all", "fetch"):
        r = t_fetch(binary)
        print("fetch:", "OK" if r else "FAILED", flush=True)
        ok &= r
    if which in ("all", "serve"):
        r = t_serve(binary)
        print("serve:", "OK" if r else "FAILED", flush=True)
        ok &= r
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
