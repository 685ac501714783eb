"""``btt node`` in the Speed market: a node on its own local chain sells a torrent to a
``btt download --budget`` buyer, and its API shows and claims exactly what was paid.

The node starts once without the market to create its local chain (whose dev accounts are in
``<data dir>/chain/accounts.json``), then again with ``--sell-reserve`` and the first dev
account's key. The buyer pays from the second dev account on the node's chain RPC.

Checked:

* the buyer ends with the source's bytes and spent something within its budget;
* the node's torrent view says it earned exactly what the buyer spent, and ``/api/v1/market``
  holds exactly that as claimable;
* ``POST /api/v1/market/claim`` claims exactly that, after which claimable is 0 and claimed is it;
* a node with ``--chain off`` and a selling price refuses to start, naming the fix.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

import peers
from node import BttNode

pytestmark = pytest.mark.btt

SIZE = 4 * peers.MIB
PIECE = 64 * peers.KIB
RESERVE_WEI_PER_BYTE = 1000
BUDGET_BTT = "1"
BUDGET_WEI = 10**18
UPLOAD_LIMIT = 1_000_000
TRANSFER_TIMEOUT_S = 180


def _dev_accounts(data_dir: Path) -> list[dict]:
    return json.loads((data_dir / "chain" / "accounts.json").read_text())


def _write_key(path: Path, private_key: str) -> Path:
    key = private_key if private_key.startswith("0x") else "0x" + private_key
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def test_node_sells_to_a_buyer_and_claims_exactly(tmp_path: Path, btt: peers.Btt):
    root = tmp_path / "node"
    # First start: creates the local chain and its funded dev accounts.
    first = BttNode(root, chain="local", name="node-init")
    first.stop()
    accounts = _dev_accounts(first.data_dir)
    assert len(accounts) >= 2, accounts
    seller_key = _write_key(tmp_path / "seller.key", accounts[0]["private_key"])
    buyer_key = _write_key(tmp_path / "buyer.key", accounts[1]["private_key"])

    downloads = first.data_dir / "downloads"
    content = peers.make_single_file(downloads, "paid.bin", SIZE, seed=91)
    torrent = btt.create(content, tmp_path / "paid.torrent", piece_size=PIECE)

    with BttNode(root, chain="local", name="node-seller", extra_args=[
        "--sell-reserve", str(RESERVE_WEI_PER_BYTE), "--market-key-file", str(seller_key),
        "--upload-limit", str(UPLOAD_LIMIT),
    ]) as node:
        assert "market on: selling" in node.logs(), node.logs()
        status, body = node.api("POST", "/api/v1/torrents",
                                {"torrent": base64.b64encode(torrent.read_bytes()).decode()})
        assert status == 201, body
        tid = body["torrent"]["id"]
        node.wait_torrent(tid, lambda t: t["state"] == "seeding", "the node to seed")
        status, market = node.api("GET", "/api/v1/market")
        assert status == 200 and market["enabled"] and market["selling"], market
        assert market["reserve_price"] == RESERVE_WEI_PER_BYTE, market
        assert market["wallet"].lower() == accounts[0]["address"].lower(), market

        rpc = f"http://127.0.0.1:{node.chain_rpc_port}"
        out = tmp_path / "out"
        buyer = btt.download(torrent, out, peers=[("127.0.0.1", node.peer_port)], extra=[
            "--budget", BUDGET_BTT, "--max-price", "5000", "--chain-rpc", rpc,
            "--wallet-key-file", buyer_key, "--market-dir", tmp_path / "buyer-market"])
        rc = buyer.wait_exit(TRANSFER_TIMEOUT_S, watch=[node.proc])
        assert rc == 0, f"buyer exited {rc}\n{buyer.logs()}\n{node.logs()}"
        peers.assert_same_content(content, out / content.name)
        report = json.loads([line for line in buyer.stdout().splitlines() if line.strip()][-1])
        spent = int(report["market"]["spent"])
        assert 0 < spent <= BUDGET_WEI, report

        # The seller's view catches up with the last voucher.
        view = node.wait_torrent(tid, lambda t: int(t["earnings_wei"]) >= spent,
                                 "the node to record the buyer's vouchers", timeout_s=60)
        assert int(view["earnings_wei"]) == spent, (view, report)
        assert view["spent_wei"] == "0", view
        status, market = node.api("GET", "/api/v1/market")
        assert status == 200, market
        assert int(market["wallet_view"]["claimable"]) == spent, market
        assert market["wallet_view"]["claimed"] == "0", market

        status, claimed = node.api("POST", "/api/v1/market/claim")
        assert status == 200, claimed
        assert int(claimed["total"]) == spent, claimed
        status, market = node.api("GET", "/api/v1/market")
        assert market["wallet_view"]["claimable"] == "0", market
        assert int(market["wallet_view"]["claimed"]) == spent, market


def test_node_market_needs_a_chain(tmp_path: Path):
    key = _write_key(tmp_path / "k", "11" * 32)
    argv = [str(peers.btt_binary()), "node", "--data-dir", str(tmp_path / "d"), "--chain", "off",
            "--http", f"127.0.0.1:{peers.free_port()}", "--sell-reserve", "1000",
            "--market-key-file", str(key)]
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("BTT_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    res = subprocess.run(argv, capture_output=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode != 0
    err = res.stderr.decode()
    assert "needs a chain" in err and "--chain local" in err, err
