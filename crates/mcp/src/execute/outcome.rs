//! What a run that reached the launcher came to: sandbox-run's exit status and report turned
//! into the result's fields (success, exit code or signal, the limit hit, the error text).

use crate::output::{ErrorType, ExecOutcome};
use crate::sandbox::RunOutput;

/// Turn the launcher's exit into the result fields.
pub fn interpret(out: RunOutput, timeout_ms: u64) -> ExecOutcome {
    let timed_out = out.timed_out();
    let had_report = out.report.is_some();
    let launcher_signal = out.signal;
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
        limit_hit,
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
    o.error_type = Some(ErrorType::Execution);
    let setup_failed =
        status == Some("setup-failed") || (status.is_none() && exit_code == Some(125));
    if setup_failed {
        o.error = Some(match &report.error {
            Some(e) => format!("the sandbox could not be set up: {e}"),
            None => "the sandbox could not be set up (sandbox-run exit 125); see stderr for the step and the fix".into(),
        });
        return o;
    }
    if status.is_none() && !had_report && exit_code == Some(2) && launcher_signal.is_none() {
        // clap's usage-error exit: this launcher rejected an argument (e.g. --allow-net).
        o.error = Some("sandbox-run rejected its arguments (exit 2); an option such as --allow-net may be unsupported by this build".into());
        return o;
    }
    if exit_code == Some(0) && signal.is_none() {
        o.success = true;
        o.error_type = None;
        return o;
    }
    let unreported = status.is_none();
    o.error = Some(guest_failure(
        signal,
        exit_code,
        unreported,
        o.limit_hit.as_deref(),
    ));
    o
}

/// Why the guest's run failed: its signal or exit code, and the limit it hit. `unreported`:
/// no report says how the run ended, so 126 and 127 are the launcher's "not executable" and
/// "not found" rather than the guest's own exit codes.
fn guest_failure(
    signal: Option<i32>,
    exit_code: Option<i32>,
    unreported: bool,
    limit_hit: Option<&str>,
) -> String {
    let mut msg = match (signal, exit_code) {
        (Some(sig), _) => format!("killed by signal {sig}"),
        (None, Some(127)) if unreported => {
            "command not found in the sandbox (exit 127)".to_string()
        }
        (None, Some(126)) if unreported => {
            "command not executable in the sandbox (exit 126)".to_string()
        }
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
