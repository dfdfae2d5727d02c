//! Running one execution through the `sandbox-run` launcher.
//!
//! The server is multi-threaded, and configuring namespaces, Landlock and seccomp after a
//! fork in a threaded process is unsafe; so the server only ever fork+execs the separate,
//! single-threaded `sandbox-run` binary, which does all of that. The child gets its own
//! process group and `kill_on_drop`, and sandbox-run's init dies with it (PDEATHSIG): killing
//! the child is how a run is cancelled, timed out as a backstop, or stopped at shutdown.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use code_executor::grant::Access;
use code_executor::policy::{Degradation, Size};
use code_executor::report::RunStatus;
use code_executor::{Invocation, RunReport};
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
    /// Where the granted objects appear inside, read-only and writable (for the interpreter's
    /// own permission flags; what is mounted is `grants`).
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    /// What the sandbox shows of the host: objects the server opened itself, each handed to
    /// sandbox-run as a descriptor (`--grant-read-fd` / `--grant-write-fd`), never as a name.
    pub grants: Vec<HostGrant>,
    pub net: Vec<String>,
    pub timeout_ms: u64,
    /// CPU share of the whole run, in CPUs (`--cpus`).
    pub cpus: Option<f64>,
    /// Total the run may add to its writable grants (`--write-limit`).
    pub write_limit: Option<Size>,
    /// Weaker modes the configuration accepts (`--allow-degraded`).
    pub allow_degraded: Vec<Degradation>,
    pub code: String,
    /// Private host directory of this run (holds the bridge socket); removed by the caller.
    pub run_dir: PathBuf,
}

/// The descriptor at which `sandbox-run` receives the pipe for its report.
pub const REPORT_FD: RawFd = 3;
/// The first descriptor of the grants; the i-th grant is at `FIRST_GRANT_FD + i`.
pub const FIRST_GRANT_FD: RawFd = 4;

/// A host object the server opened itself (beneath an allowed root, or its own run directory),
/// shown at `inside` with `access`.
#[derive(Debug, Clone)]
pub struct HostGrant {
    pub fd: Arc<OwnedFd>,
    pub inside: PathBuf,
    pub access: Access,
}

/// The descriptors sandbox-run inherits for `spec`: (the server's descriptor, its number there).
fn inherited_fds<'a>(spec: &'a RunSpec, report: &'a OwnedFd) -> Vec<(BorrowedFd<'a>, RawFd)> {
    let mut fds = vec![(report.as_fd(), REPORT_FD)];
    for (i, g) in spec.grants.iter().enumerate() {
        fds.push((g.fd.as_fd(), FIRST_GRANT_FD + i as RawFd));
    }
    fds
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
    /// sandbox-run's report, or why there is none (it was killed before writing one).
    pub report: Result<RunReport, String>,
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
        matches!(&self.report, Ok(r) if r.status == RunStatus::Timeout)
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

/// The sandbox-run invocation for `spec`: typed, so a flag renamed in sandbox-run breaks the
/// build (and `code_executor::invocation`'s round-trip test), not a run.
pub fn invocation(spec: &RunSpec) -> Invocation {
    let mut env = vec![("NO_COLOR".to_string(), "1".to_string())];
    match spec.runtime {
        GuestRuntime::Deno => env.push(("DENO_NO_UPDATE_CHECK".into(), "1".into())),
        GuestRuntime::Python => env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into())),
        GuestRuntime::Node => {}
    }
    Invocation {
        policy: Some(spec.runtime.policy().to_string()),
        workdir: Some("/workspace".into()),
        timeout_secs: Some(spec.timeout_ms as f64 / 1000.0),
        cpus: spec.cpus,
        write_limit: spec.write_limit,
        allow_degraded: spec.allow_degraded.clone(),
        env,
        grant_read_fd: grant_fds(spec, Access::ReadOnly),
        grant_write_fd: grant_fds(spec, Access::ReadWrite),
        allow_net: spec.net.iter().filter(|n| !n.is_empty()).cloned().collect(),
        // No sandbox outlives the server, even one killed without a chance to clean up.
        die_with_parent: true,
        report_fd: Some(REPORT_FD),
        program: spec.command.clone().into_os_string(),
        args: spec.args.iter().map(Into::into).collect(),
        ..Invocation::default()
    }
}

/// A launched `sandbox-run` whose interpreter is starting (or waiting) for its code on stdin.
/// Dropping it kills the sandbox.
pub struct Launched {
    child: tokio::process::Child,
    guard: GroupGuard,
    /// The report, read from sandbox-run's report pipe until it closes: the only way the
    /// server learns how a run ended. Read concurrently so a large report never blocks
    /// sandbox-run on a full pipe.
    report: tokio::task::JoinHandle<Result<RunReport, String>>,
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

/// The `--grant-*-fd` values of one access: the number each grant has in sandbox-run.
fn grant_fds(spec: &RunSpec, access: Access) -> Vec<(RawFd, PathBuf)> {
    spec.grants
        .iter()
        .enumerate()
        .filter(|(_, g)| g.access == access)
        .map(|(i, g)| (FIRST_GRANT_FD + i as RawFd, g.inside.clone()))
        .collect()
}

/// Starts sandbox-run for `spec` (its code is not sent yet), with the write end of a fresh
/// pipe as its report descriptor.
pub fn spawn(spec: &RunSpec) -> Result<Launched, SandboxError> {
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Spawn {
            path: spec.sandbox_run.clone(),
            source: e.into(),
        })?;
    let mut cmd = Command::new(&spec.sandbox_run);
    cmd.args(invocation(spec).to_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child =
        crate::sys::spawn_with_fds(cmd, &inherited_fds(spec, &report_w)).map_err(|source| {
            SandboxError::Spawn {
                path: spec.sandbox_run.clone(),
                source,
            }
        })?;
    drop(report_w);
    let guard = GroupGuard {
        pgid: child.id().map(|p| p as i32),
    };
    Ok(Launched {
        child,
        guard,
        report: tokio::task::spawn_blocking(move || read_report(report_r)),
        spawned_at: Instant::now(),
    })
}

/// Reads the report pipe to its end (sandbox-run and everything it started are gone) and
/// parses the one report type both sides share.
fn read_report(pipe: OwnedFd) -> Result<RunReport, String> {
    let mut text = Vec::new();
    std::fs::File::from(pipe)
        .read_to_end(&mut text)
        .map_err(|e| format!("reading the report pipe: {e}"))?;
    if text.is_empty() {
        return Err("sandbox-run ended without writing its report".into());
    }
    serde_json::from_slice(&text).map_err(|e| format!("sandbox-run's report is not valid: {e}"))
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
        let report = match self.report.await {
            Ok(r) => r,
            Err(e) => Err(format!("the report reader failed: {e}")),
        };
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
    fn the_invocation_says_what_the_run_may_do() {
        let spec = RunSpec {
            sandbox_run: "/x/sandbox-run".into(),
            runtime: GuestRuntime::Python,
            command: "python3".into(),
            args: vec!["-c".into(), "R".into()],
            read: vec!["/r".into()],
            write: vec!["/w".into()],
            grants: ["/r", "/w"]
                .into_iter()
                .zip([Access::ReadOnly, Access::ReadWrite])
                .map(|(p, access)| HostGrant {
                    fd: Arc::new(std::fs::File::open("/").unwrap().into()),
                    inside: p.into(),
                    access,
                })
                .collect(),
            net: vec!["".into(), "example.com:443".into()],
            timeout_ms: 2500,
            cpus: Some(1.0),
            write_limit: None,
            allow_degraded: vec![Degradation::UnboundedWrites],
            code: String::new(),
            run_dir: "/tmp/run".into(),
        };
        let inv = invocation(&spec);
        assert_eq!(inv.policy.as_deref(), Some("python"));
        assert_eq!(inv.timeout_secs, Some(2.5));
        assert_eq!(inv.report_fd, Some(REPORT_FD));
        assert!(inv.die_with_parent);
        assert_eq!(inv.allow_net, vec!["example.com:443".to_string()]);
        assert_eq!(inv.grant_read_fd, vec![(FIRST_GRANT_FD, "/r".into())]);
        assert_eq!(inv.grant_write_fd, vec![(FIRST_GRANT_FD + 1, "/w".into())]);
        assert!(inv.allow_read.is_empty() && inv.allow_write.is_empty());
        let a: Vec<String> = inv
            .to_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let a = a.join(" ");
        assert!(a.contains("--cpus=1 "), "{a}");
        assert!(a.contains("--allow-degraded=unbounded-writes"), "{a}");
        assert!(a.ends_with("-- python3 -c R"), "{a}");
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
