#!/usr/bin/env bash
# Runs every test: unit and integration tests of all crates, then the interop tests against real
# third-party clients (installed by scripts/setup-test-env.sh when missing), then a short fuzz run
# of every decoder when a nightly toolchain is present (FUZZ_SECONDS=0 turns it off).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-test-env.sh

# One profile for everything: the test binaries and the btt binary the interop tests run.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked

BTT_BIN="$PWD/target/debug/btt" /usr/bin/python3 -m pytest tests/interop -q -p no:cacheprovider

scripts/fuzz-smoke.sh
