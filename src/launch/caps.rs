//! Capabilities: drop every one, in all five sets, then read them back from the kernel.
//!
//! The workload starts with a full set inside its user namespace (it was created there). Those
//! capabilities only reach objects the namespace owns, but they are still kernel attack surface
//! (mount, netlink, raw sockets). We drop them and verify, rather than trust, that none remain.

use crate::sys;

/// Drops the bounding and ambient sets. Needs CAP_SETPCAP, so it runs before the uid change.
pub fn drop_bounding_and_ambient() -> Result<(), String> {
    let last = last_cap();
    for cap in 0..=last {
        if let Err(err) = sys::capbset_drop(cap) {
            // EINVAL: the kernel does not know this capability; nothing to drop.
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(format!("PR_CAPBSET_DROP({cap}): {err}"));
            }
        }
    }
    sys::clear_ambient_caps().map_err(|e| format!("PR_CAP_AMBIENT_CLEAR_ALL: {e}"))
}

/// Clears the effective, permitted and inheritable sets, then verifies all five are empty.
pub fn clear_and_verify() -> Result<(), String> {
    for set in [
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| format!("clear {set:?}: {e}"))?;
    }
    verify_none()
}

/// Reads /proc/self/status and fails if any capability set is not empty.
pub fn verify_none() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("read /proc/self/status to verify: {e}"))?;
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
            .ok_or_else(|| format!("{key} missing from /proc/self/status"))?;
        if u64::from_str_radix(value, 16) != Ok(0) {
            return Err(format!("{key} is {value} after the drop, expected 0"));
        }
    }
    Ok(())
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}
