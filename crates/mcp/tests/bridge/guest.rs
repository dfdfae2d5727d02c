//! Guest programs in deno, node and python call real upstream MCP servers through the bridge.

use crate::bridge_support::*;
use crate::mcp_support::*;
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

/// The same program for deno (TypeScript) and node (JavaScript).
const JS: &str = r#"
console.log(await callMCPTool("mcp__t__echo", { text: "hi" }));
const s = await callMCPTool("mcp__t__add", { a: 2, b: 40 });
console.log(await callMCPTool("mcp__t__echo", { text: "sum=" + s }));
try {
  await callMCPTool("mcp__t__pid", {});
} catch (e) {
  console.log("denied:", e.kind, e.message);
}
const tools = await discoverMCPTools({ search: ["ECHO"] });
console.log("found", JSON.stringify(tools.map((t) => t.name).sort()));
console.log("schema", JSON.stringify((await getToolSchema("mcp__t__add")).inputSchema.required));
console.log("search", JSON.stringify((await searchTools("numbers", 5)).map((t) => t.name)));
console.log(await callMCPTool("mcp__everything__echo", { message: "ev" }));
console.log(await callMCPTool("mcp__everything__get-sum", { a: 1, b: 2 }));
const both = await Promise.all([callMCPTool("mcp__t__echo", { text: "p1" }), callMCPTool("mcp__t__echo", { text: "p2" })]);
console.log("parallel", both.join(","));
"#;

const EXPECTED: &[&str] = &[
    "hi",
    "sum=42",
    "denied: denied tool mcp__t__pid is not allowed in this run",
    r#"found ["mcp__everything__echo","mcp__t__echo"]"#,
    r#"schema ["a","b"]"#,
    r#"search ["mcp__everything__get-sum","mcp__t__add"]"#,
    "Echo: ev",
    "The sum of 1 and 2 is 3.",
];

fn check(lang: &str, out: &str, r: &rmcp::model::CallToolResult) {
    // Python prints lists with its own repr; compare without quotes and spaces.
    let norm = |s: &str| s.replace(['"', '\'', ' '], "");
    for want in EXPECTED {
        assert!(
            norm(out).contains(&norm(want)),
            "{lang}: missing {want:?} in\n{out}"
        );
    }
    let s = sc(r);
    let made: Vec<&str> = s["toolCallsMade"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        &made[..4],
        [
            "mcp__t__echo",
            "mcp__t__add",
            "mcp__t__pid",
            "mcp__everything__echo"
        ],
        "{lang}"
    );
    let summary = s["toolCallSummary"].as_array().unwrap();
    let echo = summary
        .iter()
        .find(|x| x["toolName"] == "mcp__t__echo")
        .unwrap();
    assert!(
        echo["callCount"].as_u64().unwrap() >= 2 && echo["errorCount"] == 0,
        "{echo}"
    );
    let pid = summary
        .iter()
        .find(|x| x["toolName"] == "mcp__t__pid")
        .unwrap();
    assert_eq!(pid["errorCount"], 1);
    assert_eq!(pid["lastCallStatus"], "error");
    assert!(pid["lastErrorMessage"]
        .as_str()
        .unwrap()
        .contains("not allowed"));
    assert!(text(r).contains("- mcp__t__echo: "), "{}", text(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deno_and_node_call_chain_are_denied_and_discover() {
    let env = bridge_env(json!({"t": upstream_entry(json!({})), "everything": everything_entry()}));
    let c = env.start().await;
    wait_connected(&c, 2).await;
    let allowed = ["mcp__t__echo", "mcp__t__add", "mcp__everything__*"];
    for lang in ["deno", "node"] {
        let r = run(&c, lang, JS, &allowed).await;
        let out = ok_output(&r);
        check(lang, &out, &r);
        assert!(out.contains("parallel p1,p2"), "{lang}: {out}");
    }
    c.service.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_calls_chains_is_denied_and_discovers() {
    let env = bridge_env(json!({"t": upstream_entry(json!({})), "everything": everything_entry()}));
    let c = env.start().await;
    wait_connected(&c, 2).await;
    let r = run(
        &c,
        "python",
        PY,
        &["mcp__t__echo", "mcp__t__add", "mcp__everything__*"],
    )
    .await;
    let out = ok_output(&r);
    check("python", &out, &r);
    c.service.cancel().await.expect("close");
}
