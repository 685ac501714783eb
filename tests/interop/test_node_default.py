"""`btt node` with no arguments: the embedded default.

It must come up on Transmission's port 9091 with a single-validator chain
in-process, keep its data under the XDG data dir (one subfolder per network),
say where the UI is, stop cleanly on SIGTERM, and keep its chain and torrent
list across a graceful restart and a SIGKILL.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

import peers

pytestmark = pytest.mark.btt

URL = "http://127.0.0.1:9091"


def _get(path: str):
    with urllib.request.urlopen(URL + path, timeout=10) as r:
        return r.status, r.headers, r.read()


def _get_json(path: str) -> dict:
    status, _, raw = _get(path)
    assert status == 200
    return json.loads(raw)


def _post(path: str, body: dict, sid: str) -> tuple[int, dict]:
    req = urllib.request.Request(URL + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"X-Transmission-Session-Id": sid,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _start(swarm: peers.Swarm, env: dict, n: int) -> peers.Proc:
    for port in (9091, 8545, 6881, 30300):
        assert not peers.port_accepts(port), f"port {port} is taken; the default-port test needs it free"
    proc = peers.Proc(f"btt-node-default-{n}", [str(peers.btt_binary()), "node"], swarm.dir, env=env)
    swarm.procs.append(proc)

    def chain_height():
        proc.check_running()
        try:
            chain = _get_json("/api/v1/chain")
        except OSError:
            return None
        return chain if chain.get("height") else None

    peers.wait_until(chain_height, 90, "btt node to serve the API with a running chain", proc.logs)
    return proc


def test_no_arguments_runs_the_embedded_default(swarm: peers.Swarm, tmp_path: Path):
    home = tmp_path / "home"
    env = dict(os.environ)
    env.update({
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "BTT_LOG": "info",
    })
    for key in [k for k in env if k.startswith("BTT_") and k != "BTT_LOG"]:
        del env[key]
    data = home / "data" / "btt" / "local"

    proc = _start(swarm, env, 1)
    out = proc.stdout()
    assert re.search(r"web UI and API on http://127\.0\.0\.1:9091/", out), out
    chain = _get_json("/api/v1/chain")
    assert chain["mode"] == "local"
    assert chain["chain_id"] == 7215
    assert len(chain["validators"]) == 1
    assert chain["rpc"] == "http://127.0.0.1:8545"
    session = _get_json("/api/v1/session")
    assert session["network"] == "local"
    assert session["download_dir"] == str(data / "downloads")
    assert session["peer_port"] == 6881
    status, headers, page = _get("/")
    assert status == 200 and b"<html" in page.lower()
    _, _, metrics = _get("/metrics")
    assert re.search(rb"^btt_chain_height \d+$", metrics, re.M), metrics[:2000]

    # The wallet panel shows the keystore `btt wallet` writes to by default, with the exact
    # balance the local chain's genesis gave a dev account (1,000,000 BTT), and never a key.
    dev = json.loads((data / "chain" / "accounts.json").read_text())[0]
    key_file = tmp_path / "dev.key"
    key_file.write_text(dev["private_key"] + "\n")
    wallet_env = dict(env, WALLET_TEST_PASSWORD="correct horse")
    r = subprocess.run([str(peers.btt_binary()), "wallet", "import", "--key-file", str(key_file),
                        "--password-env", "WALLET_TEST_PASSWORD"],
                       env=wallet_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (home / "data" / "btt" / "keystore").is_dir()
    status, _, raw = _get("/api/v1/wallet")
    wallet = json.loads(raw)
    assert [(a["address"].lower(), a["balance_wei"]) for a in wallet["accounts"]] == [
        (dev["address"].lower(), str(1_000_000 * 10**18))], wallet
    assert dev["private_key"][2:].lower() not in raw.decode().lower()

    # A paused torrent, so the list has something to keep.
    content = peers.make_single_file(tmp_path / "src", "kept.bin", 300_000, seed=3)
    torrent = peers.create_torrent_lt(content, tmp_path / "kept.torrent", 16384)
    status, body = _post("/api/v1/torrents",
                         {"torrent": base64.b64encode(torrent.read_bytes()).decode(), "paused": True},
                         session["session_id"])
    assert status == 201, body
    for sub in ("chain/genesis.json", "chain/node-0/config.toml", "torrents/library.json", "downloads"):
        assert (data / sub).exists(), f"{data / sub} missing"

    # Graceful stop: exit status 0.
    height_1 = chain["height"]
    assert proc.stop(grace_s=30) == 0, proc.logs()

    # Restart: the same chain continues, the list is intact.
    proc = _start(swarm, env, 2)
    chain = _get_json("/api/v1/chain")
    assert chain["height"] >= height_1, (height_1, chain)
    torrents = _get_json("/api/v1/torrents")["torrents"]
    assert [(t["id"], t["name"], t["state"]) for t in torrents] == [(1, "kept.bin", "stopped")]

    # SIGKILL, then start again: still the same chain and list.
    height_2 = chain["height"]
    proc.signal(signal.SIGKILL)
    proc.popen.wait(timeout=30)
    proc = _start(swarm, env, 3)
    assert _get_json("/api/v1/chain")["height"] >= height_2
    torrents = _get_json("/api/v1/torrents")["torrents"]
    assert [(t["id"], t["name"]) for t in torrents] == [(1, "kept.bin")]
    assert proc.stop(grace_s=30) == 0, proc.logs()
