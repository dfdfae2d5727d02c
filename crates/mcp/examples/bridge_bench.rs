//! Round trip of one `callMCPTool` to a local upstream's `echo`, measured inside a run, beside
//! the bare upstream call (an rmcp client calling the same upstream directly).
//!
//! Run through `scripts/bench-bridge.sh` (builds everything first), or
//! `cargo run --example bridge_bench -- [CALLS]` after `cargo build --bins --examples`.
//! Each guest makes CALLS (default 200) sequential calls in one run and times each one itself;
//! the medians are printed in milliseconds.

use std::error::Error;
use std::time::Instant;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("no target dir")?
        .to_path_buf();
    let upstream = profile.join("examples/test_upstream");
    let server = profile.join("code-executor-mcp");
    for p in [&upstream, &server] {
        if !p.is_file() {
            return Err(format!(
                "{} is missing; run `cargo build --bins --examples` first",
                p.display()
            )
            .into());
        }
    }

    // Bare: rmcp client -> upstream.
    let client = ()
        .serve(TokioChildProcess::new(tokio::process::Command::new(
            &upstream,
        ))?)
        .await?;
    let mut bare = Vec::new();
    for i in 0..calls + 10 {
        let args = json!({"text": format!("n{i}")});
        let p = CallToolRequestParams::new("echo")
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        let t = Instant::now();
        client.call_tool(p).await?;
        if i >= 10 {
            bare.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    client.cancel().await?;

    // Through the bridge: code-executor-mcp -> sandbox -> guest -> socket -> pool -> upstream.
    let dir = std::env::temp_dir().join(format!("bridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("mcp.json");
    std::fs::write(
        &cfg,
        json!({"mcpServers": {"t": {"command": upstream.display().to_string()}}}).to_string(),
    )?;
    let mut cmd = tokio::process::Command::new(&server);
    cmd.env("MCP_CONFIG_PATH", &cfg)
        .env("RUST_LOG", "warn")
        .env("MCP_MAX_CALLS_PER_RUN", "100000")
        .current_dir(&dir);
    let svc = ().serve(TokioChildProcess::new(cmd)?).await?;
    // Wait for the upstream to connect.
    for _ in 0..300 {
        let h = svc.call_tool(CallToolRequestParams::new("health")).await?;
        let connected = h
            .structured_content
            .as_ref()
            .and_then(|v| v["mcpClients"]["connected"].as_u64());
        if connected == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let js = format!(
        r#"const t = [];
for (let i = 0; i < {n}; i++) {{
  const s = performance.now();
  await callMCPTool("mcp__t__echo", {{ text: "n" + i }});
  if (i >= 10) t.push(performance.now() - s);
}}
t.sort((a, b) => a - b);
console.log(t[Math.floor(t.length / 2)].toFixed(3));"#,
        n = calls + 10
    );
    let py = format!(
        r#"import time
t = []
for i in range({n}):
    s = time.perf_counter()
    await call_mcp_tool("mcp__t__echo", {{"text": "n%d" % i}})
    if i >= 10:
        t.append((time.perf_counter() - s) * 1000)
t.sort()
print("%.3f" % t[len(t) // 2])"#,
        n = calls + 10
    );
    let mut rows = Vec::new();
    for (label, tool, code, runtime) in [
        ("deno", "executeTypescript", js.as_str(), Some("deno")),
        ("node", "executeTypescript", js.as_str(), Some("node")),
        ("python", "executePython", py.as_str(), None),
    ] {
        let mut args = json!({"code": code, "allowedTools": ["mcp__t__echo"], "timeoutMs": 120000});
        if let Some(r) = runtime {
            args["runtime"] = json!(r);
        }
        let r = svc
            .call_tool(
                CallToolRequestParams::new(tool)
                    .with_arguments(args.as_object().cloned().unwrap_or_default()),
            )
            .await?;
        let sc = r.structured_content.unwrap_or(Value::Null);
        let out = sc["output"].as_str().unwrap_or("").trim().to_string();
        if sc["success"] != json!(true) {
            return Err(format!("{label} run failed: {sc}").into());
        }
        rows.push((label, out));
    }
    svc.cancel().await?;
    let _ = std::fs::remove_dir_all(&dir);

    println!("median round trip of one echo call, {calls} calls each (ms):");
    println!(
        "  bare rmcp client -> upstream:          {:.3}",
        median(bare)
    );
    for (label, ms) in rows {
        println!("  callMCPTool inside a {label:<6} run:       {ms}");
    }
    Ok(())
}
