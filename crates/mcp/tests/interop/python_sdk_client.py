"""Interop check with a client we did not write: the official Python MCP SDK (PyPI `mcp` 2.x).

Usage: python_sdk_client.py SERVER_BINARY
Starts the server over stdio with this process's environment, lists tools, runs code in each
runtime, checks errors, progress and cancellation. Exits non-zero (with a message) on failure.
The SDK validates every structuredContent against the tool's outputSchema on its own.
"""
import asyncio
import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError


def check(cond, msg):
    if not cond:
        print(f"FAIL: {msg}", file=sys.stderr)
        sys.exit(1)


async def main(server):
    params = StdioServerParameters(command=server, args=[], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "code-executor-mcp-server", f"server name {init.server_info}")

            tools = await session.list_tools()
            names = [t.name for t in tools.tools]
            check(names == ["executeTypescript", "executePython", "health"], f"tools {names}")

            r = await session.call_tool("executePython", {"code": "import asyncio\nawait asyncio.sleep(0)\nprint(6 * 7)"})
            check(not r.is_error, f"python failed: {r}")
            check(r.structured_content["output"] == "42\n", f"python output {r.structured_content}")
            check(r.content[0].text.startswith("Status: SUCCESS"), "python text block")

            r = await session.call_tool("executeTypescript", {"code": "const n: number = 42; console.log(n)"})
            check(not r.is_error and r.structured_content["output"] == "42\n", f"deno: {r}")

            r = await session.call_tool("executeTypescript", {"runtime": "node", "code": "console.log(await Promise.resolve(42))"})
            check(not r.is_error and r.structured_content["output"] == "42\n", f"node: {r}")

            r = await session.call_tool("executePython", {"code": ""})
            check(r.is_error and r.structured_content["errorType"] == "validation", f"empty code: {r}")

            try:
                await session.call_tool("noSuchTool", {})
                check(False, "unknown tool did not raise")
            except MCPError as e:
                check(e.code == -32602, f"unknown tool code {e.code}")

            # Progress: a run longer than the progress interval reports progress.
            seen = []

            async def on_progress(progress, total, message):
                seen.append((progress, total, message))

            r = await session.call_tool(
                "executePython",
                {"code": "import time\ntime.sleep(5)\nprint('done')", "timeoutMs": 60000},
                progress_callback=on_progress,
            )
            check(r.structured_content["output"] == "done\n", f"long run: {r}")
            check(len(seen) >= 1, "no progress notification during a 5 s run")

            # Cancellation: abandoning the call kills the run; the pool is free again.
            with anyio.move_on_after(2):
                await session.call_tool("executePython", {"code": "import time\ntime.sleep(100)", "timeoutMs": 120000})
            for _ in range(200):
                h = await session.call_tool("health", {})
                if h.structured_content["connectionPool"]["active"] == 0:
                    break
                await asyncio.sleep(0.05)
            check(h.structured_content["connectionPool"]["active"] == 0, f"run not cancelled: {h.structured_content}")
            check(h.structured_content["healthy"] is True, f"health: {h.structured_content}")
    print("python-sdk interop: OK")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
