//! The only `unsafe` code of the server, kept in one place so a reviewer reads it all at once.
//!
//! The server never configures a sandbox itself (that is `sandbox-run`'s job, in its own
//! single-threaded process); what is left here are steps between fork and exec of a child:
//! an upstream MCP server's parent-death signal, and the descriptors handed to `sandbox-run`.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Make a child die with the server even if the server is killed (SIGKILL leaves no chance
/// to clean up). The signal follows the thread that forked, and tokio's worker threads live
/// as long as the runtime, which is the server's lifetime.
pub fn set_parent_death_signal(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one prctl(2) call (async-signal-safe),
    // allocates nothing, takes no lock and touches no memory shared with the parent; on
    // failure it builds an io::Error from errno, which does not allocate either.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Spawns `cmd` with descriptors at fixed numbers: each `(source, target)` pair makes the
/// child's `target` a copy of the parent's `source`, open across exec (a number, because the
/// child's interface is "your fd 3 is ..."). The sources stay close-on-exec in the parent, so no
/// other child (the server spawns many at once) inherits them.
///
/// Takes the command by value and spawns it here: the sources are borrowed, so open, for the
/// whole spawn, and the child-side closure can never run later with stale numbers.
pub fn spawn_with_fds(
    mut cmd: tokio::process::Command,
    fds: &[(BorrowedFd<'_>, RawFd)],
) -> std::io::Result<tokio::process::Child> {
    const MAX: usize = 16;
    if fds.len() > MAX {
        return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
    }
    let pairs: Vec<(RawFd, RawFd)> = fds.iter().map(|(s, t)| (s.as_raw_fd(), *t)).collect();
    // Sources are first copied above every target, so that one dup2 never overwrites a source
    // that a later pair still needs.
    let above = pairs.iter().map(|(_, t)| *t).max().unwrap_or(0) + 1;
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe calls (fcntl, dup2) on descriptors that are borrowed, so open, until
    // spawn returns below (and `cmd` is consumed, so the closure never runs after that); it
    // allocates nothing (`pairs` was built before the fork and is only read) and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0 as libc::c_int; MAX];
            for (i, (source, _)) in pairs.iter().enumerate() {
                let h = libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, above);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high[i] = h;
            }
            for (i, (_, target)) in pairs.iter().enumerate() {
                // dup2 clears close-on-exec on the target: it survives the exec.
                if libc::dup2(high[i], *target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}
