"""Faults on a 4-validator chain of real processes on 127.0.0.1.

Simplex needs 3 of 4 validators: with one down blocks keep finalizing, with
two down nothing finalizes (and nothing conflicting ever does), and the chain
resumes when they return. A validator whose data is wiped catches up from its
peers. After every scenario all validators hold the same block at every
height they have.
"""

from __future__ import annotations

import time

import pytest

import peers
from chainnet import Chain

pytestmark = pytest.mark.btt


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path)
    c.start_all()
    try:
        for i in range(4):
            c.wait_height(i, 2)
        yield c
    finally:
        c.stop_all()


def test_one_validator_killed_keeps_finalizing_and_it_catches_up(chain):
    chain.kill(3)
    h = chain.current(0)
    chain.wait_height(0, h + 10)
    chain.assert_consistent([0, 1, 2])
    chain.start(3)
    target = chain.current(0)
    chain.wait_height(3, target)
    chain.assert_consistent([0, 1, 2, 3])


def test_two_validators_killed_halt_without_conflicts_then_resume(chain):
    chain.kill(2)
    chain.kill(3)
    # A block already certified when they died may still land; after that, nothing.
    # Five leader timeouts (1 s each) without progress is a halt.
    first = chain.current(0)
    time.sleep(2)
    settled = max(chain.current(0), chain.current(1))
    time.sleep(5)
    assert chain.current(0) == chain.current(1) == settled, "finalized without a quorum"
    assert settled <= first + 1
    chain.assert_consistent([0, 1])
    chain.start(2)
    chain.start(3)
    for i in range(4):
        chain.wait_height(i, settled + 5)
    chain.assert_consistent([0, 1, 2, 3])


def test_wiped_validator_catches_up(chain):
    chain.wait_height(0, 5)
    chain.kill(1)
    chain.wipe(1)
    chain.start(1)
    target = chain.current(0)
    chain.wait_height(1, target)
    top = chain.assert_consistent([0, 1, 2, 3])
    assert top >= target


def test_transactions_sent_to_one_validator_reach_every_proposer(chain):
    """Validators gossip transactions, so blocks by other proposers include what node 0 received."""
    from eth_account import Account

    from chainnet import result

    url = chain.urls[0]
    acct = Account.from_key(chain.accounts[0]["private_key"])
    proposers = set()
    for nonce in range(8):
        tx = acct.sign_transaction({
            "type": 2, "chainId": chain.info["chain_id"], "nonce": nonce, "to": "0x" + "42" * 20,
            "value": 1, "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
        })
        tx_hash = result(url, "eth_sendRawTransaction", ["0x" + bytes(tx.raw_transaction).hex()])
        receipt = peers.wait_until(
            lambda: result(url, "eth_getTransactionReceipt", [tx_hash]), 30, "the receipt", chain.logs)
        assert receipt["status"] == "0x1"
        block = result(url, "eth_getBlockByHash", [receipt["blockHash"], False])
        proposers.add(block["miner"])
    assert len(proposers) >= 2, f"only {proposers} included transactions sent to validator 0"
