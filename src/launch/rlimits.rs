//! rlimits of the workload. Set inside the new user namespace: RLIMIT_NPROC counts tasks per
//! (user namespace, uid), so set outside it would count every host process of the same uid.
//! Never RLIMIT_AS: V8 reserves tens of GiB of address space and refuses to start under it.
#![deny(unsafe_code)]

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
