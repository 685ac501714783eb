"""Ethereum clients against a btt devnet: ethers (node), web3.py and `btt wallet`.

One 4-validator devnet serves the module (``chain.devnet_fixture``); each test
spends from a different dev account, so the tests do not depend on each
other's nonces or balances. Every check is exact: balances move by the value
sent plus ``gasUsed × effectiveGasPrice`` for the sender.

Set ``BTT_CHAIN_DEVNET_JSON`` to a ready line (``{"chain_id": …, "rpc": […],
"accounts": [{"address": …, "private_key": …}, …]}``) to run these flows
against another node, such as a Hardhat node, instead of starting a devnet.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import chain
import peers

pytestmark = pytest.mark.btt

JS_DIR = Path(__file__).resolve().parent / "js"
FLOW_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    """The devnet (or the external node named by ``BTT_CHAIN_DEVNET_JSON``)."""
    yield from chain.devnet_fixture(tmp_path_factory)


def account(devnet: chain.Devnet, index: int) -> chain.Account:
    """Dev account ``index``; the devnet must fund at least three."""
    assert len(devnet.accounts) > index, f"the devnet funds {len(devnet.accounts)} accounts; these tests need 3"
    return devnet.accounts[index]


def run(cmd: list[str], devnet: chain.Devnet, timeout_s: float = FLOW_TIMEOUT_S, **kw) -> subprocess.CompletedProcess:
    """Runs ``cmd``, failing with its output (and the devnet log) if it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, **kw)
    if proc.returncode != 0:
        devnet.check_running()
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            f"\ndevnet log:\n{devnet.logs()}"
        )
    return proc


def last_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "nothing on stdout"
    return json.loads(lines[-1])


def test_ethers_transfer_and_contract(devnet: chain.Devnet, tmp_path: Path):
    node = peers.require_program("node", "install Node.js 18+ (scripts/setup-test-env.sh)")
    if not (JS_DIR / "node_modules" / "ethers").is_dir():
        raise peers.ProgramMissing(f"ethers is not installed in {JS_DIR}: run `npm ci` there (scripts/setup-test-env.sh)")
    sender = account(devnet, 0)
    key_file = sender.write_key(tmp_path / "key")
    proc = run(
        [node, str(JS_DIR / "ethers_flow.mjs"), "--rpc", devnet.rpc[0], "--chain-id", str(devnet.chain_id),
         "--key-file", str(key_file)],
        devnet,
    )
    summary = last_json(proc.stdout)
    assert summary["ok"] is True
    assert summary["chain_id"] == devnet.chain_id
    assert summary["sender"].lower() == sender.address.lower()
    assert summary["contract"]["count"] == 2
    assert sender.private_key[2:].lower() not in (proc.stdout + proc.stderr).lower()


def test_web3py_transfer(devnet: chain.Devnet, tmp_path: Path):
    try:
        import web3  # noqa: F401  (the flow runs in a child process; fail here with a clear message)
    except ImportError as exc:
        raise peers.ProgramMissing(f"web3.py is not importable from {sys.executable}: run scripts/setup-test-env.sh") from exc
    sender = account(devnet, 1)
    key_file = sender.write_key(tmp_path / "key")
    # Another validator's RPC than the ethers test uses, when the devnet has several.
    rpc = devnet.rpc[1 % len(devnet.rpc)]
    proc = run(
        [sys.executable, str(Path(chain.__file__)), "web3-transfer", "--rpc", rpc, "--chain-id", str(devnet.chain_id),
         "--key-file", str(key_file)],
        devnet,
    )
    summary = last_json(proc.stdout)
    assert summary["ok"] is True
    assert summary["sender"].lower() == sender.address.lower()
    assert int(summary["fee"]) > 0


class Wallet:
    """`btt wallet` with its own keystore and password file in a tmp dir."""

    def __init__(self, tmp_path: Path, rpc: str):
        self.binary = str(peers.btt_binary())
        self.keystore = tmp_path / "keystore"
        self.password_file = tmp_path / "password"
        self.password_file.write_text("correct horse battery staple\n")
        self.rpc = rpc
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BTT_")}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [self.binary, "wallet", "--keystore", str(self.keystore), "--password-file", str(self.password_file), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FLOW_TIMEOUT_S, env=self.env,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def balance(self, address: str) -> int:
        out = last_json(self.run("balance", address, "--rpc", self.rpc, "--json").stdout)
        assert out["address"].lower() == address.lower()
        return int(out["balance_wei"])


def test_btt_wallet_send_and_balance(devnet: chain.Devnet, tmp_path: Path):
    sender = account(devnet, 2)
    rpc = devnet.rpc[2 % len(devnet.rpc)]
    wallet = Wallet(tmp_path, rpc)
    key_file = sender.write_key(tmp_path / "key")
    imported = last_json(wallet.run("import", "--key-file", str(key_file), "--json").stdout)
    assert imported["address"].lower() == sender.address.lower()

    recipient = "0x" + secrets.token_hex(20)
    sender_before = wallet.balance(sender.address)
    assert wallet.balance(recipient) == 0
    # The text form of the balance is exact BTT.
    text = wallet.run("balance", sender.address, "--rpc", rpc).stdout.strip()
    assert text == f"{btt_string(sender_before)} BTT"

    amount = "2.000000000000000003"
    value = 2 * 10**18 + 3
    proc = wallet.run("send", "--from", sender.address, "--to", recipient, "--amount", amount, "--rpc", rpc, "--json")
    out = last_json(proc.stdout)
    assert out["status"] == "success", out
    assert out["value_wei"] == str(value)
    assert out["gas_used"] == 21000
    fee = int(out["fee_wei"])
    assert fee == out["gas_used"] * int(out["effective_gas_price_wei"])
    assert out["fee_btt"] == btt_string(fee)
    assert wallet.balance(recipient) == value
    assert wallet.balance(sender.address) == sender_before - value - fee
    for secret in (sender.private_key[2:].lower(), "correct horse"):
        assert secret not in (proc.stdout + proc.stderr).lower()

    # Text mode: the hash first, then status, block, gas used and the exact fee.
    proc = wallet.run("send", "--to", recipient, "--amount", "0.5", "--rpc", rpc)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("0x") and len(lines[0]) == 66, lines
    assert lines[1] == "status: success"
    assert lines[3] == "gas used: 21000"
    assert lines[4].startswith("fee: ") and lines[4].endswith(" BTT")
    assert wallet.balance(recipient) == value + 5 * 10**17

    # Bad input: one line on stderr, non-zero exit, nothing sent.
    balance_before_bad_input = wallet.balance(sender.address)
    for args, expect in [
        (["--to", "0x1234", "--amount", "1", "--rpc", rpc], "invalid address"),
        (["--to", recipient, "--amount", "0.1234567890123456789", "--rpc", rpc], "19 decimals"),
        (["--to", recipient, "--amount", "1", "--rpc", f"http://127.0.0.1:{peers.free_port()}"], "cannot connect"),
        (["--to", recipient, "--amount", "1", "--rpc", "https://127.0.0.1:8545"], "https is not supported"),
    ]:
        bad = wallet.run("send", *args, check=False)
        assert bad.returncode != 0, args
        assert bad.stdout == "", bad.stdout
        err_lines = bad.stderr.strip().splitlines()
        assert len(err_lines) == 1 and expect in err_lines[0], bad.stderr
    assert wallet.balance(sender.address) == balance_before_bad_input


def btt_string(wei: int) -> str:
    """Exact decimal BTT without trailing zeros, as btt prints it."""
    whole, frac = divmod(wei, 10**18)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:018d}".rstrip("0")


def test_btt_string_helper():
    assert btt_string(0) == "0"
    assert btt_string(10**18) == "1"
    assert btt_string(1) == "0.000000000000000001"
    assert btt_string(15 * 10**17) == "1.5"
