//! The bridge's methods: `callTool` (allowlist, budget, schema check, the upstream call) and
//! tool discovery (`discover`, `getToolSchema`, `searchTools`, rate limited per run).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolResult, Tool};
use serde_json::{json, Map, Value};

use super::calls::CallRecord;
use super::upstream::{CallError, Upstream, UpstreamStatus, Upstreams};
use crate::audit::rfc3339_now;
use crate::config::BridgeLimits;
use crate::tool_names::AllowedToolPattern;

/// Discovery requests (discover, getToolSchema, searchTools) per window per run.
pub const DISCOVERY_LIMIT: usize = 30;
pub const DISCOVERY_WINDOW: Duration = Duration::from_secs(60);

/// What one run may do and what it did.
pub struct RunState {
    upstreams: Arc<Upstreams>,
    /// Set at start, or when a prewarmed sandbox is taken by a run (see `set_allowed`).
    allowed: RwLock<Vec<AllowedToolPattern>>,
    token: String,
    limits: BridgeLimits,
    calls_started: AtomicUsize,
    records: Mutex<Vec<CallRecord>>,
    discovery: Mutex<VecDeque<Instant>>,
}

impl RunState {
    pub fn new(
        upstreams: Arc<Upstreams>,
        allowed: Vec<AllowedToolPattern>,
        token: String,
        limits: BridgeLimits,
    ) -> Self {
        RunState {
            upstreams,
            allowed: RwLock::new(allowed),
            token,
            limits,
            calls_started: AtomicUsize::new(0),
            records: Mutex::new(Vec::new()),
            discovery: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether `token` is this run's, compared in constant time.
    pub fn token_is(&self, token: &str) -> bool {
        constant_time_eq(token.as_bytes(), self.token.as_bytes())
    }

    pub fn set_allowed(&self, allowed: Vec<AllowedToolPattern>) {
        *self.allowed.write().unwrap_or_else(|e| e.into_inner()) = allowed;
    }

    /// The calls made so far, leaving none behind.
    pub fn take_records(&self) -> Vec<CallRecord> {
        std::mem::take(&mut *lock(&self.records))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error the guest sees: a short kind (for programs) and a message (for people).
#[derive(Debug)]
pub struct BridgeFault {
    pub kind: &'static str,
    pub message: String,
}

impl BridgeFault {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        BridgeFault {
            kind,
            message: message.into(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub async fn handle(state: &RunState, method: &str, params: Value) -> Result<Value, BridgeFault> {
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
    let spec = find_tool(up, server, tool).await?;
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

/// The cached schema of `tool`, refreshing the cache once when it is not there (the upstream
/// may be down, and the refresh reconnects, or it may have added the tool without telling).
async fn find_tool(up: &Upstream, server: &str, tool: &str) -> Result<Tool, BridgeFault> {
    let find = || up.tools().into_iter().find(|t| t.name == tool);
    if let Some(t) = find() {
        return Ok(t);
    }
    up.refresh_tools().await;
    if let Some(t) = find() {
        return Ok(t);
    }
    Err(match up.status() {
        UpstreamStatus::Failed { reason } => BridgeFault::new(
            "unavailable",
            format!("MCP server `{server}` is not connected: {reason}"),
        ),
        UpstreamStatus::Connecting => BridgeFault::new(
            "unavailable",
            format!(
                "MCP server `{server}` is still connecting (no answer yet to initialize or tools/list); try again later"
            ),
        ),
        UpstreamStatus::Connected { .. } => {
            let offered: Vec<String> = up.tools().iter().map(|t| t.name.to_string()).collect();
            BridgeFault::new(
                "not_found",
                format!(
                    "tool `{tool}` not found on MCP server `{server}` (it offers: {})",
                    offered.join(", ")
                ),
            )
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_parameters_are_listed() {
        let s = json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": ["string", "null"]}}, "required": ["a"]});
        assert_eq!(expected(&s), "a (number, required), b (string|null)");
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
