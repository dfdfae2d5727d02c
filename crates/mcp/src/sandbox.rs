//! Running one execution through the `sandbox-run` launcher.
//!
//! The server is multi-threaded, and configuring namespaces, Landlock and seccomp after a
//! fork in a threaded process is unsafe; so the server only ever fork+execs the separate,
//! single-threaded `sandbox-run` binary, which does all of that. The child gets its own
//! process group and `kill_on_drop`, and sandbox-run's init dies with it (PDEATHSIG): killing
//! the child is how a run is cancelled, timed out as a backstop, or stopped at shutdown.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::runtime::GuestRuntime;

/// How much of stdout and of stderr is kept in memory per run; the rest is counted only.
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// Extra wall time past `--timeout` before the server kills sandbox-run itself, in case the
/// launcher's own timer failed.
const BACKSTOP_GRACE: Duration = Duration::from_secs(5);

/// Failure to run sandbox-run at all (not a failure of the guest code).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the sandbox launcher {path}: {source}; build it (cargo build) next to code-executor-mcp or set SANDBOX_RUN_PATH")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lost contact with the sandbox launcher: {0}")]
    Wait(std::io::Error),
}

/// Where `sandbox-run` is: `SANDBOX_RUN_PATH`, else next to our own executable.
pub fn locate_sandbox_run(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("sandbox-run")))
        .unwrap_or_else(|| PathBuf::from("sandbox-run"))
}

/// Everything needed to start one run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub sandbox_run: PathBuf,
    pub runtime: GuestRuntime,
    pub command: PathBuf,
    pub args: Vec<String>,
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub net: Vec<String>,
    pub timeout_ms: u64,
    pub code: String,
    /// Private host directory of this run (holds the report); removed by the caller.
    pub run_dir: PathBuf,
}

/// The launcher's JSON report, read defensively (every field optional, unknown ones ignored).
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub status: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub limit_hit: Option<String>,
    pub degraded: Vec<String>,
    pub cpu_time_ms: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    /// The launcher's own explanation when setup failed.
    pub error: Option<String>,
    /// Network connection decisions of the egress proxy, as the launcher wrote them.
    pub network: Vec<Value>,
}

impl RunReport {
    fn parse(text: &str) -> Option<RunReport> {
        let v: Value = serde_json::from_str(text).ok()?;
        let int = |k: &str| v.get(k).and_then(Value::as_i64).map(|n| n as i32);
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(RunReport {
            status: s("status"),
            exit_code: int("exit_code"),
            signal: int("signal"),
            limit_hit: s("limit_hit"),
            error: s("error"),
            network: v
                .get("network")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            cpu_time_ms: v.get("cpu_time_ms").and_then(Value::as_f64),
            peak_memory_bytes: v.get("peak_memory_bytes").and_then(Value::as_u64),
            degraded: crate::json::string_array(v.get("degraded")),
        })
    }
}

/// Captured output of one stream: the kept prefix and how many bytes were dropped.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub text: String,
    pub dropped: u64,
}

impl Captured {
    /// The text with a note when bytes were dropped at capture time.
    pub fn into_text(self) -> String {
        if self.dropped == 0 {
            self.text
        } else {
            format!(
                "{}\n[{} more bytes not kept by the server]",
                self.text, self.dropped
            )
        }
    }
}

/// What happened to a run that reached the launcher.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub stdout: Captured,
    pub stderr: Captured,
    /// Exit code of sandbox-run (the command's own, or 124/125/126/127, or 128+N).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub report: Option<RunReport>,
    pub wall_ms: u64,
    /// The server stopped the run itself: its deadline passed (a prewarmed run) or the
    /// launcher outlived its own timeout.
    pub backstop_killed: bool,
}

impl RunOutput {
    /// The launcher reported a wall-clock timeout.
    pub fn timed_out(&self) -> bool {
        if self.backstop_killed {
            return true;
        }
        match &self.report {
            Some(r) if r.status.is_some() => r.status.as_deref() == Some("timeout"),
            _ => self.exit_code == Some(124),
        }
    }
}

/// Ends the run if it is abandoned (cancel, shutdown, panic) before the launcher was reaped.
/// SIGTERM first, which sandbox-run turns into killing the sandbox, writing its report and
/// removing its cgroup and directories; a SIGKILL of the whole group follows shortly after as
/// a backstop (anything sandbox-run could not clean up is swept by the next launch).
struct GroupGuard {
    pgid: Option<i32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            let pid = nix::unistd::Pid::from_raw(pgid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            });
        }
    }
}

/// The sandbox-run argument list for `spec` (everything before and including the command).
pub fn launcher_args(spec: &RunSpec, report: &Path) -> Vec<String> {
    let mut a = vec![
        "--policy".to_string(),
        spec.runtime.policy().to_string(),
        "--workdir".into(),
        "/workspace".into(),
        "--timeout".into(),
        format!("{:.3}", spec.timeout_ms as f64 / 1000.0),
        "--report".into(),
        report.display().to_string(),
        "--env".into(),
        "NO_COLOR=1".into(),
    ];
    match spec.runtime {
        GuestRuntime::Deno => {
            a.extend(["--env".into(), "DENO_NO_UPDATE_CHECK=1".into()]);
        }
        GuestRuntime::Python => {
            a.extend(["--env".into(), "PYTHONDONTWRITEBYTECODE=1".into()]);
        }
        GuestRuntime::Node => {}
    }
    for p in &spec.read {
        a.extend(["--allow-read".into(), p.display().to_string()]);
    }
    for p in &spec.write {
        a.extend(["--allow-write".into(), p.display().to_string()]);
    }
    for n in spec.net.iter().filter(|n| !n.is_empty()) {
        a.extend(["--allow-net".into(), n.clone()]);
    }
    a.push("--".into());
    a.push(spec.command.display().to_string());
    a.extend(spec.args.iter().cloned());
    a
}

/// A launched `sandbox-run` whose interpreter is starting (or waiting) for its code on stdin.
/// Dropping it kills the sandbox.
pub struct Launched {
    child: tokio::process::Child,
    guard: GroupGuard,
    report_path: PathBuf,
    spawned_at: Instant,
}

/// How the run's wall-clock limit is enforced.
#[derive(Debug, Clone, Copy)]
pub enum Deadline {
    /// sandbox-run's own `--timeout` is the run's limit (a fresh launch); the server only
    /// keeps a backstop.
    Launcher,
    /// The sandbox was launched ahead of time (prewarmed), so the run's limit starts when the
    /// code is delivered and the server enforces it: SIGTERM to sandbox-run, which kills the
    /// sandbox and still writes its report and cleans up.
    Server,
}

/// Starts sandbox-run for `spec` (its code is not sent yet). `--die-with-parent`: no sandbox
/// outlives the server, even one killed without a chance to clean up.
pub fn spawn(spec: &RunSpec) -> Result<Launched, SandboxError> {
    let report_path = spec.run_dir.join("report.json");
    let mut cmd = Command::new(&spec.sandbox_run);
    cmd.arg("--die-with-parent")
        .args(launcher_args(spec, &report_path))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().map_err(|source| SandboxError::Spawn {
        path: spec.sandbox_run.clone(),
        source,
    })?;
    let guard = GroupGuard {
        pgid: child.id().map(|p| p as i32),
    };
    Ok(Launched {
        child,
        guard,
        report_path,
        spawned_at: Instant::now(),
    })
}

impl Launched {
    /// True while sandbox-run (and so its sandbox) is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How long ago it was launched.
    pub fn age(&self) -> Duration {
        self.spawned_at.elapsed()
    }

    /// Asks sandbox-run to end the run (it kills the sandbox, reports and cleans up).
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    /// Ends a sandbox that will not be used, and waits for sandbox-run to clean up.
    pub async fn stop(mut self) {
        self.terminate();
        if tokio::time::timeout(BACKSTOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        self.guard.pgid = None;
    }

    /// Sends the code, closes stdin, and waits for the run to end.
    pub async fn finish(
        mut self,
        code: String,
        timeout_ms: u64,
        deadline: Deadline,
    ) -> Result<RunOutput, SandboxError> {
        let start = Instant::now();
        let mut stdin = self.child.stdin.take();
        let stdout = self.child.stdout.take();
        let stderr = self.child.stderr.take();
        let feed = async move {
            if let Some(mut s) = stdin.take() {
                // A guest that exits without reading its stdin gives EPIPE here: not an error.
                let _ = s.write_all(code.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        };
        let limit = Duration::from_millis(timeout_ms);
        let child = &mut self.child;
        let wait = async {
            let first = match deadline {
                Deadline::Launcher => limit + BACKSTOP_GRACE,
                Deadline::Server => limit,
            };
            match tokio::time::timeout(first, child.wait()).await {
                Ok(s) => (s, Stop::None),
                Err(_) => {
                    if let (Deadline::Server, Some(pid)) = (deadline, child.id()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                        if let Ok(s) = tokio::time::timeout(BACKSTOP_GRACE, child.wait()).await {
                            return (s, Stop::Deadline);
                        }
                    }
                    tracing::warn!("sandbox-run did not end at its deadline; killing it");
                    let _ = child.start_kill();
                    (child.wait().await, Stop::Killed)
                }
            }
        };
        let (_, out, err, (status, stop)) =
            tokio::join!(feed, capture(stdout), capture(stderr), wait);
        let status = status.map_err(SandboxError::Wait)?;
        // Reaped: the pgid may be reused from now on, so the guard must not signal it.
        self.guard.pgid = None;
        let wall_ms = start.elapsed().as_millis() as u64;
        let report = std::fs::read_to_string(&self.report_path)
            .ok()
            .and_then(|t| RunReport::parse(&t));
        Ok(RunOutput {
            stdout: out,
            stderr: err,
            exit_code: status.code(),
            signal: status.signal(),
            report,
            wall_ms,
            backstop_killed: stop != Stop::None,
        })
    }
}

/// Why the server stopped a run itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    None,
    /// The server's deadline (prewarmed run) passed: sandbox-run was asked to end it.
    Deadline,
    /// sandbox-run did not end when asked, or outlived its own timeout: killed.
    Killed,
}

/// Run one execution to completion in a fresh sandbox. Dropping the future kills the sandbox.
pub async fn run(spec: RunSpec) -> Result<RunOutput, SandboxError> {
    let launched = spawn(&spec)?;
    launched
        .finish(spec.code, spec.timeout_ms, Deadline::Launcher)
        .await
}

/// Read a stream to its end, keeping at most [`CAPTURE_LIMIT`] bytes.
async fn capture<R: AsyncRead + Unpin>(stream: Option<R>) -> Captured {
    let Some(mut r) = stream else {
        return Captured::default();
    };
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = CAPTURE_LIMIT.saturating_sub(kept.len());
                let take = room.min(n);
                kept.extend_from_slice(&buf[..take]);
                dropped += (n - take) as u64;
            }
        }
    }
    Captured {
        text: String::from_utf8_lossy(&kept).into_owned(),
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_read_defensively() {
        let r = RunReport::parse(
            r#"{"status":"exited","exit_code":3,"signal":null,"limit_hit":"memory","degraded":["seccomp"],"new_field":1}"#,
        )
        .unwrap();
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.limit_hit.as_deref(), Some("memory"));
        assert_eq!(r.degraded, vec!["seccomp".to_string()]);
        assert!(RunReport::parse(r#"{"status":5}"#)
            .unwrap()
            .status
            .is_none());
        assert!(RunReport::parse("not json").is_none());
    }

    #[test]
    fn launcher_arguments() {
        let spec = RunSpec {
            sandbox_run: "/x/sandbox-run".into(),
            runtime: GuestRuntime::Python,
            command: "python3".into(),
            args: vec!["-c".into(), "R".into()],
            read: vec!["/r".into()],
            write: vec!["/w".into()],
            net: vec!["".into(), "example.com:443".into()],
            timeout_ms: 2500,
            code: String::new(),
            run_dir: "/tmp/run".into(),
        };
        let a = launcher_args(&spec, Path::new("/tmp/run/report.json")).join(" ");
        assert!(a.starts_with("--policy python --workdir /workspace --timeout 2.500 --report /tmp/run/report.json"), "{a}");
        assert!(
            a.contains(
                "--allow-read /r --allow-write /w --allow-net example.com:443 -- python3 -c R"
            ),
            "{a}"
        );
    }

    #[tokio::test]
    async fn capture_is_bounded() {
        let data = vec![b'x'; CAPTURE_LIMIT + 10];
        let c = capture(Some(&data[..])).await;
        assert_eq!(c.text.len(), CAPTURE_LIMIT);
        assert_eq!(c.dropped, 10);
        assert!(c
            .into_text()
            .ends_with("[10 more bytes not kept by the server]"));
    }
}
