#!/usr/bin/env bash
# Networking benchmark, berthd beside a dockerd with Docker's networking (iptables on, its
# own bridge) in one run (not a test: numbers, no pass/fail). The same docker CLI drives
# both, with the same busybox image:
#  1. start latency a bridge network adds: `docker run --rm busybox true` against
#     `docker run --rm --network none busybox true`, each daemon;
#  2. TCP throughput through a port published on 127.0.0.1 (berth: the kernel's DNAT;
#     Docker: its docker-proxy), iperf3 for 5 s, the server in the container's namespace.
# Needs docker.io, hyperfine, jq, iperf3 (scripts/install-deps.sh). Docker's side is skipped
# where Docker's iptables chains exist already (a Docker of the host's own is not touched).
#
#   bash bench/network.sh                  # 20 runs
#   BENCH_RUNS=5 BENCH_SECONDS=2 bash bench/network.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${BENCH_RUNS:-20}
secs=${BENCH_SECONDS:-5}
for t in dockerd hyperfine docker jq iperf3 nsenter; do
    command -v $t >/dev/null || { echo "needs $t (bash scripts/install-deps.sh)" >&2; exit 1; }
done
cargo build --release --quiet --bin berthd --bin berth-runtime --bin berth-monitor --bin berth

work=$(mktemp -d /tmp/berth-bench-net.XXXXXX)
tag=${work##*.}
prefix=bnb$(printf %s "$tag" | tr -dc 'a-z0-9' | head -c 4)
bridge=btbnch0
bsock=$work/berth.sock
dsock=$work/docker.sock
policy=$(iptables -w -S FORWARD | awk '/^-P FORWARD/ {print $3}')
with_docker=1
if docker_chains_exist; then
    echo "Docker's iptables chains exist on this host: Docker's side is skipped" >&2
    with_docker=0
fi
./target/release/berthd --root "$work/berth" --exec-root "$work/bexec" --host "unix://$bsock" \
    --cgroup-parent "berth-bench-$tag" --network-prefix "$prefix" >"$work/berthd.log" 2>&1 &
bpid=$!
dpid=
if [ "$with_docker" = 1 ]; then
    ip link add "$bridge" type bridge
    ip addr add 10.234.0.1/24 dev "$bridge"
    ip link set "$bridge" up
    dockerd --data-root "$work/docker" --exec-root "$work/dexec" --pidfile "$work/docker.pid" \
        --host "unix://$dsock" --iptables=true --ip6tables=false --bridge "$bridge" \
        --containerd-namespace berth-bench-net --containerd-plugins-namespace berth-bench-net-p \
        >"$work/dockerd.log" 2>&1 &
    dpid=$!
fi
cleanup() {
    for s in "$bsock" "$dsock"; do
        [ -S "$s" ] || continue
        ids=$(DOCKER_HOST=unix://$s docker ps -aq 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -n "$ids" ] && DOCKER_HOST=unix://$s docker rm -f $ids >/dev/null 2>&1
    done
    kill $bpid $dpid 2>/dev/null || true
    wait $bpid $dpid 2>/dev/null || true
    grep -o " $work[^ ]*" /proc/self/mounts | xargs -r -n1 umount -l 2>/dev/null || true
    rmdir /sys/fs/cgroup/*/"berth-bench-$tag" 2>/dev/null || true
    berth_net_cleanup "$prefix"
    [ "$with_docker" = 1 ] && docker_net_cleanup "$bridge" "$policy"
    rm -rf "$work"
}
trap cleanup EXIT
B="env DOCKER_HOST=unix://$bsock docker"
D="env DOCKER_HOST=unix://$dsock docker"
for _ in $(seq 300); do
    $B version >/dev/null 2>&1 && { [ "$with_docker" = 0 ] || $D version >/dev/null 2>&1; } && break
    sleep 0.1
done

bash scripts/mk-busybox-rootfs.sh "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
$B import "$work/busybox.tar" busybox:latest >/dev/null
[ "$with_docker" = 1 ] && $D import "$work/busybox.tar" busybox:latest >/dev/null

json=$work/run.json
cmds=(-n "berthd bridge" "$B run --rm busybox true" -n "berthd none" "$B run --rm --network none busybox true")
[ "$with_docker" = 1 ] && cmds+=(-n "dockerd bridge" "$D run --rm busybox true" -n "dockerd none" "$D run --rm --network none busybox true")
hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$json" "${cmds[@]}" >/dev/null 2>&1
median() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median' "$json"; }
echo "docker run --rm busybox true, bridge against --network none ($runs runs each, medians):"
bb=$(median "berthd bridge"); bn=$(median "berthd none")
awk -v b="$bb" -v n="$bn" 'BEGIN {
    printf "  berthd   bridge %6.1f ms   none %6.1f ms   added %5.1f ms   (target <= 5 ms)\n", b*1000, n*1000, (b-n)*1000 }'
if [ "$with_docker" = 1 ]; then
    db=$(median "dockerd bridge"); dn=$(median "dockerd none")
    awk -v b="$db" -v n="$dn" -v bb="$bb" -v bn="$bn" 'BEGIN {
        printf "  dockerd  bridge %6.1f ms   none %6.1f ms   added %5.1f ms\n", b*1000, n*1000, (b-n)*1000
        a = bb - bn; if (a < 0.0005) a = 0.0005
        printf "  added latency, dockerd / berthd = %.1fx\n", (b-n)/a }'
fi

# Throughput: iperf3's server in the container's network namespace, its client on the host.
throughput() {
    local dk=$1 id pid port
    id=$($dk run -d -p 127.0.0.1::5201 busybox sleep 600)
    pid=$($dk inspect -f '{{.State.Pid}}' "$id")
    port=$($dk port "$id" 5201/tcp | head -1 | cut -d: -f2)
    nsenter -t "$pid" -n iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local srv=$!
    for _ in $(seq 50); do
        nsenter -t "$pid" -n sh -c 'cat /proc/net/tcp' | grep -q ':1451 ' && break
        sleep 0.05
    done
    iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J | jq '.end.sum_received.bits_per_second'
    wait $srv 2>/dev/null || true
    $dk rm -f "$id" >/dev/null
}
echo "TCP throughput through a port published on 127.0.0.1 (iperf3, ${secs} s):"
bt=$(throughput "$B")
awk -v b="$bt" 'BEGIN { printf "  berthd   %8.2f Gbit/s   (kernel DNAT)\n", b/1e9 }'
if [ "$with_docker" = 1 ]; then
    dt=$(throughput "$D")
    awk -v b="$bt" -v d="$dt" 'BEGIN {
        printf "  dockerd  %8.2f Gbit/s   (docker-proxy)\n", d/1e9
        printf "  ratio    berthd / dockerd = %.1fx   (target >= 1)\n", b/d }'
fi
