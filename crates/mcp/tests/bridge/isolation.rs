//! The channel belongs to one run, only while it runs; upstream children end with the server.

use std::time::Duration;

use crate::bridge_support::*;
use crate::mcp_support::*;
use serde_json::json;

/// Run A publishes its socket and token in a shared directory and waits; run B, running at the
/// same time, tries both. Polling on files, not timing, orders the two runs. Every run sees its
/// own bridge at the same inside path, so the path A publishes leads B to B's own bridge.
const RUN_A: &str = r#"
import json, os, time
open(os.path.join(SHARED, "a.json"), "w").write(json.dumps({"socket": _CE_SOCKET, "token": _CE_TOKEN}))
for _ in range(1200):
    if os.path.exists(os.path.join(SHARED, "b.done")):
        break
    time.sleep(0.05)
print("a_sees_b_done:", os.path.exists(os.path.join(SHARED, "b.done")))
print("a_call:", await call_mcp_tool("mcp__t__echo", {"text": "mine"}))
print("a_socket:", _CE_SOCKET)
"#;

const RUN_B: &str = r#"
import json, os, socket, time
for _ in range(1200):
    if os.path.exists(os.path.join(SHARED, "a.json")):
        break
    time.sleep(0.05)
a = json.load(open(os.path.join(SHARED, "a.json")))
print("b_socket:", _CE_SOCKET, "same_path:", a["socket"] == _CE_SOCKET)
# A's token at the path A published reaches B's own bridge, which refuses it.
s = socket.socket(socket.AF_UNIX)
s.connect(a["socket"])
s.sendall(json.dumps({"token": a["token"], "id": 1, "method": "discover", "params": {}}).encode() + b"\n")
print("b_other_token:", json.loads(s.makefile().readline())["error"]["kind"])
# No mount point is at a host path of the server (its temp directory, its pid), and that
# directory does not exist inside. (Field 4 of mountinfo, the bind's root within its host file
# system, still names it: see SECURITY.md.)
points = [l.split()[4] for l in open("/proc/self/mountinfo")]
print("b_mounts_show_server_dir:", any("code-executor-mcp-" in p for p in points) or any(n.startswith("code-executor-mcp-") for n in os.listdir("/tmp")))
open(os.path.join(SHARED, "b.done"), "w").write("1")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cannot_reach_another_runs_socket_and_it_is_gone_after_the_run() {
    let env = bridge_env(json!({"t": upstream_entry(json!({}))}));
    let shared = env.path().join("proj/shared");
    std::fs::create_dir_all(&shared).unwrap();
    set_mode(&shared, 0o777);
    let proj = env.path().join("proj").display().to_string();
    // The shared directory is on /tmp, which has no project quotas here: a writable grant
    // there runs only in the named weaker mode (tested on its own in server::input).
    let env = env
        .set("ALLOWED_PROJECTS", proj)
        .set("CODE_EXECUTOR_ALLOW_DEGRADED", "unbounded-writes");
    let c = env.start().await;
    wait_connected(&c, 1).await;
    let shared = shared.canonicalize().unwrap().display().to_string();
    let perms = json!({"write": [shared.clone()]});
    let prefix = format!("SHARED = {shared:?}\n");
    let (code_a, code_b) = (format!("{prefix}{RUN_A}"), format!("{prefix}{RUN_B}"));
    let a = run_with(
        &c,
        "python",
        &code_a,
        json!({"allowedTools": ["mcp__t__echo"], "permissions": perms}),
    );
    let b = run_with(
        &c,
        "python",
        &code_b,
        json!({"allowedTools": ["mcp__t__echo"], "permissions": perms}),
    );
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (ok_output(&a), ok_output(&b));
    assert!(a.contains("a_sees_b_done: True"), "{a}");
    assert!(a.contains("a_call: mine"), "{a}");
    assert!(
        b.contains("b_socket: /run/mcp-bridge/mcp.sock same_path: True"),
        "{b}"
    );
    assert!(b.contains("b_other_token: unauthorized"), "{b}");
    assert!(b.contains("b_mounts_show_server_dir: False"), "{b}");
    // After the run, no run's socket or bridge directory is left in the server's directory.
    let leftovers = bridge_dirs_of(c.pid);
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    c.service.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_on_after_the_run_timed_out_is_cut_off() {
    let env = bridge_env(json!({"t": upstream_entry(json!({}))}));
    let c = env.start().await;
    wait_connected(&c, 1).await;
    // Keeps calling, ignoring every error, until the run's timeout kills it.
    let code = r#"
import sys
print("socket:", _CE_SOCKET, flush=True)
while True:
    try:
        await call_mcp_tool("mcp__t__slow", {"ms": 5})
    except MCPToolError:
        pass
"#;
    let r = run_with(
        &c,
        "python",
        code,
        json!({"allowedTools": ["mcp__t__slow"], "timeoutMs": 2000}),
    )
    .await;
    let s = sc(&r);
    assert_eq!(s["errorType"], "timeout", "{s:?}");
    assert!(
        s["toolCallSummary"][0]["callCount"].as_u64().unwrap() > 0,
        "{s:?}"
    );
    assert!(
        output(&r).contains("socket: /run/mcp-bridge/mcp.sock"),
        "{s:?}"
    );
    let leftovers = bridge_dirs_of(c.pid);
    assert!(leftovers.is_empty(), "outlived its run: {leftovers:?}");
    // The upstream and the server are unaffected.
    let r = run(
        &c,
        "node",
        r#"console.log(await callMCPTool("mcp__t__echo", { text: "next run" }));"#,
        &["mcp__t__echo"],
    )
    .await;
    assert_eq!(ok_output(&r), "next run\n");
    c.service.cancel().await.expect("close");
}

fn upstream_children(server_pid: u32) -> Vec<u32> {
    children_of(server_pid)
        .into_iter()
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/exe"))
                .map(|e| e.ends_with("test_upstream"))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_children_end_with_the_server() {
    let limit = Duration::from_secs(30);
    // A clean exit (the client closes stdin).
    let env = bridge_env(json!({"t": upstream_entry(json!({})), "u": upstream_entry(json!({}))}));
    let c = env.start().await;
    wait_connected(&c, 2).await;
    let kids = upstream_children(c.pid);
    assert_eq!(kids.len(), 2, "{kids:?}");
    c.service.cancel().await.expect("close");
    assert!(
        eventually(limit, || kids.iter().all(|k| !alive(*k))).await,
        "upstreams {kids:?} outlived the server"
    );

    // The server killed outright: the children get SIGKILL from the kernel (PDEATHSIG).
    let c = env.start().await;
    wait_connected(&c, 2).await;
    let kids = upstream_children(c.pid);
    assert_eq!(kids.len(), 2, "{kids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(limit, || kids.iter().all(|k| !alive(*k))).await,
        "upstreams {kids:?} outlived the killed server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_never_outlives_its_run() {
    // One call slot per upstream and a long per-call timeout: a run that times out while its
    // guest waits on a hanging tool must not keep the slot from the next run.
    let env = bridge_env(json!({"t": upstream_entry(json!({}))}))
        .set("MCP_MAX_IN_FLIGHT", "1")
        .set("MCP_CALL_TIMEOUT_MS", "60000");
    let c = env.start().await;
    wait_connected(&c, 1).await;
    let stuck = c
        .call(
            "executePython",
            json!({"code": "await call_mcp_tool('mcp__t__hang', {})", "timeoutMs": 2000, "allowedTools": ["mcp__t__*"]}),
        )
        .await;
    assert_eq!(sc(&stuck)["success"], false, "{stuck:?}");
    let next = run(
        &c,
        "python",
        "print(await call_mcp_tool('mcp__t__echo', {'text': 'free'}))",
        &["mcp__t__*"],
    )
    .await;
    assert!(ok_output(&next).contains("free"), "{next:?}");
}

/// The bridge directories under the server's own temp directory (`code-executor-mcp-PID-*`).
fn bridge_dirs_of(server: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("code-executor-mcp-{server}-");
    let mut out = Vec::new();
    for server_dir in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if !server_dir
            .file_name()
            .to_string_lossy()
            .starts_with(&prefix)
        {
            continue;
        }
        for run in std::fs::read_dir(server_dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let bridge = run.path().join("bridge");
            if bridge.exists() {
                out.push(bridge);
            }
        }
    }
    out
}
