//! Per-run cgroups for the memory and task caps, when the machine offers a writable one.
//!
//! A cgroup caps the whole run (all processes, tmpfs pages included) where RLIMIT_DATA caps each
//! process separately. Machines differ: cgroup v2 with a delegated subtree, or (as on our hybrid
//! CI machines) a cgroup2 mount with only hugetlb beside working v1 `memory` and `pids`
//! controllers. We try v2, then v1, then report that the rlimit fallback is in use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

const V2_ROOTS: &[&str] = &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
const V1_PIDS: &str = "/sys/fs/cgroup/pids";
const PARENT: &str = "code-executor";

/// Which mechanism capped memory and tasks.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    V2,
    V1,
}

/// A run's cgroup (or pair of v1 cgroups), removed on drop.
#[derive(Debug)]
pub struct RunCgroup {
    pub backend: Backend,
    dirs: Vec<PathBuf>,
    memory_dir: PathBuf,
    pids_dir: PathBuf,
}

/// What the cgroup counted, read after the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CgroupStats {
    pub peak_memory: Option<u64>,
    pub oom_kills: u64,
    pub pids_max_hits: u64,
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
    for (name, dir) in [("memory", V1_MEMORY), ("pids", V1_PIDS)] {
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
    // SAFETY: kill with signal 0 only checks for existence.
    pid > 0
        && unsafe { libc::kill(pid, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
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
    /// Creates a run cgroup capping memory (no swap) and tasks. `Err` carries why none could be
    /// had; the caller falls back to rlimits and reports the reason.
    pub fn create(run_id: &str, memory: u64, tasks: u64) -> Result<RunCgroup, String> {
        sweep_stale(&[
            Path::new(V1_MEMORY).join(PARENT),
            Path::new(V1_PIDS).join(PARENT),
            Path::new(V2_ROOTS[0]).join(PARENT),
            Path::new(V2_ROOTS[1]).join(PARENT),
        ]);
        let mut reasons = Vec::new();
        match Self::create_v2(run_id, memory, tasks) {
            Ok(c) => return Ok(c),
            Err(e) => reasons.push(e),
        }
        match Self::create_v1(run_id, memory, tasks) {
            Ok(c) => return Ok(c),
            Err(e) => reasons.push(e),
        }
        Err(reasons.join("; "))
    }

    fn create_v2(run_id: &str, memory: u64, tasks: u64) -> Result<RunCgroup, String> {
        for root in V2_ROOTS {
            let root = Path::new(root);
            let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) else {
                continue;
            };
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if !(has("memory") && has("pids")) {
                continue;
            }
            let parent = root.join(PARENT);
            let _ = std::fs::create_dir(&parent);
            let _ = write(&parent.join("cgroup.subtree_control"), "+memory +pids");
            let dir = parent.join(run_id);
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cgroup v2: mkdir {}: {e}", dir.display()))?;
            let cg = RunCgroup {
                backend: Backend::V2,
                dirs: vec![dir.clone()],
                memory_dir: dir.clone(),
                pids_dir: dir.clone(),
            };
            write(&dir.join("memory.max"), &memory.to_string())?;
            let _ = write(&dir.join("memory.swap.max"), "0");
            write(&dir.join("pids.max"), &tasks.to_string())?;
            return Ok(cg);
        }
        Err("cgroup v2: no hierarchy with both memory and pids controllers".into())
    }

    fn create_v1(run_id: &str, memory: u64, tasks: u64) -> Result<RunCgroup, String> {
        let mem_root = Path::new(V1_MEMORY);
        let pids_root = Path::new(V1_PIDS);
        if !mem_root.join("cgroup.procs").exists() || !pids_root.join("cgroup.procs").exists() {
            return Err("cgroup v1: memory or pids controller not mounted".into());
        }
        let mut cg = RunCgroup {
            backend: Backend::V1,
            dirs: vec![],
            memory_dir: mem_root.join(PARENT).join(run_id),
            pids_dir: pids_root.join(PARENT).join(run_id),
        };
        for root in [mem_root, pids_root] {
            let parent = root.join(PARENT);
            let _ = std::fs::create_dir(&parent);
            let dir = parent.join(run_id);
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cgroup v1: mkdir {}: {e}", dir.display()))?;
            cg.dirs.push(dir);
        }
        write(
            &cg.memory_dir.join("memory.limit_in_bytes"),
            &memory.to_string(),
        )?;
        // Without swap accounting this file is absent and there is no swap to escape to.
        let memsw = cg.memory_dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write(&memsw, &memory.to_string())?;
        }
        write(&cg.pids_dir.join("pids.max"), &tasks.to_string())?;
        Ok(cg)
    }

    /// Moves `pid` (the sandbox's init, before it runs anything) into the cgroup(s).
    pub fn attach(&self, pid: i32) -> Result<(), String> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub fn stats(&self) -> CgroupStats {
        match self.backend {
            Backend::V2 => CgroupStats {
                peak_memory: read_u64(&self.memory_dir.join("memory.peak")),
                oom_kills: read_key(&self.memory_dir.join("memory.events"), "oom_kill")
                    .unwrap_or(0),
                pids_max_hits: read_key(&self.pids_dir.join("pids.events"), "max").unwrap_or(0),
            },
            Backend::V1 => CgroupStats {
                peak_memory: read_u64(&self.memory_dir.join("memory.max_usage_in_bytes")),
                oom_kills: read_key(&self.memory_dir.join("memory.oom_control"), "oom_kill")
                    .unwrap_or(0),
                pids_max_hits: read_key(&self.pids_dir.join("pids.events"), "max").unwrap_or(0),
            },
        }
    }

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
