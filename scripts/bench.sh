#!/usr/bin/env bash
# Start-up cost of the sandbox, measured side by side in one run: the bare command, bwrap with a
# comparable configuration, and sandbox-run. Prints median and p95 per command (ms).
# Needs: hyperfine and bubblewrap (apt-get install hyperfine bubblewrap), a release build.
# Usage: scripts/bench.sh [RUNS]   (default 200 runs per command)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
for tool in hyperfine bwrap; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is missing: apt-get install hyperfine bubblewrap" >&2; exit 1; }
done
cargo build --release --workspace --bins >&2
SR=$PWD/target/release/sandbox-run
export PATH="$PWD/.deps/node_modules/.bin:$PATH"
command -v deno >/dev/null || { echo "bench.sh: deno is missing: run scripts/test.sh (it installs deno into .deps/)" >&2; exit 1; }
py=$(python3 -c 'import sys; print(sys.executable)')
pyprefix=$(python3 -c 'import sys; print(sys.base_prefix)')
deno=$(readlink -f "$(command -v deno)")
out=$(mktemp -d)
# bwrap: every namespace, read-only system binds, fresh /proc and /dev, private /tmp.
BW=(bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --ro-bind /etc/ld.so.cache /etc/ld.so.cache --ro-bind "$pyprefix" "$pyprefix" --ro-bind "$(dirname "$deno")" "$(dirname "$deno")" --proc /proc --dev /dev --tmpfs /tmp --setenv DENO_DIR /tmp/deno --)
row() { # name, commands...
  local name=$1; shift
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$out/$name.json" "$@" >/dev/null 2>&1
  python3 - "$out/$name.json" "$name" <<'PY'
import json, sys, statistics
data = json.load(open(sys.argv[1]))["results"]
base = None
for r in data:
    t = sorted(x * 1000 for x in r["times"])
    med = statistics.median(t); p95 = t[int(len(t) * 0.95) - 1]
    if base is None: base = med
    print(f"| {sys.argv[2]:<8} | {r['command'][:70]:<70} | {med:7.2f} | {p95:7.2f} | {med - base:+7.2f} |")
PY
}
echo "| what     | command                                                                | median ms | p95 ms | over bare |"
echo "|----------|------------------------------------------------------------------------|-----------|--------|-----------|"
row true "/bin/true" "${BW[*]} /bin/true" "$SR -- /bin/true"
row python "$py -c pass" "${BW[*]} $py -c pass" "$SR -- python3 -c pass"
row node "node -e 0" "${BW[*]} /usr/bin/node -e 0" "$SR -- node -e 0"
row deno "$deno eval 0" "${BW[*]} $deno eval 0" "$SR -- deno eval 0"
rm -rf "$out"
