//! What this kernel supports, for `sandbox-run doctor` (and the MCP server's `health`).

use std::path::Path;

use serde::Serialize;

/// One finding: OK, a warning (works, with less), or a failure (the sandbox cannot run).
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub level: Level,
    pub detail: String,
    /// What to do, when the level is not OK.
    pub fix: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Probes the kernel features the sandbox relies on. Runtime discovery and the trial run are
/// added by the caller (they need the policy and the launch).
pub fn kernel() -> Vec<Finding> {
    let mut out = Vec::new();
    let max_userns =
        read_trim("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse::<u64>().ok());
    let (level, detail, fix) = match max_userns {
        Some(0) => (
            Level::Fail,
            "user.max_user_namespaces = 0: user namespaces are disabled".to_string(),
            Some("sysctl -w user.max_user_namespaces=15000".to_string()),
        ),
        Some(n) => (Level::Ok, format!("user.max_user_namespaces = {n}"), None),
        None => (
            Level::Fail,
            "no /proc/sys/user/max_user_namespaces: kernel without user namespaces".to_string(),
            Some("use a kernel built with CONFIG_USER_NS".to_string()),
        ),
    };
    out.push(Finding {
        check: "user namespaces",
        level,
        detail,
        fix,
    });
    if let Some(v) = read_trim("/proc/sys/kernel/unprivileged_userns_clone") {
        let euid = nix::unistd::geteuid().as_raw();
        let (level, fix) = if v == "0" && euid != 0 {
            (
                Level::Fail,
                Some("sysctl -w kernel.unprivileged_userns_clone=1, or run as root".to_string()),
            )
        } else {
            (Level::Ok, None)
        };
        out.push(Finding {
            check: "unprivileged userns (Debian knob)",
            level,
            detail: format!("kernel.unprivileged_userns_clone = {v}"),
            fix,
        });
    }
    match read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        Some(v) if v == "1" => out.push(Finding {
            check: "AppArmor userns restriction",
            level: if nix::unistd::geteuid().is_root() { Level::Warn } else { Level::Fail },
            detail: "kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 24.04+): unconfined programs get a user namespace without capabilities".into(),
            fix: Some("install the profile: sudo scripts/install-apparmor-profile.sh (grants `userns` to sandbox-run only)".into()),
        }),
        Some(v) => out.push(Finding { check: "AppArmor userns restriction", level: Level::Ok, detail: format!("kernel.apparmor_restrict_unprivileged_userns = {v}"), fix: None }),
        None => out.push(Finding { check: "AppArmor userns restriction", level: Level::Ok, detail: "not present on this kernel".into(), fix: None }),
    }
    let abi = crate::launch::landlock::kernel_abi();
    out.push(match abi {
        a if a >= 6 => Finding {
            check: "Landlock",
            level: Level::Ok,
            detail: format!("ABI {a}: filesystem, TCP and scope rules"),
            fix: None,
        },
        a if a >= 1 => Finding {
            check: "Landlock",
            level: Level::Warn,
            detail: format!(
                "ABI {a}: filesystem rules; {} missing",
                if a < 4 {
                    "TCP rules and signal/socket scopes"
                } else {
                    "signal/socket scopes"
                }
            ),
            fix: Some("a newer kernel (6.12+) enforces more".into()),
        },
        a if a < 0 => Finding {
            check: "Landlock",
            level: Level::Fail,
            detail: "built in but not enabled".into(),
            fix: Some(
                "add landlock to the lsm= kernel parameter, or accept --allow-degraded no-landlock"
                    .into(),
            ),
        },
        _ => Finding {
            check: "Landlock",
            level: Level::Fail,
            detail: "not supported by this kernel".into(),
            fix: Some(
                "Linux 5.13+ with CONFIG_SECURITY_LANDLOCK, or accept --allow-degraded no-landlock"
                    .into(),
            ),
        },
    });
    out.push(match read_trim("/proc/sys/kernel/seccomp/actions_avail") {
        Some(a) if a.contains("kill_process") && a.contains("errno") => Finding {
            check: "seccomp",
            level: Level::Ok,
            detail: format!("filter actions: {a}"),
            fix: None,
        },
        Some(a) => Finding {
            check: "seccomp",
            level: Level::Fail,
            detail: format!("filter actions lack kill_process or errno: {a}"),
            fix: Some("a kernel with CONFIG_SECCOMP_FILTER (4.14+)".into()),
        },
        None => Finding {
            check: "seccomp",
            level: Level::Fail,
            detail: "no seccomp filter support".into(),
            fix: Some("a kernel with CONFIG_SECCOMP_FILTER".into()),
        },
    });
    let probe_id = format!("doctor-{}", std::process::id());
    let request = crate::cgroup::CgroupRequest {
        memory: 64 << 20,
        tasks: 8,
        cpu: Some(crate::cgroup::CpuQuota::from_cpus(1.0)),
    };
    let cg = crate::cgroup::RunCgroup::create(&probe_id, &request);
    out.push(match cg.memory() {
        Ok(m) => {
            let slow_attach = m.backend == crate::cgroup::Backend::V1
                && read_trim("/sys/kernel/rcu_expedited").as_deref() == Some("0");
            let note = if slow_attach {
                "; joining a v1 cgroup waits for an RCU grace period (~8 ms per run here): `echo 1 > /sys/kernel/rcu_expedited` (or boot with rcupdate.rcu_expedited=1) removes that wait"
            } else {
                ""
            };
            Finding { check: "cgroups", level: Level::Ok, detail: format!("per-run memory and pids caps via {} ({}){note}", m.describe(), crate::cgroup::describe()), fix: None }
        }
        Err(e) => Finding { check: "cgroups", level: Level::Warn, detail: format!("no writable cgroup ({e}); memory is capped per process with RLIMIT_DATA, tasks with RLIMIT_NPROC. Found: {}", crate::cgroup::describe()), fix: Some("run as root, or delegate a cgroup v2 subtree with memory and pids controllers".into()) },
    });
    out.push(match cg.cpu().unwrap_or(Err("not requested")) {
        Ok(c) => Finding { check: "cpu share", level: Level::Ok, detail: format!("--cpus / limits.cpus enforced via {}", c.describe()), fix: None },
        Err(e) => Finding { check: "cpu share", level: Level::Warn, detail: format!("no writable CPU controller ({e}); --cpus is reported as not enforced and a run may use all the CPUs it is pinned to until its timeout"), fix: Some("run as root, or delegate a cgroup v2 subtree with the cpu controller".into()) },
    });
    drop(cg);
    out.push(if Path::new("/proc/self/ns/user").exists() {
        Finding {
            check: "namespaces",
            level: Level::Ok,
            detail: "user, mount, pid, net, ipc, uts present".into(),
            fix: None,
        }
    } else {
        Finding {
            check: "namespaces",
            level: Level::Fail,
            detail: "no /proc/self/ns/user".into(),
            fix: Some("a kernel with namespaces".into()),
        }
    });
    out
}
