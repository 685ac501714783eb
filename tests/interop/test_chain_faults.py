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
    h = chain.height(0)
    chain.wait_height(0, h + 10)
    chain.assert_consistent([0, 1, 2])
    chain.start(3)
    target = chain.height(0)
    chain.wait_height(3, target)
    chain.assert_consistent([0, 1, 2, 3])


def test_two_validators_killed_halt_without_conflicts_then_resume(chain):
    chain.kill(2)
    chain.kill(3)
    # A block already certified when they died may still land; after that, nothing.
    # Five leader timeouts (1 s each) without progress is a halt.
    first = chain.height(0)
    time.sleep(2)
    settled = max(chain.height(0), chain.height(1))
    time.sleep(5)
    assert chain.height(0) == chain.height(1) == settled, "finalized without a quorum"
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
    target = chain.height(0)
    chain.wait_height(1, target)
    top = chain.assert_consistent([0, 1, 2, 3])
    assert top >= target
