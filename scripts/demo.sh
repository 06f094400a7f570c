#!/usr/bin/env bash
# The quickstart: install what is needed, build berth, and run a container end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --release --quiet --bin berth-runtime

bundle=target/demo/bundle
rm -rf target/demo
mkdir -p "$bundle"
bash scripts/mk-busybox-rootfs.sh "$bundle/rootfs" >/dev/null
rt=target/release/berth-runtime
"$rt" spec --bundle "$bundle"
# Run a shell that shows it is isolated: its own pid namespace, hostname and root.
jq '.process.args = ["sh", "-c", "echo \"hello from $(hostname): I am pid $$, / is $(touch /x 2>/dev/null && echo writable || echo read-only)\""]
    | .root.readonly = true' "$bundle/config.json" > "$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"
"$rt" --root target/demo/state run --bundle "$bundle" "demo-$$"
