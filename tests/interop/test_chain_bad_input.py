"""Bad transactions and requests against a running validator: each gets the
standard JSON-RPC error, nothing in state changes, and the chain keeps going.

Transactions are signed with ``eth_account`` (installed with web3.py), the
signer most Python tooling uses, so the bytes are what real clients send.
"""

from __future__ import annotations

import pytest
from eth_account import Account

import peers
from chainnet import Chain, result, rpc

pytestmark = pytest.mark.btt

GWEI = 10**9


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("bad-input"), n=1)
    c.start_all()
    try:
        c.wait_height(0, 1)
        yield c
    finally:
        c.stop_all()


def _tx(node, key, **overrides):
    acct = Account.from_key(key)
    tx = {
        "type": 2,
        "chainId": node.info["chain_id"],
        "nonce": int(result(node.urls[0], "eth_getTransactionCount", [acct.address, "pending"]), 16),
        "to": "0x" + "35" * 20,
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": 10 * GWEI,
        "maxPriorityFeePerGas": GWEI,
    }
    tx.update(overrides)
    return "0x" + bytes(acct.sign_transaction(tx).raw_transaction).hex()


def _error(node, raw: str) -> dict:
    answer = rpc(node.urls[0], "eth_sendRawTransaction", [raw])
    assert "error" in answer, f"accepted: {answer}"
    return answer["error"]


def _state(node, address):
    url = node.urls[0]
    return (
        result(url, "eth_getBalance", [address, "latest"]),
        result(url, "eth_getTransactionCount", [address, "pending"]),
    )


def test_bad_transactions_get_standard_errors_and_change_nothing(node):
    key = node.accounts[0]["private_key"]
    sender = Account.from_key(key).address
    height = node.height(0)

    # A valid transaction, finalized, then sent again with its old nonce.
    good = _tx(node, key)
    tx_hash = result(node.urls[0], "eth_sendRawTransaction", [good])
    receipt = peers.wait_until(
        lambda: result(node.urls[0], "eth_getTransactionReceipt", [tx_hash]), 30, "the receipt")
    assert receipt["status"] == "0x1"
    before = _state(node, sender)
    cases = {
        "malformed": ("0xdeadbeef", "rlp"),
        "empty": ("0x", "rlp"),
        "wrong chain id": (_tx(node, key, chainId=1), "invalid chain id"),
        "nonce too low": (_tx(node, key, nonce=int(before[1], 16) - 1), "nonce too low"),
        "nonce too far ahead": (_tx(node, key, nonce=1_000_000), "nonce too high"),
        "insufficient funds": (_tx(node, key, value=10**40), "insufficient funds"),
        "gas above block limit": (_tx(node, key, gas=40_000_000), "exceeds block gas limit"),
        "fee cap below base fee": (_tx(node, key, maxFeePerGas=1, maxPriorityFeePerGas=1), "max fee per gas less than block base fee"),
    }

    # A signature that recovers to nobody: flip a bit in the last byte of s.
    raw = bytearray(bytes.fromhex(_tx(node, key)[2:]))
    raw[-1] ^= 0x01
    cases["bad signature"] = ("0x" + raw.hex(), "")

    for name, (raw_tx, needle) in cases.items():
        err = _error(node, raw_tx)
        assert err["code"] in (-32000, -32602), f"{name}: {err}"
        assert needle in err["message"].lower(), f"{name}: {err}"
        assert _state(node, sender) == before, f"{name} changed state"

    # Still alive and finalizing.
    node.wait_height(0, height + 3)
    assert _state(node, sender) == before


def test_bad_requests_get_protocol_errors(node):
    import json
    import urllib.request

    url = node.urls[0]

    def raw_post(body: bytes) -> dict:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    assert raw_post(b"{not json")["error"]["code"] == -32700
    assert raw_post(b'{"jsonrpc":"2.0","id":1}')["error"]["code"] == -32600
    assert rpc(url, "eth_nope", [])["error"]["code"] == -32601
    assert rpc(url, "eth_getBalance", ["0x1234", "latest"])["error"]["code"] == -32602
    assert rpc(url, "eth_getBlockByNumber", ["newest", False])["error"]["code"] == -32602


def test_bank_module_answers_abi_calls_and_supply_adds_up(node):
    """The bank native module at its system address answers ABI-encoded calls like a contract."""
    from eth_utils import keccak

    url = node.urls[0]
    bank = "0x0000000000000000000000000000000000b77000"

    def call(signature: str) -> int:
        data = "0x" + keccak(text=signature)[:4].hex()
        return int(result(url, "eth_call", [{"to": bank, "data": data}, "latest"]), 16)

    # Dev accounts and validator operators hold 1,000,000 BTT each; each validator's
    # 100,000 BTT self-bond is created at genesis too; every block since mints the emission.
    genesis_supply = ((len(node.accounts) + len(node.operators)) * 1_000_000
                      + node.n_validators * 100_000) * 10**18
    emission = int(result(url, "btt_getParams", [])["params"]["emission_per_block"])
    tx_hash = result(url, "eth_sendRawTransaction", [_tx(node, node.accounts[1]["private_key"])])
    peers.wait_until(lambda: result(url, "eth_getTransactionReceipt", [tx_hash]), 30, "the receipt")

    def consistent_read():
        # Calls may straddle a block; take readings between two equal heights.
        height = int(result(url, "eth_blockNumber", []), 16)
        burned = call("burned()")
        supply = call("totalSupply()")
        same = int(result(url, "eth_blockNumber", []), 16) == height
        return (height, supply, burned) if same else None

    height, supply, burned = peers.wait_until(consistent_read, 10, "a stable supply reading")
    assert burned > 0, "the transfer burned its base fee"
    assert supply + burned == genesis_supply + emission * height
    answer = rpc(url, "eth_call", [{"to": bank, "data": "0xdeadbeef"}, "latest"])
    assert answer["error"]["code"] == 3, answer
