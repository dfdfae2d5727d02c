#!/usr/bin/env bash
# Test dependencies of the MCP server's interop test: the Python MCP SDK (PyPI) in .deps/venv.
# A fragment of scripts/test.sh; safe to run again (an installed SDK is reused).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
if [ ! -x .deps/venv/bin/python ] || ! .deps/venv/bin/python -c 'import mcp' 2>/dev/null; then
  echo "install-test-deps-mcp: installing the Python MCP SDK into .deps/venv (PyPI)"
  python3 -m venv .deps/venv
  .deps/venv/bin/pip install --quiet --disable-pip-version-check 'mcp>=2,<3'
fi
.deps/venv/bin/python -c 'import importlib.metadata as m; print("python mcp SDK", m.version("mcp"))'
