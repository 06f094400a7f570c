#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the end-to-end tests that run real
# containers (so: as root), then a short smoke run of the benchmark script.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "the end-to-end tests run real containers: run as root" >&2
    exit 1
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The daemon tests run berthd with berth-runtime and berth-monitor from the same target
# directory; nextest builds only what test targets name, so build every binary first.
cargo build --workspace --bins --quiet
cargo nextest run --workspace --no-tests=fail
# Every parser of untrusted input under libFuzzer for a short while (fuzz/run.sh).
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash fuzz/run.sh
# The benchmark is not a test, but a broken benchmark should not wait for someone to run it.
if ! out=$(BENCH_RUNS=3 bash bench/runtime-start.sh 2>&1); then
    echo "$out"
    echo "bench/runtime-start.sh failed" >&2
    exit 1
fi
if ! out=$(BENCH_RUNS=2 BENCH_CONCURRENT=5 bash bench/daemon-run.sh 2>&1); then
    echo "$out"
    echo "bench/daemon-run.sh failed" >&2
    exit 1
fi
if ! out=$(BENCH_RUNS=2 BENCH_SECONDS=1 bash bench/network.sh 2>&1); then
    echo "$out"
    echo "bench/network.sh failed" >&2
    exit 1
fi
