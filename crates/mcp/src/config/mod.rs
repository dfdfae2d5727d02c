//! Server configuration, read once at start and nowhere else: `.code-executor.json` files,
//! `"env:VAR"` values in them, environment variables, the upstream servers' `mcpServers`
//! files, and the few facts of the process the server depends on (working directory, home,
//! `TMPDIR`, `PATH`, `RUST_LOG`). The rest of the server reads [`Config`], never the
//! environment, so what a server does is decided by one value that is printed and tested.
//!
//! Files are read from, lowest priority first, `~/.config/code-executor/config.json`,
//! `~/.code-executor.json` and `./.code-executor.json`, merged key by key (a later file wins
//! per key). `CODE_EXECUTOR_CONFIG_PATH` replaces that search with one file, which must exist.
//! Environment variables are applied last and win over every file. No file at all is fine:
//! the defaults are safe (no host path may be granted, no audit log, no rate limit).
//!
//! Every value is checked here. One that is not valid (a malformed number, a zero timeout, a
//! relative `TMPDIR`) is a [`ConfigError`] naming the variable or key, the value and what is
//! accepted, and the server refuses to start: a bad value silently replaced by a default
//! would run the server with a configuration nobody chose.
//!
//! `file.rs` holds the file format, [`mcp_servers`] the upstream servers, `error.rs` the errors.

mod error;
mod file;
pub mod mcp_servers;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::tool_names::AllowedToolPattern;
use code_executor::net::pattern::NetPolicy;
use code_executor::policy::{Degradation, Size};

pub use error::ConfigError;
pub use mcp_servers::{Transport, UpstreamSpec};

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

/// Per-run limits of the tool bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeLimits {
    /// Tool calls one run may make; later calls get an error (`MCP_MAX_CALLS_PER_RUN`).
    pub max_calls: usize,
}

impl Default for BridgeLimits {
    fn default() -> Self {
        BridgeLimits { max_calls: 500 }
    }
}

/// Limits of the upstream client pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Per tool call, including waiting for a free slot and for a reconnect
    /// (`MCP_CALL_TIMEOUT_MS`).
    pub call_timeout: Duration,
    /// Per connect: start, `initialize`, first `tools/list` (`MCP_CONNECT_TIMEOUT_MS`).
    pub connect_timeout: Duration,
    /// Calls in flight per upstream; more wait for a slot within the call timeout
    /// (`MCP_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            max_in_flight: 16,
        }
    }
}

/// Most slots a semaphore-bounded limit (pool, calls in flight) may have: far above any real
/// need, and far below what tokio's semaphore accepts (a larger count would panic there).
pub const MAX_SLOTS: usize = 1_000_000;

/// How every run is sandboxed beyond its own permissions.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxSettings {
    /// CPU share of each run in CPUs (`sandbox.cpus`, default 1.0, like `docker run --cpus=1`).
    pub cpus: f64,
    /// Total a run may add to its writable grants (`sandbox.writeLimit`); None: the policy's.
    pub write_limit: Option<Size>,
    /// Weaker modes accepted by name (`sandbox.allowDegraded`), e.g. `unbounded-writes` where
    /// writable grants live on a file system without project quotas.
    pub allow_degraded: Vec<Degradation>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            cpus: 1.0,
            write_limit: None,
            allow_degraded: Vec::new(),
        }
    }
}

/// The effective, validated server configuration, read once at start.
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
    /// How every run is sandboxed beyond its permissions (`sandbox` section).
    pub sandbox: SandboxSettings,
    /// Explicit path of the `sandbox-run` launcher (`SANDBOX_RUN_PATH`); default: our sibling.
    pub sandbox_run: Option<PathBuf>,
    /// Upstream MCP servers file (`MCP_CONFIG_PATH`), read after the default ones.
    pub mcp_config_path: Option<PathBuf>,
    /// The upstream servers found in the `mcpServers` files (see [`mcp_servers`]).
    pub mcp_servers: Vec<UpstreamSpec>,
    /// What was wrong in those files, for `health` (never fatal, see [`mcp_servers`]).
    pub mcp_server_problems: Vec<String>,
    pub bridge: BridgeLimits,
    pub upstream: UpstreamSettings,
    /// Where the server's private directory goes (`TMPDIR`, else `/tmp`).
    pub temp_dir: PathBuf,
    /// Directories searched for deno, node and python3 (`PATH`).
    pub search_path: Vec<PathBuf>,
    /// The log filter (`RUST_LOG`, default `info`), already checked to parse.
    pub log_filter: String,
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
            sandbox: SandboxSettings::default(),
            sandbox_run: None,
            mcp_config_path: None,
            mcp_servers: Vec::new(),
            mcp_server_problems: Vec::new(),
            bridge: BridgeLimits::default(),
            upstream: UpstreamSettings::default(),
            temp_dir: PathBuf::from("/tmp"),
            search_path: Vec::new(),
            log_filter: "info".into(),
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
    /// The process's own environment, working directory and home: the one place the server
    /// reads its environment.
    pub fn from_process() -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        let home = env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        ConfigSources {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            home,
            env,
        }
    }

    /// A variable's value; empty counts as unset.
    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The configuration files to read, in merge order.
    fn config_files(&self) -> Vec<PathBuf> {
        if let Some(p) = self.var("CODE_EXECUTOR_CONFIG_PATH") {
            return vec![PathBuf::from(p)];
        }
        let mut v = Vec::new();
        if let Some(home) = &self.home {
            v.push(home.join(".config/code-executor/config.json"));
            v.push(home.join(".code-executor.json"));
        }
        v.push(self.cwd.join(".code-executor.json"));
        v.retain(|p| p.is_file());
        v
    }

    /// `TMPDIR` (which must be absolute), else `/tmp`.
    fn temp_dir(&self) -> Result<PathBuf, ConfigError> {
        match self.var("TMPDIR") {
            None => Ok(PathBuf::from("/tmp")),
            Some(t) if t.starts_with('/') => Ok(PathBuf::from(t)),
            Some(t) => Err(bad_env(
                "TMPDIR",
                t,
                "expected an absolute path (the server creates its private directory there)",
            )),
        }
    }
}

impl Config {
    /// Load files and environment as described in the module docs.
    pub fn load(src: &ConfigSources) -> Result<Config, ConfigError> {
        let files = src.config_files();
        let lookup = |k: &str| src.var(k);
        let merged = file::read_merged(&files, &lookup)?;
        let origin = if files.is_empty() {
            "(no file)".to_string()
        } else {
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let temp_dir = src.temp_dir()?;
        // The audit log's default place: the home directory, else the temporary directory.
        let audit_default = src
            .home
            .as_deref()
            .unwrap_or(&temp_dir)
            .join(".code-executor/audit.log");
        let mut cfg = Config::from_merged(&Merged(&merged), &origin, &audit_default)?;
        cfg.sources = files;
        cfg.temp_dir = temp_dir;
        cfg.apply_env(src, &audit_default)?;
        cfg.apply_bridge_env(src)?;
        cfg.apply_process_env(src)?;
        cfg.validate(&origin)?;
        let (servers, problems) = mcp_servers::load(
            &src.cwd,
            src.home.as_deref(),
            cfg.mcp_config_path.as_deref(),
        );
        cfg.mcp_servers = servers;
        cfg.mcp_server_problems = problems;
        Ok(cfg)
    }

    fn from_merged(
        m: &Merged<'_>,
        origin: &str,
        audit_default: &Path,
    ) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(v) = m.uint("security.defaultTimeoutMs") {
            c.default_timeout_ms = v;
        }
        if let Some(v) = m.uint("security.maxTimeoutMs") {
            c.max_timeout_ms = v;
        }
        if let Some(v) = m.uint("security.maxCodeSize") {
            c.max_code_size = usize::try_from(v).unwrap_or(usize::MAX);
        }
        c.allow_read = m
            .list("security.allowRead")
            .into_iter()
            .map(PathBuf::from)
            .collect();
        c.allow_write = m
            .list("security.allowWrite")
            .into_iter()
            .map(PathBuf::from)
            .collect();
        c.allow_network = m.list("security.allowNetwork");
        let audit_enabled = m.bool("security.enableAuditLog").unwrap_or(false);
        let audit_path = m.string("security.auditLogPath").map(PathBuf::from);
        c.audit_log =
            audit_enabled.then(|| audit_path.unwrap_or_else(|| audit_default.to_path_buf()));
        if m.bool("security.rateLimit.enabled").unwrap_or(false) {
            c.rate_limit = Some(RateLimitConfig {
                window_ms: m.uint("security.rateLimit.windowMs").unwrap_or(60_000),
                max_requests: m.uint("security.rateLimit.maxRequests").unwrap_or(30),
            });
        }
        if m.get("security.allowedTools").is_some() {
            let mut ceiling = Vec::new();
            for name in m.list("security.allowedTools") {
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
        c.block_dangerous_patterns = m.bool("security.blockDangerousPatterns").unwrap_or(false);
        c.read_executors_and_pool(m);
        c.sandbox = read_sandbox(m, origin)?;
        Ok(c)
    }

    /// The `executors` and `pool` sections of the merged files (already type-checked).
    fn read_executors_and_pool(&mut self, m: &Merged<'_>) {
        let c = self;
        c.typescript_enabled = m.bool("executors.typescript.enabled").unwrap_or(true);
        c.deno_path = m.string("executors.typescript.denoPath").map(PathBuf::from);
        c.node_path = m.string("executors.typescript.nodePath").map(PathBuf::from);
        c.python_enabled = m.bool("executors.python.enabled").unwrap_or(true);
        c.python_path = m.string("executors.python.pythonPath").map(PathBuf::from);
        if let Some(v) = m.uint("pool.maxConcurrent") {
            c.pool.max_concurrent = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = m.uint("pool.queueSize") {
            c.pool.queue_size = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = m.uint("pool.prewarm") {
            c.pool.prewarm = v as usize;
        }
        if let Some(v) = m.uint("pool.queueTimeoutMs") {
            c.pool.queue_timeout_ms = v;
        }
    }

    /// Environment variables win over files; every documented variable is read here.
    fn apply_env(&mut self, src: &ConfigSources, audit_default: &Path) -> Result<(), ConfigError> {
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
                self.audit_log = Some(audit_default.to_path_buf());
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
        if let Some(v) = src.var("CODE_EXECUTOR_CPUS") {
            self.sandbox.cpus = v
                .trim()
                .parse::<f64>()
                .map_err(|e| e.to_string())
                .and_then(code_executor::policy::check_cpus)
                .map_err(|reason| ConfigError::BadEnv {
                    var: "CODE_EXECUTOR_CPUS",
                    value: v.to_string(),
                    reason,
                })?;
        }
        if let Some(v) = src.var("CODE_EXECUTOR_WRITE_LIMIT") {
            self.sandbox.write_limit =
                Some(Size::parse(v).map_err(|reason| ConfigError::BadEnv {
                    var: "CODE_EXECUTOR_WRITE_LIMIT",
                    value: v.to_string(),
                    reason,
                })?);
        }
        if let Some(v) = src.var("CODE_EXECUTOR_ALLOW_DEGRADED") {
            self.sandbox.allow_degraded = v
                .split([',', ':'])
                .filter(|m| !m.trim().is_empty())
                .map(|m| Degradation::parse(m.trim()))
                .collect::<Result<_, _>>()
                .map_err(|reason| ConfigError::BadEnv {
                    var: "CODE_EXECUTOR_ALLOW_DEGRADED",
                    value: v.to_string(),
                    reason,
                })?;
        }
        Ok(())
    }

    /// The tool bridge's and the upstream pool's variables (`MCP_*`).
    fn apply_bridge_env(&mut self, src: &ConfigSources) -> Result<(), ConfigError> {
        const MS: &str = "a whole number of milliseconds, at least 1";
        if let Some(v) = src.var("MCP_CALL_TIMEOUT_MS") {
            let ms = parse_in("MCP_CALL_TIMEOUT_MS", v, 1..=u64::MAX, MS)?;
            self.upstream.call_timeout = Duration::from_millis(ms);
        }
        if let Some(v) = src.var("MCP_CONNECT_TIMEOUT_MS") {
            let ms = parse_in("MCP_CONNECT_TIMEOUT_MS", v, 1..=u64::MAX, MS)?;
            self.upstream.connect_timeout = Duration::from_millis(ms);
        }
        if let Some(v) = src.var("MCP_MAX_IN_FLIGHT") {
            let range = 1..=MAX_SLOTS as u64;
            let n = parse_in(
                "MCP_MAX_IN_FLIGHT",
                v,
                range,
                "a number of calls from 1 to 1000000",
            )?;
            self.upstream.max_in_flight = n as usize;
        }
        if let Some(v) = src.var("MCP_MAX_CALLS_PER_RUN") {
            let n = parse_in(
                "MCP_MAX_CALLS_PER_RUN",
                v,
                0..=u32::MAX as u64,
                "a number of tool calls, 0 (none) or more",
            )?;
            self.bridge.max_calls = n as usize;
        }
        Ok(())
    }

    /// What the server takes from its process environment: `PATH` and `RUST_LOG`.
    fn apply_process_env(&mut self, src: &ConfigSources) -> Result<(), ConfigError> {
        if let Some(path) = src.var("PATH") {
            self.search_path = std::env::split_paths(path).collect();
        }
        if let Some(filter) = src.var("RUST_LOG") {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(filter) {
                return Err(bad_env(
                    "RUST_LOG",
                    filter,
                    &format!(
                        "expected a log filter such as `info` or `code_executor_mcp=debug` ({e})"
                    ),
                ));
            }
            self.log_filter = filter.to_string();
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
        if !(1..=MAX_SLOTS).contains(&self.pool.max_concurrent) {
            return Err(bad(
                "pool.maxConcurrent / POOL_MAX_CONCURRENT",
                format!("{} is outside 1..={MAX_SLOTS}", self.pool.max_concurrent),
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

/// The `sandbox` section, each value checked with the sandbox's own rules.
fn read_sandbox(m: &Merged<'_>, origin: &str) -> Result<SandboxSettings, ConfigError> {
    let bad = |key: &str, reason: String| ConfigError::BadValue {
        origin: origin.to_string(),
        key: key.to_string(),
        reason,
    };
    let mut s = SandboxSettings::default();
    if let Some(v) = m.get("sandbox.cpus").and_then(Value::as_f64) {
        code_executor::policy::check_cpus(v).map_err(|e| bad("sandbox.cpus", e))?;
        s.cpus = v;
    }
    if let Some(v) = m.string("sandbox.writeLimit") {
        s.write_limit = Some(Size::parse(&v).map_err(|e| bad("sandbox.writeLimit", e))?);
    }
    for name in m.list("sandbox.allowDegraded") {
        s.allow_degraded
            .push(Degradation::parse(&name).map_err(|e| bad("sandbox.allowDegraded", e))?);
    }
    Ok(s)
}

/// The merged files, read by dotted key (`security.rateLimit.enabled`); their types were
/// checked when they were read, so a value of another type is simply absent here.
struct Merged<'a>(&'a Map<String, Value>);

impl Merged<'_> {
    fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut cur = self.0.get(parts.next()?)?;
        for part in parts {
            cur = cur.get(part)?;
        }
        Some(cur)
    }

    fn uint(&self, path: &str) -> Option<u64> {
        self.get(path).and_then(Value::as_u64)
    }

    fn bool(&self, path: &str) -> Option<bool> {
        self.get(path).and_then(Value::as_bool)
    }

    fn string(&self, path: &str) -> Option<String> {
        self.get(path).and_then(Value::as_str).map(str::to_string)
    }

    fn list(&self, path: &str) -> Vec<String> {
        crate::json::string_array(self.get(path))
    }
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

/// A whole number in `range`; `accepted` says what is accepted, in words.
fn parse_in(
    var: &'static str,
    v: &str,
    range: RangeInclusive<u64>,
    accepted: &str,
) -> Result<u64, ConfigError> {
    match v.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(bad_env(var, v, &format!("expected {accepted}"))),
    }
}

fn bad_env(var: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::BadEnv {
        var,
        value: value.to_string(),
        reason: reason.to_string(),
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
                ("CODE_EXECUTOR_CPUS", "0.5"),
                ("CODE_EXECUTOR_WRITE_LIMIT", "10M"),
                ("CODE_EXECUTOR_ALLOW_DEGRADED", "unbounded-writes"),
                ("SANDBOX_RUN_PATH", "/opt/sandbox-run"),
                ("MCP_CALL_TIMEOUT_MS", "1500"),
                ("MCP_CONNECT_TIMEOUT_MS", "2500"),
                ("MCP_MAX_IN_FLIGHT", "3"),
                ("MCP_MAX_CALLS_PER_RUN", "0"),
                ("TMPDIR", "/var/tmp"),
                ("PATH", "/opt/bin:/usr/bin"),
                ("RUST_LOG", "debug"),
            ],
        ))
        .unwrap();
        assert_eq!(
            c.upstream,
            UpstreamSettings {
                call_timeout: Duration::from_millis(1500),
                connect_timeout: Duration::from_millis(2500),
                max_in_flight: 3,
            }
        );
        assert_eq!(c.bridge, BridgeLimits { max_calls: 0 });
        assert_eq!(c.temp_dir, PathBuf::from("/var/tmp"));
        assert_eq!(
            c.search_path,
            vec![PathBuf::from("/opt/bin"), PathBuf::from("/usr/bin")]
        );
        assert_eq!(c.log_filter, "debug");
        assert_eq!(
            c.sandbox,
            SandboxSettings {
                cpus: 0.5,
                write_limit: Some(Size(10 * Size::MIB)),
                allow_degraded: vec![Degradation::UnboundedWrites],
            }
        );
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

    /// The `sandbox` section: each value checked by the sandbox's own rules, each bad one named.
    #[test]
    fn the_sandbox_section_is_read_and_checked() {
        let d = tmpdir("sandboxsec");
        let cfg = |text: &str| {
            let f = write(&d, "c.json", text);
            Config::load(&sources(
                &d,
                &[("CODE_EXECUTOR_CONFIG_PATH", f.to_str().unwrap())],
            ))
        };
        let c = Config::load(&sources(&d, &[])).unwrap();
        assert_eq!(c.sandbox, SandboxSettings::default());
        assert_eq!(c.sandbox.cpus, 1.0);
        let c = cfg(
            r#"{"sandbox":{"cpus":0.25,"writeLimit":"5M","allowDegraded":["unbounded-writes"]}}"#,
        )
        .unwrap();
        assert_eq!(c.sandbox.cpus, 0.25);
        assert_eq!(c.sandbox.write_limit, Some(Size(5 * Size::MIB)));
        assert_eq!(c.sandbox.allow_degraded, vec![Degradation::UnboundedWrites]);
        for (text, want) in [
            (r#"{"sandbox":{"cpus":0}}"#, "sandbox.cpus"),
            (r#"{"sandbox":{"cpus":64}}"#, "sandbox.cpus"),
            (r#"{"sandbox":{"cpus":"1"}}"#, "a number"),
            (r#"{"sandbox":{"writeLimit":"lots"}}"#, "sandbox.writeLimit"),
            (
                r#"{"sandbox":{"allowDegraded":["no-seccomp"]}}"#,
                "sandbox.allowDegraded",
            ),
            (r#"{"sandbox":{"memory":"1G"}}"#, "sandbox.memory"),
        ] {
            let e = cfg(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    /// Every variable that takes a number, a boolean or a path rejects a bad value with an
    /// error naming the variable, the value and what it accepts; none falls back to a default.
    #[test]
    fn every_variable_refuses_a_bad_value() {
        let d = tmpdir("badvars");
        let cases: &[(&str, &str, &str)] = &[
            ("ENABLE_AUDIT_LOG", "maybe", "true or false"),
            ("CODE_EXECUTOR_TIMEOUT_MS", "soon", "non-negative integer"),
            ("CODE_EXECUTOR_TIMEOUT_MS", "10", "outside 1000..=300000"),
            ("CODE_EXECUTOR_RATE_LIMIT_RPM", "-1", "non-negative integer"),
            ("POOL_MAX_CONCURRENT", "lots", "non-negative integer"),
            ("POOL_MAX_CONCURRENT", "0", "outside 1..=1000000"),
            ("POOL_MAX_CONCURRENT", "99999999999", "outside 1..=1000000"),
            ("POOL_QUEUE_SIZE", "many", "non-negative integer"),
            ("POOL_QUEUE_TIMEOUT_MS", "1.5", "non-negative integer"),
            ("CODE_EXECUTOR_PREWARM", "9", "more than 8"),
            ("CODE_EXECUTOR_CPUS", "0", "not a CPU share"),
            ("CODE_EXECUTOR_CPUS", "lots", "invalid float"),
            (
                "CODE_EXECUTOR_WRITE_LIMIT",
                "1 parsec",
                "CODE_EXECUTOR_WRITE_LIMIT",
            ),
            ("CODE_EXECUTOR_ALLOW_DEGRADED", "no-seccomp", "no-seccomp"),
            ("CODE_EXECUTOR_PREWARM", "x", "non-negative integer"),
            ("MCP_CALL_TIMEOUT_MS", "0", "at least 1"),
            ("MCP_CALL_TIMEOUT_MS", "fast", "at least 1"),
            ("MCP_CONNECT_TIMEOUT_MS", "0", "at least 1"),
            ("MCP_MAX_IN_FLIGHT", "0", "from 1 to 1000000"),
            ("MCP_MAX_IN_FLIGHT", "99999999999", "from 1 to 1000000"),
            ("MCP_MAX_CALLS_PER_RUN", "-5", "0 (none) or more"),
            ("TMPDIR", "relative/tmp", "absolute path"),
            ("RUST_LOG", "info,[", "log filter"),
            ("ALLOWED_PROJECTS", "relative/dir", "not an absolute path"),
            ("ALLOWED_PROJECTS", "/does/not/exist", "cannot be resolved"),
            (
                "CODE_EXECUTOR_CONFIG_PATH",
                "/does/not/exist.json",
                "cannot read",
            ),
        ];
        for (var, value, accepted) in cases {
            let e = match Config::load(&sources(&d, &[(var, value)])) {
                Ok(_) => panic!("{var}={value} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains(var) && e.contains(value) && e.contains(accepted),
                "{var}={value}: {e}"
            );
        }
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
