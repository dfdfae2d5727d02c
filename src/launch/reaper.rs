//! R: PID 1 of a PID namespace nested in the init's, and the workload's parent.
//!
//! Why a second PID namespace: the init and the egress forwarder run as the same user as the
//! workload (a user namespace maps one id), so the kernel's permission checks for `kill`,
//! `prlimit`, `setpriority` and friends would let the workload act on them, and Landlock's
//! signal scope (Linux 6.12+) covers signals only. In the nested namespace they have no PID at
//! all: nothing the workload can name, list in /proc, or reach with `kill(-1)`. What is left
//! visible is R itself, which holds nothing: it mounts the workload's /proc, writes the run's
//! user-namespace quotas, forks the workload, reaps orphans, and reports the workload's end.
//! As a namespace's PID 1 it ignores signals from inside for which it has no handler (it
//! installs none), and seccomp denies `prlimit` on any process but the caller.

use std::ffi::CStr;
use std::os::fd::OwnedFd;

use crate::sys;

use super::{procfs, quotas, send, workload, ChildMsg, Ending, LaunchSpec, SetupError, Step};

/// The name R shows in /proc, so that a reader of `ps` inside sees what it is.
const NAME: &CStr = c"sandbox-reaper";

/// Never returns: exits with the workload's status (128 + signal when it was killed), or 125
/// after reporting a setup error.
pub(super) fn main(spec: &LaunchSpec, msg_w: &OwnedFd) -> ! {
    let fail = |e: SetupError| -> ! {
        send(msg_w, &ChildMsg::Error(e));
        exit(125)
    };
    // Dies with the init (whose death would also end this namespace, nested in the init's).
    // Cannot fail with a valid signal; the name is cosmetic.
    let _ = sys::set_pdeathsig(libc::SIGKILL);
    let _ = sys::set_name(NAME);
    if let Err(e) = procfs::mount_own() {
        fail(SetupError::new(Step::Proc, e));
    }
    if let Err(e) = quotas::apply() {
        fail(SetupError::new(Step::Quotas, e));
    }
    let w = match sys::fork() {
        Ok(nix::unistd::ForkResult::Child) => workload::main(spec, msg_w),
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => fail(SetupError::new(
            Step::Fork,
            format!("fork the workload: {e}"),
        )),
    };
    // Reap everything; when the workload ends, report and exit, which kills the rest of this
    // namespace (its daemons included).
    loop {
        let (pid, status) = match sys::wait_any() {
            Ok(reaped) => reaped,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => exit(125),
        };
        if pid == w.as_raw() {
            let (ending, code) = if libc::WIFSIGNALED(status) {
                let signal = libc::WTERMSIG(status);
                (Ending::Signaled { signal }, 128 + signal)
            } else {
                let code = libc::WEXITSTATUS(status);
                (Ending::Exited { code }, code)
            };
            send(msg_w, &ChildMsg::Ending(ending));
            exit(code);
        }
    }
}

/// Leaves without the destructors and atexit handlers of the state copied from the init.
fn exit(code: i32) -> ! {
    sys::exit_immediately(code)
}
