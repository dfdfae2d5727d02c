#!/usr/bin/env bash
# Throughput of a download through the egress proxy against the same download direct, all on
# loopback. Usage: scripts/bench-proxy.sh [MB] (default 100; 1 MB = 10^6 bytes).
# Builds and runs crates/egress/examples/proxy_bench.rs in the debug profile (the shared build machine has
# 2 cores); set PROFILE=release for optimised figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile=()
if [[ "${PROFILE:-debug}" == release ]]; then profile=(--release); fi
exec cargo run --quiet "${profile[@]}" -p code-executor-egress --example proxy_bench -- "${1:-100}"
