#!/usr/bin/env bash
# Loopback download benchmark of btt against libtorrent and aria2 (see bench/driver.py for what is
# measured and how). One run on one machine; prints a markdown table and writes it to bench/out/.
#
# Environment (all optional):
#   BENCH_SIZE_MB=1024 BENCH_PIECE_KB=1024 BENCH_RUNS=3   torrent size, piece size, runs per cell
#   BENCH_ROWS=libtorrent-libtorrent,libtorrent-aria2     a subset of the rows
#   BENCH_DIR=/path   BENCH_DROP_CACHES=0|1               where the data goes; drop the page cache
#   BENCH_BUILD=0                                         do not build btt (use BTT_BIN or an old build)
#   BTT_BIN=/path/to/btt                                  the btt to measure (skips the build)
#
# Needs the programs scripts/setup-test-env.sh installs, Debian's /usr/bin/python3 and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${BTT_BIN:-}" ] && [ "${BENCH_BUILD:-1}" = 1 ]; then
    if ! command -v cargo >/dev/null 2>&1; then
        export BENCH_BTT_NOTE="cargo not found, so btt was not built"
        echo "bench: $BENCH_BTT_NOTE; btt rows will be skipped" >&2
    elif cargo build --release -p btt; then
        export BTT_BIN="$PWD/target/release/btt"
    else
        export BENCH_BTT_NOTE="cargo build --release -p btt failed"
        echo "bench: $BENCH_BTT_NOTE; btt rows will be skipped" >&2
    fi
fi

exec /usr/bin/python3 bench/driver.py
