//! Bad input and faults at the tool bridge, end to end: each gets a clear error or is cut off,
//! and nothing else is affected. Real server, real sandbox, real upstreams.

use std::time::Duration;

use crate::bridge_support::*;
use crate::mcp_support::*;
use serde_json::{json, Value};

/// Lines `label: value` printed by a guest, as a map.
fn lines(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const BAD_CALLS: &str = r#"
async def attempt(label, name, args):
    try:
        r = await call_mcp_tool(name, args)
        print(f"{label}: ok {r!r}")
    except MCPToolError as e:
        print(f"{label}: {e.kind} " + str(e).replace(chr(10), " | "))

await attempt("denied", "mcp__t2__echo", {"text": "x"})
await attempt("no_tool", "mcp__t__nope", {})
await attempt("no_server", "mcp__ghost__echo", {})
await attempt("invalid", "mcp__t__add", {"a": "x", "c": 1})
await attempt("bad_name", "echo", {})
await attempt("tool_error", "mcp__t__fail", {"message": "upstream says no"})
await attempt("image", "mcp__t__image", {})
await attempt("secret", "mcp__t__echo", {"text": "s3cr3t-value"})
await attempt("register", "mcp__My-Srv.v2__register", {"name": "Get.Item-X_1"})
await attempt("odd_name", "mcp__My-Srv.v2__Get.Item-X_1", {})
await attempt("after", "mcp__t__echo", {"text": "still fine"})
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_clear_errors_and_the_run_goes_on() {
    let env = bridge_env(json!({
        "t": upstream_entry(json!({})),
        "t2": upstream_entry(json!({})),
        "My-Srv.v2": upstream_entry(json!({})),
        "code-executor": {"command": "/nonexistent/self"},
    }));
    let cfg = env.path().join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"security": {"allowedTools": ["mcp__t__*", "mcp__t2__*", "mcp__ghost__*", "mcp__My-Srv.v2__*"]}}"#,
    )
    .unwrap();
    let audit = env.path().join("audit.log");
    let env = env
        .set("CODE_EXECUTOR_CONFIG_PATH", cfg.display().to_string())
        .set("ENABLE_AUDIT_LOG", "true")
        .set("AUDIT_LOG_PATH", audit.display().to_string());
    let c = env.start().await;
    let health = wait_connected(&c, 3).await;
    // The entry named code-executor is never started.
    assert_eq!(health["configured"], 3, "{health}");

    // The configured ceiling narrows the run's allowlist.
    let r = run(&c, "python", "print(1)", &["mcp__other__*"]).await;
    assert!(
        error(&r).contains("not allowed by the server configuration"),
        "{}",
        error(&r)
    );

    let allowed = ["mcp__t__*", "mcp__ghost__*", "mcp__My-Srv.v2__*"];
    let r = run(&c, "python", BAD_CALLS, &allowed).await;
    let out = ok_output(&r);
    let l = lines(&out);
    let has = |k: &str, want: &str| {
        let v = l.get(k).unwrap_or_else(|| panic!("no {k} line in {out}"));
        assert!(v.contains(want), "{k}: {v:?} lacks {want:?}");
    };
    has(
        "denied",
        "denied tool mcp__t2__echo is not allowed in this run",
    );
    has(
        "no_tool",
        "not_found tool `nope` not found on MCP server `t`",
    );
    has(
        "no_server",
        "not_found MCP server `ghost` is not configured",
    );
    // Every violation is listed, with the expected parameters.
    has(
        "invalid",
        "invalid_params invalid arguments for mcp__t__add",
    );
    has("invalid", "\"x\" is not of type \"number\"");
    has("invalid", "\"b\" is a required property");
    has(
        "invalid",
        "Additional properties are not allowed ('c' was unexpected)",
    );
    has(
        "invalid",
        "Expected parameters: a (number, required), b (number, required)",
    );
    has("bad_name", "invalid_name");
    has(
        "tool_error",
        "tool_error mcp__t__fail returned an error: upstream says no",
    );
    // A result without text comes back whole.
    has("image", "'type': 'image'");
    has("image", "'mimeType': 'image/png'");
    has("secret", "ok 's3cr3t-value'");
    // Uppercase letters, dots, hyphens and underscores in server and tool names.
    has("register", "ok 'registered'");
    has("odd_name", "ok 'Get.Item-X_1'");
    has("after", "ok 'still fine'");

    let s = sc(&r);
    let summary = s["toolCallSummary"].as_array().unwrap();
    let add = summary
        .iter()
        .find(|x| x["toolName"] == "mcp__t__add")
        .unwrap();
    assert_eq!(add["errorCount"], 1);
    // The bad name never became a tool call.
    assert!(!s["toolCallsMade"]
        .as_array()
        .unwrap()
        .contains(&json!("echo")));

    // The audit log: one line per call, with sizes and never the arguments.
    let log = std::fs::read_to_string(&audit).expect("audit log");
    assert!(!log.contains("s3cr3t-value"), "{log}");
    let calls: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "tool_call")
        .collect();
    assert_eq!(calls.len(), 10, "{log}");
    let secret = calls
        .iter()
        .find(|v| v["tool"] == "mcp__t__echo" && v["ok"] == true)
        .unwrap();
    assert_eq!(
        secret["argBytes"],
        json!({"text": "s3cr3t-value"}).to_string().len()
    );
    assert!(secret["durationMs"].as_f64().is_some());
    let failed = calls.iter().find(|v| v["tool"] == "mcp__t__fail").unwrap();
    assert_eq!(failed["ok"], false);
    assert!(failed["error"]
        .as_str()
        .unwrap()
        .contains("upstream says no"));
    let exec = log
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["type"] == "execution")
        .unwrap();
    assert!(exec["toolsCalled"]
        .as_array()
        .unwrap()
        .contains(&json!("mcp__t__echo")));
    c.service.cancel().await.expect("close");
}

const SOCKET_ABUSE: &str = r#"
import json, socket
try:
    await call_mcp_tool("mcp__t__echo", {"text": "x" * 10_000_000})
except MCPToolError as e:
    print("ten_mb:", e.kind, e)

def raw(payload):
    # Send, then read until the server closes (we close our side first: EOF after the
    # requests). A server that stopped at the first bad line sends one reply, not two.
    s = socket.socket(socket.AF_UNIX)
    s.connect(_CE_SOCKET)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    first, _, rest = data.partition(b"\n")
    return json.loads(first), rest

# The server's own limit, without the prelude's check: 2 MiB in one line.
big = json.dumps({"token": _CE_TOKEN, "id": 1, "method": "callTool",
                  "params": {"name": "mcp__t__echo", "arguments": {"text": "y" * 2_000_000}}}).encode() + b"\n"
reply, rest = raw(big)
print("raw_big:", reply["error"]["kind"], reply["error"]["message"], "closed" if rest == b"" else "open")
ping = json.dumps({"token": _CE_TOKEN, "id": 9, "method": "discover", "params": {}}).encode() + b"\n"
reply, rest = raw(b"\x00\xff garbage\n" + ping)
print("garbage:", reply["error"]["kind"], reply["error"]["message"], "closed" if rest == b"" else "open")
reply, rest = raw(json.dumps({"token": "0" * 64, "id": 2, "method": "callTool", "params": {}}).encode() + b"\n")
print("token:", reply["error"]["kind"], reply["error"]["message"])
reply, rest = raw(json.dumps({"token": _CE_TOKEN, "id": 3, "method": "rm -rf", "params": {}}).encode() + b"\n")
print("method:", reply["error"]["kind"], reply["error"]["message"])
print("after:", await call_mcp_tool("mcp__t__echo", {"text": "still fine"}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_arguments_garbage_and_wrong_tokens_are_refused() {
    let env = bridge_env(json!({"t": upstream_entry(json!({}))}));
    let c = env.start().await;
    wait_connected(&c, 1).await;
    let r = run(&c, "python", SOCKET_ABUSE, &["mcp__t__*"]).await;
    let out = ok_output(&r);
    let l = lines(&out);
    let has = |k: &str, want: &str| {
        let v = l.get(k).unwrap_or_else(|| panic!("no {k} line in {out}"));
        assert!(v.contains(want), "{k}: {v:?} lacks {want:?}");
    };
    has("ten_mb", "too_large request too large: 10000");
    has("ten_mb", "the limit is 1048576 bytes");
    has("raw_big", "too_large request too large");
    has("raw_big", "closed");
    has("garbage", "bad_request malformed request");
    has("garbage", "closed");
    has("token", "unauthorized wrong or missing token");
    has("method", "bad_request unknown method");
    has("after", "still fine");
    // Refused requests never reached an upstream.
    let made = sc(&r)["toolCallsMade"].clone();
    assert_eq!(made, json!(["mcp__t__echo"]), "{made}");
    c.service.cancel().await.expect("close");
}

const LOOP: &str = r#"
let ok = 0, budget = 0, other = "";
for (let i = 0; i < 1000; i++) {
  try { await callMCPTool("mcp__t__echo", { text: "n" + i }); ok++; }
  catch (e) { if (e.kind === "budget_exhausted") { budget++; other = e.message; } else { other = "unexpected: " + e.message; } }
}
console.log("ok:", ok);
console.log("budget:", budget);
console.log("message:", other);
let found = 0, limited = "";
for (let i = 0; i < 31; i++) {
  try { await discoverMCPTools(); found++; } catch (e) { limited = e.kind + " " + e.message; }
}
console.log("discovered:", found);
console.log("limited:", limited);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_hit_the_budget_and_discovery_is_rate_limited() {
    let env = bridge_env(json!({"t": upstream_entry(json!({}))}));
    let c = env.start().await;
    wait_connected(&c, 1).await;
    let r = run(&c, "node", LOOP, &["mcp__t__echo"]).await;
    let out = ok_output(&r);
    let l = lines(&out);
    assert_eq!(l["ok"], "500", "{out}");
    assert_eq!(l["budget"], "500", "{out}");
    assert!(
        l["message"].contains("a run may make at most 500 tool calls"),
        "{out}"
    );
    assert_eq!(l["discovered"], "30", "{out}");
    assert!(
        l["limited"].starts_with("rate_limited tool discovery is rate limited to 30"),
        "{out}"
    );
    let s = sc(&r);
    assert_eq!(s["toolCallSummary"][0]["callCount"], 500);
    // The next run has a budget of its own.
    let r = run(
        &c,
        "deno",
        r#"console.log(await callMCPTool("mcp__t__echo", { text: "fresh" }));"#,
        &["mcp__t__echo"],
    )
    .await;
    assert_eq!(ok_output(&r), "fresh\n");
    c.service.cancel().await.expect("close");
}

const CRASH_HANG: &str = r#"
async def attempt(label, name, args=None):
    try:
        print(f"{label}: ok", await call_mcp_tool(name, args or {}))
    except MCPToolError as e:
        print(f"{label}: {e.kind} {e}")

await attempt("pid1", "mcp__t__pid")
await attempt("crash", "mcp__t__crash")
await attempt("pid2", "mcp__t__pid")
await attempt("hang", "mcp__t__hang")
await attempt("slow", "mcp__t__slow", {"ms": 50})
await attempt("after", "mcp__t__echo", {"text": "still fine"})
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_upstream_reconnects_and_a_hung_one_times_out() {
    let env =
        bridge_env(json!({"t": upstream_entry(json!({}))})).set("MCP_CALL_TIMEOUT_MS", "2000");
    let c = env.start().await;
    wait_connected(&c, 1).await;
    let r = run(&c, "python", CRASH_HANG, &["mcp__t__*"]).await;
    let out = ok_output(&r);
    let l = lines(&out);
    let pid1 = l["pid1"].strip_prefix("ok ").expect("pid1").to_string();
    assert!(
        l["crash"].starts_with("upstream MCP server `t` closed the connection during the call"),
        "{out}"
    );
    let pid2 = l["pid2"]
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("no reconnect: {out}"));
    assert_ne!(pid1, pid2, "the upstream was restarted");
    assert!(
        l["hang"].starts_with("timeout MCP server `t`: the call timed out after 2000 ms"),
        "{out}"
    );
    assert_eq!(l["slow"], "ok done");
    assert_eq!(l["after"], "ok still fine");
    c.service.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_slow_upstreams_do_not_stall_anything() {
    let env = bridge_env(json!({
        "t": upstream_entry(json!({})),
        "broken": upstream_entry(json!({"TEST_UPSTREAM_EXIT_AT_START": "1"})),
        "slow": upstream_entry(json!({"TEST_UPSTREAM_LIST_DELAY_MS": "600000"})),
    }))
    .set("MCP_CALL_TIMEOUT_MS", "1500")
    .set("MCP_CONNECT_TIMEOUT_MS", "600000");
    let c = env.start().await;
    let mut health = wait_connected(&c, 1).await;
    for _ in 0..600 {
        if health["failed"].as_array().is_some_and(|f| !f.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        health = sc(&c.call("health", json!({})).await)["mcpClients"].clone();
    }
    let failed = &health["failed"][0];
    assert_eq!(failed["name"], "broken", "{health}");
    assert!(
        failed["reason"].as_str().unwrap().contains("initialize"),
        "{health}"
    );
    let slow = health["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "slow")
        .unwrap();
    assert_eq!(slow["status"], "connecting", "{health}");

    // Discovery answers from the cache while `slow` is still stuck in tools/list; a call to it
    // hits the per-call timeout; `broken` gives its reason; `t` works throughout.
    let code = r#"
names = sorted({t["name"].split("__")[1] for t in await discover_mcp_tools()})
print("servers:", names)
for name in ["mcp__slow__echo", "mcp__broken__echo"]:
    try:
        await call_mcp_tool(name, {"text": "x"})
    except MCPToolError as e:
        print(name.split("__")[1] + ":", e.kind, e)
print("t:", await call_mcp_tool("mcp__t__echo", {"text": "fine"}))
"#;
    let r = run_with(
        &c,
        "python",
        code,
        json!({"allowedTools": ["mcp__t__*", "mcp__slow__*", "mcp__broken__*"], "timeoutMs": 30000}),
    )
    .await;
    let out = ok_output(&r);
    let l = lines(&out);
    assert_eq!(l["servers"], "['t']", "{out}");
    assert!(
        l["slow"].starts_with("unavailable MCP server `slow` is still connecting"),
        "{out}"
    );
    assert!(
        l["broken"].starts_with("unavailable MCP server `broken` is not connected"),
        "{out}"
    );
    assert_eq!(l["t"], "fine");
    c.service.cancel().await.expect("close");
}
