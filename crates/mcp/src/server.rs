//! The MCP handler: tool list, `health`, and the execute pipeline.
//!
//! Tools are listed and dispatched by hand (no `#[tool]` macros) because the set depends on
//! what is installed, and because every bad argument must come back as the structured result
//! shape rather than rmcp's generic deserialization error.
//!
//! Execute pipeline: validate arguments -> choose the runtime -> resolve permissions against
//! the configured roots -> dangerous-pattern scan -> rate limit -> pool slot -> sandbox run
//! (with progress, cancellation and shutdown) -> result and audit line.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::audit::{rfc3339_now, AuditEntry, AuditLog};
use super::bridge::{self, RunBridge};
use super::config::Config;
use super::output::{self, ErrorType, ExecOutcome};
use super::params::{self, ExecuteParams, Permissions};
use super::paths;
use super::patterns::{self, Language};
use super::pool::Pool;
use super::rate_limit::RateLimiter;
use super::runtime::{interpreter_args, Runtime, Runtimes};
use super::sandbox::{self, Deadline, RunOutput, RunSpec};
use super::upstream::Upstreams;
use super::warm::{Factory, Warm, WarmPool};

pub const TOOL_TS: &str = "executeTypescript";
pub const TOOL_PY: &str = "executePython";
pub const TOOL_HEALTH: &str = "health";

/// Interval between progress notifications of a long run.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// State shared by all requests of one server process.
pub struct Shared {
    pub cfg: Config,
    runtimes: Runtimes,
    sandbox_run: PathBuf,
    sandbox_problem: Option<String>,
    pool: Pool,
    rate: Option<RateLimiter>,
    audit: AuditLog,
    started: Instant,
    /// Cancelled at shutdown: every run in flight kills its sandbox.
    shutdown: CancellationToken,
    /// Private host directory of this server process; one subdirectory per run.
    runs_dir: PathBuf,
    run_counter: AtomicU64,
    in_flight: AtomicUsize,
    doctor: OnceCell<Value>,
    /// Upstream MCP servers, reached by guest code through each run's tool bridge.
    upstreams: Arc<Upstreams>,
    bridge_limits: bridge::Limits,
    /// Sandboxes launched ahead of time, each with its own bridge (see `warm`).
    warm: Arc<WarmPool<RunBridge>>,
}

/// Removes a run's host directory however the run ends.
struct RunDir(PathBuf);
impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Counts a run as in flight until dropped, so shutdown can wait for cleanup.
struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The MCP server; cheap to clone.
#[derive(Clone)]
pub struct ExecutorServer {
    shared: Arc<Shared>,
}

/// Could not set up the server's private directory.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the server's run directory {path}: {source}; check TMPDIR")]
pub struct StartError {
    path: PathBuf,
    source: std::io::Error,
}

impl ExecutorServer {
    pub fn new(cfg: Config) -> Result<Self, StartError> {
        let runtimes = Runtimes::detect(&cfg);
        let sandbox_run = sandbox::locate_sandbox_run(cfg.sandbox_run.as_deref());
        let sandbox_problem = (!sandbox_run.is_file()).then(|| {
            format!(
                "sandbox launcher {} not found; install sandbox-run next to code-executor-mcp or set SANDBOX_RUN_PATH",
                sandbox_run.display()
            )
        });
        let mut rnd = [0u8; 8];
        // Without randomness the name is still unique per pid; collisions only fail loudly.
        let _ = getrandom::fill(&mut rnd);
        let runs_dir = std::env::temp_dir().join(format!(
            "code-executor-mcp-{}-{}",
            std::process::id(),
            hex::encode(rnd)
        ));
        std::fs::create_dir_all(&runs_dir).map_err(|source| StartError {
            path: runs_dir.clone(),
            source,
        })?;
        let upstreams = Arc::new(load_upstreams(&cfg));
        let warm_runtimes: Vec<Runtime> = [Runtime::Deno, Runtime::Node, Runtime::Python]
            .into_iter()
            .filter(|r| runtimes.get(*r).command.is_some() && sandbox_problem.is_none())
            .collect();
        let warm = WarmPool::new(cfg.pool.prewarm, warm_runtimes);
        let shared = Shared {
            pool: Pool::new(cfg.pool.clone()),
            rate: cfg.rate_limit.clone().map(RateLimiter::new),
            audit: AuditLog::new(cfg.audit_log.clone()),
            runtimes,
            sandbox_run,
            sandbox_problem,
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            runs_dir,
            run_counter: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            doctor: OnceCell::new(),
            upstreams,
            bridge_limits: bridge::Limits::from_vars(|k| std::env::var(k).ok()),
            warm,
            cfg,
        };
        let shared = Arc::new(shared);
        // Upstreams connect in the background, so a slow one never delays the MCP handshake.
        if tokio::runtime::Handle::try_current().is_ok() {
            shared.upstreams.spawn_maintenance(shared.shutdown.clone());
            let weak = Arc::downgrade(&shared);
            let factory: Factory<RunBridge> = Arc::new(move |runtime| {
                let s = weak.upgrade().ok_or("the server is gone")?;
                launch_warm(&s, runtime)
            });
            shared
                .warm
                .spawn_maintenance(factory, shared.shutdown.clone());
        }
        Ok(ExecutorServer { shared })
    }

    /// Names of the tools this server offers, given what is installed.
    pub fn offered_tools(&self) -> Vec<&'static str> {
        let s = &self.shared;
        let mut v = Vec::new();
        if s.sandbox_problem.is_none() {
            if s.runtimes.deno.command.is_some() || s.runtimes.node.command.is_some() {
                v.push(TOOL_TS);
            }
            if s.runtimes.python.command.is_some() {
                v.push(TOOL_PY);
            }
        }
        v.push(TOOL_HEALTH);
        v
    }

    /// Token that, once cancelled, kills every run in flight and refuses new ones.
    pub fn stop_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Stop everything: kill running sandboxes, wait (bounded) for their cleanup, remove the
    /// run directory and flush the audit log.
    pub async fn shutdown(&self) {
        let s = &self.shared;
        s.shutdown.cancel();
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Warm sandboxes are asked to end (sandbox-run cleans up on SIGTERM) and awaited.
        s.warm.drain().await;
        if let Err(e) = std::fs::remove_dir_all(&s.runs_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!("shutdown: cannot remove {}: {e}", s.runs_dir.display());
            }
        }
        s.upstreams.shutdown().await;
        s.audit.flush();
    }

    fn tools(&self) -> Vec<Tool> {
        let cfg = &self.shared.cfg;
        let exec_schema = Arc::new(output::execute_output_schema());
        let mut tools = Vec::new();
        for name in self.offered_tools() {
            let tool = match name {
                TOOL_TS => Tool::new(
                    TOOL_TS,
                    "Run TypeScript (deno, default) or JavaScript (runtime: \"node\", ES module) in an isolated sandbox: \
                     no network and no host files unless granted in `permissions`, fresh /workspace and /tmp per run. \
                     Top-level await works. Print results with console.log.",
                    Arc::new(params::input_schema(true, cfg)),
                )
                .with_raw_output_schema(exec_schema.clone()),
                TOOL_PY => Tool::new(
                    TOOL_PY,
                    "Run Python 3 (CPython) in an isolated sandbox: no network and no host files unless granted in \
                     `permissions`, fresh /workspace and /tmp per run. Top-level await works. Print results with print().",
                    Arc::new(params::input_schema(false, cfg)),
                )
                .with_raw_output_schema(exec_schema.clone()),
                _ => {
                    let mut empty = Map::new();
                    empty.insert("type".into(), json!("object"));
                    empty.insert("properties".into(), json!({}));
                    Tool::new(
                        TOOL_HEALTH,
                        "Server health: sandbox pool, audit log, available runtimes and what the sandbox enforces on this machine.",
                        Arc::new(empty),
                    )
                    .with_raw_output_schema(Arc::new(output::health_output_schema()))
                    .with_annotations(ToolAnnotations::new().read_only(true))
                }
            };
            tools.push(tool);
        }
        tools
    }

    async fn health(&self) -> CallToolResult {
        let s = &self.shared;
        let pool = s.pool.stats();
        let audit = s.audit.status();
        let doctor = s
            .doctor
            .get_or_init(|| run_doctor(s.sandbox_run.clone(), s.sandbox_problem.is_none()))
            .await
            .clone();
        let rt = |d: &super::runtime::Detected| {
            json!({
                "available": d.command.is_some(),
                "command": d.command.as_ref().map(|c| c.display().to_string()),
                "reason": d.problem,
            })
        };
        let any_runtime = s.runtimes.deno.command.is_some()
            || s.runtimes.node.command.is_some()
            || s.runtimes.python.command.is_some();
        let healthy = s.sandbox_problem.is_none() && any_runtime && audit.last_error.is_none();
        let v = json!({
            "healthy": healthy,
            "auditLog": {
                "enabled": audit.enabled,
                "path": audit.path.map(|p| p.display().to_string()),
                "entriesWritten": audit.written,
                "writeFailures": audit.failures,
                "lastError": audit.last_error,
            },
            "mcpClients": s.upstreams.health(),
            "prewarm": s.warm.counts(),
            "connectionPool": {
                "active": pool.active,
                "waiting": pool.waiting,
                "max": pool.max,
                "queueSize": s.cfg.pool.queue_size,
                "queueTimeoutMs": s.cfg.pool.queue_timeout_ms,
            },
            "uptime": s.started.elapsed().as_secs_f64(),
            "timestamp": rfc3339_now(),
            "tools": self.offered_tools(),
            "runtimes": {
                "deno": rt(&s.runtimes.deno),
                "node": rt(&s.runtimes.node),
                "python": rt(&s.runtimes.python),
            },
            "sandbox": {
                "launcher": s.sandbox_run.display().to_string(),
                "available": s.sandbox_problem.is_none(),
                "problem": s.sandbox_problem,
                "doctor": doctor,
            },
            "rateLimit": s.cfg.rate_limit.as_ref().map(|r| json!({"windowMs": r.window_ms, "maxRequests": r.max_requests})),
            "blockDangerousPatterns": s.cfg.block_dangerous_patterns,
            "allowedRoots": {
                "read": s.cfg.allow_read.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "write": s.cfg.allow_write.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            },
            "configFiles": s.cfg.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        let mut r = CallToolResult::success(vec![ContentBlock::text(
            serde_json::to_string_pretty(&v).unwrap_or_default(),
        )]);
        r.structured_content = Some(v);
        r
    }

    /// The execute pipeline; always produces a result (never a protocol error).
    async fn execute(
        &self,
        tool: &'static str,
        args: Option<&Map<String, Value>>,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let s = &self.shared;
        let typescript = tool == TOOL_TS;
        let executor = if typescript { "typescript" } else { "python" };
        let code_for_audit = args
            .and_then(|a| a.get("code"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut outcome = match self.prepare(typescript, args) {
            Err(rejected) => rejected,
            Ok((p, runtime, warnings)) => {
                let mut o = self.run_prepared(p, runtime, ctx).await;
                o.runtime = Some(runtime.name());
                o.warnings = [warnings, o.warnings].concat();
                o
            }
        };
        if outcome.runtime.is_none() {
            outcome.runtime = (!typescript).then_some("python");
        }
        s.audit.write(&AuditEntry {
            code: code_for_audit,
            executor,
            runtime: outcome.runtime,
            allowed_tools: super::string_array(args.and_then(|a| a.get("allowedTools"))),
            execution_time_ms: outcome.execution_time_ms,
            success: outcome.success,
            error: outcome.error.clone(),
            error_type: outcome.error_type.map(ErrorType::as_str),
            exit_code: outcome.exit_code,
            limit_hit: outcome.limit_hit.clone(),
            warnings: outcome.warnings.clone(),
            network: outcome.network.clone(),
            tools_called: bridge::calls_made(&outcome.tool_calls),
            tool_calls: bridge::audit_lines(&outcome.tool_calls),
        });
        output::to_result(&outcome)
    }

    /// Everything before the run: arguments, runtime, permissions, patterns, rate limit.
    #[allow(clippy::result_large_err)]
    fn prepare(
        &self,
        typescript: bool,
        args: Option<&Map<String, Value>>,
    ) -> Result<(Prepared, Runtime, Vec<String>), ExecOutcome> {
        let s = &self.shared;
        let validation = |m: String| ExecOutcome::rejected(ErrorType::Validation, m);
        let security = |m: String| ExecOutcome::rejected(ErrorType::Security, m);
        // Every execute request counts against the rate limit, valid or not: it bounds load.
        if let Some(rl) = &s.rate {
            rl.check().map_err(validation)?;
        }
        let p = params::parse_execute(args, &s.cfg, typescript).map_err(|e| validation(e.0))?;
        if p.enable_sampling {
            return Err(validation(
                "sampling is not enabled on this server; call again without enableSampling".into(),
            ));
        }
        let runtime = if typescript {
            Runtime::from(p.js_runtime.unwrap_or(super::params::JsRuntime::Deno))
        } else {
            Runtime::Python
        };
        let detected = s.runtimes.get(runtime);
        let Some(command) = detected.command.clone() else {
            let hint = match runtime {
                Runtime::Deno if s.runtimes.node.command.is_some() => {
                    "; pass runtime: \"node\" to run JavaScript on node, or install deno (DENO_PATH)"
                }
                _ => "",
            };
            let mut o = ExecOutcome::rejected(
                ErrorType::Execution,
                format!(
                    "runtime {} is not available: {}{hint}",
                    runtime.name(),
                    detected.problem.clone().unwrap_or_default()
                ),
            );
            o.runtime = Some(runtime.name());
            return Err(o);
        };
        // Write roots are also readable; read permission may use either.
        let read_roots: Vec<PathBuf> = s
            .cfg
            .allow_read
            .iter()
            .chain(s.cfg.allow_write.iter())
            .cloned()
            .collect();
        let read = paths::resolve_all("read", &p.permissions.read, &read_roots)
            .map_err(|e| security(e.to_string()))?;
        let write = paths::resolve_all("write", &p.permissions.write, &s.cfg.allow_write)
            .map_err(|e| security(e.to_string()))?;
        // A path granted for writing is readable already; don't mount it twice.
        let read: Vec<PathBuf> = read.into_iter().filter(|r| !write.contains(r)).collect();
        params::check_net(&p.permissions.net, &s.cfg.net_ceiling).map_err(security)?;
        let lang = if typescript {
            Language::JavaScript
        } else {
            Language::Python
        };
        let warnings = patterns::scan(&p.code, lang);
        if s.cfg.block_dangerous_patterns && !warnings.is_empty() {
            let mut o = security(format!(
                "blocked by security.blockDangerousPatterns: {}",
                warnings.join("; ")
            ));
            o.warnings = warnings;
            return Err(o);
        }
        let args = interpreter_args(runtime, &read, &write, &p.permissions);
        Ok((
            Prepared {
                params: p,
                command,
                args,
                read,
                write,
            },
            runtime,
            warnings,
        ))
    }

    async fn run_prepared(
        &self,
        prep: Prepared,
        runtime: Runtime,
        ctx: &RequestContext<RoleServer>,
    ) -> ExecOutcome {
        let s = &self.shared;
        s.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(&s.in_flight);
        let started = Instant::now();
        let slot = tokio::select! {
            r = s.pool.acquire() => r,
            _ = ctx.ct.cancelled() => return cancelled("the client cancelled the request while it was queued"),
            _ = s.shutdown.cancelled() => return cancelled("the server is shutting down"),
        };
        let _slot = match slot {
            Ok(slot) => slot,
            Err(e) => return ExecOutcome::rejected(ErrorType::Execution, e.to_string()),
        };
        let timeout_ms = prep.params.timeout_ms;
        // A run that asks for no host paths and no network would launch exactly like a warm
        // sandbox: take one if it is ready (each is used once, then destroyed).
        let eligible =
            prep.read.is_empty() && prep.write.is_empty() && prep.params.permissions.net.is_empty();
        let warm = if eligible { s.warm.take(runtime) } else { None };
        let prewarmed = warm.is_some();
        // However this run ends (result, cancel, shutdown), the pool refills after it.
        let _refill = prewarmed.then(|| RefillAfter(&s.warm));
        let (run, bridge, _dir): (RunFuture, RunBridge, RunDir) = match warm {
            Some(Warm {
                launched,
                run_dir,
                extra: bridge,
            }) => {
                bridge.set_allowed(prep.params.allowed_tools.clone());
                let code = bridge.wrap_code(runtime, &prep.params.code);
                let run = launched.finish(code, timeout_ms, Deadline::Server);
                (Box::pin(run), bridge, RunDir(run_dir))
            }
            None => {
                let n = s.run_counter.fetch_add(1, Ordering::SeqCst);
                let run_dir = s.runs_dir.join(format!("run-{n}"));
                if let Err(e) = std::fs::create_dir_all(&run_dir) {
                    return ExecOutcome::rejected(
                        ErrorType::Execution,
                        format!("cannot create run directory {}: {e}", run_dir.display()),
                    );
                }
                let dir = RunDir(run_dir.clone());
                let bridge = match RunBridge::start(
                    &run_dir.join("bridge"),
                    s.upstreams.clone(),
                    prep.params.allowed_tools.clone(),
                    s.bridge_limits.clone(),
                ) {
                    Ok(b) => b,
                    Err(e) => return ExecOutcome::rejected(ErrorType::Execution, e.to_string()),
                };
                let mut spec = RunSpec {
                    sandbox_run: s.sandbox_run.clone(),
                    runtime,
                    command: prep.command,
                    args: prep.args,
                    read: prep.read,
                    write: prep.write,
                    net: prep.params.permissions.net.clone(),
                    timeout_ms,
                    code: prep.params.code,
                    run_dir,
                };
                bridge.attach(&mut spec, &prep.params.permissions);
                (Box::pin(sandbox::run(spec)), bridge, dir)
            }
        };
        let mut run = run;
        let progress_token = ctx.meta.get_progress_token();
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                // Dropping `run` (by returning) kills the sandbox: kill_on_drop + group kill.
                _ = ctx.ct.cancelled() => {
                    tracing::info!("run cancelled by the client; sandbox killed");
                    return cancelled("the client cancelled the request; the sandbox was killed");
                }
                _ = s.shutdown.cancelled() => {
                    return cancelled("the server is shutting down; the sandbox was killed");
                }
                _ = tick.tick() => {
                    if let Some(token) = &progress_token {
                        let secs = started.elapsed().as_secs_f64();
                        let _ = ctx.peer.notify_progress(
                            ProgressNotificationParam::new(token.clone(), secs.floor())
                                .with_total((timeout_ms as f64 / 1000.0).ceil())
                                .with_message(format!("running for {secs:.0}s")),
                        ).await;
                    }
                }
            }
        };
        let mut outcome = match result {
            Ok(out) => interpret(out, timeout_ms),
            Err(e) => {
                let mut o = ExecOutcome::rejected(ErrorType::Execution, e.to_string());
                o.execution_time_ms = started.elapsed().as_millis() as u64;
                o
            }
        };
        outcome.tool_calls = bridge.finish();
        outcome.prewarmed = prewarmed;
        outcome
    }
}

/// Wakes the warm pool's refill when dropped, i.e. when the run that took a sandbox is over.
struct RefillAfter<'a>(&'a WarmPool<RunBridge>);

impl Drop for RefillAfter<'_> {
    fn drop(&mut self) {
        self.0.refill_soon();
    }
}

/// One run in progress: a fresh launch, or a prewarmed sandbox being fed its code.
type RunFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<RunOutput, sandbox::SandboxError>> + Send>,
>;

/// Launches one warm sandbox for `runtime`: the launch of a run with no host paths, no network
/// and (for now) no tools allowed, its code still to come on stdin. Its launcher's own timeout
/// covers the longest wait plus the longest run; the run's own limit is enforced when taken.
fn launch_warm(s: &Shared, runtime: Runtime) -> Result<Warm<RunBridge>, String> {
    let command = s
        .runtimes
        .get(runtime)
        .command
        .clone()
        .ok_or_else(|| format!("{} is not available", runtime.name()))?;
    let n = s.run_counter.fetch_add(1, Ordering::SeqCst);
    let run_dir = s.runs_dir.join(format!("warm-{n}"));
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
    let made = (|| {
        let perms = Permissions::default();
        let bridge = RunBridge::start(
            &run_dir.join("bridge"),
            s.upstreams.clone(),
            Vec::new(),
            s.bridge_limits.clone(),
        )
        .map_err(|e| e.to_string())?;
        let mut spec = RunSpec {
            sandbox_run: s.sandbox_run.clone(),
            runtime,
            command,
            args: interpreter_args(runtime, &[], &[], &perms),
            read: Vec::new(),
            write: Vec::new(),
            net: Vec::new(),
            timeout_ms: super::warm::MAX_IDLE.as_millis() as u64 + s.cfg.max_timeout_ms,
            code: String::new(),
            run_dir: run_dir.clone(),
        };
        bridge.attach(&mut spec, &perms);
        let launched = sandbox::spawn(&spec).map_err(|e| e.to_string())?;
        Ok(Warm {
            launched,
            run_dir: run_dir.clone(),
            extra: bridge,
        })
    })();
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    made
}

/// The upstream servers of `mcpServers` (`.mcp.json` in the working directory,
/// `~/.claude.json`, then `MCP_CONFIG_PATH`); a bad file is reported, never fatal.
fn load_upstreams(cfg: &Config) -> Upstreams {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let (specs, problems) =
        super::upstream::load_specs(&cwd, home.as_deref(), cfg.mcp_config_path.as_deref());
    for p in &problems {
        tracing::warn!("mcpServers: {p}");
    }
    Upstreams::new(
        specs,
        problems,
        super::upstream::Settings::from_vars(|k| std::env::var(k).ok()),
    )
}

/// A request that passed every pre-run check.
struct Prepared {
    params: ExecuteParams,
    command: PathBuf,
    args: Vec<String>,
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
}

fn cancelled(why: &str) -> ExecOutcome {
    ExecOutcome::rejected(ErrorType::Execution, format!("cancelled: {why}"))
}

/// Turn the launcher's exit into the result fields.
fn interpret(out: RunOutput, timeout_ms: u64) -> ExecOutcome {
    let timed_out = out.timed_out();
    let report = out.report.clone().unwrap_or_default();
    let stderr = out.stderr.clone().into_text();
    let limit_hit = report.limit_hit.clone().or_else(|| {
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("sandbox-run: limit:"))
            // "sandbox-run: limit: memory: memory cap of 512M reached" -> "memory"
            .map(|l| l.split(':').next().unwrap_or_default().trim().to_string())
    });
    let exit_code = report.exit_code.or(out.exit_code);
    let signal = report.signal.or(out.signal).or_else(|| {
        // 128+N from the launcher means the workload died of signal N.
        (report.status.is_none())
            .then_some(out.exit_code)
            .flatten()
            .filter(|c| (129..=192).contains(c))
            .map(|c| c - 128)
    });
    let mut o = ExecOutcome {
        stdout: out.stdout.into_text(),
        stderr,
        execution_time_ms: out.wall_ms,
        exit_code,
        signal,
        limit_hit: limit_hit.clone(),
        degraded: report.degraded.clone(),
        cpu_time_ms: report.cpu_time_ms,
        network: report.network.clone(),
        peak_memory_bytes: report.peak_memory_bytes,
        ..Default::default()
    };
    let status = report.status.as_deref();
    if timed_out {
        o.timed_out = true;
        o.error_type = Some(ErrorType::Timeout);
        o.error = Some(format!(
            "Execution timeout after {:.2}s",
            timeout_ms as f64 / 1000.0
        ));
        return o;
    }
    let setup_failed =
        status == Some("setup-failed") || (status.is_none() && exit_code == Some(125));
    if setup_failed {
        o.error_type = Some(ErrorType::Execution);
        o.error = Some(match &report.error {
            Some(e) => format!("the sandbox could not be set up: {e}"),
            None => "the sandbox could not be set up (sandbox-run exit 125); see stderr for the step and the fix".into(),
        });
        return o;
    }
    if status.is_none() && out.report.is_none() && exit_code == Some(2) && out.signal.is_none() {
        // clap's usage-error exit: this launcher rejected an argument (e.g. --allow-net).
        o.error_type = Some(ErrorType::Execution);
        o.error = Some("sandbox-run rejected its arguments (exit 2); an option such as --allow-net may be unsupported by this build".into());
        return o;
    }
    if exit_code == Some(0) && signal.is_none() {
        o.success = true;
        return o;
    }
    o.error_type = Some(ErrorType::Execution);
    let mut msg = match (signal, exit_code) {
        (Some(sig), _) => format!("killed by signal {sig}"),
        (None, Some(127)) if status.is_none() => {
            "command not found in the sandbox (exit 127)".to_string()
        }
        (None, Some(126)) if status.is_none() => {
            "command not executable in the sandbox (exit 126)".to_string()
        }
        (None, Some(c)) => format!("exited with code {c}"),
        (None, None) => "ended without an exit status".to_string(),
    };
    if let Some(l) = &limit_hit {
        msg.push_str(&format!(" (limit hit: {l})"));
    }
    o.error = Some(msg);
    o
}

/// Run `sandbox-run doctor` once, for `health` (what the sandbox enforces on this machine).
async fn run_doctor(launcher: PathBuf, present: bool) -> Value {
    if !present {
        return json!({"ran": false});
    }
    let cmd = tokio::process::Command::new(&launcher)
        .arg("doctor")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(20), cmd).await {
        Ok(Ok(o)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let (text, _) = output::truncate(&output::strip_ansi(&text));
            json!({"ran": true, "exitCode": o.status.code(), "output": text})
        }
        Ok(Err(e)) => json!({"ran": false, "error": e.to_string()}),
        Err(_) => json!({"ran": false, "error": "sandbox-run doctor did not finish within 20 s"}),
    }
}

impl ServerHandler for ExecutorServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                super::SERVER_NAME,
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Runs TypeScript/JavaScript (executeTypescript) and Python (executePython) in a Linux sandbox \
                 (namespaces, Landlock, seccomp). Each run has a fresh /workspace and /tmp, no network and no host \
                 files unless granted via `permissions` within the server's configured roots. `health` reports the \
                 pool, runtimes and the sandbox's enforcement on this machine.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let offered = self.offered_tools();
        let name = request.name.as_ref();
        let args = request.arguments.as_ref();
        match name {
            TOOL_HEALTH => Ok(self.health().await.into()),
            TOOL_TS | TOOL_PY if offered.contains(&name) => {
                let tool = if name == TOOL_TS { TOOL_TS } else { TOOL_PY };
                Ok(self.execute(tool, args, &context).await.into())
            }
            TOOL_TS | TOOL_PY => {
                // Known but not offered: say why instead of a bare "not found".
                let why = self.shared.sandbox_problem.clone().unwrap_or_else(|| {
                    let rts = &self.shared.runtimes;
                    if name == TOOL_PY {
                        rts.python.problem.clone().unwrap_or_default()
                    } else {
                        format!(
                            "deno: {}; node: {}",
                            rts.deno.problem.clone().unwrap_or_default(),
                            rts.node.problem.clone().unwrap_or_default()
                        )
                    }
                });
                Ok(output::to_result(&ExecOutcome::rejected(
                    ErrorType::Execution,
                    format!("tool {name} is not offered on this server: {why}"),
                ))
                .into())
            }
            _ => Err(ErrorData::invalid_params(
                format!(
                    "tool not found: {name:?}; this server offers {}",
                    offered.join(", ")
                ),
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{Captured, RunReport};

    fn out(exit: Option<i32>, report: Option<RunReport>, stderr: &str) -> RunOutput {
        RunOutput {
            stdout: Captured::default(),
            stderr: Captured {
                text: stderr.into(),
                dropped: 0,
            },
            exit_code: exit,
            signal: None,
            report,
            wall_ms: 5,
            backstop_killed: false,
        }
    }

    fn report(status: &str, exit: Option<i32>, signal: Option<i32>) -> RunReport {
        RunReport {
            status: Some(status.into()),
            exit_code: exit,
            signal,
            ..Default::default()
        }
    }

    #[test]
    fn launcher_exits_are_interpreted() {
        let o = interpret(
            out(Some(0), Some(report("exited", Some(0), None)), ""),
            1000,
        );
        assert!(o.success && o.error.is_none());

        let o = interpret(
            out(Some(124), Some(report("timeout", None, None)), ""),
            2500,
        );
        assert!(o.timed_out && !o.success);
        assert_eq!(o.error.as_deref(), Some("Execution timeout after 2.50s"));

        // The guest's own exit 124 is not a timeout when the report says it exited.
        let o = interpret(
            out(Some(124), Some(report("exited", Some(124), None)), ""),
            1000,
        );
        assert!(!o.timed_out);
        assert_eq!(o.error.as_deref(), Some("exited with code 124"));

        let mut r = report("signaled", None, Some(9));
        r.limit_hit = Some("memory".into());
        let o = interpret(out(Some(137), Some(r), ""), 1000);
        assert_eq!(
            o.error.as_deref(),
            Some("killed by signal 9 (limit hit: memory)")
        );

        let mut r = report("setup-failed", None, None);
        r.error = Some("landlock: not supported".into());
        let o = interpret(out(Some(125), Some(r), ""), 1000);
        assert!(o.error.unwrap().contains("landlock: not supported"));

        // No report: fall back on the exit-code contract.
        let o = interpret(out(Some(137), None, ""), 1000);
        assert_eq!(o.signal, Some(9));
        let o = interpret(out(Some(127), None, ""), 1000);
        assert!(o.error.unwrap().contains("not found"));
        let o = interpret(
            out(Some(2), None, "error: unexpected argument '--allow-net'"),
            1000,
        );
        assert!(o.error.unwrap().contains("rejected its arguments"));
        let o = interpret(
            out(Some(1), None, "sandbox-run: limit: cpu: 2 s used\n"),
            1000,
        );
        assert_eq!(o.limit_hit.as_deref(), Some("cpu"));
    }
}
