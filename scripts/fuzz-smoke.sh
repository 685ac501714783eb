#!/usr/bin/env bash
# Runs every fuzz target briefly (FUZZ_SECONDS each, default 15; 0 skips) with cargo-fuzz on the
# nightly toolchain, installing cargo-fuzz when missing. Crashes fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-15}
[ "$seconds" = 0 ] && { echo "fuzz-smoke: FUZZ_SECONDS=0, not fuzzing"; exit 0; }
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz-smoke: no nightly toolchain on this machine; fuzz targets need it" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=$(cargo +nightly fuzz list)
for target in $targets; do
    echo "fuzz-smoke: $target for ${seconds}s"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3
done
echo "fuzz-smoke: all targets ran ${seconds}s without a crash"
