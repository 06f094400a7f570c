# Shared by the benchmark scripts (and scripts/demo.sh): removing what a private berthd or
# a networked dockerd made on the host, which they keep when they stop.

# The bridges, nftables table and iptables FORWARD rules of a berthd started with
# --network-prefix "$1".
berth_net_cleanup() {
    local p=$1 l
    ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$p" | while read -r l; do
        ip link del "$l" 2>/dev/null || true
    done
    nft delete table ip "$p" 2>/dev/null || true
    rm -f "/run/berth-network-$p.lock"
    iptables -w -S FORWARD 2>/dev/null | grep -- "--comment $p " | sed 's/^-A /-D /' |
        while read -r rule; do
            # shellcheck disable=SC2086
            iptables -w $rule 2>/dev/null || true
        done
}

# Docker's chains exist (a dockerd with iptables runs or ran on this host).
docker_chains_exist() {
    iptables -w -S 2>/dev/null | grep -q DOCKER
}

# What a dockerd with iptables left for bridge "$1" (its rules stay when it stops): rules in
# the built-in chains that jump to Docker's chains or name the bridge, Docker's chains, and
# the FORWARD policy put back to "$2". Only for a dockerd of our own: callers check
# docker_chains_exist before starting it.
docker_net_cleanup() {
    local br=$1 policy=$2 t c
    for t in filter nat; do
        iptables -w -t "$t" -S | grep '^-A ' | grep -v '^-A DOCKER' | grep -e DOCKER -e "$br" |
            sed 's/^-A /-D /' | while read -r rule; do
                # shellcheck disable=SC2086
                iptables -w -t "$t" $rule 2>/dev/null || true
            done
        for c in $(iptables -w -t "$t" -S | awk '/^-N DOCKER/ {print $2}'); do
            iptables -w -t "$t" -F "$c" 2>/dev/null || true
        done
        for c in $(iptables -w -t "$t" -S | awk '/^-N DOCKER/ {print $2}'); do
            iptables -w -t "$t" -X "$c" 2>/dev/null || true
        done
    done
    iptables -w -P FORWARD "$policy" 2>/dev/null || true
    ip link del "$br" 2>/dev/null || true
}
