# code-executor tool bridge (python). Compiled separately from the user's code (so its line
# numbers stay right) into the same globals; asyncio and json are imported on first use only.


class MCPToolError(Exception):
    """A call through the tool bridge failed; `kind` says why (denied, not_found, invalid_params,
    tool_error, upstream, timeout, budget_exhausted, rate_limited, too_large)."""

    def __init__(self, message, kind=None):
        super().__init__(message)
        self.kind = kind


_CE_SOCKET = __CE_SOCKET__
_CE_TOKEN = __CE_TOKEN__
_CE_MAX = 1048576
_ce_seq = [0]


async def _ce_request(method, params):
    import asyncio
    import json

    _ce_seq[0] += 1
    line = (json.dumps({"token": _CE_TOKEN, "id": _ce_seq[0], "method": method, "params": params}) + "\n").encode()
    if len(line) > _CE_MAX:
        raise MCPToolError(
            f"request too large: {len(line)} bytes, the limit is {_CE_MAX} bytes (1 MiB); pass smaller arguments",
            "too_large",
        )
    try:
        reader, writer = await asyncio.open_unix_connection(_CE_SOCKET, limit=64 * 1024 * 1024)
    except OSError as e:
        raise MCPToolError(f"tool bridge unreachable: {e}", "unreachable") from None
    try:
        writer.write(line)
        await writer.drain()
        reply = await reader.readline()
    finally:
        writer.close()
    if not reply:
        raise MCPToolError("tool bridge closed the connection without an answer (has the run ended?)", "closed")
    msg = json.loads(reply)
    if "error" in msg:
        raise MCPToolError(msg["error"]["message"], msg["error"].get("kind"))
    return msg["result"]


async def call_mcp_tool(name, params=None):
    """Call mcp__<server>__<tool>; returns the first text content, else the whole result."""
    return await _ce_request("callTool", {"name": name, "arguments": params if params is not None else {}})


async def discover_mcp_tools(search_terms=None):
    """Schemas of all upstream tools, or of those matching any of `search_terms`."""
    if isinstance(search_terms, str):
        search_terms = [search_terms]
    return await _ce_request("discover", {"search": list(search_terms or [])})


async def get_tool_schema(name):
    """The schema of one tool, or None."""
    return await _ce_request("getToolSchema", {"name": name})


async def search_tools(query, limit=10):
    """Tools whose name or description contains any word of `query`."""
    return await _ce_request("searchTools", {"query": query, "limit": limit})
