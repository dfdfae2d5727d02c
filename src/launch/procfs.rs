//! The workload's /proc: a procfs of the reaper's PID namespace, mounted over the init's, with
//! the files that describe the host masked.
//!
//! Why a second procfs: the workload lives in a PID namespace nested in the init's, so that the
//! sandbox's own helpers (the init, the egress forwarder) have no PID it can name. A procfs shows
//! the PID namespace of whoever mounts it, so the reaper (PID 1 of the nested namespace) mounts
//! one. The kernel lets a user namespace mount procfs only while an unobstructed procfs is
//! visible in its mount namespace: the init's is, so the masks come after.
//!
//! Why masks: procfs shows a few machine-wide facts that a script needs not see and that help
//! fingerprint or attack the host: the kernel command line (root device, sometimes secrets
//! passed to initrd), the boot id (links runs to one boot across sessions), kernel symbols and
//! modules, the key tables and the timer and scheduler debug lists. Each is covered by a bind of
//! /dev/null, as Docker does, so it reads empty. The workload cannot remove a mask: it has no
//! capabilities, and seccomp denies umount.

use std::path::Path;

use nix::mount::{mount, MsFlags};

/// Files of /proc replaced by an empty one. Files that this kernel does not have are skipped.
pub const MASKED: &[&str] = &[
    "/proc/cmdline",
    "/proc/sys/kernel/random/boot_id",
    "/proc/kallsyms",
    "/proc/modules",
    "/proc/keys",
    "/proc/key-users",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/config.gz",
    "/proc/kcore",
    "/proc/kpagecount",
    "/proc/kpageflags",
    "/proc/kpagecgroup",
    "/proc/sysrq-trigger",
];

/// Mounts this PID namespace's procfs on /proc and masks [`MASKED`]. Runs in the reaper, after
/// pivot_root, with CAP_SYS_ADMIN in the run's user namespace.
pub fn mount_own() -> Result<(), String> {
    let none: Option<&str> = None;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(|e| format!("mount the workload's /proc: {e}"))?;
    for file in MASKED {
        if !Path::new(file).exists() {
            continue;
        }
        mount(Some("/dev/null"), *file, none, MsFlags::MS_BIND, none)
            .map_err(|e| format!("mask {file}: {e}"))?;
    }
    Ok(())
}
