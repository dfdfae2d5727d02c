//! The run report: how the run ended, what it used, and what protected it.
//!
//! Every layer says how it was enforced on this machine (e.g. the Landlock ABI, cgroup or
//! rlimit memory cap), so a user can check that a run was as isolated as they believe.

use serde::Serialize;

use crate::cgroup::{CgroupStats, RunCgroup};
use crate::launch::{self, Ending, LaunchOutcome, LaunchSpec, SetupError};
use crate::net::proxy::ConnectionDecision;
use crate::policy::{Policy, Size};
use crate::sandbox::Prepared;

/// The limit a run ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitHit {
    Memory,
    Cpu,
    Nproc,
    FileSize,
    Timeout,
}

impl LimitHit {
    pub fn name(self) -> &'static str {
        match self {
            LimitHit::Memory => "memory",
            LimitHit::Cpu => "cpu",
            LimitHit::Nproc => "nproc",
            LimitHit::FileSize => "file-size",
            LimitHit::Timeout => "timeout",
        }
    }
}

/// How memory and tasks were capped.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemoryCap {
    /// `cgroup-v2`, `cgroup-v1` or `rlimit-data`.
    pub mechanism: String,
    pub limit_bytes: u64,
    /// Tasks: the cgroup's pids.max when there is one; RLIMIT_NPROC applies in every case.
    pub tasks_cgroup_max: Option<u64>,
    pub detail: String,
}

impl MemoryCap {
    pub fn cgroup(cg: &RunCgroup, memory: u64, tasks: u64) -> MemoryCap {
        MemoryCap {
            mechanism: match cg.backend {
                crate::cgroup::Backend::V2 => "cgroup-v2".into(),
                crate::cgroup::Backend::V1 => "cgroup-v1".into(),
            },
            limit_bytes: memory,
            tasks_cgroup_max: Some(tasks),
            detail: format!("{}: whole run capped, no swap", cg.describe()),
        }
    }
    pub fn rlimit(data: u64, why_no_cgroup: String) -> MemoryCap {
        MemoryCap {
            mechanism: "rlimit-data".into(),
            limit_bytes: data,
            tasks_cgroup_max: None,
            detail: format!(
                "RLIMIT_DATA per process (no writable cgroup: {why_no_cgroup}); V8 heaps capped by --max-old-space-size"
            ),
        }
    }
}

/// The layers of a run and how each was enforced.
#[derive(Clone, Debug, Serialize)]
pub struct Layers {
    pub namespaces: Vec<&'static str>,
    pub inner_uid: u32,
    pub host_uid: u32,
    pub root: String,
    pub capabilities: &'static str,
    pub no_new_privs: bool,
    pub rlimits: serde_json::Value,
    pub memory: MemoryCap,
    pub landlock: String,
    pub landlock_abi: Option<i32>,
    pub seccomp: String,
    pub environment: &'static str,
    /// How the total written to writable host grants is bounded (project quota, or why not).
    pub write_bound: String,
}

impl Layers {
    pub fn planned(spec: &LaunchSpec, policy: &Policy, memory: u64) -> Layers {
        let binds = spec
            .mounts
            .ops
            .iter()
            .filter(|o| matches!(o, launch::mounts::MountOp::Bind { .. }))
            .count();
        Layers {
            namespaces: vec!["user", "mount", "pid", "network", "ipc", "uts", "cgroup"],
            inner_uid: spec.ids.inner_uid,
            host_uid: spec.ids.host_uid,
            root: format!(
                "minimal: tmpfs root, {binds} read-only/explicit binds, private /tmp and /workspace ({} each), /dev with 5 devices, fresh /proc",
                Size(policy.limits.tmp_size.0)
            ),
            capabilities: "all dropped (effective, permitted, inheritable, bounding, ambient), verified from /proc/self/status",
            no_new_privs: true,
            rlimits: serde_json::json!({
                "nproc": spec.rlimits.nproc,
                "nofile": spec.rlimits.nofile,
                "fsize": spec.rlimits.fsize,
                "core": 0,
                "cpu_secs": spec.rlimits.cpu_secs,
            }),
            memory: MemoryCap {
                mechanism: "decided at launch".into(),
                limit_bytes: memory,
                ..MemoryCap::default()
            },
            landlock: if spec.landlock_required {
                "required (ABI >= 1), newest ABI best effort, signal and abstract-socket scopes".into()
            } else {
                "best effort; the policy accepts running without it (degraded mode no-landlock)".into()
            },
            landlock_abi: None,
            seccomp: format!(
                "{} syscalls denied, clone with namespace flags denied, clone3 -> ENOSYS, sockets only AF_UNIX/AF_INET/AF_INET6, TIOCSTI/TIOCLINUX denied, x32 and foreign architectures killed; {} instructions",
                launch::seccomp::DENIED.len(),
                spec.seccomp.len()
            ),
            environment: "cleared: PATH, HOME, TMPDIR, LANG and the policy's and --env's variables only; fds above 2 closed",
            write_bound: format!(
                "decided at launch: at most {} added to writable host grants per file system (project quota), else refused unless unbounded-writes is accepted",
                policy.limits.write_limit
            ),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "namespaces    {}\nidentity      uid/gid {} inside, {} on the host\nroot          {}\ncapabilities  {}\nno_new_privs  set\nrlimits       {}\nmemory        {} {} ({})\nlandlock      {}\nseccomp       {}\nenvironment   {}\nwrite bound   {}\n",
            self.namespaces.join(", "),
            self.inner_uid,
            self.host_uid,
            self.root,
            self.capabilities,
            self.rlimits,
            self.memory.mechanism,
            Size(self.memory.limit_bytes),
            self.memory.detail,
            self.landlock,
            self.seccomp,
            self.environment,
            self.write_bound,
        )
    }
}

/// The JSON report of one run (`--report`).
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub version: u32,
    pub command: Vec<String>,
    pub program: String,
    pub policy: String,
    /// exited, signaled, timeout, interrupted, setup-failed
    pub status: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// What sandbox-run exits with.
    pub sandbox_exit_code: i32,
    pub wall_time_ms: f64,
    pub cpu_time_ms: f64,
    pub peak_memory_bytes: u64,
    pub limit_hit: Option<LimitHit>,
    pub error: Option<SetupError>,
    pub layers: Layers,
    /// Protections that were not applied, each named (empty in a fully enforced run).
    pub degraded: Vec<String>,
    /// Every egress connection decision (host, port, address, allowed or why refused). Empty
    /// when the run had no network, which is the default.
    pub network: Vec<ConnectionDecision>,
}

impl RunReport {
    pub fn from_launch(
        p: &Prepared,
        result: Result<LaunchOutcome, SetupError>,
        stats: Option<CgroupStats>,
        network: Vec<ConnectionDecision>,
    ) -> RunReport {
        let mut layers = p.layers.clone();
        let mut report = RunReport {
            version: 1,
            command: p.command_line.clone(),
            program: p.resolved.program.display().to_string(),
            policy: p.policy.name.clone(),
            status: "setup-failed",
            exit_code: None,
            signal: None,
            sandbox_exit_code: 125,
            wall_time_ms: 0.0,
            cpu_time_ms: 0.0,
            peak_memory_bytes: 0,
            limit_hit: None,
            error: None,
            layers: layers.clone(),
            degraded: vec![],
            network,
        };
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                report.sandbox_exit_code = e.exit_code;
                report.error = Some(e);
                return report;
            }
        };
        match &out.landlock {
            Some(l) => {
                layers.landlock = format!(
                    "enforced {}; tcp rules: {}; scopes: {}",
                    l.enforced, l.tcp, l.scopes
                );
                layers.landlock_abi = Some(l.kernel_abi);
            }
            None => {
                layers.landlock = "NOT ENFORCED: the kernel has no usable Landlock; ran in the accepted degraded mode no-landlock".into();
                report.degraded.push("no-landlock: Landlock unavailable, the filesystem is fenced by the minimal root only".into());
            }
        }
        let (status, exit_code, signal, code) = match out.ending {
            Ending::Exited { code } => ("exited", Some(code), None, code),
            Ending::Signaled { signal } => ("signaled", None, Some(signal), 128 + signal),
            Ending::Timeout => ("timeout", None, Some(libc::SIGKILL), 124),
            Ending::Interrupted { signal } => ("interrupted", None, Some(signal), 128 + signal),
        };
        report.status = status;
        report.exit_code = exit_code;
        report.signal = signal;
        report.sandbox_exit_code = code;
        report.wall_time_ms = out.wall.as_secs_f64() * 1000.0;
        report.cpu_time_ms = out.cpu.as_secs_f64() * 1000.0;
        report.peak_memory_bytes = stats
            .as_ref()
            .and_then(|s| s.peak_memory)
            .unwrap_or(out.max_rss);
        report.limit_hit = crate::sandbox::limit_hit(
            &out.ending,
            stats.as_ref(),
            p.policy.runtime.or(p.resolved.runtime),
            out.cpu,
            p.policy.limits.cpu_time_secs,
        );
        report.layers = layers;
        report
    }

    /// One line for stderr naming the limit that was hit, if any.
    pub fn limit_line(&self) -> Option<String> {
        let hit = self.limit_hit?;
        let l = &self.layers;
        let detail = match hit {
            LimitHit::Memory => format!(
                "memory cap of {} reached ({})",
                Size(l.memory.limit_bytes),
                l.memory.mechanism
            ),
            LimitHit::Cpu => "CPU time limit reached (RLIMIT_CPU)".to_string(),
            LimitHit::Nproc => "task limit reached (fork or thread creation failed)".to_string(),
            LimitHit::FileSize => "file size limit reached (RLIMIT_FSIZE)".to_string(),
            LimitHit::Timeout => format!(
                "wall-clock timeout after {:.1} s; the whole process tree was killed",
                self.wall_time_ms / 1000.0
            ),
        };
        Some(format!("sandbox-run: limit: {}: {detail}", hit.name()))
    }
}
