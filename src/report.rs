//! The run report: how the run ended, what it used, and what protected it.
//!
//! Every layer says how it was enforced on this machine (e.g. the Landlock ABI, cgroup or
//! rlimit memory cap), so a user can check that a run was as isolated as they believe.

use serde::{Deserialize, Serialize};

use crate::cgroup::{CgroupStats, CpuCgroup, CpuThrottling, MemoryCgroup};
use std::time::Duration;

use crate::launch::{self, Ending, LaunchSpec, SetupError};
use crate::net::ConnectionDecision;
use crate::policy::RuntimeKind;
use crate::policy::{Policy, Size};

/// The limit a run ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryCap {
    /// `cgroup-v2`, `cgroup-v1` or `rlimit-data`.
    pub mechanism: String,
    pub limit_bytes: u64,
    /// Tasks: the cgroup's pids.max when there is one; RLIMIT_NPROC applies in every case.
    pub tasks_cgroup_max: Option<u64>,
    pub detail: String,
}

impl MemoryCap {
    pub fn cgroup(cg: &MemoryCgroup, memory: u64, tasks: u64) -> MemoryCap {
        MemoryCap {
            mechanism: cg.backend.name().into(),
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

/// How the run's CPU rate was bounded: the share (`--cpus`, `limits.cpus`) through the cgroup
/// CPU controller, on top of the pinning every run gets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuShare {
    /// The share asked for, in CPUs; None when the run asked for none.
    pub requested: Option<f64>,
    /// True only when the kernel holds the quota (written and read back).
    pub enforced: bool,
    /// `cgroup-v2`, `cgroup-v1`, or `none` (no share asked for, or no CPU controller).
    pub mechanism: String,
    /// The CFS quota and period, in microseconds, when enforced.
    pub quota_us: Option<u64>,
    pub period_us: Option<u64>,
    /// How many CPUs the workload is pinned to: without a share it may use all of them.
    pub pinned_cpus: usize,
    pub detail: String,
}

impl CpuShare {
    /// The share as planned, before the launch decides whether a CPU controller holds it.
    pub fn planned(requested: Option<f64>, pinned_cpus: usize) -> CpuShare {
        CpuShare {
            requested,
            enforced: false,
            mechanism: "none".into(),
            quota_us: None,
            period_us: None,
            pinned_cpus,
            detail: match requested {
                Some(c) => format!("{c} CPUs requested; decided at launch"),
                None => format!(
                    "no share requested: the run may use all {pinned_cpus} CPUs it is pinned to until its timeout"
                ),
            },
        }
    }

    /// The share as the cgroup holds it.
    pub fn enforced(requested: f64, cg: &CpuCgroup, pinned_cpus: usize) -> CpuShare {
        CpuShare {
            requested: Some(requested),
            enforced: true,
            mechanism: cg.backend.name().into(),
            quota_us: Some(cg.quota.quota_us),
            period_us: Some(cg.quota.period_us),
            pinned_cpus,
            detail: format!("{}: the whole run together", cg.describe()),
        }
    }

    /// A share asked for that no CPU controller could hold: the run goes on as it would
    /// without one, and the report says so.
    pub fn not_enforced(requested: f64, why: &str, pinned_cpus: usize) -> CpuShare {
        CpuShare {
            requested: Some(requested),
            enforced: false,
            mechanism: "none".into(),
            quota_us: None,
            period_us: None,
            pinned_cpus,
            detail: format!(
                "NOT ENFORCED: no writable CPU controller ({why}); the run may use all {pinned_cpus} CPUs it is pinned to until its timeout"
            ),
        }
    }

    /// The `degraded` line of a share that was asked for and not enforced.
    pub fn degraded_line(&self) -> Option<String> {
        match (self.requested, self.enforced) {
            (Some(c), false) => Some(format!("cpu-share: {c} CPUs requested but {}", self.detail)),
            _ => None,
        }
    }
}

/// The layers of a run and how each was enforced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layers {
    pub namespaces: Vec<String>,
    pub inner_uid: u32,
    pub host_uid: u32,
    pub root: String,
    pub capabilities: String,
    pub no_new_privs: bool,
    pub rlimits: serde_json::Value,
    pub memory: MemoryCap,
    pub cpu: CpuShare,
    pub landlock: String,
    pub landlock_abi: Option<i32>,
    pub seccomp: String,
    pub environment: String,
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
            namespaces: ["user", "mount", "pid", "network", "ipc", "uts", "cgroup"]
                .map(String::from)
                .to_vec(),
            inner_uid: spec.ids.inner_uid,
            host_uid: spec.ids.host_uid,
            root: format!(
                "minimal: tmpfs root, {binds} read-only/explicit binds, private /tmp and /workspace ({} each), /dev with 5 devices, fresh /proc",
                Size(policy.limits.tmp_size.0)
            ),
            capabilities: "all dropped (effective, permitted, inheritable, bounding, ambient), verified from /proc/self/status".into(),
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
            cpu: CpuShare::planned(policy.limits.cpus, spec.max_cpus),
            landlock: if spec.landlock_required {
                "required (ABI >= 1), newest ABI best effort, signal and abstract-socket scopes".into()
            } else {
                "best effort; the policy accepts running without it (degraded mode no-landlock)".into()
            },
            landlock_abi: None,
            seccomp: format!(
                "{} syscalls denied, {} -> ENOSYS (SysV IPC, legacy AIO, clone3, openat2), clone with namespace flags denied, setuid/setgid mode bits and device nodes denied, prlimit on other processes denied, sockets only AF_UNIX/AF_INET/AF_INET6, TIOCSTI/TIOCLINUX denied, x32 and foreign architectures killed; {} instructions",
                launch::seccomp::DENIED.len(),
                launch::seccomp::ENOSYS.len(),
                spec.seccomp.len()
            ),
            environment: "cleared: PATH, HOME, TMPDIR, LANG and the policy's and --env's variables only; fds above 2 closed".into(),
            write_bound: format!(
                "decided at launch: at most {} added to writable host grants per file system (project quota), else refused unless unbounded-writes is accepted",
                policy.limits.write_limit
            ),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "namespaces    {}\nidentity      uid/gid {} inside, {} on the host\nroot          {}\ncapabilities  {}\nno_new_privs  set\nrlimits       {}\nmemory        {} {} ({})\ncpu           {} ({})\nlandlock      {}\nseccomp       {}\nenvironment   {}\nwrite bound   {}\n",
            self.namespaces.join(", "),
            self.inner_uid,
            self.host_uid,
            self.root,
            self.capabilities,
            self.rlimits,
            self.memory.mechanism,
            Size(self.memory.limit_bytes),
            self.memory.detail,
            self.cpu.mechanism,
            self.cpu.detail,
            self.landlock,
            self.seccomp,
            self.environment,
            self.write_bound,
        )
    }
}

/// How a run ended, or why it never started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// The workload exited by itself (`exit_code`).
    Exited,
    /// The workload was killed by a signal (`signal`), a limit's included.
    Signaled,
    /// The wall-clock timeout killed the whole run.
    Timeout,
    /// sandbox-run was asked to stop (SIGINT, SIGTERM, SIGHUP, SIGQUIT) and killed the run.
    Interrupted,
    /// A layer could not be applied; nothing ran (`error` says the step, reason and fix).
    SetupFailed,
    /// The request was refused before any launch: a bad option or policy, a command that
    /// does not exist, a path that cannot be shared (`usage_error` says what).
    UsageError,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Exited => "exited",
            RunStatus::Signaled => "signaled",
            RunStatus::Timeout => "timeout",
            RunStatus::Interrupted => "interrupted",
            RunStatus::SetupFailed => "setup-failed",
            RunStatus::UsageError => "usage-error",
        }
    }
}

/// The JSON report of one run (`--report`, `--report-fd`). sandbox-run writes it, callers
/// read it with the same type: every sandbox fact (how the run ended, the limit it hit, the
/// setup step that failed, what was not enforced) is here, and nothing the workload prints
/// can change it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// 2: `layers` may be null (usage errors), `usage_error` and `layers.cpu` added.
    pub version: u32,
    pub command: Vec<String>,
    /// The resolved program; empty when the request was refused before resolving it.
    pub program: String,
    /// The policy's name; empty when the request was refused before loading it.
    pub policy: String,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// What sandbox-run exits with.
    pub sandbox_exit_code: i32,
    pub wall_time_ms: f64,
    pub cpu_time_ms: f64,
    pub peak_memory_bytes: u64,
    /// How often the CPU share held the run back; None without an enforced share.
    #[serde(default)]
    pub cpu_throttling: Option<CpuThrottling>,
    pub limit_hit: Option<LimitHit>,
    /// The setup failure (status `setup-failed`): step, reason, fix.
    pub error: Option<SetupError>,
    /// Why the request was refused (status `usage-error`), in the words sandbox-run would
    /// print.
    #[serde(default)]
    pub usage_error: Option<String>,
    /// The layers and how each was enforced; None only for a usage error (nothing was planned).
    pub layers: Option<Layers>,
    /// Protections that were not applied, each named (empty in a fully enforced run).
    pub degraded: Vec<String>,
    /// Every egress connection decision (host, port, address, allowed or why refused). Empty
    /// when the run had no network, which is the default.
    pub network: Vec<ConnectionDecision>,
}

impl LimitHit {
    /// The limit a run hit, from what the kernel and the cgroup counted (never from what the
    /// workload printed).
    pub fn from_run(
        ending: &Ending,
        stats: Option<&CgroupStats>,
        runtime: Option<RuntimeKind>,
        cpu: Duration,
        cpu_limit: Option<u64>,
    ) -> Option<LimitHit> {
        use Ending::*;
        if matches!(ending, Timeout) {
            return Some(LimitHit::Timeout);
        }
        if let Some(s) = stats {
            if s.oom_kills > 0 {
                return Some(LimitHit::Memory);
            }
        }
        match ending {
            Signaled { signal } if *signal == libc::SIGXCPU => return Some(LimitHit::Cpu),
            Signaled { signal }
                if *signal == libc::SIGKILL && cpu_limit.is_some_and(|l| cpu.as_secs() >= l) =>
            {
                return Some(LimitHit::Cpu)
            }
            Signaled { signal } if *signal == libc::SIGXFSZ => return Some(LimitHit::FileSize),
            _ => {}
        }
        if stats.is_some_and(|s| s.pids_max_hits > 0) {
            return Some(LimitHit::Nproc);
        }
        // Without a cgroup, V8 growing past its heap cap or RLIMIT_DATA dies with a fatal error
        // (SIGTRAP, SIGABRT or SIGSEGV): the cause is memory.
        let js = matches!(runtime, Some(RuntimeKind::Deno) | Some(RuntimeKind::Node));
        let v8_fatal = |s: i32| s == libc::SIGTRAP || s == libc::SIGABRT || s == libc::SIGSEGV;
        match ending {
            Signaled { signal } if js && v8_fatal(*signal) => Some(LimitHit::Memory),
            Exited { code } if js && (*code == 133 || *code == 134 || *code == 139) => {
                Some(LimitHit::Memory)
            }
            _ => None,
        }
    }
}

impl RunReport {
    /// A report of a run that has not started (yet): nothing measured, nothing hit. The one
    /// place that lists every field, so a new field cannot be forgotten by one caller.
    pub(crate) fn unstarted(
        command: Vec<String>,
        status: RunStatus,
        sandbox_exit_code: i32,
    ) -> RunReport {
        RunReport {
            version: 2,
            command,
            program: String::new(),
            policy: String::new(),
            status,
            exit_code: None,
            signal: None,
            sandbox_exit_code,
            wall_time_ms: 0.0,
            cpu_time_ms: 0.0,
            peak_memory_bytes: 0,
            cpu_throttling: None,
            limit_hit: None,
            error: None,
            usage_error: None,
            layers: None,
            degraded: vec![],
            network: vec![],
        }
    }

    /// The report of a request refused before any launch.
    pub fn usage_error(command: Vec<String>, message: String, exit_code: i32) -> RunReport {
        RunReport {
            usage_error: Some(message),
            ..RunReport::unstarted(command, RunStatus::UsageError, exit_code)
        }
    }

    /// One line for stderr naming the limit that was hit, if any.
    pub fn limit_line(&self) -> Option<String> {
        let hit = self.limit_hit?;
        let l = self.layers.as_ref()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::Step;

    fn layers() -> Layers {
        Layers {
            namespaces: vec!["user".into(), "pid".into()],
            inner_uid: 1000,
            host_uid: 65534,
            root: "minimal".into(),
            capabilities: "all dropped".into(),
            no_new_privs: true,
            rlimits: serde_json::json!({"nproc": 25, "cpu_secs": null}),
            memory: MemoryCap {
                mechanism: "cgroup-v1".into(),
                limit_bytes: 512 << 20,
                tasks_cgroup_max: Some(27),
                detail: "whole run".into(),
            },
            cpu: CpuShare::not_enforced(0.5, "no cpu controller", 2),
            landlock: "enforced".into(),
            landlock_abi: Some(4),
            seccomp: "filter".into(),
            environment: "cleared".into(),
            write_bound: "no writable grants".into(),
        }
    }

    fn round_trip(r: &RunReport) {
        let json = serde_json::to_string(r).expect("serialize");
        let back: RunReport = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(&back, r, "{json}");
    }

    #[test]
    fn every_status_round_trips_with_typed_fields() {
        let mut r = RunReport {
            version: 2,
            command: vec!["python3".into(), "-c".into(), "print(\"x\")".into()],
            program: "/usr/bin/python3".into(),
            policy: "python".into(),
            status: RunStatus::Exited,
            exit_code: Some(3),
            signal: None,
            sandbox_exit_code: 3,
            wall_time_ms: 12.5,
            cpu_time_ms: 3.25,
            peak_memory_bytes: 1 << 20,
            cpu_throttling: Some(CpuThrottling {
                periods: 20,
                throttled_periods: 19,
                throttled_ms: 1500,
            }),
            limit_hit: Some(LimitHit::FileSize),
            error: None,
            usage_error: None,
            layers: Some(layers()),
            degraded: vec!["cpu-share: not enforced".into()],
            network: vec![ConnectionDecision {
                host: "example.com".into(),
                port: 443,
                address: Some("93.184.216.34".parse().unwrap()),
                allowed: true,
                reason: "example.com".into(),
            }],
        };
        round_trip(&r);
        r.status = RunStatus::SetupFailed;
        r.error = Some(SetupError::new(Step::Landlock, "ABI 0"));
        round_trip(&r);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "setup-failed");
        assert_eq!(json["error"]["step"], "landlock");
        assert_eq!(json["error"]["reason"], "ABI 0");
        assert!(json["error"]["fix"]
            .as_str()
            .unwrap()
            .contains("no-landlock"));
        assert_eq!(json["limit_hit"], "file-size");
        assert_eq!(json["layers"]["cpu"]["enforced"], false);
        for s in [
            RunStatus::Signaled,
            RunStatus::Timeout,
            RunStatus::Interrupted,
        ] {
            r.status = s;
            round_trip(&r);
            assert_eq!(serde_json::to_value(&r).unwrap()["status"], s.name());
        }
        let u = RunReport::usage_error(vec!["x".into()], "--cpus 0: bad".into(), 2);
        round_trip(&u);
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["status"], "usage-error");
        assert_eq!(json["layers"], serde_json::Value::Null);
    }

    #[test]
    fn an_unenforced_share_is_a_degraded_line_and_none_asked_is_not() {
        let l = layers();
        let line = l.cpu.degraded_line().expect("a degraded line");
        assert!(
            line.starts_with("cpu-share:") && line.contains("0.5"),
            "{line}"
        );
        assert_eq!(CpuShare::planned(None, 2).degraded_line(), None);
    }
}
