#!/usr/bin/env bash
# Transfer load on a local 4-validator BTT chain devnet: finalized transfers/s, submit→finalized
# latency (p50/p99) and CPU per validator at several offered rates (open loop). See
# bench/chain-load/src/main.rs for what is measured and how; docs/benchmarks.md ("Chain") for results.
#
# Environment (all optional):
#   CHAIN_RATES=500,1000,2000,3000,5000   offered tx/s, one row each
#   CHAIN_DURATION=20                     seconds of load per rate
#   CHAIN_SENDERS=200                     fresh funded sender accounts per rate
#   CHAIN_VALIDATORS=4                    validator processes
#   CHAIN_LOAD_ARGS="--conns 4 --tick-ms 10"  more options for the load generator
#   BTT_BIN=/path/to/btt                  the btt to measure (skips its build)
#   BENCH_BUILD=0                         build nothing (use existing release builds)
#   BTT_LOG=info                          the nodes' log filter (logs are kept in the output dir)
#
# Writes bench/out/chain-<time>/: table.md, chain-load.json, devnet.json, node-<i>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

if [ "${BENCH_BUILD:-1}" = 1 ]; then
    if [ -z "${BTT_BIN:-}" ]; then
        cargo build --release -p btt
    fi
    # One cargo at a time: the load generator builds after btt, in its own workspace and target dir.
    cargo build --release --manifest-path bench/chain-load/Cargo.toml
fi
if [ -n "${BTT_BIN:-}" ]; then BTT_DESC="btt from $BTT_BIN"; else BTT_DESC="btt $(git rev-parse --short HEAD) (working tree)"; fi
BTT_BIN=${BTT_BIN:-$ROOT/target/release/btt}
LOAD_BIN=$ROOT/bench/chain-load/target/release/chain-load
[ -x "$BTT_BIN" ] || { echo "chain.sh: no btt at $BTT_BIN; build it or set BTT_BIN" >&2; exit 1; }
[ -x "$LOAD_BIN" ] || { echo "chain.sh: no load generator at $LOAD_BIN; run without BENCH_BUILD=0" >&2; exit 1; }

VALIDATORS=${CHAIN_VALIDATORS:-4}
OUT=$ROOT/bench/out/chain-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
NET=$(mktemp -d "${TMPDIR:-/tmp}/btt-chain-bench.XXXXXX")

# Two runs of VALIDATORS consecutive free ports on 127.0.0.1 (JSON-RPC, then p2p).
read -r RPC_PORT P2P_PORT < <("$PY" - "$VALIDATORS" <<'PYEOF'
import random, socket, sys
n = int(sys.argv[1])
def free_run(avoid):
    for _ in range(200):
        base = random.randrange(20000, 60000 - n)
        if any(abs(base - a) < n for a in avoid):
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
            return base
        except OSError:
            pass
        finally:
            for s in socks: s.close()
    sys.exit("no free ports")
rpc = free_run([]); p2p = free_run([rpc]); print(rpc, p2p)
PYEOF
)

DEVNET_PID=
# Stops the devnet (SIGTERM; it stops its validators) and keeps the node logs.
stop_devnet() {
    if [ -n "$DEVNET_PID" ] && kill -0 "$DEVNET_PID" 2>/dev/null; then
        kill -TERM "$DEVNET_PID" 2>/dev/null || true
        wait "$DEVNET_PID" 2>/dev/null || true
    fi
    DEVNET_PID=
    for i in $(seq 0 $((VALIDATORS - 1))); do
        if [ -f "$NET/node-$i/node.log" ]; then cp "$NET/node-$i/node.log" "$OUT/node-$i.log"; fi
    done
}
cleanup() {
    stop_devnet
    rm -rf "$NET"
}
trap cleanup EXIT

BTT_LOG=${BTT_LOG:-info} "$BTT_BIN" chain devnet --validators "$VALIDATORS" --dir "$NET" \
    --rpc-port "$RPC_PORT" --p2p-port "$P2P_PORT" --json >"$OUT/devnet.json" 2>"$OUT/devnet.err" &
DEVNET_PID=$!
for _ in $(seq 1 900); do
    grep -q '^{' "$OUT/devnet.json" 2>/dev/null && break
    kill -0 "$DEVNET_PID" 2>/dev/null || { cat "$OUT/devnet.err" >&2; echo "chain.sh: the devnet exited" >&2; exit 1; }
    sleep 0.1
done
grep -q '^{' "$OUT/devnet.json" || { echo "chain.sh: the devnet was not ready within 90 s" >&2; exit 1; }

# shellcheck disable=SC2086
"$LOAD_BIN" --devnet "$OUT/devnet.json" --json-out "$OUT/chain-load.json" \
    --rates "${CHAIN_RATES:-500,1000,2000,3000,5000}" --duration "${CHAIN_DURATION:-20}" \
    --senders "${CHAIN_SENDERS:-200}" ${CHAIN_LOAD_ARGS:-} >"$OUT/rows.md"
stop_devnet

{
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'),"\
         "$(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM; $BTT_DESC."
    echo "$VALIDATORS validators (btt chain devnet) and the load generator on the same machine, 127.0.0.1;" \
         "${CHAIN_DURATION:-20} s per offered rate, ${CHAIN_SENDERS:-200} fresh senders per rate."
    echo
    cat "$OUT/rows.md"
} >"$OUT/table.md"
cat "$OUT/table.md"

# Node-side timings: every `<name>_ms=<number>` field the nodes logged (at BTT_LOG=chain_node=debug),
# by log message and field, over all validators. Prints nothing when the nodes log no timings.
shopt -s nullglob
"$PY" - "$OUT"/node-*.log <<'PYEOF' | tee "$OUT/node-timings.md"
import re, sys, collections
pat = re.compile(r"(\w+_ms)=([0-9.]+)")
rows = collections.defaultdict(list)
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        fields = pat.findall(line)
        if not fields:
            continue
        m = re.search(r"(?:DEBUG|INFO|TRACE|WARN)\s+(?:\S+:\s+)*?(\S+: )?([^=]*?)\s+\w+=", line)
        msg = m.group(2).strip() if m else "?"
        for k, v in fields:
            rows[(msg, k)].append(float(v))
if rows:
    print("\n| node log message | field | count | mean ms | p50 ms | p99 ms | total s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (msg, k), v in sorted(rows.items()):
        v.sort(); q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
        print(f"| {msg} | {k} | {len(v)} | {sum(v)/len(v):.1f} | {q(.5):.1f} | {q(.99):.1f} | {sum(v)/1000:.1f} |")
PYEOF
echo
echo "details: $OUT/chain-load.json; node logs: $OUT/node-*.log"
echo "note: 'other CPU %' is what the rest of the machine used meanwhile; on a shared machine it moves the results."
