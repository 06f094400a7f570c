#!/usr/bin/env bash
# Daemon benchmark, berthd beside dockerd in one run (not a test: numbers, no pass/fail).
# The same docker CLI drives both, with the same busybox image (scripts/mk-busybox-rootfs.sh,
# brought in with `docker import`):
#  1. `docker run --rm --network none busybox true` through berthd and through dockerd (this
#     dockerd has no bridge: bench/network.sh compares bridge networking), berthd's default
#     bridge too, and berth's own CLI (`berth run --rm --network none busybox true`);
#  2. N containers started at once with `docker run -d ... sleep`, wall time until all return;
#  3. resident memory: berthd idle vs dockerd + containerd, and per running container the
#     berth-monitor vs the containerd shim.
# Starts a private berthd and a private dockerd (own roots and sockets, no bridge, no
# iptables) and stops both at the end. Needs docker.io and hyperfine (scripts/install-deps.sh).
#
#   bash bench/daemon-run.sh                 # 20 runs, 100 concurrent containers
#   BENCH_RUNS=5 BENCH_CONCURRENT=20 bash bench/daemon-run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${BENCH_RUNS:-20}
concurrent=${BENCH_CONCURRENT:-100}
for t in dockerd hyperfine docker jq; do
    command -v $t >/dev/null || { echo "needs $t (bash scripts/install-deps.sh)" >&2; exit 1; }
done
cargo build --release --quiet --bin berthd --bin berth-runtime --bin berth-monitor --bin berth

work=$(mktemp -d /tmp/berth-bench-daemon.XXXXXX)
bsock=$work/berth.sock
dsock=$work/docker.sock
prefix=bdr$(printf %s "${work##*.}" | tr -dc 'a-z0-9' | head -c 4)
./target/release/berthd --root "$work/berth" --exec-root "$work/bexec" --host "unix://$bsock" \
    --cgroup-parent "berth-bench-${work##*.}" --network-prefix "$prefix" >"$work/berthd.log" 2>&1 &
bpid=$!
dockerd --data-root "$work/docker" --exec-root "$work/dexec" --pidfile "$work/docker.pid" \
    --host "unix://$dsock" --iptables=false --ip6tables=false --bridge=none \
    --containerd-namespace berth-bench --containerd-plugins-namespace berth-bench-p \
    >"$work/dockerd.log" 2>&1 &
dpid=$!
cleanup() {
    for s in "$bsock" "$dsock"; do
        ids=$(DOCKER_HOST=unix://$s docker ps -aq 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -n "$ids" ] && DOCKER_HOST=unix://$s docker rm -f $ids >/dev/null 2>&1
    done
    kill "$bpid" "$dpid" 2>/dev/null || true
    wait "$bpid" "$dpid" 2>/dev/null || true
    grep -o " $work[^ ]*" /proc/self/mounts | xargs -r -n1 umount -l 2>/dev/null || true
    rmdir /sys/fs/cgroup/*/"berth-bench-${work##*.}" 2>/dev/null || true
    berth_net_cleanup "$prefix"
    rm -rf "$work"
}
trap cleanup EXIT
B="env DOCKER_HOST=unix://$bsock docker"
BC="./target/release/berth -H unix://$bsock"
D="env DOCKER_HOST=unix://$dsock docker"
for _ in $(seq 300); do $D version >/dev/null 2>&1 && $B version >/dev/null 2>&1 && break; sleep 0.1; done

bash scripts/mk-busybox-rootfs.sh "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
$B import "$work/busybox.tar" busybox:latest >/dev/null
$D import "$work/busybox.tar" busybox:latest >/dev/null

samples=$work/run.samples
timed_rounds "$samples" $(( (runs + 4) / 5 )) 3 \
    -n berthd "$B run --rm --network none busybox true" \
    -n "berth CLI" "$BC run --rm --network none busybox true" \
    -n "berthd bridge" "$B run --rm busybox true" \
    -n dockerd "$D run --rm --network none busybox true" \
    -n "docker version (CLI floor)" "$B version"
median() { sample_median "$samples" "$1"; }
b=$(median berthd); bc=$(median "berth CLI"); bb=$(median "berthd bridge"); d=$(median dockerd); v=$(median "docker version (CLI floor)")
echo "docker run --rm --network none busybox true ($(( (runs + 4) / 5 * 5 )) runs each in alternating rounds of 5, medians; same docker CLI):"
awk -v b="$b" -v bc="$bc" -v bb="$bb" -v d="$d" -v v="$v" 'BEGIN {
    printf "  berthd                   %6.1f ms   (target <= 25 ms)\n", b*1000
    printf "  berthd, berth CLI        %6.1f ms   (berth run --rm --network none busybox true)\n", bc*1000
    printf "  berthd, default bridge   %6.1f ms   (docker run --rm busybox true)\n", bb*1000
    printf "  dockerd                  %6.1f ms\n", d*1000
    printf "  docker version           %6.1f ms   (the CLI alone, for scale)\n", v*1000
    printf "  ratio   dockerd / berthd = %.1fx\n", d/b }'

rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }
# Proportional set size: shared pages (libc, the binary's text) divided among the processes
# that map them -- what one more process really costs.
pss_kb() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }
avg() { awk '{s+=$1; n++} END { if (n) printf "%.0f", s/n; else print 0 }'; }
cpid=$(pgrep -f "containerd --config $work/dexec" || pgrep -nf "containerd.*$work" || true)
bidle=$(rss_kb "$bpid"); didle=$(rss_kb "$dpid"); cidle=$([ -n "$cpid" ] && rss_kb "$cpid" || echo 0)

start_many() {
    local dk=$1
    local t0 t1
    t0=$(date +%s%N)
    for i in $(seq "$concurrent"); do $dk run -d --network none busybox sleep 600 >/dev/null & done
    wait
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
bmany=$(start_many "$B")
brun=$($B ps -q | wc -l)
mon=$(pgrep -f "berth-monitor $work" | while read -r p; do rss_kb "$p"; done | avg)
monp=$(pgrep -f "berth-monitor $work" | while read -r p; do pss_kb "$p"; done | avg)
bbusy=$(rss_kb "$bpid")
dmany=$(start_many "$D")
drun=$($D ps -q | wc -l)
shim=$(pgrep -f "containerd-shim.*-namespace berth-bench" | while read -r p; do rss_kb "$p"; done | avg)
shimp=$(pgrep -f "containerd-shim.*-namespace berth-bench" | while read -r p; do pss_kb "$p"; done | avg)
dbusy=$(rss_kb "$dpid")
echo "$concurrent × docker run -d --network none busybox sleep, launched at once:"
printf "  berthd   %6d ms until all returned, %d running\n" "$bmany" "$brun"
printf "  dockerd  %6d ms until all returned, %d running\n" "$dmany" "$drun"
echo "resident memory:"
printf "  berthd idle                  %6d KB   (target <= 15 MB); with %d containers %d KB\n" "$bidle" "$brun" "$bbusy"
printf "  dockerd + containerd idle    %6d KB   (%d + %d); dockerd with %d containers %d KB\n" \
    "$((didle + cidle))" "$didle" "$cidle" "$drun" "$dbusy"
printf "  per container, RSS: berth-monitor %6d KB; containerd-shim %d KB\n" "$mon" "$shim"
printf "  per container, PSS: berth-monitor %6d KB   (target <= 1 MB); containerd-shim %d KB\n" "$monp" "$shimp"
