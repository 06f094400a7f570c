#!/usr/bin/env bash
# The quickstart: install what is needed, build berth, and run a container end to end: a
# private berthd, the busybox image brought in with `berth import`, and `berth run`.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

bash scripts/install-deps.sh
cargo build --release --quiet --bin berthd --bin berth --bin berth-runtime --bin berth-monitor

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
./target/release/berthd --root "$work/root" --exec-root "$work/exec" --host "unix://$work/berth.sock" \
    --cgroup-parent "berth-demo-${work##*.}" --network-prefix bdemo >"$work/berthd.log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -o " $work[^ ]*" /proc/self/mounts | xargs -r -n1 umount -l 2>/dev/null || true
    rmdir /sys/fs/cgroup/*/"berth-demo-${work##*.}" 2>/dev/null || true
    berth_net_cleanup bdemo
    rm -rf "$work"
}
trap cleanup EXIT
berth() { ./target/release/berth -H "unix://$work/berth.sock" "$@"; }
for _ in $(seq 100); do berth version >/dev/null 2>&1 && break; sleep 0.05; done

bash scripts/mk-busybox-rootfs.sh "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
# As Docker Hub's busybox: `berth run -it busybox` gives a shell.
berth import --change 'CMD ["sh"]' "$work/busybox.tar" busybox >/dev/null
# A shell that shows it is isolated: its own pid namespace, hostname and read-only root.
berth run --rm --read-only --hostname berth busybox \
    sh -c 'echo "hello from $(hostname): I am pid $$, / is $(touch /x 2>/dev/null && echo writable || echo read-only)"'
# Two containers on a network of their own, one finding the other by name.
berth network create demo >/dev/null
berth run -d --name web --network demo busybox \
    sh -c 'mkdir /www && echo "hello from web, found by name" > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
berth run --rm --network demo busybox wget -qO- http://web/
berth rm -f web >/dev/null
berth network rm demo >/dev/null
