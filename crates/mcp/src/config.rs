//! Server configuration: `.code-executor.json` files, `"env:VAR"` values, environment variables.
//!
//! Files are read from, lowest priority first, `~/.config/code-executor/config.json`,
//! `~/.code-executor.json` and `./.code-executor.json`, merged key by key (a later file wins
//! per key). `CODE_EXECUTOR_CONFIG_PATH` replaces that search with one file, which must exist.
//! Environment variables are applied last and win over every file. No file at all is fine:
//! the defaults are safe (no host path may be granted, no audit log, no rate limit).
//!
//! Files are validated against a fixed key tree rather than through serde so that an error can
//! name the file and the full dotted key (`security.rateLimit.maxRequest`), which serde's
//! `deny_unknown_fields` cannot do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::tool_names::{AllowedToolPattern, ToolNameError};
use code_executor::net::pattern::NetPolicy;

/// Why the configuration could not be loaded. The server refuses to start on any of these,
/// because running with a half-understood security configuration is worse than not running.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {file}: cannot read the file: {source}; fix its permissions or unset CODE_EXECUTOR_CONFIG_PATH")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "config {file}: invalid JSON at line {line}, column {column}: {message}; fix the syntax"
    )]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config {file}: unknown key `{key}`; known keys here are: {known}")]
    UnknownKey {
        file: PathBuf,
        key: String,
        known: String,
    },
    #[error("config {file}: key `{key}` must be {expected}, found {found}")]
    WrongType {
        file: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("config {file}: key `{key}` refers to environment variable {var}, which is not set; set it or change the value")]
    MissingEnv {
        file: PathBuf,
        key: String,
        var: String,
    },
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    BadEnv {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("config {origin}: `{key}` is invalid: {reason}")]
    BadValue {
        origin: String,
        key: String,
        reason: String,
    },
    #[error("config {origin}: allowed root {path} cannot be resolved: {source}; create it or remove it from the configuration")]
    BadRoot {
        origin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin}: `allowedTools` entry is invalid: {source}")]
    BadToolName {
        origin: String,
        source: ToolNameError,
    },
}

/// Expected type of a configuration key; the tree of these is the whole file format.
#[derive(Clone, Copy)]
enum Kind {
    Bool,
    UInt,
    Str,
    StrList,
    Object(&'static [(&'static str, Kind)]),
}

const RATE_LIMIT_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("windowMs", Kind::UInt),
    ("maxRequests", Kind::UInt),
];
const SECURITY_KEYS: &[(&str, Kind)] = &[
    ("defaultTimeoutMs", Kind::UInt),
    ("maxTimeoutMs", Kind::UInt),
    ("maxCodeSize", Kind::UInt),
    ("allowRead", Kind::StrList),
    ("allowWrite", Kind::StrList),
    ("allowNetwork", Kind::StrList),
    ("enableAuditLog", Kind::Bool),
    ("auditLogPath", Kind::Str),
    ("rateLimit", Kind::Object(RATE_LIMIT_KEYS)),
    ("allowedTools", Kind::StrList),
    ("blockDangerousPatterns", Kind::Bool),
];
const TS_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("denoPath", Kind::Str),
    ("nodePath", Kind::Str),
];
const PY_KEYS: &[(&str, Kind)] = &[("enabled", Kind::Bool), ("pythonPath", Kind::Str)];
const EXECUTOR_KEYS: &[(&str, Kind)] = &[
    ("typescript", Kind::Object(TS_KEYS)),
    ("python", Kind::Object(PY_KEYS)),
];
const POOL_KEYS: &[(&str, Kind)] = &[
    ("maxConcurrent", Kind::UInt),
    ("queueSize", Kind::UInt),
    ("queueTimeoutMs", Kind::UInt),
    ("prewarm", Kind::UInt),
];
const ROOT_KEYS: &[(&str, Kind)] = &[
    ("$schema", Kind::Str),
    ("security", Kind::Object(SECURITY_KEYS)),
    ("executors", Kind::Object(EXECUTOR_KEYS)),
    ("pool", Kind::Object(POOL_KEYS)),
];

/// Rate limit: at most `max_requests` executions per sliding `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub window_ms: u64,
    pub max_requests: u64,
}

/// Concurrency limits of the sandbox pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub max_concurrent: usize,
    pub queue_size: usize,
    pub queue_timeout_ms: u64,
    /// Prewarmed sandboxes kept ready per runtime (0 turns prewarming off).
    pub prewarm: usize,
}

/// The effective, validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub max_code_size: usize,
    /// Canonical roots under which a run may be granted read access (write roots included).
    pub allow_read: Vec<PathBuf>,
    /// Canonical roots under which a run may be granted write access.
    pub allow_write: Vec<PathBuf>,
    /// Hosts a run may be granted network access to (`HOST[:PORT]` patterns, see
    /// [`code_executor::net::pattern`]); empty means no network.
    pub allow_network: Vec<String>,
    /// `allow_network`, parsed: the ceiling a run's `permissions.net` is narrowed by.
    pub net_ceiling: NetPolicy,
    pub audit_log: Option<PathBuf>,
    pub rate_limit: Option<RateLimitConfig>,
    /// Server-side ceiling for `allowedTools` (`security.allowedTools`); a caller can only
    /// narrow it. `None` when the key is absent: then a run's own `allowedTools` alone decides.
    pub allowed_tools: Option<Vec<AllowedToolPattern>>,
    /// Reject code that matches a dangerous pattern instead of only warning.
    pub block_dangerous_patterns: bool,
    pub typescript_enabled: bool,
    pub deno_path: Option<PathBuf>,
    pub node_path: Option<PathBuf>,
    pub python_enabled: bool,
    pub python_path: Option<PathBuf>,
    pub pool: PoolConfig,
    /// Explicit path of the `sandbox-run` launcher (`SANDBOX_RUN_PATH`); default: our sibling.
    pub sandbox_run: Option<PathBuf>,
    /// Upstream MCP servers file (`MCP_CONFIG_PATH`); kept for the tool bridge.
    pub mcp_config_path: Option<PathBuf>,
    /// Files that were read, in merge order, for `health` and the startup log.
    pub sources: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_timeout_ms: 30_000,
            max_timeout_ms: 300_000,
            max_code_size: 100_000,
            allow_read: Vec::new(),
            allow_write: Vec::new(),
            allow_network: Vec::new(),
            net_ceiling: NetPolicy::deny_all(),
            audit_log: None,
            rate_limit: None,
            allowed_tools: None,
            block_dangerous_patterns: false,
            typescript_enabled: true,
            deno_path: None,
            node_path: None,
            python_enabled: true,
            python_path: None,
            pool: PoolConfig {
                max_concurrent: 100,
                queue_size: 200,
                queue_timeout_ms: 30_000,
                prewarm: 1,
            },
            sandbox_run: None,
            mcp_config_path: None,
            sources: Vec::new(),
        }
    }
}

/// Smallest timeout a run may ask for, as in code-executor-mcp 1.0.5.
pub const MIN_TIMEOUT_MS: u64 = 1_000;

/// Where configuration comes from; abstracted so tests need not touch the real environment.
pub struct ConfigSources {
    pub env: HashMap<String, String>,
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
}

impl ConfigSources {
    /// The process's own environment, working directory and home.
    pub fn from_process() -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        let home = env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        ConfigSources {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            home,
            env,
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Load files and environment as described in the module docs.
    pub fn load(src: &ConfigSources) -> Result<Config, ConfigError> {
        let files: Vec<PathBuf> = match src.var("CODE_EXECUTOR_CONFIG_PATH") {
            Some(p) => vec![PathBuf::from(p)],
            None => {
                let mut v = Vec::new();
                if let Some(home) = &src.home {
                    v.push(home.join(".config/code-executor/config.json"));
                    v.push(home.join(".code-executor.json"));
                }
                v.push(src.cwd.join(".code-executor.json"));
                v.retain(|p| p.is_file());
                v
            }
        };
        let mut merged = Map::new();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                file: file.clone(),
                source,
            })?;
            let mut value: Value =
                serde_json::from_str(&text).map_err(|e| ConfigError::Syntax {
                    file: file.clone(),
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string(),
                })?;
            check_tree(file, "", &mut value, &Kind::Object(ROOT_KEYS), src)?;
            if let Value::Object(obj) = value {
                merge(&mut merged, obj);
            }
        }
        let origin = if files.is_empty() {
            "(no file)".to_string()
        } else {
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let mut cfg = Config::from_merged(&merged, &origin)?;
        cfg.sources = files;
        cfg.apply_env(src)?;
        cfg.validate(&origin)?;
        Ok(cfg)
    }

    fn from_merged(m: &Map<String, Value>, origin: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let get = |path: &str| -> Option<&Value> {
            let mut cur = m.get(path.split('.').next()?)?;
            for part in path.split('.').skip(1) {
                cur = cur.get(part)?;
            }
            Some(cur)
        };
        let u = |p: &str| get(p).and_then(Value::as_u64);
        let b = |p: &str| get(p).and_then(Value::as_bool);
        let s = |p: &str| get(p).and_then(Value::as_str).map(str::to_string);
        let list = |p: &str| -> Vec<String> {
            get(p)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(v) = u("security.defaultTimeoutMs") {
            c.default_timeout_ms = v;
        }
        if let Some(v) = u("security.maxTimeoutMs") {
            c.max_timeout_ms = v;
        }
        if let Some(v) = u("security.maxCodeSize") {
            c.max_code_size = usize::try_from(v).unwrap_or(usize::MAX);
        }
        c.allow_read = list("security.allowRead")
            .into_iter()
            .map(PathBuf::from)
            .collect();
        c.allow_write = list("security.allowWrite")
            .into_iter()
            .map(PathBuf::from)
            .collect();
        c.allow_network = list("security.allowNetwork");
        let audit_enabled = b("security.enableAuditLog").unwrap_or(false);
        let audit_path = s("security.auditLogPath").map(PathBuf::from);
        c.audit_log = audit_enabled.then(|| audit_path.unwrap_or_else(default_audit_path));
        if b("security.rateLimit.enabled").unwrap_or(false) {
            c.rate_limit = Some(RateLimitConfig {
                window_ms: u("security.rateLimit.windowMs").unwrap_or(60_000),
                max_requests: u("security.rateLimit.maxRequests").unwrap_or(30),
            });
        }
        if get("security.allowedTools").is_some() {
            let mut ceiling = Vec::new();
            for name in list("security.allowedTools") {
                let p = AllowedToolPattern::parse(&name).map_err(|source| {
                    ConfigError::BadToolName {
                        origin: origin.to_string(),
                        source,
                    }
                })?;
                ceiling.push(p);
            }
            c.allowed_tools = Some(ceiling);
        }
        c.block_dangerous_patterns = b("security.blockDangerousPatterns").unwrap_or(false);
        c.typescript_enabled = b("executors.typescript.enabled").unwrap_or(true);
        c.deno_path = s("executors.typescript.denoPath").map(PathBuf::from);
        c.node_path = s("executors.typescript.nodePath").map(PathBuf::from);
        c.python_enabled = b("executors.python.enabled").unwrap_or(true);
        c.python_path = s("executors.python.pythonPath").map(PathBuf::from);
        if let Some(v) = u("pool.maxConcurrent") {
            c.pool.max_concurrent = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = u("pool.queueSize") {
            c.pool.queue_size = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = u("pool.prewarm") {
            c.pool.prewarm = v as usize;
        }
        if let Some(v) = u("pool.queueTimeoutMs") {
            c.pool.queue_timeout_ms = v;
        }
        Ok(c)
    }

    /// Environment variables win over files; every documented variable is read here.
    fn apply_env(&mut self, src: &ConfigSources) -> Result<(), ConfigError> {
        if let Some(v) = src.var("ALLOWED_PROJECTS") {
            for root in v.split(':').filter(|r| !r.is_empty()) {
                self.allow_read.push(PathBuf::from(root));
                self.allow_write.push(PathBuf::from(root));
            }
        }
        if let Some(v) = src.var("ENABLE_AUDIT_LOG") {
            let on = parse_bool("ENABLE_AUDIT_LOG", v)?;
            if !on {
                self.audit_log = None;
            } else if self.audit_log.is_none() {
                self.audit_log = Some(default_audit_path());
            }
        }
        if let Some(v) = src.var("AUDIT_LOG_PATH") {
            // A path alone does not switch the log on: logging stays opt-in.
            if self.audit_log.is_some() {
                self.audit_log = Some(PathBuf::from(v));
            }
        }
        if let Some(v) = src.var("DENO_PATH") {
            self.deno_path = Some(PathBuf::from(v));
        }
        if let Some(v) = src.var("MCP_CONFIG_PATH") {
            self.mcp_config_path = Some(PathBuf::from(v));
        }
        if let Some(v) = src.var("SANDBOX_RUN_PATH") {
            self.sandbox_run = Some(PathBuf::from(v));
        }
        if let Some(v) = src.var("CODE_EXECUTOR_TIMEOUT_MS") {
            self.default_timeout_ms = parse_uint("CODE_EXECUTOR_TIMEOUT_MS", v)?;
        }
        if let Some(v) = src.var("CODE_EXECUTOR_RATE_LIMIT_RPM") {
            let rpm = parse_uint("CODE_EXECUTOR_RATE_LIMIT_RPM", v)?;
            self.rate_limit = (rpm > 0).then_some(RateLimitConfig {
                window_ms: 60_000,
                max_requests: rpm,
            });
        }
        if let Some(v) = src.var("POOL_MAX_CONCURRENT") {
            self.pool.max_concurrent = parse_uint("POOL_MAX_CONCURRENT", v)? as usize;
        }
        if let Some(v) = src.var("CODE_EXECUTOR_PREWARM") {
            self.pool.prewarm = parse_uint("CODE_EXECUTOR_PREWARM", v)? as usize;
        }
        if let Some(v) = src.var("POOL_QUEUE_SIZE") {
            self.pool.queue_size = parse_uint("POOL_QUEUE_SIZE", v)? as usize;
        }
        if let Some(v) = src.var("POOL_QUEUE_TIMEOUT_MS") {
            self.pool.queue_timeout_ms = parse_uint("POOL_QUEUE_TIMEOUT_MS", v)?;
        }
        Ok(())
    }

    /// Cross-key checks, and resolution of the allowed roots to canonical paths.
    fn validate(&mut self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::BadValue {
            origin: origin.to_string(),
            key: key.to_string(),
            reason,
        };
        if self.max_timeout_ms < MIN_TIMEOUT_MS {
            return Err(bad(
                "security.maxTimeoutMs",
                format!("must be at least {MIN_TIMEOUT_MS}"),
            ));
        }
        if !(MIN_TIMEOUT_MS..=self.max_timeout_ms).contains(&self.default_timeout_ms) {
            return Err(bad(
                "security.defaultTimeoutMs / CODE_EXECUTOR_TIMEOUT_MS",
                format!(
                    "{} is outside {MIN_TIMEOUT_MS}..={}",
                    self.default_timeout_ms, self.max_timeout_ms
                ),
            ));
        }
        if self.max_code_size == 0 {
            return Err(bad("security.maxCodeSize", "must be at least 1".into()));
        }
        if self.pool.max_concurrent == 0 {
            return Err(bad(
                "pool.maxConcurrent / POOL_MAX_CONCURRENT",
                "must be at least 1".into(),
            ));
        }
        if self.pool.prewarm > 8 {
            return Err(bad(
                "pool.prewarm / CODE_EXECUTOR_PREWARM",
                format!("{} is more than 8 warm sandboxes per runtime; each holds an interpreter in memory (deno and node ~40 MB)", self.pool.prewarm),
            ));
        }
        if let Some(rl) = &self.rate_limit {
            if rl.window_ms == 0 || rl.max_requests == 0 {
                return Err(bad(
                    "security.rateLimit",
                    "windowMs and maxRequests must be at least 1".into(),
                ));
            }
        }
        self.net_ceiling = NetPolicy::parse(&self.allow_network)
            .map_err(|e| bad("security.allowNetwork", e.to_string()))?;
        self.allow_read = canonical_roots(origin, &self.allow_read)?;
        self.allow_write = canonical_roots(origin, &self.allow_write)?;
        Ok(())
    }
}

fn default_audit_path() -> PathBuf {
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join(".code-executor/audit.log")
}

fn canonical_roots(origin: &str, roots: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for root in roots {
        if !root.is_absolute() {
            return Err(ConfigError::BadValue {
                origin: origin.to_string(),
                key: "allowRead/allowWrite/ALLOWED_PROJECTS".into(),
                reason: format!("{} is not an absolute path", root.display()),
            });
        }
        let c = root.canonicalize().map_err(|source| ConfigError::BadRoot {
            origin: origin.to_string(),
            path: root.clone(),
            source,
        })?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::BadEnv {
            var,
            value: v.to_string(),
            reason: "expected true or false".into(),
        }),
    }
}

fn parse_uint(var: &'static str, v: &str) -> Result<u64, ConfigError> {
    v.trim().parse::<u64>().map_err(|e| ConfigError::BadEnv {
        var,
        value: v.to_string(),
        reason: format!("expected a non-negative integer ({e})"),
    })
}

fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Walk one file's JSON against the key tree: reject unknown keys and wrong types, and
/// replace `"env:VAR"` strings by the variable's value (converted to the key's type).
fn check_tree(
    file: &Path,
    key: &str,
    value: &mut Value,
    kind: &Kind,
    src: &ConfigSources,
) -> Result<(), ConfigError> {
    let wrong = |expected: &'static str, v: &Value| ConfigError::WrongType {
        file: file.to_path_buf(),
        key: key.to_string(),
        expected,
        found: type_name(v),
    };
    // Substitute env references first, so the type check sees the final value.
    if let Value::String(s) = value {
        if let Some(var) = s.strip_prefix("env:") {
            let raw = src.var(var).ok_or_else(|| ConfigError::MissingEnv {
                file: file.to_path_buf(),
                key: key.to_string(),
                var: var.to_string(),
            })?;
            *value = match kind {
                Kind::Bool => match raw {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    _ => Value::String(raw.to_string()),
                },
                Kind::UInt => raw
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(raw.to_string())),
                Kind::StrList => Value::Array(
                    raw.split(':')
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_string()))
                        .collect(),
                ),
                _ => Value::String(raw.to_string()),
            };
        }
    }
    match kind {
        Kind::Bool if !value.is_boolean() => Err(wrong("a boolean", value)),
        Kind::UInt if !value.is_u64() => Err(wrong("a non-negative integer", value)),
        Kind::Str if !value.is_string() => Err(wrong("a string", value)),
        Kind::StrList => {
            let Value::Array(items) = value else {
                return Err(wrong("an array of strings", value));
            };
            for (i, item) in items.iter_mut().enumerate() {
                check_tree(file, &format!("{key}[{i}]"), item, &Kind::Str, src)?;
            }
            Ok(())
        }
        Kind::Object(children) => {
            let Value::Object(obj) = value else {
                return Err(wrong("an object", value));
            };
            for (k, v) in obj.iter_mut() {
                let full = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                let Some((_, child)) = children.iter().find(|(name, _)| name == k) else {
                    return Err(ConfigError::UnknownKey {
                        file: file.to_path_buf(),
                        key: full,
                        known: children
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                check_tree(file, &full, v, child, src)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Deep merge: objects merge key by key, anything else is replaced by the later value.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path, env: &[(&str, &str)]) -> ConfigSources {
        ConfigSources {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: dir.to_path_buf(),
            home: Some(dir.join("home")),
        }
    }

    #[test]
    fn no_file_gives_defaults() {
        let dir = std::env::temp_dir();
        let c = Config::load(&sources(&dir.join("nonexistent-xyz"), &[])).unwrap();
        assert_eq!(c.default_timeout_ms, 30_000);
        assert_eq!(c.pool.max_concurrent, 100);
        assert_eq!(c.pool.queue_size, 200);
        assert!(c.audit_log.is_none());
        assert!(c.rate_limit.is_none());
        assert!(c.allow_read.is_empty());
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        let d = std::env::temp_dir().join(format!("cfgtest-{tag}-{}", hex::encode(b)));
        std::fs::create_dir_all(&d).unwrap();
        d.canonicalize().unwrap()
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let d = tmpdir("unknown");
        write(
            &d,
            ".code-executor.json",
            r#"{"security":{"rateLimit":{"maxRequest":3}}}"#,
        );
        let e = Config::load(&sources(&d, &[])).unwrap_err().to_string();
        assert!(e.contains(".code-executor.json"), "{e}");
        assert!(e.contains("security.rateLimit.maxRequest"), "{e}");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let d = tmpdir("syntax");
        write(&d, ".code-executor.json", "{\n \"security\": {,}\n}");
        let e = Config::load(&sources(&d, &[])).unwrap_err().to_string();
        assert!(
            e.contains(".code-executor.json") && e.contains("line 2"),
            "{e}"
        );
    }

    #[test]
    fn env_values_and_merge_order() {
        let d = tmpdir("merge");
        write(
            &d,
            "home/.code-executor.json",
            r#"{"security":{"maxCodeSize":10,"defaultTimeoutMs":5000}}"#,
        );
        write(
            &d,
            ".code-executor.json",
            r#"{"security":{"maxCodeSize":"env:MY_SIZE","enableAuditLog":"env:MY_AUDIT","auditLogPath":"env:MY_LOG"}}"#,
        );
        let log = d.join("a.log");
        let c = Config::load(&sources(
            &d,
            &[
                ("MY_SIZE", "77"),
                ("MY_AUDIT", "true"),
                ("MY_LOG", log.to_str().unwrap()),
            ],
        ))
        .unwrap();
        assert_eq!(c.max_code_size, 77);
        assert_eq!(c.default_timeout_ms, 5000);
        assert_eq!(c.audit_log.as_deref(), Some(log.as_path()));
        let e = Config::load(&sources(&d, &[("MY_SIZE", "7"), ("MY_LOG", "/tmp/l")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("MY_AUDIT") && e.contains("security.enableAuditLog"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_reported() {
        let d = tmpdir("type");
        write(
            &d,
            ".code-executor.json",
            r#"{"security":{"maxCodeSize":"big"}}"#,
        );
        let e = Config::load(&sources(&d, &[])).unwrap_err().to_string();
        assert!(
            e.contains("security.maxCodeSize") && e.contains("integer"),
            "{e}"
        );
    }

    #[test]
    fn every_environment_variable_is_read() {
        let d = tmpdir("env");
        let explicit = write(&d, "explicit.json", r#"{"security":{"maxCodeSize":5}}"#);
        let proj = d.join("proj");
        std::fs::create_dir_all(&proj).unwrap();
        let c = Config::load(&sources(
            &d,
            &[
                ("CODE_EXECUTOR_CONFIG_PATH", explicit.to_str().unwrap()),
                ("ALLOWED_PROJECTS", proj.to_str().unwrap()),
                ("ENABLE_AUDIT_LOG", "true"),
                ("AUDIT_LOG_PATH", "/tmp/x-audit.log"),
                ("DENO_PATH", "/opt/deno"),
                ("MCP_CONFIG_PATH", "/tmp/mcp.json"),
                ("CODE_EXECUTOR_TIMEOUT_MS", "4000"),
                ("CODE_EXECUTOR_RATE_LIMIT_RPM", "12"),
                ("POOL_MAX_CONCURRENT", "3"),
                ("POOL_QUEUE_SIZE", "4"),
                ("POOL_QUEUE_TIMEOUT_MS", "500"),
                ("CODE_EXECUTOR_PREWARM", "2"),
                ("SANDBOX_RUN_PATH", "/opt/sandbox-run"),
            ],
        ))
        .unwrap();
        assert_eq!(c.max_code_size, 5);
        assert_eq!(c.allow_read, vec![proj.clone()]);
        assert_eq!(c.allow_write, vec![proj]);
        assert_eq!(c.audit_log, Some(PathBuf::from("/tmp/x-audit.log")));
        assert_eq!(c.deno_path, Some(PathBuf::from("/opt/deno")));
        assert_eq!(c.mcp_config_path, Some(PathBuf::from("/tmp/mcp.json")));
        assert_eq!(c.default_timeout_ms, 4000);
        assert_eq!(
            c.rate_limit,
            Some(RateLimitConfig {
                window_ms: 60_000,
                max_requests: 12
            })
        );
        assert_eq!(
            c.pool,
            PoolConfig {
                max_concurrent: 3,
                queue_size: 4,
                queue_timeout_ms: 500,
                prewarm: 2,
            }
        );
        assert_eq!(c.sandbox_run, Some(PathBuf::from("/opt/sandbox-run")));
    }

    #[test]
    fn bad_env_value_and_missing_root_fail() {
        let d = tmpdir("badenv");
        let e = Config::load(&sources(&d, &[("POOL_QUEUE_SIZE", "many")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("POOL_QUEUE_SIZE"), "{e}");
        let e = Config::load(&sources(&d, &[("ALLOWED_PROJECTS", "/does/not/exist")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/does/not/exist"), "{e}");
        let e = Config::load(&sources(&d, &[("CODE_EXECUTOR_TIMEOUT_MS", "10")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CODE_EXECUTOR_TIMEOUT_MS"), "{e}");
    }

    #[test]
    fn bad_network_pattern_in_config_fails() {
        let d = tmpdir("net");
        write(
            &d,
            ".code-executor.json",
            r#"{"security":{"allowNetwork":["https://x.com/"]}}"#,
        );
        let e = Config::load(&sources(&d, &[])).unwrap_err().to_string();
        assert!(
            e.contains("security.allowNetwork") && e.contains("URL"),
            "{e}"
        );
    }

    #[test]
    fn bad_allowed_tool_in_config_fails() {
        let d = tmpdir("tools");
        write(
            &d,
            ".code-executor.json",
            r#"{"security":{"allowedTools":["mcp__a b__c"]}}"#,
        );
        let e = Config::load(&sources(&d, &[])).unwrap_err().to_string();
        assert!(e.contains("mcp__a b__c"), "{e}");
    }
}
