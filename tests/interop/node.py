"""A `btt node` daemon under test: start, talk to its HTTP API, restart, kill.

    with BttNode(tmp_path) as node:
        status, body = node.api("POST", "/api/v1/torrents", {"torrent": b64})

The node runs with its own data dir, free ports, DHT and LSD off, and (by
default) no chain, so tests are quick and touch only 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import peers


class BttNode:
    """A ``btt node`` process; ``stop``/``kill``/``restart`` keep its data dir."""

    def __init__(self, root: Path, chain: str = "off", extra_args: Optional[list[str]] = None,
                 name: str = "btt-node", credentials: Optional[tuple[str, str]] = None):
        self.root = Path(root)
        self.data_dir = self.root / "node-data"
        self.log_dir = self.root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.http_port = peers.free_port()
        self.peer_port = peers.free_port()
        self.chain = chain
        self.chain_rpc_port = peers.free_port() if chain == "local" else None
        self.chain_p2p_port = peers.free_port() if chain == "local" else None
        self.extra_args = list(extra_args or [])
        # HTTP basic auth the node is started with and every request of ours carries.
        self.credentials = credentials
        if credentials:
            self.extra_args += ["--http-username", credentials[0], "--http-password", credentials[1]]
        self.name = name
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc: Optional[peers.Proc] = None
        self.starts = 0
        self._session_id: Optional[str] = None
        self.start()

    # -- life cycle -----------------------------------------------------

    def argv(self) -> list[str]:
        argv = [
            str(peers.btt_binary()), "node",
            "--data-dir", str(self.data_dir),
            "--http", f"127.0.0.1:{self.http_port}",
            "--listen-ip", "127.0.0.1",
            "--listen-port", str(self.peer_port),
            "--dht", "false", "--lsd", "false",
            "--chain", self.chain,
        ]
        if self.chain == "local":
            argv += [
                "--chain-rpc-listen", f"127.0.0.1:{self.chain_rpc_port}",
                "--chain-p2p-listen", f"127.0.0.1:{self.chain_p2p_port}",
            ]
        return argv + self.extra_args

    def start(self) -> None:
        self.starts += 1
        # An empty config dir: a developer's own ~/.config/btt never leaks into a test.
        env = dict(__import__("os").environ)
        env["XDG_CONFIG_HOME"] = str(self.root / "config")
        env.setdefault("BTT_LOG", "info")
        self.proc = peers.Proc(f"{self.name}-{self.starts}", self.argv(), self.log_dir, env=env)
        self._session_id = None
        peers.wait_until(self._ready, 60, f"{self.name} to serve its API", self.logs)

    def _ready(self) -> bool:
        assert self.proc is not None
        self.proc.check_running()
        try:
            status, body = self.api("GET", "/api/v1/session")
        except OSError:
            return False
        return status == 200 and bool(body.get("session_id"))

    def stop(self) -> int:
        """Graceful stop (SIGTERM); returns the exit status."""
        assert self.proc is not None
        return self.proc.stop(grace_s=30)

    def kill(self) -> None:
        """SIGKILL, no chance to write anything."""
        assert self.proc is not None
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait(timeout=30)

    def restart(self, kill: bool = False) -> None:
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    def logs(self) -> str:
        return self.proc.logs() if self.proc else ""

    def __enter__(self) -> "BttNode":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.stop(grace_s=30)

    # -- HTTP -----------------------------------------------------------

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[dict] = None, timeout_s: float = 30,
                auth: bool = True) -> tuple[int, dict, bytes]:
        """One HTTP request (with the node's credentials unless ``auth`` is false); returns
        (status, headers, body bytes) for every status."""
        headers = dict(headers or {})
        if auth and self.credentials:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def session_id(self) -> str:
        if self._session_id is None:
            status, _, raw = self.request("GET", "/api/v1/session")
            assert status == 200, raw
            self._session_id = json.loads(raw)["session_id"]
        return self._session_id

    def api(self, method: str, path: str, body=None) -> tuple[int, dict]:
        """A native-API call with the session id; returns (status, JSON body or {})."""
        headers = {}
        data = None
        if method not in ("GET", "HEAD"):
            headers["X-Transmission-Session-Id"] = self.session_id()
            headers["Content-Type"] = "application/json"
            data = json.dumps(body if body is not None else {}).encode()
        status, _, raw = self.request(method, path, data, headers)
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, {"raw": raw.decode("utf-8", "replace")}

    def torrent(self, key) -> dict:
        status, body = self.api("GET", f"/api/v1/torrents/{key}")
        assert status == 200, body
        return body["torrent"]

    def wait_torrent(self, key, cond, what: str, timeout_s: float = 120) -> dict:
        """Polls a torrent's view until ``cond(view)`` holds; returns the view."""
        last: dict = {}

        def check():
            nonlocal last
            self.proc.check_running()
            last = self.torrent(key)
            return last if cond(last) else None

        return peers.wait_until(check, timeout_s, what, lambda: f"last view: {last}\n{self.logs()}")
