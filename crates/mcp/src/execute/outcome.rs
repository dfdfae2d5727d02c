//! What a run that reached the launcher came to: sandbox-run's exit status and report turned
//! into the result's fields (success, exit code or signal, the limit hit, the error text).

use crate::output::{ErrorType, ExecOutcome};
use crate::sandbox::RunOutput;
use code_executor::report::RunStatus;

/// Turn the launcher's report into the result fields. Every sandbox fact (how the run ended,
/// the limit it hit, the setup step that failed) comes from the typed report sandbox-run
/// writes to the server's own pipe; nothing the guest prints can change them.
pub fn interpret(out: RunOutput, timeout_ms: u64) -> ExecOutcome {
    let timed_out = out.timed_out();
    let stderr = out.stderr.clone().into_text();
    let mut o = ExecOutcome {
        stdout: out.stdout.clone().into_text(),
        stderr,
        execution_time_ms: out.wall_ms,
        ..Default::default()
    };
    if let Ok(r) = &out.report {
        o.exit_code = r.exit_code;
        o.signal = r.signal;
        o.limit_hit = r.limit_hit.map(|l| l.name().to_string());
        o.degraded = r.degraded.clone();
        o.cpu_time_ms = Some(r.cpu_time_ms);
        o.peak_memory_bytes = Some(r.peak_memory_bytes);
        o.network = r
            .network
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .collect();
    }
    if timed_out {
        o.timed_out = true;
        o.error_type = Some(ErrorType::Timeout);
        o.error = Some(format!(
            "Execution timeout after {:.2}s",
            timeout_ms as f64 / 1000.0
        ));
        return o;
    }
    o.error_type = Some(ErrorType::Execution);
    let report = match &out.report {
        Ok(r) => r,
        Err(why) => {
            // Killed from outside before it could report (the server never does that to a
            // run it still waits for), or a launcher of another version.
            o.exit_code = out.exit_code;
            o.signal = out.signal;
            o.error = Some(format!(
                "the sandbox launcher gave no report ({why}; it exited with {}); nothing is known of the run",
                match (out.exit_code, out.signal) {
                    (Some(c), _) => format!("code {c}"),
                    (None, Some(s)) => format!("signal {s}"),
                    (None, None) => "no status".to_string(),
                }
            ));
            return o;
        }
    };
    match report.status {
        RunStatus::SetupFailed => {
            o.error = Some(match &report.error {
                Some(e) if e.fix.contains("--allow-degraded") => format!(
                    "the sandbox could not be set up: {e}\n  in this server, a weaker mode is accepted with the setting sandbox.allowDegraded (or CODE_EXECUTOR_ALLOW_DEGRADED)"
                ),
                Some(e) => format!("the sandbox could not be set up: {e}"),
                None => "the sandbox could not be set up (no reason given)".into(),
            });
        }
        RunStatus::UsageError => {
            o.error = Some(format!(
                "the sandbox refused the run: {}",
                report.usage_error.as_deref().unwrap_or("(no reason given)")
            ));
        }
        RunStatus::Exited if report.exit_code == Some(0) => {
            o.success = true;
            o.error_type = None;
        }
        RunStatus::Exited | RunStatus::Signaled | RunStatus::Interrupted | RunStatus::Timeout => {
            o.error = Some(guest_failure(
                report.signal,
                report.exit_code,
                o.limit_hit.as_deref(),
            ));
        }
    }
    o
}

/// Why the guest's run failed: its signal or exit code, and the limit it hit.
fn guest_failure(signal: Option<i32>, exit_code: Option<i32>, limit_hit: Option<&str>) -> String {
    let mut msg = match (signal, exit_code) {
        (Some(sig), _) => format!("killed by signal {sig}"),
        (None, Some(c)) => format!("exited with code {c}"),
        (None, None) => "ended without an exit status".to_string(),
    };
    if let Some(l) = limit_hit {
        msg.push_str(&format!(" (limit hit: {l})"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Captured;
    use code_executor::launch::{SetupError, Step};
    use code_executor::report::LimitHit;
    use code_executor::RunReport;

    fn out(exit: Option<i32>, report: Result<RunReport, String>, stderr: &str) -> RunOutput {
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

    fn report(
        status: RunStatus,
        exit: Option<i32>,
        signal: Option<i32>,
    ) -> Result<RunReport, String> {
        let mut r = RunReport::usage_error(vec![], String::new(), 0);
        r.status = status;
        r.usage_error = None;
        r.exit_code = exit;
        r.signal = signal;
        Ok(r)
    }

    #[test]
    fn the_report_alone_says_how_the_run_ended() {
        let o = interpret(
            out(Some(0), report(RunStatus::Exited, Some(0), None), ""),
            1000,
        );
        assert!(o.success && o.error.is_none());

        let o = interpret(
            out(Some(124), report(RunStatus::Timeout, None, Some(9)), ""),
            2500,
        );
        assert!(o.timed_out && !o.success);
        assert_eq!(o.error.as_deref(), Some("Execution timeout after 2.50s"));

        // The guest's own exit 124 is not a timeout when the report says it exited.
        let o = interpret(
            out(Some(124), report(RunStatus::Exited, Some(124), None), ""),
            1000,
        );
        assert!(!o.timed_out);
        assert_eq!(o.error.as_deref(), Some("exited with code 124"));

        let mut r = report(RunStatus::Signaled, None, Some(9)).unwrap();
        r.limit_hit = Some(LimitHit::Memory);
        let o = interpret(out(Some(137), Ok(r), ""), 1000);
        assert_eq!(
            o.error.as_deref(),
            Some("killed by signal 9 (limit hit: memory)")
        );
        assert_eq!(o.limit_hit.as_deref(), Some("memory"));

        let mut r = report(RunStatus::SetupFailed, None, None).unwrap();
        r.error = Some(SetupError::new(Step::Landlock, "landlock: not supported"));
        let o = interpret(out(Some(125), Ok(r), ""), 1000);
        let e = o.error.unwrap();
        assert!(
            e.contains("landlock: not supported") && e.contains("fix:"),
            "{e}"
        );

        let mut r = report(RunStatus::UsageError, None, None).unwrap();
        r.usage_error = Some("--allow-write /x: no such file".into());
        let o = interpret(out(Some(125), Ok(r), ""), 1000);
        assert!(o.error.unwrap().contains("--allow-write /x"));
    }

    #[test]
    fn what_the_guest_prints_changes_nothing() {
        // A guest that writes sandbox-run's own lines claims a limit it never hit.
        let forged = "sandbox-run: limit: memory: memory cap of 512M reached (cgroup-v1)\n";
        let o = interpret(
            out(Some(1), report(RunStatus::Exited, Some(1), None), forged),
            1000,
        );
        assert_eq!(o.limit_hit, None);
        assert_eq!(o.error.as_deref(), Some("exited with code 1"));
        // Without a report nothing is guessed from exit codes or text.
        let o = interpret(out(Some(137), Err("killed".into()), forged), 1000);
        assert_eq!(o.limit_hit, None);
        assert!(!o.success);
        assert!(o.error.unwrap().contains("gave no report"));
    }
}
