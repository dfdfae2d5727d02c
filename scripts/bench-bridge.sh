#!/usr/bin/env bash
# Median round trip of one callMCPTool to the test upstream's echo tool, measured inside a run
# (deno, node, python), beside the bare rmcp client call. Debug builds unless PROFILE=release.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
flag=(); [ "$profile" = release ] && flag=(--release)
if [ -d .deps/node_modules/.bin ]; then export PATH="$PWD/.deps/node_modules/.bin:$PATH"; fi
cargo build --quiet "${flag[@]}" --workspace --bins --examples
target=${CARGO_TARGET_DIR:-target}
"$target/$profile/examples/bridge_bench" "${1:-200}"
