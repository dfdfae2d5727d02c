#!/usr/bin/env bash
# The project's test command: installs what the tests need into .deps/ (from the package
# registries: deno from npm, the MCP reference server from npm, the Python MCP SDK from PyPI),
# then runs the whole suite. Safe to run again: installed pieces are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p .deps

if [ ! -x .deps/node_modules/.bin/deno ] || [ ! -d .deps/node_modules/@modelcontextprotocol/server-everything ]; then
  echo "test.sh: installing deno and @modelcontextprotocol/server-everything into .deps/ (npm)"
  npm install --prefix .deps --no-audit --no-fund --loglevel=error deno@2 @modelcontextprotocol/server-everything >/dev/null
fi
"$root/.deps/node_modules/.bin/deno" --version | head -1

if [ ! -x .deps/venv/bin/python ] || ! .deps/venv/bin/python -c 'import mcp' 2>/dev/null; then
  echo "test.sh: installing the Python MCP SDK into .deps/venv (PyPI)"
  python3 -m venv .deps/venv
  .deps/venv/bin/pip install --quiet --disable-pip-version-check 'mcp>=2,<3'
fi

export PATH="$root/.deps/node_modules/.bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Every package's binaries and examples: the MCP tests start sandbox-run and the egress proxy
# from beside the server, and the tool-bridge tests use crates/mcp/examples/test_upstream.
cargo build --workspace --bins --examples
cargo test --workspace --all-targets 2>&1
