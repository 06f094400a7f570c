#!/usr/bin/env bash
# Runs every fuzz target for a while (FUZZ_SECONDS each, default 20) from generated seeds,
# failing on the first crash (libFuzzer keeps the input in fuzz/artifacts/<target>/).
# Stable Rust: no sanitizer (`-s none`); Rust's own checks (bounds, overflow in debug
# assertions, panics) are what finds bugs here. Needs cargo-fuzz (scripts/install-deps.sh).
#
#   bash fuzz/run.sh                 # all targets, 20 s each
#   FUZZ_SECONDS=600 bash fuzz/run.sh layer
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-20}
python3 seeds.py
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build -s none -O >/dev/null
for t in "${targets[@]}"; do
    echo "fuzz $t for ${seconds}s"
    if ! out=$(cargo fuzz run -s none -O "$t" -- -max_total_time="$seconds" -rss_limit_mb=1024 2>&1); then
        echo "$out" | tail -40
        echo "fuzz target $t failed: the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    echo "$out" | grep -E '^Done' || true
done
