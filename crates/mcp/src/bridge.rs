//! The tool bridge: how sandboxed code calls the upstream MCP tools.
//!
//! Each run gets its own Unix socket, in a directory of its own that is shared read-only into
//! that run's sandbox (it appears at the same path inside). Nothing else reaches it: every
//! sandbox has a private mount namespace and sees only its own grants, and the guest has no
//! host network, so no TCP port is involved. A per-run token (32 random bytes, hex) must come
//! with every request, which keeps out other host users who can see the path; the token
//! reaches the guest inside its prelude, on stdin, never on a command line. When the run
//! ends the listener stops, open connections are dropped and the directory is removed, so a
//! guest that outlives its run (it cannot: the sandbox is killed) would find nothing.
//!
//! Protocol: one JSON object per line, each way.
//! Request `{"token", "id", "method", "params"}`, reply `{"id", "result"}` or
//! `{"id", "error": {"kind", "message"}}`. Methods:
//! - `callTool {name, arguments}`: the first text content of the tool result, or the whole
//!   result when it has none; an upstream `isError` is an error.
//! - `discover {search?: [string]}`, `getToolSchema {name}`, `searchTools {query, limit?}`:
//!   tool schemas `{name, description, inputSchema, outputSchema?, parameters}` from the cache.
//!
//! A request line longer than [`MAX_LINE`] gets an error (after the rest of the line is
//! drained, so the guest can read it) and the connection is closed; so does a line that is
//! not a JSON request or has a wrong token.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolResult, Tool};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::audit::rfc3339_now;
use super::params::Permissions;
use super::runtime::{interpreter_args, Runtime};
use super::sandbox::RunSpec;
use super::tool_names::AllowedToolPattern;
use super::upstream::{CallError, Status, Upstreams};

/// Largest request line; a 10 MB argument gets a clear error instead of filling memory.
pub const MAX_LINE: usize = 1024 * 1024;
/// Largest reply line; a bigger tool result is refused with an error.
pub const MAX_REPLY: usize = 16 * 1024 * 1024;
/// Bytes of an oversized line read and thrown away before the error reply, so the guest has
/// finished writing and can read it; past this the connection is simply closed.
const MAX_DRAIN: usize = 64 * 1024 * 1024;
/// Connections served at once per run; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
/// Discovery requests (discover, getToolSchema, searchTools) per window per run.
pub const DISCOVERY_LIMIT: usize = 30;
pub const DISCOVERY_WINDOW: Duration = Duration::from_secs(60);

/// Name of the socket inside the run's bridge directory.
pub const SOCKET_NAME: &str = "mcp.sock";

/// Per-run limits of the bridge.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Tool calls one run may make; later calls get an error (`MCP_MAX_CALLS_PER_RUN`).
    pub max_calls: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_calls: 500 }
    }
}

impl Limits {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut l = Limits::default();
        if let Some(n) = var("MCP_MAX_CALLS_PER_RUN").and_then(|v| v.trim().parse::<usize>().ok()) {
            l.max_calls = n;
        }
        l
    }
}

/// One tool call of a run, for the result summary and the audit log.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub tool: String,
    pub called_at: String,
    pub duration_ms: f64,
    pub ok: bool,
    pub error: Option<String>,
    /// Size of the serialized arguments (their values are never kept).
    pub arg_bytes: usize,
}

/// What one run may do and what it did.
struct RunState {
    upstreams: Arc<Upstreams>,
    /// Set at start, or when a prewarmed sandbox is taken by a run (see `set_allowed`).
    allowed: std::sync::RwLock<Vec<AllowedToolPattern>>,
    token: String,
    limits: Limits,
    calls_started: AtomicUsize,
    records: Mutex<Vec<CallRecord>>,
    discovery: Mutex<VecDeque<Instant>>,
}

/// The bridge of one run. Dropping it stops the listener and removes the socket directory.
pub struct RunBridge {
    dir: PathBuf,
    socket: PathBuf,
    token: String,
    stop: CancellationToken,
    state: Arc<RunState>,
}

/// Could not set up a run's bridge.
#[derive(Debug, thiserror::Error)]
#[error("tool bridge: cannot create the socket {path}: {source}; check TMPDIR (a Unix socket path must be under 108 bytes)")]
pub struct BridgeError {
    path: PathBuf,
    source: std::io::Error,
}

impl RunBridge {
    /// Create `dir` (mode 0755, so the sandbox's unprivileged uid may use it), bind the
    /// socket in it (0666) and start serving. Must be called inside a tokio runtime.
    pub fn start(
        dir: &Path,
        upstreams: Arc<Upstreams>,
        allowed: Vec<AllowedToolPattern>,
        limits: Limits,
    ) -> Result<RunBridge, BridgeError> {
        let socket = dir.join(SOCKET_NAME);
        let err = |source| BridgeError {
            path: socket.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
        let listener = UnixListener::bind(&socket).map_err(err)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        let token = hex::encode(raw);
        let state = Arc::new(RunState {
            upstreams,
            allowed: std::sync::RwLock::new(allowed),
            token: token.clone(),
            limits,
            calls_started: AtomicUsize::new(0),
            records: Mutex::new(Vec::new()),
            discovery: Mutex::new(VecDeque::new()),
        });
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), stop.clone()));
        Ok(RunBridge {
            dir: dir.to_path_buf(),
            socket,
            token,
            stop,
            state,
        })
    }

    /// The directory to share into the sandbox.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Wire this bridge into a run: the prelude before the code, the directory shared
    /// read-only into the sandbox (connect() needs no write access to the mount), and for
    /// deno its own permission flags (read and write on the directory, net on `unix:<socket>`).
    /// The allowlist of the run that took this bridge's prewarmed sandbox.
    pub fn set_allowed(&self, allowed: Vec<AllowedToolPattern>) {
        if let Ok(mut a) = self.state.allowed.write() {
            *a = allowed;
        }
    }

    /// `code` with this bridge's prelude (socket path and token) in front.
    pub fn wrap_code(&self, runtime: Runtime, code: &str) -> String {
        with_prelude(runtime, code, &self.socket, &self.token)
    }

    pub fn attach(&self, spec: &mut RunSpec, perms: &Permissions) {
        spec.code = with_prelude(spec.runtime, &spec.code, &self.socket, &self.token);
        if spec.runtime == Runtime::Deno {
            let mut write = spec.write.clone();
            write.push(self.dir.clone());
            // deno >= 2.x asks for net permission on `unix:<path>` as well.
            let mut perms = perms.clone();
            perms.net.push(format!("unix:{}", self.socket.display()));
            spec.args = interpreter_args(Runtime::Deno, &spec.read, &write, &perms);
        }
        spec.read.push(self.dir.clone());
    }

    /// Stop serving, remove the socket and return the calls the run made.
    pub fn finish(self) -> Vec<CallRecord> {
        self.stop.cancel();
        let records = std::mem::take(&mut *lock(&self.state.records));
        records
    }
}

impl Drop for RunBridge {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn serve(listener: UnixListener, state: Arc<RunState>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let conn = tokio::select! {
            _ = stop.cancelled() => return,
            c = listener.accept() => c,
        };
        let Ok((stream, _)) = conn else { continue };
        let (state, stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(stream, &state) => {}
            }
            drop(permit);
        });
    }
}

/// Outcome of reading one request line.
enum Line {
    Eof,
    Text(Vec<u8>),
    TooLong(usize),
}

async fn read_line(r: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut seen = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if seen == 0 {
                Line::Eof
            } else if seen > MAX_LINE {
                Line::TooLong(seen)
            } else {
                Line::Text(line)
            });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if seen + chunk.len() <= MAX_LINE {
            line.extend_from_slice(chunk);
        } else {
            line.clear();
        }
        seen += chunk.len();
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            return Ok(if seen > MAX_LINE {
                Line::TooLong(seen)
            } else {
                Line::Text(line)
            });
        }
        if seen > MAX_DRAIN {
            return Ok(Line::TooLong(seen));
        }
    }
}

async fn connection(stream: UnixStream, state: &RunState) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let line = match read_line(&mut r).await {
            Ok(Line::Eof) | Err(_) => return,
            Ok(Line::TooLong(n)) => {
                let msg = format!(
                    "request too large: {n} bytes, the limit is {MAX_LINE} bytes (1 MiB); pass smaller arguments"
                );
                let _ = reply(&mut w, Value::Null, Err(BridgeFault::new("too_large", msg))).await;
                return;
            }
            Ok(Line::Text(t)) => t,
        };
        let req: Value = match serde_json::from_slice(&line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let _ = reply(
                    &mut w,
                    Value::Null,
                    Err(BridgeFault::new(
                        "bad_request",
                        "malformed request: expected one JSON object per line with token, id, method, params",
                    )),
                )
                .await;
                return;
            }
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let token = req.get("token").and_then(Value::as_str).unwrap_or_default();
        if !constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
            let _ = reply(
                &mut w,
                id,
                Err(BridgeFault::new(
                    "unauthorized",
                    "wrong or missing token for this run's tool bridge",
                )),
            )
            .await;
            return;
        }
        let method = req
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let params = req.get("params").cloned().unwrap_or(Value::Null);
        let result = handle(state, method, params).await;
        if reply(&mut w, id, result).await.is_err() {
            return;
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error the guest sees: a short kind (for programs) and a message (for people).
#[derive(Debug)]
struct BridgeFault {
    kind: &'static str,
    message: String,
}

impl BridgeFault {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        BridgeFault {
            kind,
            message: message.into(),
        }
    }
}

async fn reply(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    id: Value,
    result: Result<Value, BridgeFault>,
) -> std::io::Result<()> {
    let mut text = match &result {
        Ok(v) => json!({"id": id, "result": v}),
        Err(f) => json!({"id": id, "error": {"kind": f.kind, "message": f.message}}),
    }
    .to_string();
    if text.len() > MAX_REPLY {
        text = json!({"id": id, "error": {"kind": "too_large", "message": format!(
            "the result is {} bytes, more than the bridge passes ({MAX_REPLY} bytes)", text.len())}})
        .to_string();
    }
    text.push('\n');
    w.write_all(text.as_bytes()).await?;
    w.flush().await
}

async fn handle(state: &RunState, method: &str, params: Value) -> Result<Value, BridgeFault> {
    match method {
        "callTool" => call_tool(state, params).await,
        "discover" | "getToolSchema" | "searchTools" => {
            discovery_allowed(state)?;
            state.upstreams.nudge_down();
            let all = all_schemas(&state.upstreams);
            match method {
                "discover" => {
                    let terms: Vec<String> = match params.get("search") {
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_lowercase)
                            .filter(|s| !s.trim().is_empty())
                            .collect(),
                        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.to_lowercase()],
                        _ => Vec::new(),
                    };
                    Ok(Value::Array(
                        all.into_iter().filter(|s| matches(s, &terms)).collect(),
                    ))
                }
                "getToolSchema" => {
                    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
                    Ok(all
                        .into_iter()
                        .find(|s| s["name"] == name)
                        .unwrap_or(Value::Null))
                }
                _ => {
                    let query = params.get("query").and_then(Value::as_str).unwrap_or("");
                    let limit = params
                        .get("limit")
                        .and_then(Value::as_u64)
                        .unwrap_or(10)
                        .min(1000) as usize;
                    let terms: Vec<String> =
                        query.split_whitespace().map(str::to_lowercase).collect();
                    Ok(Value::Array(
                        all.into_iter()
                            .filter(|s| matches(s, &terms))
                            .take(limit)
                            .collect(),
                    ))
                }
            }
        }
        other => Err(BridgeFault::new(
            "bad_request",
            format!(
                "unknown method {other:?}; the bridge knows callTool, discover, getToolSchema, searchTools"
            ),
        )),
    }
}

fn discovery_allowed(state: &RunState) -> Result<(), BridgeFault> {
    let now = Instant::now();
    let mut q = lock(&state.discovery);
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= DISCOVERY_WINDOW)
    {
        q.pop_front();
    }
    if q.len() >= DISCOVERY_LIMIT {
        return Err(BridgeFault::new(
            "rate_limited",
            format!(
                "tool discovery is rate limited to {DISCOVERY_LIMIT} requests per {} s per run; reuse the list you already have",
                DISCOVERY_WINDOW.as_secs()
            ),
        ));
    }
    q.push_back(now);
    Ok(())
}

/// Any term, case-insensitively, in the name or the description; no terms match everything.
fn matches(schema: &Value, terms: &[String]) -> bool {
    if terms.is_empty() {
        return true;
    }
    let name = schema["name"].as_str().unwrap_or("").to_lowercase();
    let desc = schema["description"].as_str().unwrap_or("").to_lowercase();
    terms
        .iter()
        .any(|t| name.contains(t.as_str()) || desc.contains(t.as_str()))
}

/// The schema shape of code-executor-mcp: `{name, description, inputSchema, outputSchema?,
/// parameters}` (`parameters` repeats `inputSchema`).
pub fn tool_schema(server: &str, t: &Tool) -> Value {
    let input = Value::Object((*t.input_schema).clone());
    let mut o = json!({
        "name": format!("mcp__{server}__{}", t.name),
        "description": t.description.as_deref().unwrap_or(""),
        "inputSchema": input,
        "parameters": input,
    });
    if let Some(out) = &t.output_schema {
        o["outputSchema"] = Value::Object((**out).clone());
    }
    o
}

fn all_schemas(upstreams: &Upstreams) -> Vec<Value> {
    upstreams
        .iter()
        .flat_map(|u| {
            let name = u.spec.name.clone();
            u.tools()
                .into_iter()
                .map(move |t| tool_schema(&name, &t))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn call_tool(state: &RunState, params: Value) -> Result<Value, BridgeFault> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            BridgeFault::new(
                "bad_request",
                "callTool needs a tool name: callMCPTool(\"mcp__<server>__<tool>\", {...})",
            )
        })?
        .to_string();
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(BridgeFault::new(
                "invalid_params",
                format!(
                    "the arguments of {name} must be an object, got {}",
                    match other {
                        Value::Array(_) => "an array",
                        Value::String(_) => "a string",
                        Value::Number(_) => "a number",
                        _ => "a boolean",
                    }
                ),
            ))
        }
    };
    let n = state.calls_started.fetch_add(1, Ordering::SeqCst);
    if n >= state.limits.max_calls {
        return Err(BridgeFault::new(
            "budget_exhausted",
            format!(
                "tool call budget exhausted: a run may make at most {} tool calls (this was call {})",
                state.limits.max_calls,
                n + 1
            ),
        ));
    }
    let pattern = AllowedToolPattern::parse(&name)
        .ok()
        .filter(|p| !p.wildcard)
        .ok_or_else(|| {
            BridgeFault::new(
                "invalid_name",
                format!("{name:?} is not a tool name: expected mcp__<server>__<tool>, each part made of A-Z a-z 0-9 _ . -"),
            )
        })?;
    let arg_bytes = Value::Object(arguments.clone()).to_string().len();
    let started = Instant::now();
    let called_at = rfc3339_now();
    let result = call_checked(state, &name, &pattern.server, &pattern.tool, arguments).await;
    let record = CallRecord {
        tool: name,
        called_at,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        ok: result.is_ok(),
        error: result.as_ref().err().map(|f| f.message.clone()),
        arg_bytes,
    };
    lock(&state.records).push(record);
    result
}

async fn call_checked(
    state: &RunState,
    name: &str,
    server: &str,
    tool: &str,
    arguments: Map<String, Value>,
) -> Result<Value, BridgeFault> {
    let allowed = state.allowed.read().map(|a| a.clone()).unwrap_or_default();
    if !allowed.iter().any(|p| p.matches(server, tool)) {
        let list: Vec<String> = allowed.iter().map(|p| p.to_string()).collect();
        return Err(BridgeFault::new(
            "denied",
            format!(
                "tool {name} is not allowed in this run: allowedTools is [{}]; add it to the execute call's allowedTools (exact name or mcp__{server}__*)",
                list.join(", ")
            ),
        ));
    }
    let Some(up) = state.upstreams.get(server) else {
        let names: Vec<&String> = state.upstreams.names().collect();
        return Err(BridgeFault::new(
            "not_found",
            format!(
                "MCP server `{server}` is not configured (configured: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ));
    };
    let find = || up.tools().into_iter().find(|t| t.name == tool);
    let spec = match find() {
        Some(t) => t,
        None => {
            // The upstream may be down (the refresh reconnects) or have added the tool.
            up.refresh_tools().await;
            match find() {
                Some(t) => t,
                None => {
                    let status = up.status();
                    let offered: Vec<String> =
                        up.tools().iter().map(|t| t.name.to_string()).collect();
                    return Err(match status {
                        Status::Failed { reason } => BridgeFault::new(
                            "unavailable",
                            format!("MCP server `{server}` is not connected: {reason}"),
                        ),
                        Status::Connecting => BridgeFault::new(
                            "unavailable",
                            format!(
                                "MCP server `{server}` is still connecting (no answer yet to initialize or tools/list); try again later"
                            ),
                        ),
                        Status::Connected { .. } => BridgeFault::new(
                            "not_found",
                            format!(
                                "tool `{tool}` not found on MCP server `{server}` (it offers: {})",
                                offered.join(", ")
                            ),
                        ),
                    });
                }
            }
        }
    };
    validate(name, &spec, &arguments)?;
    match up.call(tool, arguments).await {
        Ok(r) => tool_value(name, r),
        Err(e) => Err(BridgeFault::new(
            match e {
                CallError::Timeout { .. } | CallError::Busy { .. } => "timeout",
                _ => "upstream",
            },
            e.to_string(),
        )),
    }
}

/// Check the arguments against the tool's inputSchema, listing every violation.
fn validate(name: &str, tool: &Tool, args: &Map<String, Value>) -> Result<(), BridgeFault> {
    let schema = Value::Object((*tool.input_schema).clone());
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => {
            // The upstream's schema is broken: let the upstream judge the arguments.
            tracing::warn!(tool = name, "upstream inputSchema does not compile: {e}");
            return Ok(());
        }
    };
    let instance = Value::Object(args.clone());
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                format!("- {e}")
            } else {
                format!("- at {path}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(BridgeFault::new(
        "invalid_params",
        format!(
            "invalid arguments for {name}:\n{}\nExpected parameters: {}",
            errors.join("\n"),
            expected(&schema)
        ),
    ))
}

/// `a (number, required), b (string)` from an object schema.
fn expected(schema: &Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return "(none declared)".into();
    };
    if props.is_empty() {
        return "none".into();
    }
    props
        .iter()
        .map(|(k, v)| {
            let ty = match &v["type"] {
                Value::String(s) => s.clone(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("|"),
                _ => "any".into(),
            };
            if required.contains(&k.as_str()) {
                format!("{k} ({ty}, required)")
            } else {
                format!("{k} ({ty})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The value `callMCPTool` resolves to: the first content item's text, else the whole result.
fn tool_value(name: &str, r: CallToolResult) -> Result<Value, BridgeFault> {
    let first_text = r
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone());
    if r.is_error == Some(true) {
        return Err(BridgeFault::new(
            "tool_error",
            format!(
                "{name} returned an error: {}",
                first_text.unwrap_or_else(|| serde_json::to_string(&r.content).unwrap_or_default())
            ),
        ));
    }
    match first_text {
        Some(t) => Ok(Value::String(t)),
        None => Ok(serde_json::to_value(&r).unwrap_or(Value::Null)),
    }
}

/// `toolCallsMade`: each tool name once, in the order of first call.
pub fn calls_made(records: &[CallRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records {
        if !out.contains(&r.tool) {
            out.push(r.tool.clone());
        }
    }
    out
}

/// `toolCallSummary`: one entry per tool, as in code-executor-mcp.
pub fn call_summary(records: &[CallRecord]) -> Vec<Value> {
    calls_made(records)
        .into_iter()
        .map(|tool| {
            let mine: Vec<&CallRecord> = records.iter().filter(|r| r.tool == tool).collect();
            let total: f64 = mine.iter().map(|r| r.duration_ms).sum();
            let ok = mine.iter().filter(|r| r.ok).count();
            let last = mine[mine.len() - 1];
            let mut v = json!({
                "toolName": tool,
                "callCount": mine.len(),
                "successCount": ok,
                "errorCount": mine.len() - ok,
                "totalDurationMs": round2(total),
                "averageDurationMs": round2(total / mine.len() as f64),
                "lastCallDurationMs": round2(last.duration_ms),
                "lastCallStatus": if last.ok { "success" } else { "error" },
                "lastCalledAt": last.called_at,
            });
            if let Some(e) = mine.iter().rev().find_map(|r| r.error.as_ref()) {
                v["lastErrorMessage"] = json!(e);
            }
            v
        })
        .collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One audit line per call: tool, duration, ok or error, and the argument size (never the
/// argument values, which may hold secrets).
pub fn audit_lines(records: &[CallRecord]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            json!({
                "type": "tool_call",
                "timestamp": r.called_at,
                "tool": r.tool,
                "durationMs": round2(r.duration_ms),
                "ok": r.ok,
                "error": r.error,
                "argBytes": r.arg_bytes,
            })
        })
        .collect()
}

/// The guest prelude of deno and node (one prelude: both have `node:net`).
const JS_PRELUDE: &str = include_str!("prelude/guest.js");
/// The guest prelude of python.
const PY_PRELUDE: &str = include_str!("prelude/guest.py");
/// Markers the python runner looks for (see `runtime::PYTHON_RUNNER`).
const PY_PRELUDE_START: &str = "#code-executor-prelude\n";
const PY_PRELUDE_END: &str = "\n#code-executor-prelude-end\n";

/// The guest program with the bridge functions defined before the user's code.
///
/// JavaScript: the prelude is joined into one line in front of the user's first line, so
/// every line number in a stack trace stays the user's. Python: the runner compiles the
/// prelude on its own. Socket path and token are JSON string literals, valid in both.
pub fn with_prelude(runtime: Runtime, code: &str, socket: &Path, token: &str) -> String {
    let fill = |text: &str| {
        text.replace(
            "__CE_SOCKET__",
            &Value::String(socket.display().to_string()).to_string(),
        )
        .replace(
            "__CE_TOKEN__",
            &Value::String(token.to_string()).to_string(),
        )
    };
    match runtime {
        Runtime::Deno | Runtime::Node => {
            let one_line: Vec<&str> = JS_PRELUDE
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            format!("{} {code}", fill(&one_line.join(" ")))
        }
        Runtime::Python => format!(
            "{PY_PRELUDE_START}{}{PY_PRELUDE_END}{code}",
            fill(PY_PRELUDE)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_orders() {
        let rec = |tool: &str, ok: bool, ms: f64| CallRecord {
            tool: tool.into(),
            called_at: "t".into(),
            duration_ms: ms,
            ok,
            error: (!ok).then(|| "boom".to_string()),
            arg_bytes: 2,
        };
        let r = vec![
            rec("mcp__a__x", true, 1.0),
            rec("mcp__b__y", false, 3.0),
            rec("mcp__a__x", true, 2.0),
        ];
        assert_eq!(calls_made(&r), ["mcp__a__x", "mcp__b__y"]);
        let s = call_summary(&r);
        assert_eq!(s[0]["callCount"], 2);
        assert_eq!(s[0]["averageDurationMs"], 1.5);
        assert_eq!(s[1]["errorCount"], 1);
        assert_eq!(s[1]["lastErrorMessage"], "boom");
        let lines = audit_lines(&r);
        assert_eq!(lines[1]["ok"], false);
        assert_eq!(lines[1]["argBytes"], 2);
    }

    #[test]
    fn expected_parameters_are_listed() {
        let s = json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": ["string", "null"]}}, "required": ["a"]});
        assert_eq!(expected(&s), "a (number, required), b (string|null)");
    }

    #[test]
    fn preludes_keep_line_numbers() {
        let js = with_prelude(Runtime::Node, "a\nb", Path::new("/s"), "tok");
        assert_eq!(js.lines().count(), 2, "{js}");
        assert!(js.contains("\"/s\"") && js.contains("\"tok\"") && js.ends_with(" a\nb"));
        assert!(!js.contains("__CE_"));
        let py = with_prelude(Runtime::Python, "x = 1", Path::new("/s"), "tok");
        assert!(
            py.starts_with(PY_PRELUDE_START) && py.ends_with(&format!("{PY_PRELUDE_END}x = 1"))
        );
    }

    #[test]
    fn search_matches_name_or_description() {
        let s = json!({"name": "mcp__t__Echo", "description": "Says it back"});
        assert!(matches(&s, &[]));
        assert!(matches(&s, &["echo".into()]));
        assert!(matches(&s, &["nope".into(), "says".into()]));
        assert!(!matches(&s, &["nope".into()]));
    }
}
