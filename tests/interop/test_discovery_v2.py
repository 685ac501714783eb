"""Discovery and BitTorrent v2 against libtorrent on 127.0.0.1.

* a magnet link with no tracker and no peer: btt finds a libtorrent seeder
  only through a local DHT of libtorrent nodes, fetches the metadata
  (BEP 9) and completes;
* v2 and hybrid torrents both ways (libtorrent makes, btt downloads; btt
  makes, libtorrent downloads), and btt's v2/hybrid info dictionaries equal
  libtorrent's byte for byte;
* PEX (BEP 11): told about one libtorrent peer, btt dials the other;
* a web seed (BEP 19) served by ``python3 -m http.server`` alone completes a
  download;
* uTP (BEP 29) with TCP disabled on the libtorrent side, both directions;
* local service discovery (BEP 14) between two btt processes in a network
  namespace of their own, so the multicast never leaves it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import peers

pytestmark = pytest.mark.btt

PIECE = 64 * peers.KIB
TIMEOUT_S = 120


def _finish(proc: peers.Proc, content: Path, out: Path, timeout_s: float = TIMEOUT_S,
            watch: tuple = ()) -> dict:
    rc = proc.wait_exit(timeout_s, watch=watch)
    assert rc == 0, f"btt download exited {rc}\n{proc.logs()}"
    peers.assert_same_content(content, out / content.name)
    lines = [line for line in proc.stdout().splitlines() if line.strip()]
    return json.loads(lines[-1])


def _multi(seed_dir: Path, name: str = "tree") -> Path:
    return peers.make_multi_file(seed_dir, name, PIECE)


# --------------------------------------------------------------------------
# Magnet + DHT
# --------------------------------------------------------------------------


def test_magnet_found_only_through_dht(swarm, btt, seed_dir, tmp_path):
    """A local DHT of libtorrent nodes and a btt node; the downloader knows only the btt node."""
    content = peers.make_single_file(seed_dir, "dht-file.bin", 3 * peers.MIB + 777, seed=31)
    torrent = peers.create_torrent_lt(content, tmp_path / "dht.torrent", PIECE)
    ih = peers.info_hash_hex(torrent)

    # libtorrent nodes: a router, a second node and the seeder, all on 127.0.0.1.
    router = swarm.libtorrent("dht-router", dht_nodes=[])
    other = swarm.libtorrent("dht-node", dht_nodes=[("127.0.0.1", router.port)])
    seeder = swarm.libtorrent("dht-seeder", dht_nodes=[("127.0.0.1", router.port), ("127.0.0.1", other.port)])
    t = seeder.seed(torrent, seed_dir)

    def seeder_stored() -> bool:
        # The seeder's announce reached the router: the router answers get_peers with it.
        t.handle.force_dht_announce()
        router.pump()
        return "dht_announce_alert" in peers._tail(router.log_path, 100000)

    peers.wait_until(seeder_stored, 60, "the seeder's DHT announce to reach the router", swarm.logs)

    # A btt node in the same DHT (seeding something else), bootstrapped from the router.
    other_content = peers.make_single_file(seed_dir, "other.bin", 100 * peers.KIB, seed=33)
    other_torrent = btt.create(other_content, tmp_path / "other.torrent", piece_size=PIECE)
    node_port = peers.free_port()
    btt.seed(other_torrent, seed_dir, extra=["--dht-bootstrap", f"127.0.0.1:{router.port}",
                                             "--dht-port", node_port], discovery=True)

    # The downloader: a magnet with no tracker and no peer, and only the btt node to start from.
    magnet = f"magnet:?xt=urn:btih:{ih}&dn=dht-file.bin"
    out = tmp_path / "out"
    proc = btt.download(magnet, out, dht_bootstrap=[("127.0.0.1", node_port)])
    report = _finish(proc, content, out)
    assert report["info_hash"] == ih
    assert report["complete"] is True


@pytest.mark.parametrize("version", ["hybrid", "v2"])
def test_magnet_with_peer_address_fetches_metadata(swarm, btt, seed_dir, tmp_path, version):
    """``x.pe`` alone is enough: metadata over BEP 9 from a libtorrent seeder, then the data.

    The hybrid case has 16 KiB pieces, so its info dictionary spans two metadata pieces; the
    v2-only case also needs the piece layers, fetched with BEP 52 hash requests.
    """
    if version == "hybrid":
        content = peers.make_single_file(seed_dir, "magnet.bin", 20 * peers.MIB + 5, seed=32)
        piece = 16 * peers.KIB
    else:
        content = _multi(seed_dir, "magnet-tree")
        piece = PIECE
    torrent = peers.create_torrent_lt(content, tmp_path / "m.torrent", piece, version=version)
    lt = swarm.libtorrent("seeder")
    lt.seed(torrent, seed_dir)
    hashes = peers.lt_info_hashes(torrent)
    xt = f"urn:btih:{hashes['v1']}" if hashes["v1"] else f"urn:btmh:1220{hashes['v2']}"
    magnet = f"magnet:?xt={xt}&dn={content.name}&x.pe=127.0.0.1:{lt.port}"
    out = tmp_path / "out"
    report = _finish(btt.download(magnet, out), content, out)
    assert report["info_hash"] == (hashes["v1"] or hashes["v2"][:40])
    assert report["hash_failures"] == 0


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_libtorrent_fetches_metadata_from_btt(swarm, btt, seed_dir, tmp_path, version):
    """btt serves the info dictionary (BEP 9) and, for v2, the piece layers (BEP 52 hashes)."""
    content = _multi(seed_dir, f"serve-{version}")
    extra = ["--v2"] if version == "v2" else []
    torrent = btt.create(content, tmp_path / "s.torrent", piece_size=PIECE, extra=extra)
    seeder = btt.seed(torrent, seed_dir)
    hashes = peers.lt_info_hashes(torrent)
    xt = f"urn:btih:{hashes['v1']}" if hashes["v1"] else f"urn:btmh:1220{hashes['v2']}"
    lt = swarm.libtorrent("leecher")
    out = tmp_path / "lt-out"
    out.mkdir()
    t = lt.add_magnet(f"magnet:?xt={xt}&dn={content.name}", out)
    t.connect_peer("127.0.0.1", seeder.port)
    t.wait_seeding(TIMEOUT_S, watch=[seeder])
    peers.assert_same_content(content, out / content.name)


# --------------------------------------------------------------------------
# v2 and hybrid
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_btt_downloads_libtorrent_made_torrent(swarm, btt, seed_dir, tmp_path, version):
    content = _multi(seed_dir, f"lt-{version}")
    torrent = peers.create_torrent_lt(content, tmp_path / f"{version}.torrent", PIECE, version=version)
    info = btt.info_json(torrent)
    hashes = peers.lt_info_hashes(torrent)
    assert info["version"] == version
    assert info["info_hash_v2"] == hashes["v2"]
    assert info["info_hash_v1"] == hashes["v1"]
    lt = swarm.libtorrent("seeder")
    lt.seed(torrent, seed_dir)
    out = tmp_path / "out"
    report = _finish(btt.download(torrent, out, peers=[("127.0.0.1", lt.port)]), content, out)
    assert report["hash_failures"] == 0


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_libtorrent_downloads_btt_made_torrent(swarm, btt, seed_dir, tmp_path, version):
    content = _multi(seed_dir, f"btt-{version}")
    torrent = btt.create(content, tmp_path / f"{version}.torrent", piece_size=PIECE, extra=[f"--{version}"])
    seeder = btt.seed(torrent, seed_dir)
    lt = swarm.libtorrent("leecher")
    out = tmp_path / "lt-out"
    out.mkdir()
    t = lt.add(torrent, out)
    t.connect_peer("127.0.0.1", seeder.port)
    t.wait_seeding(TIMEOUT_S, watch=[seeder])
    peers.assert_same_content(content, out / content.name)


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_info_dict_bytes_equal_libtorrent(btt, seed_dir, tmp_path, version):
    content = _multi(seed_dir, f"same-{version}")
    ours = btt.create(content, tmp_path / "btt.torrent", piece_size=PIECE, extra=[f"--{version}"])
    theirs = peers.create_torrent_lt(content, tmp_path / "lt.torrent", PIECE, version=version)
    assert peers.info_dict_bytes(ours) == peers.info_dict_bytes(theirs)
    assert peers.lt_info_hashes(ours) == peers.lt_info_hashes(theirs)


# --------------------------------------------------------------------------
# PEX
# --------------------------------------------------------------------------


def test_pex_finds_the_peer_btt_was_not_told_about(swarm, btt, seed_dir, tmp_path):
    content = peers.make_single_file(seed_dir, "pex.bin", 8 * peers.MIB, seed=41)
    torrent = peers.create_torrent_lt(content, tmp_path / "pex.torrent", PIECE)
    seeder = swarm.libtorrent("seeder")
    seeder.seed(torrent, seed_dir)
    # Both downloaders are slowed so neither completes before the seeder's PEX reaches btt: seeds
    # drop seeds, and the seeder only passes on peers it is connected to. The leecher runs without
    # libtorrent's extensions, so it cannot learn btt's address by PEX itself: a connection
    # between the two can only be btt dialling the address it learnt from the seeder.
    leecher = swarm.libtorrent("leecher", plugins=False)
    lout = tmp_path / "lt-out"
    lout.mkdir()
    lt2 = leecher.add(torrent, lout)
    lt2.handle.set_download_limit(64 * peers.KIB)
    lt2.connect_peer("127.0.0.1", seeder.port)

    out = tmp_path / "out"
    proc = btt.download(torrent, out, peers=[("127.0.0.1", seeder.port)], seed=True,
                        extra=["--download-limit", 64 * peers.KIB])

    def btt_dialled_leecher() -> bool:
        proc.check_running()
        leecher.pump()
        incoming = [p for p in lt2.handle.get_peer_info()
                    if not (p.flags & peers.lt.peer_info.local_connection)]
        return any(p.pid.to_bytes().startswith(b"-BY") for p in incoming)

    peers.wait_until(btt_dialled_leecher, 150,
                     "btt to dial the libtorrent leecher it learnt of through PEX", swarm.logs)


# --------------------------------------------------------------------------
# Web seeds
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["single", "multi"])
def test_web_seed_alone_completes(swarm, btt, seed_dir, tmp_path, layout):
    if layout == "single":
        content = peers.make_single_file(seed_dir, "ws.bin", 2 * peers.MIB + 4321, seed=51)
    else:
        content = _multi(seed_dir, "ws-tree")
    server = swarm.http_server(seed_dir)
    torrent = peers.create_torrent_lt(content, tmp_path / "ws.torrent", PIECE, web_seeds=[server.url])
    out = tmp_path / "out"
    report = _finish(btt.download(torrent, out), content, out)
    assert report["hash_failures"] == 0
    assert server.requests(), "btt never asked the web seed"


# --------------------------------------------------------------------------
# uTP
# --------------------------------------------------------------------------


def test_utp_download_from_libtorrent_without_tcp(swarm, btt, seed_dir, tmp_path):
    content = peers.make_single_file(seed_dir, "utp.bin", 3 * peers.MIB + 99, seed=61)
    torrent = peers.create_torrent_lt(content, tmp_path / "utp.torrent", PIECE)
    lt = swarm.libtorrent("utp-seeder", tcp=False, utp=True)
    lt.seed(torrent, seed_dir)
    out = tmp_path / "out"
    _finish(btt.download(torrent, out, peers=[("127.0.0.1", lt.port)]), content, out)


def test_utp_upload_to_libtorrent_without_tcp(swarm, btt, seed_dir, tmp_path):
    content = peers.make_single_file(seed_dir, "utp-up.bin", 3 * peers.MIB + 99, seed=62)
    torrent = btt.create(content, tmp_path / "utp-up.torrent", piece_size=PIECE)
    seeder = btt.seed(torrent, seed_dir)
    lt = swarm.libtorrent("utp-leecher", tcp=False, utp=True)
    out = tmp_path / "lt-out"
    out.mkdir()
    t = lt.add(torrent, out)
    t.connect_peer("127.0.0.1", seeder.port)
    t.wait_seeding(TIMEOUT_S, watch=[seeder])
    peers.assert_same_content(content, out / content.name)


# --------------------------------------------------------------------------
# Local service discovery
# --------------------------------------------------------------------------


def test_lsd_finds_a_peer_on_the_link(swarm, btt, seed_dir, tmp_path):
    """A seeder and a downloader told nothing about each other find each other by LSD multicast.

    Both run inside a new network namespace whose only interface is a loopback with multicast on,
    so the test sends nothing to any real network.
    """
    unshare = peers.require_program("unshare", "install util-linux")
    peers.require_program("ip", "install iproute2")
    content = peers.make_single_file(seed_dir, "lsd.bin", 2 * peers.MIB + 3, seed=71)
    torrent = btt.create(content, tmp_path / "lsd.torrent", piece_size=PIECE)
    out = tmp_path / "out"
    out.mkdir()
    binary = str(btt.binary)
    script = (
        "set -e; ip link set lo up; ip link set lo multicast on; ip route add 239.0.0.0/8 dev lo; "
        f"'{binary}' seed '{torrent}' '{seed_dir}' --listen-port 7001 --no-dht & seeder=$!; "
        "trap 'kill $seeder' EXIT; "
        f"'{binary}' download '{torrent}' -o '{out}' --listen-port 7002 --no-dht --json"
    )
    env = btt.env("lsd")
    env.pop("BTT_NO_LSD")
    proc = swarm.spawn("lsd-netns", [unshare, "--net", "/bin/sh", "-c", script], env=env)
    rc = proc.wait_exit(TIMEOUT_S)
    assert rc == 0, f"download in the namespace exited {rc}\n{proc.logs()}"
    # The torrent has no tracker, nobody is given a --peer and the DHT is off: the data can only
    # have come through LSD.
    peers.assert_same_content(content, out / content.name)
