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

# Times commands in alternating rounds of 5 runs (the VM's speed drifts within minutes, so
# all runs of one command before all of the other would fold the drift into the ratio).
# Usage: timed_rounds SAMPLES ROUNDS FIRST_WARMUP hyperfine-args... ; appends one line per
# run to SAMPLES: the command's name, a tab, the run's time in seconds.
timed_rounds() {
    local samples=$1 rounds=$2 first_warmup=$3 round json warmup
    shift 3
    : > "$samples"
    for round in $(seq "$rounds"); do
        json=$samples.$round.json
        warmup=1; [ "$round" = 1 ] && warmup=$first_warmup
        if ! hyperfine -N --style none --warmup "$warmup" --runs 5 --export-json "$json" "$@" \
            >/dev/null 2>"$samples.err"; then
            cat "$samples.err" >&2
            return 1
        fi
        jq -r '.results[] | .command as $c | .times[] | "\($c)\t\(.)"' "$json" >> "$samples"
        rm -f "$json" "$samples.err"
    done
}

# The median, in seconds, of the runs of command "$2" in SAMPLES "$1" (see timed_rounds).
sample_median() {
    awk -F'\t' -v n="$2" '$1 == n { print $2 }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
