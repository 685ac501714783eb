"""A full node beside 4 validators, all real ``btt chain run`` processes on 127.0.0.1.

The full node (``btt chain init --full-nodes 1``) does not vote: it follows the
validators' certificates, executes and stores every finalized block, and
serves JSON-RPC. It must hold exactly the validators' chain, forward the
transactions it receives so the validators finalize them, and catch up after a
crash, even from an empty data directory.
"""

from __future__ import annotations

import pytest

import peers
from chainnet import Chain, result

pytestmark = pytest.mark.btt

RECIPIENT = "0x" + "47" * 20  # digits only: no checksum casing


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path, n=4, full_nodes=1)
    c.start_all()
    try:
        for i in c.validators:
            c.wait_height(i, 2)
        yield c
    finally:
        c.stop_all()


def test_full_node_follows_with_identical_blocks(chain):
    (full,) = chain.full_nodes
    target = chain.current(0) + 5
    for i in chain.validators + [full]:
        chain.wait_height(i, target)
    top = chain.assert_consistent(chain.validators + [full])
    assert top >= target

    status = result(chain.urls[full], "btt_status", [])
    assert status["validatorIdentity"] is None
    assert len(status["validators"]) == 4
    validator_status = result(chain.urls[0], "btt_status", [])
    assert validator_status["validatorIdentity"] in status["validators"]
    # Full nodes never propose: every block's proposer is a validator's fee recipient, the
    # same one the validators record.
    for n in range(1, top + 1):
        ours = result(chain.urls[full], "eth_getBlockByNumber", [hex(n), False])
        theirs = result(chain.urls[0], "eth_getBlockByNumber", [hex(n), False])
        assert ours["miner"] == theirs["miner"]
        assert ours["stateRoot"] == theirs["stateRoot"]


def test_transaction_sent_to_the_full_node_is_finalized_by_the_validators(chain):
    from eth_account import Account

    (full,) = chain.full_nodes
    url = chain.urls[full]
    chain.wait_height(full, chain.current(0))
    acct = Account.from_key(chain.accounts[0]["private_key"])
    before = int(result(url, "eth_getBalance", [acct.address, "latest"]), 16)
    value = 123_456_789
    tx = acct.sign_transaction({
        "type": 2, "chainId": chain.info["chain_id"], "nonce": 0, "to": RECIPIENT,
        "value": value, "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
    })
    tx_hash = result(url, "eth_sendRawTransaction", ["0x" + bytes(tx.raw_transaction).hex()])
    # The pending nonce counts the full node's own mempool.
    assert int(result(url, "eth_getTransactionCount", [acct.address, "pending"]), 16) == 1

    receipt = peers.wait_until(
        lambda: result(url, "eth_getTransactionReceipt", [tx_hash]), 60, "the receipt on the full node",
        chain.logs)
    assert receipt["status"] == "0x1"
    number = int(receipt["blockNumber"], 16)
    # The validators finalized that very block.
    chain.wait_height(0, number)
    assert chain.block_hash(0, number) == receipt["blockHash"]
    assert result(chain.urls[0], "eth_getTransactionReceipt", [tx_hash])["blockHash"] == receipt["blockHash"]

    assert int(result(url, "eth_getBalance", [RECIPIENT, "latest"]), 16) == value
    fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    after = int(result(url, "eth_getBalance", [acct.address, "latest"]), 16)
    assert after == before - value - fee
    assert int(result(url, "eth_getTransactionCount", [acct.address, "latest"]), 16) == 1


def test_crashed_and_wiped_full_node_catches_up(chain):
    (full,) = chain.full_nodes
    chain.wait_height(full, chain.current(0))
    chain.kill(full)
    chain.wait_height(0, chain.current(0) + 10)
    chain.start(full)
    chain.wait_height(full, chain.current(0))
    chain.assert_consistent(chain.validators + [full])

    # From an empty data directory: everything comes from the validators' archives.
    chain.kill(full)
    chain.wipe(full)
    chain.start(full)
    target = chain.current(0)
    for i in chain.validators + [full]:
        chain.wait_height(i, target)
    top = chain.assert_consistent(chain.validators + [full])
    assert top >= target
