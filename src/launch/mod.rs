//! The launch: everything between "we have a plan" and "the workload exec'd", and its end.
//!
//! This module is the only code of the crate that runs between fork and exec. Three processes:
//! - H, the helper: this (single-threaded) process. It clones I, writes I's uid/gid maps, puts I
//!   in the run's cgroup, then waits: wall-clock timeout, signals, I's exit.
//! - I, the init: PID 1 of new user, mount, PID, network, IPC and UTS namespaces. It builds the
//!   minimal root, pivots into it, brings `lo` up, bounds the per-user counters, starts the
//!   egress forwarder, clones R, and exits with R's status. When I dies, the kernel kills
//!   everything in its PID namespace, `setsid` daemons and the nested namespace included.
//! - R, the reaper: PID 1 of a PID namespace nested in I's, so the workload cannot name I or
//!   the forwarder. It mounts the workload's /proc, writes the run's user-namespace quotas,
//!   forks W, reaps, and reports W's end.
//! - W, the workload: rlimits, capabilities dropped and verified, no_new_privs, Landlock, seccomp
//!   last, fds above 2 closed, a clean environment, exec.
//!
//! One file per layer: `mounts`, `procfs`, `landlock`, `seccomp`, `caps`, `rlimits`, `quotas`;
//! `init`, `reaper` and `workload` hold the three child sides. Errors of I and W travel to H over a pipe as JSON, so
//! the user reads which step failed, why, and how to fix it.

pub mod caps;
pub mod egress;
mod init;
pub mod landlock;
pub mod mounts;
pub mod procfs;
pub mod quotas;
mod reaper;
pub mod rlimits;
pub mod seccomp;
mod workload;

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cgroup::RunCgroup;
use crate::sys;

/// The steps of a launch, as named in errors and the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Preflight,
    Cgroup,
    Seccomp,
    Namespaces,
    IdMaps,
    Mounts,
    Proc,
    Quotas,
    PivotRoot,
    Hostname,
    Loopback,
    Fork,
    Rlimits,
    Capabilities,
    NoNewPrivs,
    Landlock,
    Exec,
}

impl Step {
    fn fix(self) -> &'static str {
        match self {
            Step::Namespaces | Step::IdMaps => "unprivileged user namespaces must be allowed: check `sysctl user.max_user_namespaces` (> 0), `kernel.unprivileged_userns_clone` (1, Debian) and, on Ubuntu 24.04+, `kernel.apparmor_restrict_unprivileged_userns` (install scripts/apparmor/code-executor profile); `sandbox-run doctor` tells which",
            Step::Mounts | Step::Proc | Step::PivotRoot => "the mount namespace could not be set up; run `sandbox-run doctor`, and check that the shared paths exist and are readable",
            Step::Landlock => "this kernel lacks Landlock (Linux 5.13+, `lsm=landlock,...`); enable it, or accept running without it with `--allow-degraded no-landlock` (reported in --report)",
            Step::Seccomp => "seccomp filters must be available (CONFIG_SECCOMP_FILTER); run `sandbox-run doctor`",
            Step::Cgroup => "run as root for cgroup limits, or the rlimit fallback is used automatically; this error means a cgroup was half set up: check /sys/fs/cgroup permissions",
            Step::Exec => "check the command exists inside the sandbox (its directory must be shared) and is executable",
            Step::Rlimits => "lower the requested limits; they cannot exceed this process's own hard limits (ulimit -H -a)",
            Step::Quotas => "the run's user-namespace quotas (/proc/sys/user/max_*) could not be set; they exist since Linux 4.11: run `sandbox-run doctor`",
            _ => "run `sandbox-run doctor` to see which kernel feature is missing",
        }
    }
}

/// A launch that could not be completed, with the step, the reason and what to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("sandbox setup failed at step `{step:?}`: {reason}\n  fix: {fix}")]
pub struct SetupError {
    pub step: Step,
    pub reason: String,
    pub fix: String,
    /// The exit code sandbox-run uses: 125 for setup, 126/127 for exec failures.
    pub exit_code: i32,
}

impl SetupError {
    pub fn new(step: Step, reason: impl Into<String>) -> SetupError {
        SetupError {
            step,
            reason: reason.into(),
            fix: step.fix().to_string(),
            exit_code: 125,
        }
    }
}

/// Host and inner identities. Inside, the workload is `inner`; on the host it is `host`,
/// which is never 0: a sandbox started by root maps to an unprivileged host id.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Ids {
    pub inner_uid: u32,
    pub inner_gid: u32,
    pub host_uid: u32,
    pub host_gid: u32,
}

impl Ids {
    /// The unprivileged host id a root-started sandbox runs as ("nobody" on most systems).
    pub const ROOT_MAPS_TO: u32 = 65534;
    pub const INNER: u32 = 1000;

    /// The ids for a run started by the current user. Root maps the workload to 65534, which
    /// must exist in root's own user namespace: inside a user namespace that maps only uid 0
    /// there is no unprivileged id to give, and mapping to 0 would make the workload root.
    pub fn for_current_user() -> Result<Ids, SetupError> {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let (host_uid, host_gid) = if uid == 0 {
            for (file, id) in [
                ("uid_map", Ids::ROOT_MAPS_TO),
                ("gid_map", Ids::ROOT_MAPS_TO),
            ] {
                if !id_is_mapped(file, id) {
                    return Err(SetupError {
                        step: Step::IdMaps,
                        reason: format!("started as root in a user namespace whose {file} does not map id {id}: there is no unprivileged id to run the workload as, and it must not run as root"),
                        fix: format!("start sandbox-run as a non-root user, or from a user namespace that maps id {id} (e.g. a subordinate range via newuidmap)"),
                        exit_code: 125,
                    });
                }
            }
            (Ids::ROOT_MAPS_TO, Ids::ROOT_MAPS_TO)
        } else {
            (uid, gid)
        };
        Ok(Ids {
            inner_uid: Ids::INNER,
            inner_gid: Ids::INNER,
            host_uid,
            host_gid,
        })
    }
}

/// True when `id` lies in one of the ranges of /proc/self/{uid,gid}_map.
fn id_is_mapped(file: &str, id: u32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/self/{file}")) else {
        return false;
    };
    text.lines().any(|l| {
        let v: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        v.len() == 3 && (v[0]..v[0] + v[2]).contains(&u64::from(id))
    })
}

impl Ids {}

/// Everything the launch needs, resolved on the host side before the clone.
pub struct LaunchSpec {
    pub program: PathBuf,
    /// argv, including argv[0].
    pub argv: Vec<CString>,
    /// The complete environment of the workload.
    pub env: Vec<CString>,
    pub workdir: PathBuf,
    pub mounts: mounts::MountPlan,
    pub landlock: landlock::LandlockPlan,
    pub landlock_required: bool,
    pub rlimits: rlimits::RlimitPlan,
    pub seccomp: seccomp::Program,
    pub ids: Ids,
    pub hostname: String,
    pub timeout: Duration,
    /// Start the egress forwarder inside (the run was granted network hosts).
    pub egress: bool,
    /// CPUs the workload may run on, so runtimes that size thread pools by CPU count stay
    /// under the task limit on many-core hosts.
    pub max_cpus: usize,
}

/// How the workload ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Ending {
    Exited {
        code: i32,
    },
    Signaled {
        signal: i32,
    },
    Timeout,
    /// sandbox-run itself was asked to stop (SIGINT, SIGTERM, SIGHUP) and killed the run.
    Interrupted {
        signal: i32,
    },
}

/// A message from I or W to H over the status pipe, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ChildMsg {
    Error(SetupError),
    Landlock(Option<landlock::LandlockOutcome>),
    Ending(Ending),
}

/// What H learned about the run.
#[derive(Debug)]
pub struct LaunchOutcome {
    pub ending: Ending,
    pub wall: Duration,
    pub cpu: Duration,
    /// Peak resident set of the largest process (from wait4), in bytes.
    pub max_rss: u64,
    pub landlock: Option<landlock::LandlockOutcome>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SetupError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SetupError::new(Step::Preflight, format!("pipe: {e}")))
}

/// The number of threads of this process: the launch refuses to run in a threaded process,
/// where creating a user namespace fails and fork leaves other threads' locks held.
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(1)
}

const SIGNALS_FORWARDED: [nix::sys::signal::Signal; 4] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
];

/// Runs the launch in this process, which must be single-threaded (sandbox-run is).
pub fn run(spec: &LaunchSpec, cgroup: Option<&RunCgroup>) -> Result<LaunchOutcome, SetupError> {
    use nix::sys::signal::{SigSet, SigmaskHow};

    if thread_count() != 1 {
        return Err(SetupError::new(
            Step::Preflight,
            "the launch must run in a single-threaded process (spawn sandbox-run instead of launching from a threaded program)",
        ));
    }
    // Signals that end sandbox-run are received through a signalfd, so that the run is killed
    // and reported instead of sandbox-run dying and leaving I to its parent-death signal.
    let mut mask = SigSet::empty();
    for s in SIGNALS_FORWARDED {
        mask.add(s);
    }
    let mut old_mask = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old_mask))
        .map_err(|e| SetupError::new(Step::Preflight, format!("block signals: {e}")))?;
    let sigfd = nix::sys::signalfd::SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    )
    .map_err(|e| SetupError::new(Step::Preflight, format!("signalfd: {e}")))?;

    let (sync_r, sync_w) = pipe()?; // H -> I: "maps written, go"; EOF = H died, give up.
    let (msg_r, msg_w) = pipe()?; // I, W -> H: JSON lines.

    // No CLONE_NEWNS here: I first turns H's descriptors of the granted objects into mounts it
    // can attach, which needs the host's mount namespace, then unshares its own
    // (mounts::take_sources).
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    let start = Instant::now();
    let pid = match sys::clone_process(flags | libc::SIGCHLD) {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(sync_w);
            drop(msg_r);
            drop(sigfd);
            let _ =
                nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            init::main(spec, sync_r, msg_w);
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child.as_raw(),
        Err(err) => {
            let why = match err.raw_os_error() {
                Some(libc::ENOSPC) => "the limit on user namespaces is reached (user.max_user_namespaces is 0 or exhausted)",
                Some(libc::EPERM) => "not permitted: unprivileged user namespaces are disabled or restricted (AppArmor on Ubuntu 24.04+, or kernel.unprivileged_userns_clone=0)",
                Some(libc::EINVAL) => "the kernel lacks one of the namespace types",
                Some(libc::EUSERS) => "too many nested user namespaces",
                _ => "the kernel refused",
            };
            return Err(SetupError::new(
                Step::Namespaces,
                format!(
                    "clone with new user, mount, PID, network, IPC and UTS namespaces: {err}: {why}"
                ),
            ));
        }
    };
    drop(sync_r);
    let mut child = ChildGuard::new(pid);

    // Two releases: after the id maps (I starts building its root), then after the cgroup
    // attach (I may fork the workload). On cgroup v1 an attach waits for an RCU grace period
    // (~8 ms here), so doing it while I mounts takes part of it off the critical path.
    let release = |byte: &[u8]| {
        nix::unistd::write(&sync_w, byte).map(|_| ()).map_err(|e| {
            SetupError::new(Step::Namespaces, format!("release the init process: {e}"))
        })
    };
    let setup = (|| {
        write_id_maps(pid, &spec.ids)?;
        release(b"1")?;
        if let Some(cg) = cgroup {
            cg.attach(pid)
                .map_err(|e| SetupError::new(Step::Cgroup, e))?;
        }
        release(b"2")
    })();
    setup?; // on error, the guard kills and reaps the init
    drop(msg_w);

    let pidfd = pidfd_open(pid)?;
    let deadline = start + spec.timeout;
    let mut buf = Vec::new();
    let mut msg_open = true;
    let mut forced: Option<Ending> = None;
    loop {
        if forced.is_none() && Instant::now() >= deadline {
            child.kill();
            forced = Some(Ending::Timeout);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout_ms = if forced.is_some() {
            1000
        } else {
            remaining.as_millis().min(60_000) as i32 + 1
        };
        let mut fds = vec![
            sys::PollFd::new(pidfd.as_fd(), libc::POLLIN),
            sys::PollFd::new(sigfd.as_fd(), libc::POLLIN),
        ];
        if msg_open {
            fds.push(sys::PollFd::new(msg_r.as_fd(), libc::POLLIN));
        }
        match sys::poll(&mut fds, timeout_ms) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => {
                child.kill();
                return Err(SetupError::new(Step::Preflight, format!("poll: {e}")));
            }
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents() != 0).collect();
        drop(fds);
        if msg_open && ready.len() > 2 && ready[2] {
            let mut chunk = [0u8; 4096];
            match sys::read(msg_r.as_fd(), &mut chunk) {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                _ => msg_open = false,
            }
        }
        if ready[1] {
            if let Ok(Some(info)) = sigfd.read_signal() {
                child.kill();
                if forced.is_none() {
                    forced = Some(Ending::Interrupted {
                        signal: info.ssi_signo as i32,
                    });
                }
            }
        }
        if ready[0] {
            // Drain any message still in the pipe (the child may have written just before exit).
            let mut rest = Vec::new();
            let Ok(dup) = msg_r.try_clone() else { break };
            let mut f = std::fs::File::from(dup);
            let _ = sys::set_nonblocking(f.as_fd());
            let _ = f.read_to_end(&mut rest);
            buf.extend_from_slice(&rest);
            break;
        }
    }
    let (status, rusage) = child.wait();
    let wall = start.elapsed();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);

    let mut landlock_outcome = None;
    let mut ending = None;
    let mut error = None;
    for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<ChildMsg>(line) {
            Ok(ChildMsg::Error(e)) => error = error.or(Some(e)),
            Ok(ChildMsg::Landlock(l)) => landlock_outcome = l,
            Ok(ChildMsg::Ending(e)) => ending = Some(e),
            Err(_) => {}
        }
    }
    if let Some(e) = error {
        if forced.is_none() {
            return Err(e);
        }
    }
    let ending = match (forced, ending) {
        (Some(f), _) => f,
        (None, Some(e)) => e,
        // I died without reporting: it was killed (e.g. by the memory cgroup) or crashed.
        (None, None) => match status {
            WaitStatus::Signaled(s) => Ending::Signaled { signal: s },
            WaitStatus::Exited(c) => Ending::Exited { code: c },
        },
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(LaunchOutcome {
        ending,
        wall,
        cpu: tv(rusage.ru_utime) + tv(rusage.ru_stime),
        max_rss: rusage.ru_maxrss as u64 * 1024,
        landlock: landlock_outcome,
    })
}

fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, SetupError> {
    sys::pidfd_open(pid).map_err(|e| {
        SetupError::new(
            Step::Preflight,
            format!("pidfd_open: {e} (needs Linux 5.3+)"),
        )
    })
}

/// One-line maps: inner id -> host id. `setgroups` is denied first, as the kernel requires for
/// unprivileged writers, and so that nobody inside can add groups.
fn write_id_maps(pid: libc::pid_t, ids: &Ids) -> Result<(), SetupError> {
    let w = |file: &str, text: String| {
        std::fs::write(format!("/proc/{pid}/{file}"), text.as_bytes()).map_err(|e| {
            SetupError::new(
                Step::IdMaps,
                format!("write /proc/{pid}/{file} ({}): {e}", text.trim()),
            )
        })
    };
    w("setgroups", "deny".into())?;
    w("uid_map", format!("{} {} 1\n", ids.inner_uid, ids.host_uid))?;
    w("gid_map", format!("{} {} 1\n", ids.inner_gid, ids.host_gid))?;
    Ok(())
}

enum WaitStatus {
    Exited(i32),
    Signaled(i32),
}

/// Owns the init process until it is reaped: dropped before [`ChildGuard::wait`] (an early
/// return, a panic), it kills and reaps the init, so no path can leave a sandbox running.
struct ChildGuard {
    pid: libc::pid_t,
    reaped: bool,
}

impl ChildGuard {
    fn new(pid: libc::pid_t) -> ChildGuard {
        ChildGuard { pid, reaped: false }
    }

    fn kill(&self) {
        if !self.reaped {
            // ESRCH cannot happen before the reap (the init stays a zombie until then).
            let _ = sys::kill(self.pid, libc::SIGKILL);
        }
    }

    /// Waits for the init's end: its status and resource usage.
    fn wait(&mut self) -> (WaitStatus, libc::rusage) {
        let (status, ru) = loop {
            match sys::wait4(self.pid, 0) {
                Ok(r) => break r,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // ECHILD: already reaped elsewhere; nothing more to learn.
                Err(_) => break (0, sys::empty_rusage()),
            }
        };
        self.reaped = true;
        let ws = if libc::WIFSIGNALED(status) {
            WaitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            WaitStatus::Exited(libc::WEXITSTATUS(status))
        };
        (ws, ru)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.wait();
        }
    }
}

/// Sends a message to H. Errors are ignored: if H is gone, the parent-death signal ends us.
fn send(fd: &OwnedFd, msg: &ChildMsg) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        let _ = nix::unistd::write(fd, &line);
    }
}
