//! rlimits of the workload. Set inside the new user namespace: RLIMIT_NPROC counts tasks per
//! (user namespace, uid), so set outside it would count every host process of the same uid.
//! Never RLIMIT_AS: V8 reserves tens of GiB of address space and refuses to start under it.
//!
//! Two sets. [`apply`] is the workload's own plan (tasks, files, sizes, CPU seconds, memory).
//! [`apply_host_bounds`] is fixed and set by the init for every process of the run, helpers
//! included: the counters it bounds are charged, through the user namespace's parent, to the
//! user who started the sandbox (see `quotas`), so without a bound a run could use up that
//! user's quota and break their other programs until it ends.

use rlimit::Resource;
use serde::{Deserialize, Serialize};

/// The values to set; `None` leaves the inherited limit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlimitPlan {
    pub nproc: u64,
    pub nofile: u64,
    pub fsize: u64,
    pub cpu_secs: Option<u64>,
    /// RLIMIT_DATA, only when no cgroup caps memory.
    pub data: Option<u64>,
}

pub fn apply(plan: &RlimitPlan) -> Result<(), String> {
    let set = |r: Resource, soft: u64, hard: u64, name: &str| {
        r.set(soft, hard).map_err(|e| format!("{name}={soft}: {e}"))
    };
    set(Resource::CORE, 0, 0, "RLIMIT_CORE")?;
    set(Resource::NPROC, plan.nproc, plan.nproc, "RLIMIT_NPROC")?;
    set(Resource::NOFILE, plan.nofile, plan.nofile, "RLIMIT_NOFILE")?;
    set(Resource::FSIZE, plan.fsize, plan.fsize, "RLIMIT_FSIZE")?;
    if let Some(cpu) = plan.cpu_secs {
        // SIGXCPU at the soft limit, SIGKILL one second later if it is ignored.
        set(Resource::CPU, cpu, cpu + 1, "RLIMIT_CPU")?;
    }
    if let Some(data) = plan.data {
        set(Resource::DATA, data, data, "RLIMIT_DATA")?;
    }
    Ok(())
}

/// Pending signals (queued `sigqueue`s and POSIX timers, which preallocate one each). Charged
/// to the starting user's count as well; 256 is plenty for any runtime (V8, CPython and libuv
/// queue none of their own) and leaves the host user's default (~95k) untouched in practice.
pub const SIGPENDING: u64 = 256;
/// Bytes of POSIX message queues (`mq_open`), charged to the starting user (default 800 KiB
/// for the whole user). One default queue (10 messages of 8 KiB) fits.
pub const MSGQUEUE: u64 = 128 * 1024;
/// Bytes of memory the run may lock (`mlock`, `SHM_LOCK`, `memfd_secret`): locked pages cannot
/// be swapped or reclaimed, and some of them are charged per user.
pub const MEMLOCK: u64 = 64 * 1024;

/// The bounds of per-user counters, for every process of the run. Also `RLIMIT_RTPRIO` and
/// `RLIMIT_NICE` at 0: without CAP_SYS_NICE, these are what would let a run raise its
/// scheduling priority above the host's programs.
pub fn apply_host_bounds() -> Result<(), String> {
    // Never above what this process already has: raising a hard limit needs CAP_SYS_RESOURCE
    // on the host, and a host that is stricter than us stays stricter.
    let set = |r: Resource, v: u64, name: &str| {
        let (_, hard) = r.get().map_err(|e| format!("read {name}: {e}"))?;
        let v = v.min(hard);
        r.set(v, v).map_err(|e| format!("{name}={v}: {e}"))
    };
    set(Resource::SIGPENDING, SIGPENDING, "RLIMIT_SIGPENDING")?;
    set(Resource::MSGQUEUE, MSGQUEUE, "RLIMIT_MSGQUEUE")?;
    set(Resource::MEMLOCK, MEMLOCK, "RLIMIT_MEMLOCK")?;
    set(Resource::RTPRIO, 0, "RLIMIT_RTPRIO")?;
    set(Resource::NICE, 0, "RLIMIT_NICE")?;
    Ok(())
}
