//! Shared helpers of the MCP integration tests: start the real `code-executor-mcp` binary
//! (which runs every execution through the real `sandbox-run`) and talk to it with rmcp's client.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value};

pub const SERVER: &str = env!("CARGO_BIN_EXE_code-executor-mcp");
/// The repository's root, where `scripts/test.sh` installs `.deps/`.
pub const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The `sandbox-run` binary the server uses: the one built beside it (another package of the
/// workspace, so cargo gives no `CARGO_BIN_EXE_` for it; `cargo test --workspace` builds it).
pub fn sandbox_run() -> PathBuf {
    let p = Path::new(SERVER).with_file_name("sandbox-run");
    assert!(
        p.is_file(),
        "{} is missing: build the sandbox too (`cargo build --workspace`, or `scripts/test.sh`)",
        p.display()
    );
    p
}

/// Generous ceiling on one call, so a broken server fails the test instead of hanging it.
pub const CALL_LIMIT: Duration = Duration::from_secs(120);

/// The deno binary the tests use: PATH first, then the test script's `.deps` install.
/// Panics (fails the test) with the install instruction when it is missing.
pub fn deno() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(p) = std::env::split_paths(&path)
        .map(|d| d.join("deno"))
        .find(|p| p.is_file())
    {
        return p;
    }
    let local = Path::new(crate::mcp_support::REPO_ROOT).join(".deps/node_modules/.bin/deno");
    if local.exists() {
        return local;
    }
    panic!(
        "deno is required by this test and was not found on PATH nor at {}; install it with \
         `scripts/test.sh` (or `npm install --prefix .deps deno`)",
        local.display()
    );
}

/// Environment for a server under test: nothing from the developer's own config, deno on PATH.
pub struct ServerEnv {
    pub dir: tempfile::TempDir,
    pub vars: HashMap<String, String>,
}

impl ServerEnv {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // The sandbox may run as an unprivileged uid (65534 when the tests run as root): let it
        // traverse to the paths a test grants.
        set_mode(dir.path(), 0o755);
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home dir");
        let deno_dir = deno().parent().expect("deno dir").to_path_buf();
        let path = std::env::var("PATH").unwrap_or_default();
        let mut vars = HashMap::new();
        vars.insert("HOME".to_string(), home.display().to_string());
        vars.insert("PATH".to_string(), format!("{}:{path}", deno_dir.display()));
        vars.insert("RUST_LOG".into(), "warn".into());
        // Prewarmed sandboxes have their own tests (server/prewarm.rs); elsewhere they would only
        // add load and background processes that some assertions count.
        vars.insert("CODE_EXECUTOR_PREWARM".into(), "0".into());
        // Lets a developer point the tests at another launcher; normally the sibling is used.
        if let Ok(p) = std::env::var("MCP_TEST_SANDBOX_RUN") {
            vars.insert("SANDBOX_RUN_PATH".into(), p);
        }
        ServerEnv { dir, vars }
    }

    pub fn set(mut self, k: &str, v: impl Into<String>) -> Self {
        self.vars.insert(k.to_string(), v.into());
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A plain `Command` for the server with this environment (cwd = the temp dir).
    pub fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(SERVER);
        c.env_clear().envs(&self.vars).current_dir(self.dir.path());
        c
    }

    /// Start the server with piped stdin and stdout and no client, for tests that speak raw
    /// JSON-RPC or control exactly when its stdin closes. Killed when dropped.
    pub fn spawn_raw(&self) -> tokio::process::Child {
        self.command()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn server")
    }

    /// Start the server and connect an rmcp client to it.
    pub async fn start(&self) -> Client {
        let cmd = self.command();
        let (transport, _stderr) = TokioChildProcess::builder(cmd.configure(|_| {}))
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn code-executor-mcp");
        let pid = transport.id().expect("server pid");
        let service = tokio::time::timeout(CALL_LIMIT, ().serve(transport))
            .await
            .expect("initialize timed out")
            .expect("initialize failed");
        Client { service, pid }
    }
}

pub struct Client {
    pub service: RunningService<RoleClient, ()>,
    pub pid: u32,
}

impl Client {
    pub async fn try_call(&self, tool: &str, args: Value) -> Result<CallToolResult, ServiceError> {
        let mut p = CallToolRequestParams::new(tool.to_string());
        if let Value::Object(m) = args {
            p = p.with_arguments(m);
        }
        tokio::time::timeout(CALL_LIMIT, self.service.call_tool(p))
            .await
            .expect("call timed out")
    }

    pub async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        self.try_call(tool, args).await.expect("call failed")
    }

    /// Processes whose parent is the server: the sandbox-run launchers in flight.
    pub fn launcher_children(&self) -> Vec<u32> {
        children_of(self.pid)
    }
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The structured content of a result (panics when missing: every result must have it).
pub fn sc(r: &CallToolResult) -> &Map<String, Value> {
    r.structured_content
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("result without structuredContent: {r:?}"))
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

pub fn output(r: &CallToolResult) -> String {
    sc(r)["output"].as_str().unwrap_or_default().to_string()
}

pub fn error(r: &CallToolResult) -> String {
    sc(r)
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Pids of live processes whose parent is `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{n}/stat")) else {
            continue;
        };
        // Fields after the ")" of the command name: state, ppid, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid && state != "Z" {
            out.push(n);
        }
    }
    out
}

/// Poll `cond` until it holds or `limit` passes; returns whether it held. Used to wait for
/// processes to disappear, not to assert on speed.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// chmod, for paths a test grants to the sandbox.
pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
