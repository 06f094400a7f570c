#!/usr/bin/env bash
# Image benchmark, berth beside Docker in one run (not a test: numbers, no pass/fail):
#  1. save + load of a three-layer image of about 100 MB (save -o, rmi, load -i);
#  2. layer unpack throughput: berth's extractor vs plain `tar -x` of the same layer.
# Starts a private berthd and a private dockerd (own roots and sockets, no bridge, no
# iptables) and stops both at the end; berth's CLI drives berthd, docker's drives dockerd.
# Needs docker.io and hyperfine (scripts/install-deps.sh).
#
# Both are timed in alternating rounds of 5 runs (bench/lib.sh), as the VM's speed drifts.
# berthd deletes what rmi collects in the background; berth's runs end only once that is
# done (its trash directory is empty), so no run leaves work for the next to pay.
#
#   bash bench/image-save-load.sh          # 10 runs each
#   BENCH_RUNS=5 bash bench/image-save-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${BENCH_RUNS:-10}
for t in dockerd hyperfine; do
    command -v $t >/dev/null || { echo "needs $t (bash scripts/install-deps.sh)" >&2; exit 1; }
done
cargo build --release --quiet --bin berth --bin berthd --bin berth-runtime --bin berth-monitor --example unpack
unpack=$PWD/target/release/examples/unpack

work=$(mktemp -d /tmp/berth-bench-image.XXXXXX)
prefix=bsl$(printf %s "${work##*.}" | tr -dc 'a-z0-9' | head -c 4)
./target/release/berthd --root "$work/berth" --exec-root "$work/bexec" --host "unix://$work/berth.sock" \
    --cgroup-parent "berth-bench-${work##*.}" --network-prefix "$prefix" >"$work/berthd.log" 2>&1 &
bpid=$!
berth="$PWD/target/release/berth -H unix://$work/berth.sock"
dockerd --data-root "$work/docker" --exec-root "$work/exec" --pidfile "$work/docker.pid" \
    --host "unix://$work/docker.sock" --iptables=false --ip6tables=false --bridge=none \
    --containerd-namespace berth-bench --containerd-plugins-namespace berth-bench-p \
    >"$work/dockerd.log" 2>&1 &
dpid=$!
cleanup() {
    kill "$bpid" "$dpid" 2>/dev/null || true
    wait "$bpid" "$dpid" 2>/dev/null || true
    grep -o " $work[^ ]*" /proc/self/mounts | xargs -r -n1 umount -l 2>/dev/null || true
    rmdir /sys/fs/cgroup/*/"berth-bench-${work##*.}" 2>/dev/null || true
    berth_net_cleanup "$prefix"
    rm -rf "$work"
}
trap cleanup EXIT
export DOCKER_HOST=unix://$work/docker.sock
for _ in $(seq 300); do docker version >/dev/null 2>&1 && $berth version >/dev/null 2>&1 && break; sleep 0.1; done

# Three layers of ~33 MB each: many small files, a few large ones, incompressible content.
ctx=$work/ctx
for l in 1 2 3; do
    mkdir -p "$ctx/l$l/small"
    for i in $(seq 400); do head -c 16384 /dev/urandom > "$ctx/l$l/small/f$i"; done
    head -c $((26 * 1024 * 1024)) /dev/urandom > "$ctx/l$l/big"
done
printf 'FROM scratch\nCOPY l1 /l1\nCOPY l2 /l2\nCOPY l3 /l3\n' > "$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t bench:1 "$ctx" >/dev/null
docker save -o "$work/seed.tar" bench:1
$berth load -q -i "$work/seed.tar"
size=$(du -sm "$work/seed.tar" | cut -f1)

rounds=$(( (runs + 4) / 5 ))
samples=$work/save-load.samples
trash_empty="while [ -n \"\$(ls -A $work/berth/trash)\" ]; do sleep 0.01; done"
timed_rounds "$samples" "$rounds" 1 \
    -n berth "bash -c '$berth save -o $work/b.tar bench:1 && $berth rmi -f bench:1 >/dev/null && $berth load -q -i $work/b.tar && $trash_empty'" \
    -n docker "bash -c 'docker save -o $work/d.tar bench:1 && docker rmi -f bench:1 >/dev/null && docker load -q -i $work/d.tar >/dev/null'"

b=$(sample_median "$samples" berth); d=$(sample_median "$samples" docker)
echo "save + rmi + load of a 3-layer ${size} MB image ($(( rounds * 5 )) runs each in alternating rounds of 5, medians):"
awk -v b="$b" -v d="$d" 'BEGIN { printf "  berth   %7.0f ms\n  docker  %7.0f ms   (dockerd %s)\n  ratio   docker / berth = %.2fx\n", b*1000, d*1000, "20.10", d/b }'

# Unpack throughput of the largest layer, berth's extractor vs tar -x, into fresh directories.
layer=$work/layer.tar
tar -C "$ctx/l1" -cf "$layer" .
mb=$(awk -v s="$(stat -c %s "$layer")" 'BEGIN { printf "%.1f", s / 1e6 }')
usamples=$work/unpack.samples
timed_rounds "$usamples" "$rounds" 1 \
    --prepare "bash -c 'rm -rf $work/out && mkdir $work/out && sync'" \
    -n berth "$unpack $layer $work/out" \
    -n tar "tar -xf $layer -C $work/out"
ub=$(sample_median "$usamples" berth); ut=$(sample_median "$usamples" tar)
echo "unpack of a ${mb} MB layer ($(( rounds * 5 )) runs each in alternating rounds of 5, medians):"
awk -v b="$ub" -v t="$ut" -v mb="$mb" 'BEGIN { printf "  berth   %7.0f MB/s\n  tar -x  %7.0f MB/s\n  ratio   berth time / tar time = %.2fx\n", mb/b, mb/t, b/t }'
