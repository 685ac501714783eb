"""Proof of stake on a chain of real ``btt chain run`` processes on 127.0.0.1.

- A standby validator stakes with ``btt stake create-validator``, is in the
  active set from the next epoch and proposes blocks there; a genesis validator
  that unbonds its self-bond leaves at the following boundary; the chain never
  stalls across either change.
- A validator running the ``btt-equivocator`` test build signs conflicting
  votes; an honest node reports the evidence, anyone submits it with
  ``btt stake evidence --submit``, and the validator and its delegators lose
  exactly the slash fraction; the same evidence a second time is refused.
- A validator that is down for a whole downtime window is slashed the downtime
  fraction and jailed at the next boundary, leaves the set, and after its jail
  time unjails with ``btt stake unjail`` and is elected again.
- A governance proposal that lowers the block gas limit passes with
  stake-weighted votes and is in force from exactly its effective height; a
  proposal below quorum fails, burns its deposit and changes nothing.

Amounts are compared exactly, in wei, as the node's views report them.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import peers
from chainnet import Chain, result

pytestmark = pytest.mark.btt

BTT = 10**18
EPOCH = 20


def btt_cli(chain: Chain, *args: str, key: dict | None = None, url: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``btt <args> --rpc <url> --json``, signing with ``key`` (an operator or
    dev account) through a key file when given."""
    argv = [str(chain.btt), *args, "--rpc", url or chain.urls[0], "--json"]
    if key is not None:
        key_file = chain.dir / f"key-{key['address']}.hex"
        key_file.write_text(key["private_key"] + "\n")
        key_file.chmod(0o600)
        argv += ["--key-file", str(key_file)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stderr}"
                             f"\n{chain.logs()}")
    return out


def cli_json(chain: Chain, *args: str, **kw) -> dict:
    out = btt_cli(chain, *args, **kw)
    return json.loads(out.stdout.strip().splitlines()[-1])


def validators(chain: Chain, epoch: int, node: int = 0) -> dict:
    """``btt_getValidators(epoch)``: operator address (lowercase) to its view."""
    answer = result(chain.urls[node], "btt_getValidators", [epoch])
    return {v["operator"].lower(): v for v in answer["validators"]}


def epoch_of(height: int) -> int:
    return height // EPOCH


def block(chain: Chain, number: int, node: int = 0) -> dict:
    b = result(chain.urls[node], "eth_getBlockByNumber", [hex(number), False])
    assert b is not None, f"no block {number}"
    return b


def assert_no_stall(chain: Chain, first: int, last: int, node: int = 0) -> None:
    """Every block in ``first..=last`` follows its parent within 5 leader timeouts."""
    times = [int(block(chain, n, node)["timestamp"], 16) for n in range(first, last + 1)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) <= 5, f"a {max(gaps)} s gap between blocks {first} and {last}"


@pytest.fixture
def standby_chain(tmp_path):
    c = Chain(tmp_path, n=4, standby=1, epoch_length=EPOCH)
    c.start_all()
    try:
        for i in range(5):
            c.wait_height(i, 2)
        yield c
    finally:
        c.stop_all()


def test_a_validator_joins_by_staking_and_one_leaves_by_unbonding(standby_chain):
    chain = standby_chain
    new = chain.standby[0]
    new_op = chain.operator(new)["address"].lower()
    assert new_op not in validators(chain, 0)
    assert len(validators(chain, 0)) == 4

    # The standby node stakes 200,000 BTT (more than any genesis validator's 100,000).
    out = cli_json(chain, "stake", "create-validator",
                   "--validator-key", str(chain.node_dir(new) / "validator.key"),
                   "--amount", "200000", "--commission-bps", "500",
                   key=chain.operator(new))
    assert out["status"] == "success", out
    staked_at = out["block"]
    joined = epoch_of(staked_at) + 1
    chain.wait_height(0, joined * EPOCH + 2 * EPOCH)
    members = validators(chain, joined)
    assert new_op in members and len(members) == 5, members
    assert int(members[new_op]["tokens"]) == 200_000 * BTT
    assert members[new_op]["commissionBps"] == 500
    # Never before the boundary that follows the stake.
    assert new_op not in validators(chain, joined - 1)
    # It signs in its epochs: some block there names it as proposer.
    span = range(joined * EPOCH, joined * EPOCH + 2 * EPOCH)
    proposers = {block(chain, n)["miner"].lower() for n in span}
    assert new_op in proposers, f"{new_op} proposed none of blocks {span}: {proposers}"

    # Validator 3 undelegates its whole self-bond and drops out at the next boundary.
    leaving = chain.operator(3)
    out = cli_json(chain, "stake", "undelegate", "--validator", leaving["address"],
                   "--amount", "all", key=leaving)
    assert out["status"] == "success", out
    left = epoch_of(out["block"]) + 1
    chain.wait_height(0, left * EPOCH + EPOCH)
    members = validators(chain, left)
    assert leaving["address"].lower() not in members
    assert new_op in members and len(members) == 4
    # Without validator 3 the other four finalize on their own.
    chain.kill(3)
    top = chain.current(0)
    chain.wait_height(0, top + EPOCH)
    assert_no_stall(chain, 1, chain.current(0))
    chain.assert_consistent([0, 1, 2, new])


@pytest.fixture
def equivocating_chain(tmp_path):
    # The honest validators block the equivocator, so it stops proposing; a downtime slash
    # would then blur the exact double-signing one, so the downtime window is out of reach.
    c = Chain(tmp_path, n=4, epoch_length=EPOCH, equivocators=(3,),
              params={"downtime_window_blocks": 10_000_000})
    c.start_all()
    try:
        # The honest three block the equivocator's connection when they catch its
        # conflicting votes, so it may never catch up: the chain needs only them.
        for i in range(3):
            c.wait_height(i, 2)
        yield c
    finally:
        c.stop_all()


def test_an_equivocating_validator_is_slashed_by_evidence(equivocating_chain):
    chain = equivocating_chain
    cheat = chain.operator(3)["address"]
    delegator = chain.accounts[0]
    out = cli_json(chain, "stake", "delegate", "--validator", cheat, "--amount", "5000",
                   key=delegator)
    assert out["status"] == "success", out

    # Whichever honest node got both of a pair of conflicting votes reports them.
    evidence = peers.wait_until(
        lambda: next((e for i in range(3)
                      if (e := result(chain.urls[i], "btt_getEvidence", []))), None),
        60, "an honest node to report the equivocation", chain.logs)
    params = result(chain.urls[0], "btt_getParams", [])
    bps = int(params["params"]["slash_double_sign_bps"])
    assert bps == 500

    def stake_of(addr: str) -> dict:
        return {d["validator"].lower(): d for d in result(chain.urls[0], "btt_getDelegations",
                                                          [addr])}[cheat.lower()]

    before_val = result(chain.urls[0], "btt_getValidator", [cheat])
    assert before_val["status"] == "bonded", before_val
    before_del = stake_of(delegator["address"])
    before_self = stake_of(cheat)
    reporter = chain.accounts[1]
    out = cli_json(chain, "stake", "evidence", "--submit", evidence[0], key=reporter)
    assert out["status"] == "success", out

    after_val = result(chain.urls[0], "btt_getValidator", [cheat])
    tokens = int(before_val["tokens"])
    assert int(after_val["tokens"]) == tokens - tokens * bps // 10_000
    assert after_val["status"] == "tombstoned"
    shares = int(before_val["shares"])
    for before in (before_del, before_self):
        who = stake_of(delegator["address"]) if before is before_del else stake_of(cheat)
        # Same shares, now worth the slashed tokens: exactly the fraction, rounded down.
        assert who["shares"] == before["shares"]
        assert int(who["tokens"]) == int(before["shares"]) * int(after_val["tokens"]) // shares
        assert int(before["tokens"]) - int(who["tokens"]) >= int(before["tokens"]) * bps // 10_000
    # The same evidence again is refused, and costs nothing but the failed estimate.
    again = btt_cli(chain, "stake", "evidence", "--submit", evidence[0], key=reporter,
                    check=False)
    assert again.returncode != 0
    assert "already punished" in again.stderr, again.stderr
    # The cheat leaves at the next boundary; the honest three keep finalizing.
    h = chain.current(0)
    nxt = epoch_of(h) + 1
    chain.wait_height(0, nxt * EPOCH + 5)
    assert cheat.lower() not in validators(chain, nxt)
    chain.kill(3)
    chain.wait_height(0, chain.current(0) + 10)
    chain.assert_consistent([0, 1, 2])


def test_a_validator_down_for_a_window_is_jailed_and_unjails(tmp_path):
    chain = Chain(tmp_path, n=4, epoch_length=EPOCH,
                  params={"downtime_window_blocks": 30, "jail_blocks": 20})
    chain.start_all()
    try:
        for i in range(4):
            chain.wait_height(i, 2)
        down = chain.operator(3)
        before = validators(chain, 0)[down["address"].lower()]
        chain.kill(3)
        # Jailed at the first boundary a full window after it stopped proposing.
        jailed = peers.wait_until(
            lambda: (v := result(chain.urls[0], "btt_getValidator", [down["address"]]))
            and v["status"] == "jailed" and v,
            120, "validator 3 to be jailed for downtime", chain.logs)
        bps = int(result(chain.urls[0], "btt_getParams", [])["params"]["slash_downtime_bps"])
        tokens = int(before["tokens"])
        assert int(jailed["tokens"]) == tokens - tokens * bps // 10_000
        h = chain.current(0)
        out_epoch = epoch_of(h) + 1
        chain.wait_height(0, out_epoch * EPOCH + 2)
        assert down["address"].lower() not in validators(chain, out_epoch)
        # Before its jail time is over, unjail is refused and costs nothing.
        chain.start(3)
        if chain.current(0) < jailed["jailedUntil"]:
            early = btt_cli(chain, "stake", "unjail", key=down, check=False)
            assert early.returncode != 0 and "jail" in early.stderr, early.stderr
        chain.wait_height(0, jailed["jailedUntil"] + 1)
        out = cli_json(chain, "stake", "unjail", key=down)
        assert out["status"] == "success", out
        back = epoch_of(out["block"]) + 1
        chain.wait_height(0, back * EPOCH + EPOCH)
        assert down["address"].lower() in validators(chain, back)
        chain.wait_height(3, back * EPOCH + EPOCH)
        assert_no_stall(chain, 1, chain.current(0), node=0)
        chain.assert_consistent([0, 1, 2, 3])
    finally:
        chain.stop_all()


@pytest.fixture
def gov_chain(tmp_path):
    c = Chain(tmp_path, n=4, epoch_length=EPOCH)
    c.start_all()
    try:
        for i in range(4):
            c.wait_height(i, 2)
        yield c
    finally:
        c.stop_all()


def test_governance_changes_the_gas_limit_from_its_height_and_quorum_is_enforced(gov_chain):
    chain = gov_chain
    params = result(chain.urls[0], "btt_getParams", [])["params"]
    assert int(params["gas_limit"]) == 30_000_000
    voting = int(params["voting_period_blocks"])
    min_deposit = int(params["min_deposit"])

    # Below quorum first: only a small delegator votes.
    small = chain.accounts[2]
    out = cli_json(chain, "stake", "delegate", "--validator", chain.operator(0)["address"],
                   "--amount", "10", key=small)
    assert out["status"] == "success", out
    h = chain.current(0)
    doomed = cli_json(chain, "gov", "propose", "--param", "gas_limit", "--value", "25000000",
                      "--effective-height", str(h + voting + 40), "--deposit",
                      str(min_deposit // BTT), "--description", "too few votes", key=small)
    assert cli_json(chain, "gov", "vote", str(doomed["id"]), "yes", key=small)["status"] == \
        "success"
    # Neither proposer sends anything else, so their balances move only by the tallies.
    small_balance = balance(chain, small["address"])

    # Then one that passes: three of four validators (75 % of bonded stake) vote yes.
    h = chain.current(0)
    effective = h + voting + 30
    proposal = cli_json(chain, "gov", "propose", "--param", "gas_limit", "--value", "20000000",
                        "--effective-height", str(effective), "--deposit",
                        str(min_deposit // BTT), "--description", "smaller blocks",
                        key=chain.accounts[3])
    proposer_balance = balance(chain, chain.accounts[3]["address"])
    for v in (0, 1, 2):
        assert cli_json(chain, "gov", "vote", str(proposal["id"]), "yes",
                        key=chain.operator(v))["status"] == "success"
    assert cli_json(chain, "gov", "vote", str(proposal["id"]), "no",
                    key=chain.operator(3))["status"] == "success"

    chain.wait_height(0, effective + 1)
    shown = cli_json(chain, "gov", "show", str(proposal["id"]))
    assert shown["status"] in ("passed", "executed"), shown
    # The small delegator did not vote on this one, so its 10 BTT follow validator 0's yes.
    assert int(shown["tally"]["yes"]) == 3 * 100_000 * BTT + 10 * BTT
    assert int(shown["tally"]["no"]) == 100_000 * BTT
    assert int(block(chain, effective - 1)["gasLimit"], 16) == 30_000_000
    assert int(block(chain, effective)["gasLimit"], 16) == 20_000_000
    assert int(result(chain.urls[0], "btt_getParams", [])["params"]["gas_limit"]) == 20_000_000

    failed = cli_json(chain, "gov", "show", str(doomed["id"]))
    assert failed["status"] == "rejected_no_quorum", failed
    # Its change never happened (the gas limit went from 30M straight to 20M above) and its
    # deposit was burned, not refunded; the passed one's deposit came back exactly.
    assert int(failed["tally"]["yes"]) == 10 * BTT
    assert balance(chain, small["address"]) == small_balance
    assert balance(chain, chain.accounts[3]["address"]) == proposer_balance + int(
        shown["deposit"])
    listed = cli_json(chain, "gov", "list")
    assert [p["id"] for p in listed["proposals"]] == [doomed["id"], proposal["id"]]
    assert_no_stall(chain, 1, chain.current(0))


def balance(chain: Chain, address: str) -> int:
    return int(result(chain.urls[0], "eth_getBalance", [address, "latest"]), 16)
