//! One execution, from the request's arguments to its result and audit line.
//!
//! Pipeline: [`prepare`] (rate limit, arguments, runtime, permissions, dangerous patterns) ->
//! a pool slot -> a sandbox, prewarmed or launched for this run, with its tool bridge ->
//! the run, with progress and cancellation (`progress`) -> [`outcome`] (the launcher's exit
//! and report as result fields) -> the result (`output`) and the audit line.

pub mod outcome;
pub mod prepare;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use serde_json::{Map, Value};

use crate::audit::AuditEntry;
use crate::bridge::{self, RunBridge};
use crate::output::{self, ErrorType, ExecOutcome};
use crate::params::{ExecuteTool, Permissions};
use crate::progress::{self, Stage};
use crate::rundir::{RunDir, RunKind};
use crate::runtime::{interpreter_args, GuestRuntime};
use crate::sandbox::{self, Deadline, RunOutput, RunSpec, SandboxError};
use crate::state::ServerState;
use crate::warm::{Warm, WarmPool, MAX_IDLE};
use prepare::{prepare, PreparedExecution};

/// Run one execute request; always produces a result (never a protocol error).
pub async fn execute(
    s: &ServerState,
    tool: ExecuteTool,
    args: Option<&Map<String, Value>>,
    ctx: &RequestContext<RoleServer>,
) -> CallToolResult {
    let mut outcome = match prepare(s, tool, args) {
        Err(rejected) => rejected,
        Ok(prep) => {
            let runtime = prep.runtime;
            let warnings = prep.warnings.clone();
            let mut o = run_prepared(s, prep, ctx).await;
            o.runtime = Some(runtime.name());
            o.warnings = [warnings, o.warnings].concat();
            o
        }
    };
    if outcome.runtime.is_none() && tool == ExecuteTool::Python {
        outcome.runtime = Some("python");
    }
    write_audit(s, tool, args, &outcome);
    output::to_result(&outcome)
}

/// The audit line of one request (the code is hashed by the audit log, never stored).
fn write_audit(
    s: &ServerState,
    tool: ExecuteTool,
    args: Option<&Map<String, Value>>,
    outcome: &ExecOutcome,
) {
    let arg = |k: &str| args.and_then(|a| a.get(k));
    s.audit.write(&AuditEntry {
        code: arg("code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        executor: match tool {
            ExecuteTool::Typescript => "typescript",
            ExecuteTool::Python => "python",
        },
        runtime: outcome.runtime,
        allowed_tools: crate::json::string_array(arg("allowedTools")),
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
}

/// One run in progress: a fresh launch, or a prewarmed sandbox being fed its code.
type RunFuture = Pin<Box<dyn Future<Output = Result<RunOutput, SandboxError>> + Send>>;

/// A run that has started, and what must live as long as it does.
struct Started {
    run: RunFuture,
    bridge: RunBridge,
    /// Removed when the run is over, however it ends.
    _dir: RunDir,
    prewarmed: bool,
}

/// Queue for a slot, start the sandbox, wait for it with progress and cancellation.
async fn run_prepared(
    s: &ServerState,
    prep: PreparedExecution,
    ctx: &RequestContext<RoleServer>,
) -> ExecOutcome {
    let _in_flight = s.enter_run();
    let started = Instant::now();
    let slot = match progress::unless_interrupted(s.pool.acquire(), ctx, &s.shutdown).await {
        Err(why) => return cancelled(why.message(Stage::Queued)),
        Ok(slot) => slot,
    };
    let _slot = match slot {
        Ok(slot) => slot,
        Err(e) => return ExecOutcome::rejected(ErrorType::Execution, e.to_string()),
    };
    let timeout_ms = prep.params.timeout_ms;
    // A warm sandbox is used once, then destroyed; however this run ends (result, cancel,
    // shutdown), the pool refills after it.
    let warm = if prep.fits_a_warm_sandbox() {
        s.warm.take(prep.runtime)
    } else {
        None
    };
    let _refill = warm.is_some().then(|| RefillAfter(&s.warm));
    let run = match warm {
        Some(w) => start_warm(w, prep),
        None => match start_fresh(s, prep) {
            Ok(run) => run,
            Err(rejected) => return rejected,
        },
    };
    let result = progress::with_progress(run.run, ctx, &s.shutdown, timeout_ms).await;
    let mut outcome = match result {
        Err(why) => return cancelled(why.message(Stage::Running)),
        Ok(Ok(out)) => outcome::interpret(out, timeout_ms),
        Ok(Err(e)) => {
            let mut o = ExecOutcome::rejected(ErrorType::Execution, e.to_string());
            o.execution_time_ms = started.elapsed().as_millis() as u64;
            o
        }
    };
    outcome.tool_calls = run.bridge.finish();
    outcome.prewarmed = run.prewarmed;
    outcome
}

/// Feed a prewarmed sandbox this run's code; its allowlist becomes the run's, and the server
/// enforces the run's timeout (the launcher's own covers the wait too).
fn start_warm(w: Warm<RunBridge>, prep: PreparedExecution) -> Started {
    let bridge = w.extra;
    bridge.set_allowed(prep.params.allowed_tools.clone());
    let code = bridge.wrap_code(prep.runtime, &prep.params.code);
    let run = w
        .launched
        .finish(code, prep.params.timeout_ms, Deadline::Server);
    Started {
        run: Box::pin(run),
        bridge,
        _dir: RunDir::adopt(w.run_dir),
        prewarmed: true,
    }
}

/// Launch a sandbox for this run, with its own directory and bridge.
#[allow(clippy::result_large_err)]
fn start_fresh(s: &ServerState, prep: PreparedExecution) -> Result<Started, ExecOutcome> {
    let fail = |m: String| ExecOutcome::rejected(ErrorType::Execution, m);
    let dir = s
        .dir
        .new_run_dir(RunKind::Run)
        .map_err(|e| fail(e.to_string()))?;
    let bridge = RunBridge::start(
        &dir.path().join("bridge"),
        s.upstreams.clone(),
        prep.params.allowed_tools.clone(),
        s.cfg.bridge.clone(),
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut spec = RunSpec {
        sandbox_run: s.sandbox_run.clone(),
        runtime: prep.runtime,
        command: prep.command,
        args: prep.args,
        read: prep.read.iter().map(|g| g.inside.clone()).collect(),
        write: prep.write.iter().map(|g| g.inside.clone()).collect(),
        grants: prep.read.into_iter().chain(prep.write).collect(),
        net: prep.params.permissions.net.clone(),
        timeout_ms: prep.params.timeout_ms,
        cpus: Some(s.cfg.sandbox.cpus),
        write_limit: s.cfg.sandbox.write_limit,
        allow_degraded: s.cfg.sandbox.allow_degraded.clone(),
        code: prep.params.code,
        run_dir: dir.path().to_path_buf(),
    };
    bridge
        .attach(&mut spec, &prep.params.permissions)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Started {
        run: Box::pin(sandbox::run(spec)),
        bridge,
        _dir: dir,
        prewarmed: false,
    })
}

fn cancelled(message: &str) -> ExecOutcome {
    ExecOutcome::rejected(ErrorType::Execution, message)
}

/// Wakes the warm pool's refill when dropped, i.e. when the run that took a sandbox is over.
struct RefillAfter<'a>(&'a WarmPool<RunBridge>);

impl Drop for RefillAfter<'_> {
    fn drop(&mut self) {
        self.0.refill_soon();
    }
}

/// Launches one warm sandbox for `runtime`: the launch of a run with no host paths, no network
/// and (for now) no tools allowed, its code still to come on stdin. Its launcher's own timeout
/// covers the longest wait plus the longest run; the run's own limit is enforced when taken.
pub fn launch_warm(s: &ServerState, runtime: GuestRuntime) -> Result<Warm<RunBridge>, String> {
    let command = s
        .runtimes
        .get(runtime)
        .command
        .clone()
        .ok_or_else(|| format!("{} is not available", runtime.name()))?;
    let dir = s
        .dir
        .new_run_dir(RunKind::Warm)
        .map_err(|e| e.to_string())?;
    let perms = Permissions::default();
    let bridge = RunBridge::start(
        &dir.path().join("bridge"),
        s.upstreams.clone(),
        Vec::new(),
        s.cfg.bridge.clone(),
    )
    .map_err(|e| e.to_string())?;
    let mut spec = RunSpec {
        sandbox_run: s.sandbox_run.clone(),
        runtime,
        command,
        args: interpreter_args(runtime, &[], &[], &perms),
        read: Vec::new(),
        write: Vec::new(),
        grants: Vec::new(),
        net: Vec::new(),
        timeout_ms: MAX_IDLE.as_millis() as u64 + s.cfg.max_timeout_ms,
        cpus: Some(s.cfg.sandbox.cpus),
        write_limit: s.cfg.sandbox.write_limit,
        allow_degraded: s.cfg.sandbox.allow_degraded.clone(),
        code: String::new(),
        run_dir: dir.path().to_path_buf(),
    };
    bridge
        .attach(&mut spec, &perms)
        .map_err(|e| e.to_string())?;
    let launched = sandbox::spawn(&spec).map_err(|e| e.to_string())?;
    // From here the warm pool, then the run that takes it, removes the directory.
    Ok(Warm {
        launched,
        run_dir: dir.into_path(),
        extra: bridge,
    })
}
