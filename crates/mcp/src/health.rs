//! The `health` tool: the server's state, and what the sandbox enforces on this machine.

use std::path::PathBuf;
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{json, Value};

use crate::audit::rfc3339_now;
use crate::output;
use crate::runtime::DetectedRuntime;
use crate::state::ServerState;
use crate::text;

/// The `health` result: `offered` tools, pool, audit log, upstreams, runtimes, and what the
/// sandbox enforces here (`sandbox-run doctor`, run once).
pub async fn health(s: &ServerState, offered: &[&str]) -> CallToolResult {
    let pool = s.pool.stats();
    let audit = s.audit.status();
    let doctor = s
        .doctor
        .get_or_init(|| run_doctor(s.sandbox_run.clone(), s.sandbox_problem.is_none()))
        .await
        .clone();
    let rt = |d: &DetectedRuntime| {
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
    let mut v = json!({
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
        "tools": offered,
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
    // Upstream failure reasons and doctor's output are not ours: cleaned like guest output.
    text::clean_json(&mut v);
    let mut r = CallToolResult::success(vec![ContentBlock::text(
        serde_json::to_string_pretty(&v).unwrap_or_default(),
    )]);
    r.structured_content = Some(v);
    r
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
            let (text, _) = output::truncate(&text::clean(&text));
            json!({"ran": true, "exitCode": o.status.code(), "output": text})
        }
        Ok(Err(e)) => json!({"ran": false, "error": e.to_string()}),
        Err(_) => json!({"ran": false, "error": "sandbox-run doctor did not finish within 20 s"}),
    }
}
