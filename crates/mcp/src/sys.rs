//! The only `unsafe` code of the server, kept in one place so a reviewer reads it all at once.
//!
//! The server never configures a sandbox itself (that is `sandbox-run`'s job, in its own
//! single-threaded process); what is left here is one step between fork and exec of an
//! upstream MCP server's child process.
#![allow(unsafe_code)]

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
