"""End-to-end benchmark of code-executor-mcp over MCP stdio, with baselines from the same run.

    .deps/venv/bin/python scripts/bench-mcp.py [--runs N] [--server PATH]

Prints, for executePython `print(1)` and executeTypescript `console.log(1)` (deno and node):
median and p95 of the tools/call round trip seen by an MCP client (one request at a time),
with prewarmed sandboxes off (every run launches a sandbox) and on (one warm sandbox per
runtime, requests 150 ms apart so the pool refills, as with an agent's think time), beside the
same run through `sandbox-run` alone and the bare interpreter; then the throughput with 8
requests in flight, and the server's memory (RSS) idle and at its peak under that load.
Run after `cargo build --release --workspace` (default server: target/release/code-executor-mcp).
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
RUNNER = "import sys; exec(compile(sys.stdin.read(), '<code>', 'exec'))"


def deno_path():
    found = shutil.which("deno") or os.path.join(ROOT, ".deps/node_modules/.bin/deno")
    if not os.path.exists(found):
        sys.exit("deno not found: run scripts/test.sh (it installs deno into .deps/)")
    return found


def stats(samples):
    s = sorted(samples)
    return statistics.median(s), s[max(0, int(len(s) * 0.95) - 1)]


def timed(fn, runs):
    fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return stats(out)


def proc(cmd, code):
    return lambda: subprocess.run(cmd, input=code.encode(), stdout=subprocess.DEVNULL, check=True)


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def server_pid(exe):
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink(f"/proc/{d}/exe") == os.path.realpath(exe) and int(d) != os.getpid():
                    return int(d)
            except OSError:
                pass
    return None


CASES = {
    "executePython print(1)": ("executePython", {"code": "print(1)"}),
    "executeTypescript console.log(1) [deno]": ("executeTypescript", {"code": "console.log(1)"}),
    "executeTypescript console.log(1) [node]": ("executeTypescript", {"code": "console.log(1)", "runtime": "node"}),
}


async def over_mcp(server, runs, prewarm):
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(deno_path()) + ":" + env.get("PATH", "")
    env.setdefault("RUST_LOG", "warn")
    if prewarm is not None:
        env["CODE_EXECUTOR_PREWARM"] = str(prewarm)
    params = StdioServerParameters(command=server, args=[], env=env)
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            pid = server_pid(server)
            await anyio.sleep(1.0)  # let warm sandboxes (if any) start
            out["idle_rss"] = rss_kib(pid) if pid else 0
            for label, (tool, args) in CASES.items():
                samples = []
                for i in range(runs + 1):
                    if prewarm:
                        await anyio.sleep(0.15)  # one request at a time, pool refilled
                    t = time.perf_counter()
                    r = await session.call_tool(tool, args)
                    if i:
                        samples.append((time.perf_counter() - t) * 1000)
                    assert not r.is_error and r.structured_content["output"] == "1\n", r
                out[label] = stats(samples)
            # Throughput: 8 requests in flight at all times, python print(1).
            peak = [out["idle_rss"]]
            done = 0
            per_worker = max(5, runs // 4)
            n_total = 8 * per_worker

            async def worker(n):
                nonlocal done
                for _ in range(n):
                    r = await session.call_tool("executePython", {"code": "print(1)"})
                    assert not r.is_error, r
                    done += 1

            async def sampler():
                while done < n_total:
                    if pid:
                        peak[0] = max(peak[0], rss_kib(pid))
                    await anyio.sleep(0.02)

            t = time.perf_counter()
            async with anyio.create_task_group() as tg:
                tg.start_soon(sampler)
                for _ in range(8):
                    tg.start_soon(worker, per_worker)
            out["throughput"] = n_total / (time.perf_counter() - t)
            out["peak_rss"] = peak[0]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--server", default=os.path.join(TARGET, "release/code-executor-mcp"))
    a = ap.parse_args()
    sandbox_run = os.path.join(os.path.dirname(a.server), "sandbox-run")
    deno = deno_path()
    real_python = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    deno_cmd = [deno, "run", "--no-prompt", "--no-config", "--no-lock", "--ext=ts", "-"]
    node_cmd = ["node", "--input-type=module", "-"]
    sb = lambda policy, cmd: [sandbox_run, "--policy", policy, "--"] + cmd
    cold = anyio.run(over_mcp, a.server, a.runs, 0)
    m = anyio.run(over_mcp, a.server, a.runs, 1)
    rows = [
        ("executePython print(1)", sb("python", ["python3", "-c", RUNNER]), [real_python, "-c", RUNNER], "print(1)"),
        ("executeTypescript console.log(1) [deno]", sb("deno", deno_cmd), deno_cmd, "console.log(1)"),
        ("executeTypescript console.log(1) [node]", sb("node", node_cmd), node_cmd, "console.log(1)"),
    ]
    print(f"server {a.server}, {a.runs} runs per row (ms: median / p95)")
    print("| case | over MCP, prewarmed | over MCP, fresh sandbox | sandbox-run alone | bare interpreter |")
    print("|---|---|---|---|---|")
    for label, sbcmd, barecmd, code in rows:
        wm, wp = m[label]
        cm, cp = cold[label]
        sm, sp = timed(proc(sbcmd, code), a.runs)
        bm, bp = timed(proc(barecmd, code), a.runs)
        print(f"| {label} | {wm:.1f} / {wp:.1f} | {cm:.1f} / {cp:.1f} | {sm:.1f} / {sp:.1f} | {bm:.1f} / {bp:.1f} |")
    print(f"throughput, 8 requests in flight (executePython print(1)): {cold['throughput']:.1f} runs/s without prewarm, {m['throughput']:.1f} runs/s with 1 warm per runtime")
    print(f"server RSS: idle {cold['idle_rss'] / 1024:.1f} MiB, peak under load {cold['peak_rss'] / 1024:.1f} MiB (prewarm on: idle {m['idle_rss'] / 1024:.1f} MiB; the warm sandboxes are separate processes)")


if __name__ == "__main__":
    main()
