//! Guest programs in deno, node and python call real upstream MCP servers through the bridge.

mod bridge_support;
mod mcp_support;

use bridge_support::*;
use mcp_support::*;
use serde_json::{json, Value};

const PY: &str = r#"
import json
print(await call_mcp_tool("mcp__t__echo", {"text": "hi"}))
s = await call_mcp_tool("mcp__t__add", {"a": 2, "b": 40})
print(await call_mcp_tool("mcp__t__echo", {"text": "sum=" + s}))
try:
    await call_mcp_tool("mcp__t__pid", {})
except MCPToolError as e:
    print("denied:", e.kind, e)
tools = await discover_mcp_tools(["ECHO"])
print("found", sorted(t["name"] for t in tools))
print("schema", json.dumps((await get_tool_schema("mcp__t__add"))["inputSchema"]["required"]))
print("search", [t["name"] for t in await search_tools("numbers", 5)])
print(await call_mcp_tool("mcp__everything__echo", {"message": "ev"}))
print(await call_mcp_tool("mcp__everything__get-sum", {"a": 1, "b": 2}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_calls_chains_is_denied_and_discovers() {
    let env = bridge_env(json!({"t": upstream_entry(json!({})), "everything": everything_entry()}));
    let c = env.start().await;
    wait_connected(&c, 2).await;
    let r = run(&c, "python", PY, &["mcp__t__echo", "mcp__t__add", "mcp__everything__*"]).await;
    let out = ok_output(&r);
    println!("{out}");
    c.service.cancel().await.expect("close");
}
