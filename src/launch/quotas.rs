//! The run's own user-namespace quotas (`/proc/sys/user/max_*`), written by the reaper before
//! the workload exists.
//!
//! Why here: inotify instances and watches, fanotify groups and marks, and namespaces are
//! counted per user *and per user namespace*, hierarchically: what the run uses is charged in
//! its namespace and again to the user who started the sandbox in the parent namespace. The
//! parent's limit is the host user's (e.g. 128 inotify instances for the whole user), so one run
//! could take all of it and break that user's editors, file watchers and services until it ends.
//! Each namespace has its own limits, settable by a process holding CAP_SYS_RESOURCE in it (the
//! reaper does; the workload never does), and a charge must fit every level. So the run's
//! limits here bound what it can take from the host user. The values are what a script needs,
//! not what a desktop session does.
//!
//! Signals, POSIX timers, message queues and locked memory are bounded by rlimits instead
//! (`rlimits::apply_host_bounds`); SysV IPC and legacy AIO are denied by seccomp.

/// A quota: the file under /proc/sys/user, the value, and whether a kernel without the file
/// can still run safely (because another layer already denies what it counts).
struct Quota {
    name: &'static str,
    value: u64,
    missing_is_safe: bool,
}

const fn q(name: &'static str, value: u64, missing_is_safe: bool) -> Quota {
    Quota {
        name,
        value,
        missing_is_safe,
    }
}

/// Every counter of /proc/sys/user. Namespaces: none (seccomp denies creating them as well;
/// the reaper's PID namespace exists already, and a limit below the current count only stops
/// new ones). fanotify: none (`fanotify_init` is denied by seccomp too). inotify: enough for a
/// file watcher of a small project.
const QUOTAS: &[Quota] = &[
    q("max_inotify_instances", INOTIFY_INSTANCES, false),
    q("max_inotify_watches", INOTIFY_WATCHES, false),
    q("max_fanotify_groups", 0, true),
    q("max_fanotify_marks", 0, true),
    q("max_user_namespaces", 0, false),
    q("max_pid_namespaces", 0, false),
    q("max_net_namespaces", 0, false),
    q("max_mnt_namespaces", 0, false),
    q("max_ipc_namespaces", 0, false),
    q("max_uts_namespaces", 0, false),
    q("max_cgroup_namespaces", 0, false),
    q("max_time_namespaces", 0, true),
];

/// inotify instances the run may hold at once (the host default is 128 per user).
pub const INOTIFY_INSTANCES: u64 = 8;
/// inotify watches the run may hold at once.
pub const INOTIFY_WATCHES: u64 = 1024;

/// Writes every quota of the current user namespace. Must run with CAP_SYS_RESOURCE in it.
pub fn apply() -> Result<(), String> {
    for quota in QUOTAS {
        let path = format!("/proc/sys/user/{}", quota.name);
        match std::fs::write(&path, format!("{}\n", quota.value)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && quota.missing_is_safe => {}
            Err(e) => {
                return Err(format!(
                    "set {path} to {} for the run's user namespace: {e}",
                    quota.value
                ))
            }
        }
    }
    Ok(())
}
