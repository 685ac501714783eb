"""A paid swarm: the Speed market (``docs/speed.md``) end to end on a devnet.

One ``btt seed --reserve`` sells its upload (capped so the swarm lasts about
half a minute) to two ``btt download --budget`` buyers, while two plain
``btt download`` peers and a libtorrent leecher share the same seeder for
free. Every peer dials the seeder with ``--peer``; DHT and LSD are off.

Checked:

* every downloader ends with the source's bytes (SHA-256), and libtorrent
  logged no peer or protocol error about the btt peers (the ``by_speed``
  extension must be invisible to a client that does not speak it);
* each buyer's ``market.spent`` stays within its budget, and someone paid;
  its ``market.locked`` is what its channel book says is still locked;
* the seller's accepted vouchers (``btt market channels --json``) add up to
  exactly what the buyers say they spent, and each buyer's channel book
  promised exactly its ``spent``;
* after the seller claims on SIGTERM, its balance on chain rose by exactly
  Σ(vouchers) − Σ(fees of its claim transactions), read with web3.py.

A second test checks that turning the market on without a key or without a
reachable chain fails at once with an error naming the flag to fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import chain
import peers

pytestmark = pytest.mark.btt

SIZE = 6 * peers.MIB
PIECE = 64 * peers.KIB
RESERVE_WEI_PER_BYTE = 1000
MAX_PRICE_WEI_PER_BYTE = 5000
BUDGET_BTT = "1"
BUDGET_WEI = 10**18
# Downloaders also trade pieces among themselves, but each piece leaves the seeder at least
# once, and the market sells slots per 10 s rechoke round: about 25 s at this rate.
UPLOAD_LIMIT = 500_000
TRANSFER_TIMEOUT_S = 180
# Claims wait for finality: give the seller time to claim on SIGTERM.
SELLER_STOP_GRACE_S = 90

# Why libtorrent may drop a btt peer without anything being wrong.
NORMAL_CLOSE = (
    "end of file",
    "connection reset",
    "broken pipe",
    "upload to upload",
    "torrent finished",
    "stopping torrent",
    "closed by the remote",
    "operation aborted",
    "too many connections",
    "duplicate peer",
    "self connection",
    "the peer is not interesting",
    "timed out: no interest",
    "no error",
    "success",
)


def _start_devnet(binary: Path, directory: Path) -> chain.Devnet:
    """``btt chain devnet`` with one validator (two shared cores) on ports from the OS."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "devnet.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BTT_")}
    env.setdefault("BTT_LOG", "info")
    cmd = [str(binary), "chain", "devnet", "--validators", "1", "--dir", str(directory / "net"),
           "--rpc-port", str(peers.free_port()), "--p2p-port", str(peers.free_port()), "--json"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env)
    try:
        net = chain.parse_ready_line(chain._read_line(proc, chain.READY_TIMEOUT_S, log_path))
    except BaseException:
        proc.kill()
        proc.wait(timeout=chain.STOP_TIMEOUT_S)
        raise
    net.dir, net.process, net.log_path = directory, proc, log_path
    return net


@pytest.fixture
def devnet(tmp_path: Path):
    net = _start_devnet(peers.btt_binary(), tmp_path / "devnet")
    try:
        yield net
        net.check_running()
    finally:
        net.stop()


def _lt_peer_errors(log: Path) -> list[str]:
    """libtorrent's peer errors and abnormal disconnects, from its alert log."""
    bad = []
    for line in log.read_text(errors="replace").splitlines():
        if "peer_error_alert" in line:
            bad.append(line)
        elif "peer_disconnected_alert" in line:
            if not any(reason in line.lower() for reason in NORMAL_CLOSE):
                bad.append(line)
    return bad


def _report(proc: peers.Proc) -> dict:
    lines = [line for line in proc.stdout().splitlines() if line.strip()]
    assert lines, f"{proc.name} printed no JSON summary\n{proc.logs()}"
    return json.loads(lines[-1])


def _fees_paid(w3, who: str, first_block: int, last_block: int) -> tuple[int, int]:
    """Σ gasUsed × effectiveGasPrice of ``who``'s transactions in the blocks, and their count."""
    fees, count = 0, 0
    for n in range(first_block, last_block + 1):
        block = w3.eth.get_block(n, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"].lower() == who.lower():
                receipt = w3.eth.get_transaction_receipt(tx["hash"])
                fees += receipt["gasUsed"] * receipt["effectiveGasPrice"]
                count += 1
    return fees, count


def test_paid_and_free_peers_share_a_seller(tmp_path: Path, swarm: peers.Swarm, btt: peers.Btt,
                                            devnet: chain.Devnet):
    from web3 import Web3

    started = time.monotonic()
    rpc = devnet.rpc[0]
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 10}))
    seller_acct, payer_accts = devnet.accounts[1], devnet.accounts[2:4]
    seller = Web3.to_checksum_address(seller_acct.address)
    keys = tmp_path / "keys"
    keys.mkdir()

    def market_flags(name: str, acct: chain.Account) -> list:
        key = acct.write_key(keys / f"{name}.key")
        return ["--chain-rpc", rpc, "--wallet-key-file", key, "--market-dir", tmp_path / f"market-{name}"]

    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    content = peers.make_single_file(seed_dir, "speed.bin", SIZE, seed=77)
    torrent = btt.create(content, tmp_path / "speed.torrent", piece_size=PIECE)

    # The seller sends no transaction before it claims, so its balance is steady until then.
    block_before = w3.eth.block_number
    balance_before = w3.eth.get_balance(seller)

    seeder = btt.seed(torrent, seed_dir, extra=[
        "--reserve", RESERVE_WEI_PER_BYTE, "--upload-limit", UPLOAD_LIMIT, "--log-interval", 2,
        *market_flags("seller", seller_acct)])
    assert "market on: selling" in seeder.stderr(), seeder.logs()
    at_seeder = [("127.0.0.1", seeder.port)]

    payers = []
    for i, acct in enumerate(payer_accts):
        out = tmp_path / f"payer{i}"
        proc = btt.download(torrent, out, peers=at_seeder, extra=[
            "--budget", BUDGET_BTT, "--max-price", MAX_PRICE_WEI_PER_BYTE,
            *market_flags(f"payer{i}", acct)])
        payers.append((proc, out, tmp_path / f"market-payer{i}"))
    plain = []
    for i in range(2):
        out = tmp_path / f"plain{i}"
        plain.append((btt.download(torrent, out, peers=at_seeder), out))
    lt_out = tmp_path / "lt"
    lt_session = swarm.libtorrent("lt-leech")
    lt_leech = lt_session.add(torrent, lt_out)
    lt_leech.connect_peer("127.0.0.1", seeder.port)

    # Every btt downloader completes with the right bytes.
    reports = {}
    for proc, out in [(p, o) for p, o, _ in payers] + plain:
        rc = proc.wait_exit(TRANSFER_TIMEOUT_S, watch=[seeder])
        assert rc == 0, f"{proc.name} exited {rc}\n{proc.logs()}"
        peers.assert_same_content(content, out / content.name)
        report = _report(proc)
        assert report["complete"] and report["hash_failures"] == 0, report
        reports[proc.name] = report
    lt_leech.wait_seeding(timeout_s=TRANSFER_TIMEOUT_S, watch=[seeder])
    peers.assert_same_content(content, lt_out / content.name)
    swarm_s = time.monotonic() - started

    # Plain downloads are untouched by the market; buyers stay within budget and someone paid.
    for proc, _ in plain:
        assert "market" not in reports[proc.name], reports[proc.name]
        assert "market on" not in proc.stderr(), proc.stderr()
    spent = {}
    for proc, _, market_dir in payers:
        m = reports[proc.name]["market"]
        assert int(m["budget"]) == BUDGET_WEI, m
        assert 0 <= int(m["spent"]) <= BUDGET_WEI, m
        spent[proc.name] = int(m["spent"])
        # The buyer's channel book promised exactly what it reports spent.
        res = btt.run("market", "channels", "--json", "--market-dir", market_dir)
        assert res.returncode == 0, res.stderr
        channels = res.json()["channels"]
        promised = sum(int(c["promised"]) for c in channels)
        assert promised == spent[proc.name], (promised, m, res.stdout)
        for c in channels:
            assert int(c["locked"]) == int(c["deposit"]) - int(c["promised"]), c
        assert int(m["locked"]) == sum(int(c["locked"]) for c in channels), (m, channels)
    assert sum(spent.values()) > 0, f"no buyer paid anything: {reports}\n{seeder.logs()}"

    # libtorrent met nothing it calls an error from the btt peers.
    errors = _lt_peer_errors(lt_session.log_path)
    assert not errors, "libtorrent logged peer errors:\n" + "\n".join(errors)

    # The seller claims everything it holds on SIGTERM, then exits 0.
    rc = seeder.stop(grace_s=SELLER_STOP_GRACE_S)
    assert rc == 0, f"btt seed exited {rc} on SIGTERM\n{seeder.logs()}"
    res = btt.run("market", "channels", "--json", "--market-dir", tmp_path / "market-seller")
    assert res.returncode == 0, res.stderr
    vouchers = res.json()["vouchers"]
    accepted = sum(int(v["cumulative"]) for v in vouchers)
    assert accepted == sum(spent.values()), (vouchers, spent)
    for v in vouchers:
        assert v["claimed"] == v["cumulative"], v
    payer_addrs = {a.address.lower() for a in payer_accts}
    assert {v["payer"].lower() for v in vouchers} <= payer_addrs, vouchers

    # On chain: the seller got exactly the vouchers, less the fees of its claims.
    block_after = w3.eth.block_number
    balance_after = w3.eth.get_balance(seller)
    fees, claims = _fees_paid(w3, seller, block_before, block_after)
    assert claims == sum(1 for v in vouchers if int(v["cumulative"]) > 0), (claims, vouchers)
    assert balance_after - balance_before == accepted - fees, (
        f"seller balance moved by {balance_after - balance_before} wei; "
        f"vouchers {accepted} − fees {fees} = {accepted - fees}")
    # The wallet view agrees: everything claimed, nothing claimable, the balance is free.
    res = btt.run("market", "earnings", "--json", "--chain-rpc", rpc, "--market-dir", tmp_path / "market-seller",
                  "--wallet-key-file", keys / "seller.key")
    assert res.returncode == 0, res.stderr
    view = res.json()
    assert view["wallet"] == seller, view
    assert (int(view["claimed"]), int(view["claimable"]), int(view["forfeited"])) == (accepted, 0, 0), view
    assert int(view["free"]) == balance_after, view
    # A second claim finds nothing left.
    res = btt.run("market", "claim", "--json", "--chain-rpc", rpc, "--market-dir", tmp_path / "market-seller",
                  "--wallet-key-file", keys / "seller.key")
    assert res.returncode == 0, res.stderr
    assert res.json()["total"] == "0", res.stdout

    rows = [("seller", seller_acct.address, f"+{accepted}", f"fees {fees} in {claims} claims")]
    for (proc, _, _), acct in zip(payers, payer_accts):
        rows.append((proc.name, acct.address, f"-{spent[proc.name]}",
                     f"{reports[proc.name]['bytes_downloaded']} bytes"))
    for proc, _ in plain:
        rows.append((proc.name, "-", "0", f"{reports[proc.name]['bytes_downloaded']} bytes"))
    rows.append(("libtorrent", "-", "0", f"{SIZE} bytes"))
    print(f"\nspeed swarm: {swarm_s:.1f} s for 5 downloads of {SIZE} bytes; wei moved:")
    for row in rows:
        print("  {:<22} {:<44} {:>16}  {}".format(*row))


def test_market_needs_a_key_and_a_chain(tmp_path: Path, btt: peers.Btt):
    content = peers.make_single_file(tmp_path / "data", "small.bin", 3 * PIECE, seed=5)
    torrent = btt.create(content, tmp_path / "small.torrent", piece_size=PIECE)
    out = tmp_path / "out"

    res = btt.run("download", torrent, "-o", out, "--listen-port", peers.free_port(), "--budget", "1")
    assert res.returncode != 0
    assert "no wallet key" in res.stderr and "--wallet-key-file" in res.stderr, res.stderr

    key = tmp_path / "k"
    key.write_text("0x" + "11" * 32 + "\n")
    key.chmod(0o600)
    closed = f"http://127.0.0.1:{peers.free_port()}"
    res = btt.run("seed", torrent, content.parent, "--listen-port", peers.free_port(), "--reserve", "1000",
                  "--wallet-key-file", key, "--chain-rpc", closed)
    assert res.returncode != 0
    assert f"the chain at {closed} cannot be used" in res.stderr and "--chain-rpc" in res.stderr, res.stderr

    # Spending limits without a budget are a mistake, not a silent no-op.
    res = btt.run("download", torrent, "-o", out, "--max-price", "5")
    assert res.returncode != 0 and "--budget" in res.stderr, res.stderr
    assert not (out / content.name).exists()
