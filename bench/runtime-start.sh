#!/usr/bin/env bash
# Container start benchmark: the same busybox bundle whose process is /bin/true, run with
# `berth-runtime run` and with `runc run`, in alternating rounds of 5. Prints both medians
# and the ratio. Not a test: numbers, no pass/fail.
#
#   bash bench/runtime-start.sh            # 50 runs each
#   BENCH_RUNS=200 bash bench/runtime-start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${BENCH_RUNS:-50}

command -v hyperfine >/dev/null || { echo "needs hyperfine (apt install hyperfine)" >&2; exit 1; }
command -v runc >/dev/null || { echo "needs runc (apt install runc)" >&2; exit 1; }
cargo build --release --quiet --bin berth-runtime
rt=$PWD/target/release/berth-runtime

work=$PWD/target/bench
bundle=$work/bundle
mkdir -p "$work"
[ -x "$bundle/rootfs/bin/busybox" ] || bash scripts/mk-busybox-rootfs.sh "$bundle/rootfs" >/dev/null
rm -f "$bundle/config.json"
"$rt" spec --bundle "$bundle"
jq '.process.args = ["/bin/true"]' "$bundle/config.json" > "$bundle/c" && mv "$bundle/c" "$bundle/config.json"

# What one cgroup v1 migration costs on this host right now: on v1 every container start
# pays it once (the kernel waits for an RCU grace period unless cgroup2 was mounted with
# favordynmods), and it dominates start time when it is slow.
probe=""
if [ -d /sys/fs/cgroup/memory ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
    pdir=/sys/fs/cgroup/memory/bench-probe-$$
    mkdir "$pdir"
    sleep 5 & sp=$!
    trap 'kill $sp 2>/dev/null; wait $sp 2>/dev/null; rmdir "$pdir" 2>/dev/null' EXIT
    t0=$EPOCHREALTIME; echo "$sp" > "$pdir/cgroup.procs"; t1=$EPOCHREALTIME
    probe=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f ms", (b - a) * 1000 }')
    kill $sp; wait $sp 2>/dev/null || true
    echo "$$" > /sys/fs/cgroup/memory/cgroup.procs 2>/dev/null || true
    rmdir "$pdir"
    trap - EXIT
fi

rounds=$(( (runs + 4) / 5 ))
samples=$work/runtime-start.samples
timed_rounds "$samples" "$rounds" 5 \
    -n berth-runtime "$rt --root $work/state-berth run --bundle $bundle bench-berth" \
    -n runc "runc --root $work/state-runc run --bundle $bundle bench-runc"
median() { awk -v s="$(sample_median "$samples" "$1")" 'BEGIN { print s * 1000 }'; }
b=$(median berth-runtime)
r=$(median runc)
echo "container start (run of /bin/true, $((rounds * 5)) runs each in alternating rounds of 5, medians):"
printf '  berth-runtime  %6.2f ms\n' "$b"
printf '  runc           %6.2f ms   (%s)\n' "$r" "$(runc --version | head -1)"
awk -v b="$b" -v r="$r" 'BEGIN { printf "  ratio          runc / berth-runtime = %.2fx\n", r / b }'
[ -n "$probe" ] && echo "  host: first cgroup v1 migration took $probe (cgroup2 favordynmods makes it ~0.3 ms)"
echo "  kernel: $(uname -r), cgroups: $(if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo v2; elif [ -d /sys/fs/cgroup/unified ]; then echo hybrid; else echo v1; fi)"
