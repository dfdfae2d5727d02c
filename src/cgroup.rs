//! Per-run cgroups for the memory and task caps and the CPU share, when the machine offers
//! writable ones.
//!
//! A cgroup caps the whole run (all processes, tmpfs pages included) where RLIMIT_DATA caps each
//! process separately, and only the CPU controller can bound how much CPU a run takes per
//! second (RLIMIT_CPU bounds the total, pinning bounds the CPUs, neither the rate). Machines
//! differ: cgroup v2 with a delegated subtree, or (as on our hybrid CI machines) a cgroup2
//! mount with only hugetlb beside working v1 `memory`, `pids` and `cpu` controllers. Each
//! controller is tried on v2, then v1; what could not be had is reported with the reason, and
//! the run falls back (rlimits for memory, no share for CPU).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

const V2_ROOTS: &[&str] = &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
const V1_PIDS: &str = "/sys/fs/cgroup/pids";
const V1_CPU: &str = "/sys/fs/cgroup/cpu";
const PARENT: &str = "code-executor";

/// Which cgroup version a controller was used through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    V2,
    V1,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::V2 => "cgroup-v2",
            Backend::V1 => "cgroup-v1",
        }
    }
}

/// The CFS period every share uses (the kernel's default), in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// A CPU share as CFS bandwidth: the run's tasks together get at most `quota_us` of CPU time in
/// every `period_us` of wall time (Docker's `--cpus 0.5` is 50000 per 100000).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuQuota {
    /// The quota for a share in CPUs (checked by the policy: at least 0.01, so at least the
    /// kernel's 1 ms minimum).
    pub fn from_cpus(cpus: f64) -> CpuQuota {
        let quota = (cpus * CPU_PERIOD_US as f64).round() as u64;
        CpuQuota {
            quota_us: quota.max(1000),
            period_us: CPU_PERIOD_US,
        }
    }
}

/// What a run asks of the cgroups.
#[derive(Clone, Copy, Debug)]
pub struct CgroupRequest {
    pub memory: u64,
    pub tasks: u64,
    /// None: no CPU share asked for, the CPU controller is not touched.
    pub cpu: Option<CpuQuota>,
}

/// The memory and task caps, in one v2 cgroup or a v1 `memory` and `pids` pair.
#[derive(Debug)]
pub struct MemoryCgroup {
    pub backend: Backend,
    memory_dir: PathBuf,
    pids_dir: PathBuf,
}

/// The CPU share, read back from the kernel after it was written.
#[derive(Debug)]
pub struct CpuCgroup {
    pub backend: Backend,
    pub quota: CpuQuota,
    dir: PathBuf,
}

/// A run's cgroups, one directory per hierarchy used, removed on drop. Each controller either
/// was set up or carries why not; a run with neither has no directory at all.
#[derive(Debug)]
pub struct RunCgroup {
    /// Every directory the run's init is attached to, in creation order.
    dirs: Vec<PathBuf>,
    memory: Result<MemoryCgroup, String>,
    cpu: Option<Result<CpuCgroup, String>>,
}

/// What the cgroups counted, read after the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CgroupStats {
    pub peak_memory: Option<u64>,
    pub oom_kills: u64,
    pub pids_max_hits: u64,
    /// From the CPU controller, when the run had a share.
    pub cpu: Option<CpuThrottling>,
}

/// How often the CPU share held the run back: a period is throttled when the run wanted more
/// CPU in it than its quota, so `throttled_periods > 0` shows the share (not the machine's
/// load) bounded the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuThrottling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ms: u64,
}

/// What was found on this machine, for doctor and the report when no cgroup could be used.
pub fn describe() -> String {
    let mut out = Vec::new();
    for root in V2_ROOTS {
        let f = Path::new(root).join("cgroup.controllers");
        if let Ok(c) = std::fs::read_to_string(&f) {
            out.push(format!("cgroup v2 at {root} (controllers: {})", c.trim()));
        }
    }
    for (name, dir) in [("memory", V1_MEMORY), ("pids", V1_PIDS), ("cpu", V1_CPU)] {
        if Path::new(dir).join("cgroup.procs").exists() {
            out.push(format!("cgroup v1 {name} at {dir}"));
        }
    }
    if out.is_empty() {
        "no cgroup hierarchy found".into()
    } else {
        out.join("; ")
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}

/// Makes `controllers` available to the runs' directories under `root`: a v2 controller is only
/// in a cgroup whose parent lists it in `cgroup.subtree_control`, so it is enabled at the root
/// (systemd has done that already; a bare cgroup2 mount has not) and in our parent directory,
/// which is made first (on the first run after boot it does not exist yet). Without this the
/// run's directory has no `memory.max`, and writing it fails with a misleading EACCES.
fn enable_v2(root: &Path, controllers: &[&str]) -> Result<(), String> {
    let parent = root.join(PARENT);
    match std::fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cgroup v2: mkdir {}: {e}", parent.display())),
    }
    let value = controllers
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    for dir in [root, parent.as_path()] {
        let file = dir.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&file).unwrap_or_default();
        if controllers
            .iter()
            .all(|c| enabled.split_whitespace().any(|e| e == *c))
        {
            continue; // already there: no write, which a delegated non-root caller could not do
        }
        write(&file, &value).map_err(|e| {
            format!(
                "cgroup v2: cannot enable the {} controller(s) for child cgroups: {e}",
                controllers.join(", ")
            )
        })?;
    }
    Ok(())
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

/// True when `pid` names no live process.
pub(crate) fn pid_is_dead(pid: i32) -> bool {
    // Signal 0 only checks for existence.
    pid > 0 && matches!(crate::sys::kill(pid, 0), Err(e) if e.raw_os_error() == Some(libc::ESRCH))
}

/// The helper pid in a run id `run-<pid>-<n>`.
fn run_pid(name: &str) -> Option<i32> {
    name.strip_prefix("run-")?.split('-').next()?.parse().ok()
}

/// Removes run cgroups left by helpers that were killed (SIGKILL leaves no chance to clean
/// up). Only those whose helper is dead are touched, and the kernel refuses to remove a cgroup
/// that still has processes, so a live run is never affected.
fn sweep_stale(parents: &[PathBuf]) {
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(run_pid) else {
                continue;
            };
            if pid_is_dead(pid) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

impl RunCgroup {
    /// Creates the run's cgroups: memory (no swap) and tasks, and the CPU share when one is
    /// asked for. Never fails as a whole: a controller that could not be set up carries the
    /// reason, and the caller falls back and reports it.
    pub fn create(run_id: &str, req: &CgroupRequest) -> RunCgroup {
        sweep_stale(&[
            Path::new(V1_MEMORY).join(PARENT),
            Path::new(V1_PIDS).join(PARENT),
            Path::new(V1_CPU).join(PARENT),
            Path::new(V2_ROOTS[0]).join(PARENT),
            Path::new(V2_ROOTS[1]).join(PARENT),
        ]);
        let mut cg = RunCgroup {
            dirs: Vec::new(),
            memory: Err(String::new()),
            cpu: None,
        };
        cg.memory = cg.memory_v2(run_id, req).or_else(|v2| {
            cg.memory_v1(run_id, req)
                .map_err(|v1| format!("{v2}; {v1}"))
        });
        if let Some(quota) = req.cpu {
            cg.cpu = Some(
                cg.cpu_v2(run_id, quota)
                    .or_else(|v2| cg.cpu_v1(run_id, quota).map_err(|v1| format!("{v2}; {v1}"))),
            );
        }
        cg
    }

    /// The memory and task caps, or why there are none (the rlimit fallback applies).
    pub fn memory(&self) -> Result<&MemoryCgroup, &str> {
        self.memory.as_ref().map_err(String::as_str)
    }

    /// The CPU share: None when none was asked for, else the cgroup or why there is none.
    pub fn cpu(&self) -> Option<Result<&CpuCgroup, &str>> {
        self.cpu
            .as_ref()
            .map(|c| c.as_ref().map_err(String::as_str))
    }

    /// A directory for this run under `root`'s `code-executor` parent, removed on drop. Reuses
    /// the run's directory when another controller of the same hierarchy made it (v2 has one
    /// directory for all controllers).
    fn run_dir(&mut self, root: &Path, run_id: &str, what: &str) -> Result<PathBuf, String> {
        let parent = root.join(PARENT);
        let dir = parent.join(run_id);
        if self.dirs.contains(&dir) {
            return Ok(dir);
        }
        let _ = std::fs::create_dir(&parent);
        std::fs::create_dir(&dir).map_err(|e| format!("{what}: mkdir {}: {e}", dir.display()))?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    /// Removes a directory made for a controller that then failed, unless another uses it.
    fn abandon(&mut self, dir: &Path, still_used: bool) {
        if !still_used {
            self.dirs.retain(|d| d != dir);
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// The v2 roots that have all of `wanted` among their controllers.
    fn v2_roots_with(wanted: &[&str]) -> Vec<&'static Path> {
        V2_ROOTS
            .iter()
            .map(Path::new)
            .filter(|root| {
                std::fs::read_to_string(root.join("cgroup.controllers"))
                    .is_ok_and(|c| wanted.iter().all(|w| c.split_whitespace().any(|x| x == *w)))
            })
            .collect()
    }

    fn memory_v2(&mut self, run_id: &str, req: &CgroupRequest) -> Result<MemoryCgroup, String> {
        let Some(root) = Self::v2_roots_with(&["memory", "pids"]).into_iter().next() else {
            return Err("cgroup v2: no hierarchy with both memory and pids controllers".into());
        };
        enable_v2(root, &["memory", "pids"])?;
        let dir = self.run_dir(root, run_id, "cgroup v2")?;
        let set = (|| {
            write(&dir.join("memory.max"), &req.memory.to_string())?;
            let _ = write(&dir.join("memory.swap.max"), "0");
            write(&dir.join("pids.max"), &req.tasks.to_string())
        })();
        match set {
            Ok(()) => Ok(MemoryCgroup {
                backend: Backend::V2,
                memory_dir: dir.clone(),
                pids_dir: dir,
            }),
            Err(e) => {
                self.abandon(&dir, false);
                Err(e)
            }
        }
    }

    fn memory_v1(&mut self, run_id: &str, req: &CgroupRequest) -> Result<MemoryCgroup, String> {
        let mem_root = Path::new(V1_MEMORY);
        let pids_root = Path::new(V1_PIDS);
        if !mem_root.join("cgroup.procs").exists() || !pids_root.join("cgroup.procs").exists() {
            return Err("cgroup v1: memory or pids controller not mounted".into());
        }
        let memory_dir = self.run_dir(mem_root, run_id, "cgroup v1")?;
        let set = (|| {
            let pids_dir = self.run_dir(pids_root, run_id, "cgroup v1")?;
            write(
                &memory_dir.join("memory.limit_in_bytes"),
                &req.memory.to_string(),
            )?;
            // Without swap accounting this file is absent and there is no swap to escape to.
            let memsw = memory_dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &req.memory.to_string())?;
            }
            write(&pids_dir.join("pids.max"), &req.tasks.to_string())?;
            Ok(pids_dir)
        })();
        match set {
            Ok(pids_dir) => Ok(MemoryCgroup {
                backend: Backend::V1,
                memory_dir,
                pids_dir,
            }),
            Err(e) => {
                let pids_dir = pids_root.join(PARENT).join(run_id);
                self.abandon(&memory_dir, false);
                self.abandon(&pids_dir, false);
                Err(e)
            }
        }
    }

    fn cpu_v2(&mut self, run_id: &str, quota: CpuQuota) -> Result<CpuCgroup, String> {
        let Some(root) = Self::v2_roots_with(&["cpu"]).into_iter().next() else {
            return Err("cgroup v2: no hierarchy with the cpu controller".into());
        };
        enable_v2(root, &["cpu"])?;
        let dir = self.run_dir(root, run_id, "cgroup v2")?;
        let value = format!("{} {}", quota.quota_us, quota.period_us);
        let set = write(&dir.join("cpu.max"), &value).and_then(|()| {
            // Verify, don't trust: the share is only reported as enforced if it reads back.
            let back = std::fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
            if back.trim() == value {
                Ok(())
            } else {
                Err(format!(
                    "cgroup v2: cpu.max reads back {:?} after writing {value:?}",
                    back.trim()
                ))
            }
        });
        match set {
            Ok(()) => Ok(CpuCgroup {
                backend: Backend::V2,
                quota,
                dir,
            }),
            Err(e) => {
                let used = self.memory.as_ref().is_ok_and(|m| m.memory_dir == dir);
                self.abandon(&dir, used);
                Err(e)
            }
        }
    }

    fn cpu_v1(&mut self, run_id: &str, quota: CpuQuota) -> Result<CpuCgroup, String> {
        let root = Path::new(V1_CPU);
        if !root.join("cpu.cfs_quota_us").exists() {
            return Err(format!(
                "cgroup v1: no cpu controller with CFS bandwidth at {V1_CPU}"
            ));
        }
        let dir = self.run_dir(root, run_id, "cgroup v1")?;
        // The period first: the kernel checks the quota against it.
        let set = (|| {
            write(&dir.join("cpu.cfs_period_us"), &quota.period_us.to_string())?;
            write(&dir.join("cpu.cfs_quota_us"), &quota.quota_us.to_string())?;
            let back = (
                read_u64(&dir.join("cpu.cfs_quota_us")),
                read_u64(&dir.join("cpu.cfs_period_us")),
            );
            if back == (Some(quota.quota_us), Some(quota.period_us)) {
                Ok(())
            } else {
                Err(format!(
                    "cgroup v1: {} reads back quota/period {back:?} after writing {}/{}",
                    dir.display(),
                    quota.quota_us,
                    quota.period_us
                ))
            }
        })();
        match set {
            Ok(()) => Ok(CpuCgroup {
                backend: Backend::V1,
                quota,
                dir,
            }),
            Err(e) => {
                self.abandon(&dir, false);
                Err(e)
            }
        }
    }

    /// Moves `pid` (the sandbox's init, before it runs anything) into the run's cgroups.
    pub fn attach(&self, pid: i32) -> Result<(), String> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// What the controllers counted; None when the run had no cgroup at all.
    pub fn stats(&self) -> Option<CgroupStats> {
        let cpu = self.cpu.as_ref().and_then(|c| c.as_ref().ok()).map(|c| {
            let stat = c.dir.join("cpu.stat");
            let throttled_ms = match c.backend {
                Backend::V2 => read_key(&stat, "throttled_usec").map(|us| us / 1000),
                Backend::V1 => read_key(&stat, "throttled_time").map(|ns| ns / 1_000_000),
            };
            CpuThrottling {
                periods: read_key(&stat, "nr_periods").unwrap_or(0),
                throttled_periods: read_key(&stat, "nr_throttled").unwrap_or(0),
                throttled_ms: throttled_ms.unwrap_or(0),
            }
        });
        let Ok(m) = self.memory.as_ref() else {
            return cpu.map(|cpu| CgroupStats {
                cpu: Some(cpu),
                ..CgroupStats::default()
            });
        };
        Some(match m.backend {
            Backend::V2 => CgroupStats {
                peak_memory: read_u64(&m.memory_dir.join("memory.peak")),
                oom_kills: read_key(&m.memory_dir.join("memory.events"), "oom_kill").unwrap_or(0),
                pids_max_hits: read_key(&m.pids_dir.join("pids.events"), "max").unwrap_or(0),
                cpu,
            },
            Backend::V1 => CgroupStats {
                peak_memory: read_u64(&m.memory_dir.join("memory.max_usage_in_bytes")),
                oom_kills: read_key(&m.memory_dir.join("memory.oom_control"), "oom_kill")
                    .unwrap_or(0),
                pids_max_hits: read_key(&m.pids_dir.join("pids.events"), "max").unwrap_or(0),
                cpu,
            },
        })
    }
}

impl MemoryCgroup {
    pub fn describe(&self) -> String {
        match self.backend {
            Backend::V2 => format!("cgroup v2 {}", self.memory_dir.display()),
            Backend::V1 => format!(
                "cgroup v1 {} and {}",
                self.memory_dir.display(),
                self.pids_dir.display()
            ),
        }
    }
}

impl CpuCgroup {
    pub fn describe(&self) -> String {
        let file = match self.backend {
            Backend::V2 => "cpu.max",
            Backend::V1 => "cpu.cfs_quota_us/cpu.cfs_period_us",
        };
        format!(
            "{} {} {file} = {}/{} us",
            self.backend.name(),
            self.dir.display(),
            self.quota.quota_us,
            self.quota.period_us
        )
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // The processes are dead by now, but the kernel may take a moment to release them.
        for dir in &self.dirs {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}
