"""A chain of real ``btt chain run`` validator processes on 127.0.0.1, for fault tests.

``btt chain init`` writes the genesis and one config per validator (and per
full node, with ``full_nodes``); each node is then its own process that the
test can kill (SIGKILL, as a crash), restart, or wipe. Heights and hashes are
read over JSON-RPC. Nodes are numbered validators first (``0..n-1``), then full
nodes (``n..n+full_nodes-1``), then standby validators (validator keys and a
funded operator, outside the genesis set until they stake).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import shutil
import signal
import urllib.request
from pathlib import Path
from typing import Optional

import peers


def rpc(url: str, method: str, params: list, timeout_s: float = 5.0) -> dict:
    """One JSON-RPC call; returns the whole response object (``result`` or ``error``)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def result(url: str, method: str, params: list):
    """The ``result`` of a call; raises if the node answered with an error."""
    answer = rpc(url, method, params)
    if "error" in answer:
        raise peers.HarnessError(f"{method} failed on {url}: {answer['error']}")
    return answer["result"]


class Chain:
    """``n`` validators and ``full_nodes`` full nodes from ``btt chain init``;
    ``start``/``kill``/``wipe`` each by index (validators first, then full nodes)."""

    def __init__(self, tmp: Path, n: int = 4, full_nodes: int = 0, standby: int = 0,
                 epoch_length: Optional[int] = None, equivocators: tuple[int, ...] = (),
                 params: Optional[dict[str, int]] = None):
        self.dir = tmp / "chain"
        self.log_dir = tmp / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.btt = peers.btt_binary()
        self.n_validators = n
        self.n_full = full_nodes
        self.equivocators = set(equivocators)
        total = n + full_nodes + standby
        rpc_base = _port_block(total)
        p2p_base = _port_block(total)
        argv = [str(self.btt), "chain", "init", "--dir", str(self.dir), "--validators", str(n),
                "--rpc-port", str(rpc_base), "--p2p-port", str(p2p_base), "--json"]
        if full_nodes:
            argv += ["--full-nodes", str(full_nodes)]
        if standby:
            argv += ["--standby", str(standby)]
        if epoch_length is not None:
            argv += ["--epoch-length", str(epoch_length)]
        for name, value in (params or {}).items():
            argv += ["--param", f"{name}={value}"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise peers.HarnessError(f"btt chain init failed: {out.stderr}")
        self.info = json.loads(out.stdout)
        self.urls: list[str] = (self.info["rpc"] + self.info.get("full_node_rpc", [])
                                + self.info.get("standby_rpc", []))
        self.accounts = self.info["accounts"]
        # Operator accounts: the validators', then the standby validators'.
        self.operators = self.info.get("operators", [])
        self.procs: list[Optional[peers.Proc]] = [None] * total
        self.starts = [0] * total

    @property
    def validators(self) -> list[int]:
        return list(range(self.n_validators))

    @property
    def full_nodes(self) -> list[int]:
        return list(range(self.n_validators, self.n_validators + self.n_full))

    @property
    def standby(self) -> list[int]:
        return list(range(self.n_validators + self.n_full, len(self.procs)))

    def node_dir(self, i: int) -> Path:
        if i < self.n_validators:
            return self.dir / f"node-{i}"
        if i < self.n_validators + self.n_full:
            return self.dir / f"full-{i - self.n_validators}"
        return self.dir / f"standby-{i - self.n_validators - self.n_full}"

    def name(self, i: int) -> str:
        if i < self.n_validators:
            return f"validator {i}"
        if i < self.n_validators + self.n_full:
            return f"full node {i}"
        return f"standby validator {i}"

    def operator(self, i: int) -> dict:
        """The operator account (address, private_key) of validator or standby node ``i``."""
        if i < self.n_validators:
            return self.operators[i]
        return self.operators[self.n_validators + (i - self.n_validators - self.n_full)]

    def start(self, i: int) -> None:
        self.starts[i] += 1
        kind = self.name(i).replace(" ", "-")
        config = self.node_dir(i) / "config.toml"
        if i in self.equivocators:
            # A test build that also signs a conflicting vote next to each honest one.
            argv = [peers.equivocator_binary(), "--config", config]
        else:
            argv = [self.btt, "chain", "run", "--config", config]
        self.procs[i] = peers.Proc(
            f"{kind}-run{self.starts[i]}",
            argv,
            self.log_dir,
            env={**os.environ, "BTT_LOG": "info"},
        )

    def start_all(self) -> None:
        for i in range(len(self.procs)):
            self.start(i)

    def kill(self, i: int) -> None:
        """SIGKILL: the process gets no chance to flush or clean up."""
        p = self.procs[i]
        assert p is not None
        p.signal(signal.SIGKILL)
        p.popen.wait(timeout=10)
        self.procs[i] = None

    def wipe(self, i: int) -> None:
        """Deletes the node's chain data (database and consensus journal)."""
        shutil.rmtree(self.node_dir(i) / "data", ignore_errors=True)

    def stop_all(self) -> None:
        for p in self.procs:
            if p is not None:
                p.stop()

    def running(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None]

    def height(self, i: int) -> Optional[int]:
        """The validator's finalized height, or ``None`` while its RPC does not answer."""
        p = self.procs[i]
        if p is None:
            return None
        p.check_running()
        try:
            return int(result(self.urls[i], "eth_blockNumber", []), 16)
        except (OSError, peers.HarnessError):
            return None

    def current(self, i: int, timeout_s: float = 30) -> int:
        """The node's finalized height, waiting out a moment when its RPC does not answer."""
        got = peers.wait_until(lambda: (h := self.height(i)) is not None and (h,),
                               timeout_s, f"{self.name(i)} to answer JSON-RPC", self.logs)
        return got[0]

    def wait_height(self, i: int, target: int, timeout_s: float = 60) -> int:
        return peers.wait_until(
            lambda: (h := self.height(i)) is not None and h >= target and h,
            timeout_s, f"{self.name(i)} to reach height {target}", self.logs)

    def block_hash(self, i: int, number: int) -> str:
        block = result(self.urls[i], "eth_getBlockByNumber", [hex(number), False])
        assert block is not None, f"{self.name(i)} has no block {number}"
        return block["hash"]

    def assert_consistent(self, nodes: list[int]) -> int:
        """Every height that all ``nodes`` finalized has one hash on all of them; returns that height."""
        top = min(self.current(i) for i in nodes)
        for n in range(0, top + 1):
            hashes = {i: self.block_hash(i, n) for i in nodes}
            assert len(set(hashes.values())) == 1, f"conflicting blocks at height {n}: {hashes}"
        return top

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.procs if p is not None)


def _port_block(n: int) -> int:
    """A base port such that base..base+n-1 are free (ports from the OS, checked in a row)."""
    for _ in range(200):
        base = peers.free_port()
        if base + n >= 65535:
            continue
        ok = True
        for k in range(1, n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + k))
                except OSError:
                    ok = False
                    break
        if ok:
            peers._handed_out.update(range(base, base + n))
            return base
    raise peers.HarnessError("no block of free ports")
