#!/usr/bin/env bash
# Install what building and testing berth needs on Debian 12, as root. Idempotent.
#
# System packages: a C toolchain and pkg-config for the -sys crates, libseccomp (youki's
# libcontainer links it), libelf and zlib (libbpf, for cgroup v2 device rules),
# busybox-static (the test image), tini (its static build is what `--init` runs, as
# Docker's docker-init), runc and hyperfine (the benchmark's peer and timer),
# skopeo and docker.io (interoperability tests: they read what berth saves and the other way
# round; the tests start a private dockerd), docker-compose (1.29, driven against berthd by
# a test), python3-docker (the Python SDK drives berthd), jq,
# nftables (berth's NAT and published ports are applied with nft), iproute2, iptables, and
# iperf3 (the network benchmark).
# Rust itself comes from rustup; it is not installed here.
set -euo pipefail

packages=(build-essential pkg-config libseccomp-dev libelf-dev zlib1g-dev busybox-static runc tini skopeo docker.io docker-compose python3-docker hyperfine jq procps nftables iproute2 iptables iperf3)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (>= 1.89) with rustup, e.g." >&2
    echo "  curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y && . ~/.cargo/env" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The test runner: one process per test, per-test timeouts (.config/nextest.toml).
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
# The fuzz targets' driver (libFuzzer; fuzz/run.sh builds them on stable, no sanitizer).
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
