"""A btt devnet for client interop tests, and the web3.py client flow run against it.

* ``start_devnet`` runs ``btt chain devnet --validators 4 --dir D --json``, reads the
  one JSON line it prints once ready (``chain_id``, ``rpc`` URLs, dev ``accounts`` with
  keys) and returns a ``Devnet``; ``Devnet.stop`` sends SIGTERM, then SIGKILL.
* ``devnet`` is the pytest fixture around it (one devnet per test module).
  With ``BTT_CHAIN_DEVNET_JSON`` set to such a JSON line, the fixture uses that
  node instead of starting one (for checking the flows against another
  Ethereum node, e.g. a Hardhat node with its well-known dev keys).
* ``web3_transfer`` is the web3.py flow: one signed EIP-1559 transfer with
  exact balance accounting. Run it on its own with::

      /usr/bin/python3 tests/interop/chain.py web3-transfer \\
          --rpc http://127.0.0.1:8545 --chain-id 7215 --key-file FILE

  It prints one JSON line on success and exits non-zero naming the failed check.

Keys are passed in files, never on command lines, and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# How long a 4-validator devnet may take to print its ready line (2 shared cores, debug build).
READY_TIMEOUT_S = float(os.environ.get("BTT_DEVNET_READY_TIMEOUT_S", "180"))
STOP_TIMEOUT_S = 20.0


class DevnetError(AssertionError):
    """The devnet did not start, or misbehaved."""


@dataclass
class Account:
    """A funded dev account."""

    address: str
    private_key: str = field(repr=False)

    def write_key(self, path: Path) -> Path:
        """Writes the key to ``path`` (mode 0600) for a program to read; returns ``path``."""
        path.write_text(self.private_key + "\n")
        path.chmod(0o600)
        return path


@dataclass
class Devnet:
    """A running chain: what its ready line said, plus the process (None for an external node)."""

    chain_id: int
    rpc: list[str]
    accounts: list[Account]
    dir: Optional[Path] = None
    process: Optional[subprocess.Popen] = None
    log_path: Optional[Path] = None

    def logs(self, tail_bytes: int = 20000) -> str:
        """The end of the devnet's stderr log, for failure messages."""
        if self.log_path is None or not self.log_path.exists():
            return "(no devnet log)"
        data = self.log_path.read_bytes()
        return data[-tail_bytes:].decode("utf-8", "replace")

    def check_running(self) -> None:
        """Raises ``DevnetError`` if the devnet process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise DevnetError(
                f"the devnet exited with status {self.process.returncode}\n{self.logs()}"
            )

    def stop(self) -> None:
        """SIGTERM, wait up to STOP_TIMEOUT_S, then SIGKILL."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def parse_ready_line(line: str) -> Devnet:
    """Parses and checks the devnet's ready line."""
    try:
        info = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DevnetError(f"the devnet's first stdout line is not JSON: {line!r}") from exc
    try:
        chain_id = int(info["chain_id"])
        rpc = [str(u) for u in info["rpc"]]
        accounts = [Account(str(a["address"]), str(a["private_key"])) for a in info["accounts"]]
    except (KeyError, TypeError, ValueError) as exc:
        # The line holds keys: name the problem, not the line.
        raise DevnetError(
            f"the devnet's ready line lacks chain_id, rpc or accounts ({exc!r}); keys: {sorted(info)}"
        ) from exc
    if not rpc or not accounts:
        raise DevnetError(f"the devnet reported {len(rpc)} RPC URLs and {len(accounts)} accounts")
    return Devnet(chain_id=chain_id, rpc=rpc, accounts=accounts)


def _read_line(proc: subprocess.Popen, timeout_s: float, log_path: Path) -> str:
    """The first line of ``proc``'s stdout, within ``timeout_s``; fails early if it exits."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    buf = b""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DevnetError(
                    f"no ready line from the devnet after {timeout_s:.0f}s\n"
                    + log_path.read_text(errors="replace")[-20000:]
                )
            if sel.select(timeout=min(remaining, 0.5)):
                chunk = os.read(fd, 65536)
                if not chunk:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                    raise DevnetError(
                        f"the devnet exited (status {proc.returncode}) before its ready line\n"
                        + log_path.read_text(errors="replace")[-20000:]
                    )
                buf += chunk
    os.set_blocking(fd, True)
    line, _, rest = buf.partition(b"\n")
    # Keep draining stdout so the devnet can never block on a full pipe.
    def drain() -> None:
        with open(log_path.with_suffix(".stdout"), "ab") as out:
            out.write(rest)
            for data in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
                out.write(data)

    threading.Thread(target=drain, daemon=True).start()
    return line.decode("utf-8", "replace")


def start_devnet(binary: Path, directory: Path, validators: int = 4) -> Devnet:
    """Starts ``btt chain devnet`` in ``directory`` and waits for its ready line."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "devnet.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BTT_")}
    env.setdefault("BTT_LOG", "info")
    cmd = [str(binary), "chain", "devnet", "--validators", str(validators), "--dir", str(directory / "net"), "--json"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env)
    try:
        line = _read_line(proc, READY_TIMEOUT_S, log_path)
        net = parse_ready_line(line)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
        raise
    net.dir, net.process, net.log_path = directory, proc, log_path
    return net


def devnet_fixture(tmp_path_factory):
    """Generator behind the ``devnet`` fixture (see the module docs)."""
    external = os.environ.get("BTT_CHAIN_DEVNET_JSON")
    if external:
        yield parse_ready_line(external)
        return
    import peers  # the btt binary lookup shared with the BitTorrent interop tests

    net = start_devnet(peers.btt_binary(), tmp_path_factory.mktemp("devnet"))
    try:
        yield net
        net.check_running()
    finally:
        net.stop()


# --------------------------------------------------------------------------
# The web3.py flow
# --------------------------------------------------------------------------


class FlowError(AssertionError):
    """A check in a client flow failed."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise FlowError(message)


def web3_transfer(rpc: str, chain_id: int, private_key: str, timeout_s: float = 60.0) -> dict:
    """Sends ``VALUE`` wei from the key's account to a fresh address with web3.py and checks
    that the receipt succeeded and both balances moved by exactly the value (and the fee,
    ``gasUsed × effectiveGasPrice``, for the sender). Returns a summary without the key."""
    from eth_account import Account as EthAccount
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 10}))
    _check(w3.eth.chain_id == chain_id, f"eth_chainId is {w3.eth.chain_id}, expected {chain_id}")
    sender = EthAccount.from_key(private_key)
    recipient = EthAccount.create().address
    value = 987_654_321_987_654_321  # 0.987654321987654321

    tip = w3.eth.max_priority_fee
    latest = w3.eth.get_block("latest")
    _check("baseFeePerGas" in latest, "the latest block has no baseFeePerGas (no EIP-1559)")
    base_fee = latest["baseFeePerGas"]
    _check(w3.eth.gas_price > 0, "eth_gasPrice is 0")
    history = w3.eth.fee_history(2, "latest", [50])
    _check(len(history["baseFeePerGas"]) >= 1, f"eth_feeHistory: {history}")

    sender_before = w3.eth.get_balance(sender.address, "latest")
    recipient_before = w3.eth.get_balance(recipient, "latest")
    _check(recipient_before == 0, f"fresh address {recipient} already holds {recipient_before}")
    tx = {
        "type": 2,
        "chainId": chain_id,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "to": recipient,
        "value": value,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": 2 * base_fee + tip,
    }
    tx["gas"] = w3.eth.estimate_gas({"from": sender.address, "to": recipient, "value": value})
    # Some nodes pad the estimate a little (Hardhat answers 21001); what is used must be 21000.
    _check(21000 <= tx["gas"] <= 30000, f"eth_estimateGas for a plain transfer is {tx['gas']}")
    signed = sender.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    _check(bytes(tx_hash) == bytes(signed.hash), "the node's transaction hash differs from ours")
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.2)
    _check(receipt["status"] == 1, f"transfer failed: status {receipt['status']}")
    _check(receipt["type"] == 2, f"receipt type {receipt['type']}, expected 2")
    _check(receipt["gasUsed"] == 21000, f"a plain transfer used {receipt['gasUsed']} gas, not 21000")
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    _check(receipt["effectiveGasPrice"] <= tx["maxFeePerGas"], "paid more per gas than maxFeePerGas")

    sender_after = w3.eth.get_balance(sender.address, "latest")
    recipient_after = w3.eth.get_balance(recipient, "latest")
    _check(
        recipient_after - recipient_before == value,
        f"recipient gained {recipient_after - recipient_before}, expected {value}",
    )
    _check(
        sender_before - sender_after == value + fee,
        f"sender lost {sender_before - sender_after}, expected {value} + fee {fee}",
    )
    _check(
        w3.eth.get_transaction_count(sender.address, "latest") == tx["nonce"] + 1,
        "the sender's nonce did not advance by one",
    )
    fetched = w3.eth.get_transaction(tx_hash)
    _check(fetched["from"] == sender.address and fetched["value"] == value, f"eth_getTransactionByHash: {fetched}")
    return {
        "ok": True,
        "sender": sender.address,
        "recipient": recipient,
        "hash": "0x" + bytes(tx_hash).hex(),
        "block": receipt["blockNumber"],
        "value": str(value),
        "fee": str(fee),
    }


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    flow = sub.add_parser("web3-transfer", help="one EIP-1559 transfer with web3.py")
    flow.add_argument("--rpc", default=os.environ.get("RPC_URL"), required="RPC_URL" not in os.environ)
    flow.add_argument("--chain-id", type=int, default=os.environ.get("CHAIN_ID"), required="CHAIN_ID" not in os.environ)
    flow.add_argument("--key-file", default=os.environ.get("PRIVATE_KEY_FILE"), required="PRIVATE_KEY_FILE" not in os.environ)
    flow.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    key = Path(args.key_file).read_text().splitlines()[0].strip()
    try:
        summary = web3_transfer(args.rpc, int(args.chain_id), key, args.timeout_s)
    except FlowError as exc:
        print(f"web3-transfer: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
