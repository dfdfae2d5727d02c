//! Helpers of the tool-bridge tests: the real server with real upstreams (our own
//! `examples/test_upstream.rs`, built on demand, and `@modelcontextprotocol/server-everything`
//! from `.deps`), and guest programs in deno, node and python run through it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::mcp_support::*;

/// The test upstream binary, built once per test process with the same cargo and target
/// directory as the tests (so `CARGO_TARGET_DIR` is respected).
pub fn test_upstream() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/<test binary> -> target/<profile>/examples/test_upstream
            let exe = std::env::current_exe().expect("test binary path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target profile dir")
                .to_path_buf();
            let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(&cargo)
                .args(["build", "--quiet", "--example", "test_upstream"])
                .env("CARGO_TARGET_DIR", &target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status();
            let bin = profile_dir.join("examples/test_upstream");
            match status {
                Ok(s) if s.success() && bin.is_file() => bin,
                other => panic!(
                    "the test upstream could not be built ({other:?}); run `cargo build --examples` \
                     and check that {} exists",
                    bin.display()
                ),
            }
        })
        .clone()
}

/// `@modelcontextprotocol/server-everything`, installed by `scripts/test.sh`.
pub fn everything() -> PathBuf {
    let p = Path::new(crate::mcp_support::REPO_ROOT)
        .join(".deps/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if !p.is_file() {
        panic!(
            "{} is missing; install it with `scripts/test.sh` (or `npm install --prefix .deps \
             @modelcontextprotocol/server-everything`)",
            p.display()
        );
    }
    p
}

/// An `mcpServers` entry that starts the test upstream, with extra environment.
pub fn upstream_entry(env: Value) -> Value {
    json!({"command": test_upstream().display().to_string(), "args": [], "env": env})
}

pub fn everything_entry() -> Value {
    json!({"command": "node", "args": [everything().display().to_string(), "stdio"]})
}

/// A server environment whose `MCP_CONFIG_PATH` holds `servers`.
pub fn bridge_env(servers: Value) -> ServerEnv {
    let env = ServerEnv::new();
    let cfg = env.path().join("mcp.json");
    std::fs::write(&cfg, json!({"mcpServers": servers}).to_string()).expect("write mcp.json");
    env.set("MCP_CONFIG_PATH", cfg.display().to_string())
}

/// Wait until `health` shows `n` upstreams connected (the server connects in the background).
pub async fn wait_connected(c: &Client, n: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let h = c.call("health", json!({})).await;
        last = sc(&h)["mcpClients"].clone();
        if last["connected"].as_u64() == Some(n) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("upstreams did not connect: {last}");
}

/// Run guest code; `lang` is deno, node or python.
pub async fn run(
    c: &Client,
    lang: &str,
    code: &str,
    allowed: &[&str],
) -> rmcp::model::CallToolResult {
    run_with(c, lang, code, json!({"allowedTools": allowed})).await
}

pub async fn run_with(
    c: &Client,
    lang: &str,
    code: &str,
    extra: Value,
) -> rmcp::model::CallToolResult {
    let mut args = json!({"code": code, "timeoutMs": 60000});
    if let (Some(a), Value::Object(e)) = (args.as_object_mut(), extra) {
        a.extend(e);
    }
    match lang {
        "python" => c.call("executePython", args).await,
        "node" => {
            args["runtime"] = json!("node");
            c.call("executeTypescript", args).await
        }
        _ => c.call("executeTypescript", args).await,
    }
}

/// stdout of a run that must have succeeded (panics with the whole result otherwise).
pub fn ok_output(r: &rmcp::model::CallToolResult) -> String {
    assert_eq!(
        sc(r)["success"],
        true,
        "run failed: {}",
        serde_json::to_string_pretty(sc(r)).unwrap()
    );
    output(r)
}
