"""Median end-to-end latency of code-executor-mcp over MCP, beside the bare interpreter start.

Run with the Python MCP SDK from the test deps (scripts/install-test-deps-mcp.sh) after a
`cargo build`:

    .deps/venv/bin/python scripts/mcp-latency.py [--runs N] [--server PATH]

It measures, in the same run and on the same machine:
  - executePython `print(1)` and executeTypescript `console.log(1)` (deno, and node) as seen by
    an MCP client (tools/call round trip through the server and the sandbox),
  - `sandbox-run` alone with the same command lines (the sandbox's own cost),
  - the bare interpreters with the same code, no sandbox.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def deno_path():
    found = shutil.which("deno")
    if found:
        return found
    local = os.path.join(ROOT, ".deps/node_modules/.bin/deno")
    if os.path.exists(local):
        return local
    sys.exit("deno not found on PATH nor in .deps; run scripts/install-test-deps-mcp.sh / scripts/test.sh")


def median_ms(fn, runs):
    fn()  # warm-up (page cache, deno's compile cache)
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def bare(cmd, code):
    def run():
        subprocess.run(cmd, input=code.encode(), stdout=subprocess.DEVNULL, check=True)
    return run


async def over_mcp(server, runs):
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(deno_path()) + ":" + env.get("PATH", "")
    env.setdefault("RUST_LOG", "warn")
    params = StdioServerParameters(command=server, args=[], env=env)
    cases = {
        "executePython print(1)": ("executePython", {"code": "print(1)"}),
        "executeTypescript console.log(1) [deno]": ("executeTypescript", {"code": "console.log(1)"}),
        "executeTypescript console.log(1) [node]": ("executeTypescript", {"code": "console.log(1)", "runtime": "node"}),
    }
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for label, (tool, args) in cases.items():
                r = await session.call_tool(tool, args)  # warm-up
                assert not r.is_error and r.structured_content["output"] == "1\n", r
                samples = []
                for _ in range(runs):
                    t = time.perf_counter()
                    r = await session.call_tool(tool, args)
                    samples.append((time.perf_counter() - t) * 1000)
                    assert not r.is_error, r
                out[label] = statistics.median(samples)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--server", default=os.path.join(TARGET, "debug/code-executor-mcp"))
    a = ap.parse_args()
    sandbox_run = os.path.join(os.path.dirname(a.server), "sandbox-run")
    deno = deno_path()
    runner = "import sys; exec(compile(sys.stdin.read(), '<code>', 'exec'))"
    deno_cmd = [deno, "run", "--no-prompt", "--no-config", "--no-lock", "--ext=ts", "-"]
    node_cmd = ["node", "--input-type=module", "-"]
    py_cmd = ["python3", "-c", runner]
    # Bare runs use the real interpreter, not a version-manager shim (sandbox-run resolves
    # shims too), so the comparison is interpreter start against interpreter start.
    real_python = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    bare_py_cmd = [real_python, "-c", runner]

    mcp = anyio.run(over_mcp, a.server, a.runs)
    sb = lambda policy, cmd: [sandbox_run, "--policy", policy, "--workdir", "/workspace", "--"] + cmd
    rows = [
        ("executePython print(1)", mcp["executePython print(1)"],
         median_ms(bare(sb("python", py_cmd), "print(1)"), a.runs),
         median_ms(bare(bare_py_cmd, "print(1)"), a.runs)),
        ("executeTypescript console.log(1) [deno]", mcp["executeTypescript console.log(1) [deno]"],
         median_ms(bare(sb("deno", deno_cmd), "console.log(1)"), a.runs),
         median_ms(bare(deno_cmd, "console.log(1)"), a.runs)),
        ("executeTypescript console.log(1) [node]", mcp["executeTypescript console.log(1) [node]"],
         median_ms(bare(sb("node", node_cmd), "console.log(1)"), a.runs),
         median_ms(bare(node_cmd, "console.log(1)"), a.runs)),
    ]
    print(f"median of {a.runs} runs each (ms), server {a.server}")
    print(f"{'case':42} {'over MCP':>10} {'sandbox-run':>12} {'bare':>8}")
    print("  over MCP: tools/call round trip; sandbox-run: the launcher alone; bare: no sandbox")
    for label, m, s, b in rows:
        print(f"{label:42} {m:10.1f} {s:12.1f} {b:8.1f}")


if __name__ == "__main__":
    main()
