//! Arguments of `executeTypescript` / `executePython`, checked by hand.
//!
//! Hand-written rather than derived so that every rejection carries a message an agent can act
//! on (which field, what was wrong, what is allowed), and so that a bad argument becomes a
//! structured error result instead of rmcp's generic deserialization text.

use code_executor::net::pattern::{narrow, HostPattern, NetPolicy};
use serde_json::{json, Map, Value};

use super::config::{Config, MIN_TIMEOUT_MS};
use super::tool_names::AllowedToolPattern;

/// A rejected argument; the message is shown to the caller as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

pub const TOOL_TS: &str = "executeTypescript";
pub const TOOL_PY: &str = "executePython";

/// The two tools that run code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecuteTool {
    /// `executeTypescript`: TypeScript on deno, or JavaScript on node.
    Typescript,
    /// `executePython`.
    Python,
}

impl ExecuteTool {
    pub fn name(self) -> &'static str {
        match self {
            ExecuteTool::Typescript => TOOL_TS,
            ExecuteTool::Python => TOOL_PY,
        }
    }

    pub fn from_name(name: &str) -> Option<ExecuteTool> {
        match name {
            TOOL_TS => Some(ExecuteTool::Typescript),
            TOOL_PY => Some(ExecuteTool::Python),
            _ => None,
        }
    }

    pub fn is_typescript(self) -> bool {
        self == ExecuteTool::Typescript
    }
}

/// Which interpreter runs TypeScript/JavaScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsRuntime {
    Deno,
    Node,
}

/// Requested extra access for one run, before resolution against the configured roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub net: Vec<String>,
}

/// A validated execution request.
#[derive(Debug, Clone)]
pub struct ExecuteParams {
    pub code: String,
    pub allowed_tools: Vec<AllowedToolPattern>,
    pub timeout_ms: u64,
    pub permissions: Permissions,
    pub js_runtime: Option<JsRuntime>,
    pub enable_sampling: bool,
}

/// The arguments both execute tools accept (`executeTypescript` also takes `runtime`).
pub const COMMON_KEYS: &[&str] = &[
    "code",
    "allowedTools",
    "timeoutMs",
    "permissions",
    "skipDangerousPatternCheck",
    "enableSampling",
    "maxSamplingRounds",
    "maxSamplingTokens",
    "samplingSystemPrompt",
    "allowedSamplingModels",
];

/// Parse the arguments of an execute tool. `typescript` enables the `runtime` key.
pub fn parse_execute(
    args: Option<&Map<String, Value>>,
    cfg: &Config,
    typescript: bool,
) -> Result<ExecuteParams, ParamError> {
    let empty = Map::new();
    let args = args.unwrap_or(&empty);
    for key in args.keys() {
        let known_key = COMMON_KEYS.contains(&key.as_str()) || (typescript && key == "runtime");
        if !known_key {
            let mut known: Vec<&str> = COMMON_KEYS.to_vec();
            if typescript {
                known.push("runtime");
            }
            return Err(ParamError(format!(
                "unknown argument `{key}`; accepted arguments: {}",
                known.join(", ")
            )));
        }
    }
    let code = parse_code(args, cfg)?;
    let timeout_ms = parse_timeout(args, cfg)?;
    let allowed_tools = parse_allowed_tools(args, cfg)?;
    let permissions = match args.get("permissions") {
        None | Some(Value::Null) => Permissions::default(),
        Some(Value::Object(p)) => parse_permissions(p)?,
        Some(other) => {
            return Err(ParamError(format!(
                "argument `permissions` must be an object {{read?, write?, net?}}, got {}",
                kind(other)
            )))
        }
    };
    let js_runtime = match args.get("runtime") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "deno" => Some(JsRuntime::Deno),
        Some(Value::String(s)) if s == "node" => Some(JsRuntime::Node),
        Some(other) => {
            return Err(ParamError(format!(
                "argument `runtime` must be \"deno\" or \"node\", got {other}"
            )))
        }
    };
    let enable_sampling = match args.get("enableSampling") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ParamError(format!(
                "argument `enableSampling` must be a boolean, got {}",
                kind(other)
            )))
        }
    };
    if let Some(v) = args.get("skipDangerousPatternCheck") {
        if !v.is_boolean() && !v.is_null() {
            return Err(ParamError(format!(
                "argument `skipDangerousPatternCheck` must be a boolean, got {}",
                kind(v)
            )));
        }
    }
    Ok(ExecuteParams {
        code,
        allowed_tools,
        timeout_ms,
        permissions,
        js_runtime,
        enable_sampling,
    })
}

/// `code`: a non-empty string within `security.maxCodeSize`.
fn parse_code(args: &Map<String, Value>, cfg: &Config) -> Result<String, ParamError> {
    let code = match args.get("code") {
        None => {
            return Err(ParamError(
                "missing required argument `code` (a string with the program to run)".into(),
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ParamError(format!(
                "argument `code` must be a string, got {}",
                kind(other)
            )))
        }
    };
    if code.trim().is_empty() {
        return Err(ParamError(
            "argument `code` is empty; pass the program to run".into(),
        ));
    }
    if code.len() > cfg.max_code_size {
        return Err(ParamError(format!(
            "argument `code` is {} bytes, over the limit of {} bytes (security.maxCodeSize); split the work into smaller runs",
            code.len(),
            cfg.max_code_size
        )));
    }
    Ok(code)
}

/// `timeoutMs`: milliseconds within the configured range, default `security.defaultTimeoutMs`.
fn parse_timeout(args: &Map<String, Value>, cfg: &Config) -> Result<u64, ParamError> {
    Ok(match args.get("timeoutMs") {
        None | Some(Value::Null) => cfg.default_timeout_ms,
        Some(v) => {
            let n = v.as_u64().filter(|_| v.is_u64()).or_else(|| {
                // Accept integral floats such as 5000.0, which some clients send.
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            });
            match n {
                Some(n) if (MIN_TIMEOUT_MS..=cfg.max_timeout_ms).contains(&n) => n,
                _ => {
                    return Err(ParamError(format!(
                        "argument `timeoutMs` must be an integer from {MIN_TIMEOUT_MS} to {} (milliseconds), got {v}",
                        cfg.max_timeout_ms
                    )))
                }
            }
        }
    })
}

/// `allowedTools`: tool names and patterns, each within `security.allowedTools` when set.
fn parse_allowed_tools(
    args: &Map<String, Value>,
    cfg: &Config,
) -> Result<Vec<AllowedToolPattern>, ParamError> {
    Ok(match args.get("allowedTools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                let Value::String(s) = item else {
                    return Err(ParamError(format!(
                        "argument `allowedTools` must be an array of strings, found {}",
                        kind(item)
                    )));
                };
                let p = AllowedToolPattern::parse(s).map_err(|e| ParamError(e.to_string()))?;
                let outside = cfg
                    .allowed_tools
                    .as_ref()
                    .is_some_and(|ceiling| !ceiling.iter().any(|c| p.within(c)));
                if outside {
                    return Err(ParamError(format!(
                        "tool {s:?} is not allowed by the server configuration (security.allowedTools); a run can only narrow that list"
                    )));
                }
                out.push(p);
            }
            out
        }
        Some(other) => {
            return Err(ParamError(format!(
                "argument `allowedTools` must be an array of strings, got {}",
                kind(other)
            )))
        }
    })
}

fn parse_permissions(p: &Map<String, Value>) -> Result<Permissions, ParamError> {
    let mut out = Permissions::default();
    for (key, value) in p {
        let slot = match key.as_str() {
            "read" => &mut out.read,
            "write" => &mut out.write,
            "net" => &mut out.net,
            _ => {
                return Err(ParamError(format!(
                    "unknown key `permissions.{key}`; accepted keys: read, write, net"
                )))
            }
        };
        let items = match value {
            Value::Null => continue,
            Value::Array(items) => items,
            other => {
                return Err(ParamError(format!(
                    "`permissions.{key}` must be an array of strings, got {}",
                    kind(other)
                )))
            }
        };
        for item in items {
            match item {
                Value::String(s) if !s.is_empty() => slot.push(s.clone()),
                other => {
                    return Err(ParamError(format!(
                        "`permissions.{key}` entries must be non-empty strings, found {other}"
                    )))
                }
            }
        }
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON Schema of the execute tools' input, as listed in `tools/list`.
pub fn input_schema(typescript: bool, cfg: &Config) -> Map<String, Value> {
    let mut props = json!({
        "code": {"type": "string", "minLength": 1, "maxLength": cfg.max_code_size,
                 "description": if typescript {
                    "TypeScript or JavaScript source, run as an ES module (top-level await works). Print results with console.log."
                 } else {
                    "Python 3 source, run by CPython (top-level await works). Print results with print()."
                 }},
        "allowedTools": {"type": "array", "items": {"type": "string"}, "default": [],
            "description": "MCP tools the code may call, as mcp__<server>__<tool> (a trailing * on the tool part is a wildcard). Can only narrow the server's configuration."},
        "timeoutMs": {"type": "integer", "minimum": MIN_TIMEOUT_MS, "maximum": cfg.max_timeout_ms,
            "default": cfg.default_timeout_ms, "description": "Wall-clock limit for the run, in milliseconds."},
        "permissions": {"type": "object", "additionalProperties": false, "default": {},
            "description": "Extra access for this run, within the server's configured roots. Paths must be absolute.",
            "properties": {
                "read": {"type": "array", "items": {"type": "string"}, "description": "Absolute host paths made readable (same path inside)."},
                "write": {"type": "array", "items": {"type": "string"}, "description": "Absolute host paths made writable (same path inside)."},
                "net": {"type": "array", "items": {"type": "string"}, "description": "HOST or HOST:PORT the run may connect to."}
            }},
        "skipDangerousPatternCheck": {"type": "boolean", "default": false,
            "description": "Accepted for compatibility and ignored: the server configuration decides."},
        "enableSampling": {"type": "boolean", "default": false, "description": "Not enabled on this server yet."},
        "maxSamplingRounds": {"type": "integer", "default": 10},
        "maxSamplingTokens": {"type": "integer", "default": 10000},
        "samplingSystemPrompt": {"type": "string"},
        "allowedSamplingModels": {"type": "array", "items": {"type": "string"}}
    });
    if typescript {
        props["runtime"] = json!({"type": "string", "enum": ["deno", "node"], "default": "deno",
            "description": "deno (TypeScript, default) or node (JavaScript ES module)."});
    }
    let schema = json!({
        "type": "object",
        "properties": props,
        "required": ["code"],
        "additionalProperties": false
    });
    match schema {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Check a run's `permissions.net` against the server's ceiling (`security.allowNetwork`).
///
/// Narrowing is [`narrow`]'s job. One more refusal on top: an exact host or IP that only a
/// ceiling *wildcard* covers. `narrow` would keep it public-only, but on the `sandbox-run`
/// command line every `--allow-net` is an operator pattern, and an exact one may reach the
/// private addresses it resolves to; passing it would let DNS turn a `*` ceiling into the LAN.
pub fn check_net(requested: &[String], ceiling: &NetPolicy) -> Result<(), String> {
    let mut patterns = Vec::new();
    for r in requested.iter().filter(|r| !r.is_empty()) {
        patterns.push(HostPattern::parse(r).map_err(|e| format!("permissions.net: {e}"))?);
    }
    narrow(&patterns, ceiling).map_err(|e| e.to_string())?;
    for p in &patterns {
        if p.is_explicit() && !ceiling.patterns().any(|c| c.is_explicit() && c.covers(p)) {
            return Err(format!(
                "permissions.net asks for the exact host `{p}`, which security.allowNetwork allows only \
                 through a wildcard; ask for a wildcard pattern (e.g. `*.example.com`) or have the \
                 operator list `{p}` in security.allowNetwork"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<ExecuteParams, ParamError> {
        let cfg = Config {
            allowed_tools: Some(vec![AllowedToolPattern::parse("mcp__fs__*").unwrap()]),
            ..Default::default()
        };
        parse_execute(v.as_object(), &cfg, true)
    }

    #[test]
    fn good_arguments() {
        let p = parse(json!({"code": "x", "timeoutMs": 2000, "runtime": "node",
            "permissions": {"read": ["/a"], "net": []}, "allowedTools": ["mcp__fs__read"],
            "skipDangerousPatternCheck": true, "maxSamplingRounds": 3}))
        .unwrap();
        assert_eq!(p.timeout_ms, 2000);
        assert_eq!(p.js_runtime, Some(JsRuntime::Node));
        assert_eq!(p.permissions.read, vec!["/a".to_string()]);
        assert_eq!(parse(json!({"code": "x"})).unwrap().timeout_ms, 30_000);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let cases = [
            (json!({}), "missing required argument `code`"),
            (json!({"code": 5}), "must be a string"),
            (json!({"code": "  "}), "is empty"),
            (json!({"code": "x".repeat(100_001)}), "over the limit"),
            (json!({"code": "x", "timeoutMs": 999}), "timeoutMs"),
            (json!({"code": "x", "timeoutMs": 300_001}), "timeoutMs"),
            (json!({"code": "x", "timeoutMs": "5"}), "timeoutMs"),
            (
                json!({"code": "x", "permissions": {"exec": []}}),
                "permissions.exec",
            ),
            (
                json!({"code": "x", "permissions": {"read": "/a"}}),
                "array of strings",
            ),
            (
                json!({"code": "x", "allowedTools": ["fs_read"]}),
                "malformed",
            ),
            (
                json!({"code": "x", "allowedTools": ["mcp__git__log"]}),
                "not allowed by the server",
            ),
            (json!({"code": "x", "runtime": "bun"}), "runtime"),
            (
                json!({"code": "x", "timeout": 5}),
                "unknown argument `timeout`",
            ),
        ];
        for (args, want) in cases {
            let e = parse(args.clone()).unwrap_err().0;
            assert!(e.contains(want), "{args}: {e}");
        }
    }

    #[test]
    fn net_ceiling() {
        let ceiling = NetPolicy::parse(["example.com", "api.x.org:443", "*.pub.dev"]).unwrap();
        let ok = |r: &[&str]| {
            check_net(
                &r.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &ceiling,
            )
        };
        assert!(ok(&[
            "example.com:443",
            "api.x.org:443",
            "*.pub.dev",
            "*.a.pub.dev",
            ""
        ])
        .is_ok());
        assert!(ok(&["api.x.org:80"])
            .unwrap_err()
            .contains("does not allow"));
        assert!(ok(&["evil.com"]).unwrap_err().contains("does not allow"));
        assert!(ok(&["https://example.com/"]).unwrap_err().contains("URL"));
        // Exact host under a wildcard only: refused (it would become an operator pattern).
        assert!(ok(&["a.pub.dev"])
            .unwrap_err()
            .contains("only through a wildcard"));
        assert!(check_net(&["x.com".into()], &NetPolicy::deny_all())
            .unwrap_err()
            .contains("no network"));
    }
}
