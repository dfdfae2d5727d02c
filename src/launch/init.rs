//! I: PID 1 of the sandbox's namespaces. Builds the root, starts the egress forwarder, clones
//! the reaper (which forks the workload in a nested PID namespace), and exits with the
//! reaper's status. Its exit kills everything left in the PID namespace.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::unistd::ForkResult;

use crate::sys;

use super::{mounts, rlimits, send, ChildMsg, Ending, LaunchSpec, SetupError, Step};

/// Never returns: exits with the workload's status, or 125 after reporting a setup error.
pub(super) fn main(spec: &LaunchSpec, sync_r: OwnedFd, msg_w: OwnedFd) -> ! {
    // If H dies, so do we (and with us, the whole PID namespace). Cannot fail for SIGKILL.
    let _ = sys::set_pdeathsig(libc::SIGKILL);
    // Wait for H to write our id maps. EOF instead of a byte: H died before the prctl above
    // took effect, or gave up; either way, stop.
    let mut b = [0u8; 1];
    match nix::unistd::read(&sync_r, &mut b) {
        Ok(1) => {}
        _ => exit(125),
    }
    let fail = |e: SetupError| -> ! {
        send(&msg_w, &ChildMsg::Error(e));
        exit(125)
    };
    // We are single-threaded and not yet dumpable-restricted; nothing of the host may be
    // inspected through us, so mark the process undumpable (it also blocks /proc/1/mem access).
    if let Err(e) = sys::set_dumpable(false) {
        fail(SetupError::new(
            Step::Namespaces,
            format!("PR_SET_DUMPABLE 0: {e}"),
        ));
    }

    // Detached mounts of H's descriptors, then a mount namespace of our own (see take_sources).
    let sources = match mounts::take_sources(&spec.mounts) {
        Ok(s) => s,
        Err(e) => fail(SetupError::new(Step::Mounts, e)),
    };
    // Become the mapped inner id. Started by root, we are host uid 0, which is not mapped in
    // this namespace: files we create would have no representable owner (EOVERFLOW). Namespace
    // root (0) is unmapped too, so the kernel keeps our namespace capabilities across this
    // change; the workload drops them later.
    let gid = nix::unistd::Gid::from_raw(spec.ids.inner_gid);
    let uid = nix::unistd::Uid::from_raw(spec.ids.inner_uid);
    if let Err(e) =
        nix::unistd::setresgid(gid, gid, gid).and_then(|_| nix::unistd::setresuid(uid, uid, uid))
    {
        fail(SetupError::new(
            Step::IdMaps,
            format!("switch to the mapped id {uid}: {e}"),
        ));
    }
    // The kernel clears the parent-death signal when credentials change: arm it again, then
    // make sure H did not die in between (it holds the sync pipe's write end until we exit,
    // so a hang-up on our end means it is gone).
    let _ = sys::set_pdeathsig(libc::SIGKILL);
    if helper_gone(&sync_r) {
        exit(125);
    }

    let newroot = Path::new("/tmp");
    if let Err(e) = mounts::build_root(&spec.mounts, &sources, newroot) {
        let step = if e.contains("/proc") {
            Step::Proc
        } else {
            Step::Mounts
        };
        fail(SetupError::new(step, e));
    }
    drop(sources);
    if let Err(e) = mounts::pivot(newroot) {
        fail(SetupError::new(Step::PivotRoot, e));
    }
    if let Err(e) = nix::unistd::sethostname(&spec.hostname) {
        fail(SetupError::new(Step::Hostname, format!("sethostname: {e}")));
    }
    if let Err(e) = loopback_up() {
        fail(SetupError::new(Step::Loopback, e));
    }
    // Wait until H has put us in the run's cgroup: the forwarder and the workload must be born inside it.
    match nix::unistd::read(&sync_r, &mut b) {
        Ok(1) if b[0] == b'2' => {}
        _ => exit(125),
    }
    drop(sync_r);
    // The bounds of per-user counters, inherited by every process of the run from here on.
    if let Err(e) = rlimits::apply_host_bounds() {
        fail(SetupError::new(Step::Rlimits, e));
    }
    if spec.egress {
        if let Err(e) = super::egress::start_forwarder(&spec.seccomp) {
            fail(SetupError::new(Step::Loopback, e));
        }
    }

    // The reaper, PID 1 of a nested PID namespace, forks the workload there (see `reaper`).
    let r = match sys::clone_process(libc::CLONE_NEWPID | libc::SIGCHLD) {
        Ok(ForkResult::Child) => super::reaper::main(spec, &msg_w),
        Ok(ForkResult::Parent { child }) => child.as_raw(),
        Err(e) => fail(SetupError::new(
            Step::Fork,
            format!("clone the reaper into a new PID namespace: {e}"),
        )),
    };

    // Reap the forwarder when it ends; when the reaper ends, exit with its status, which kills
    // everything left in this PID namespace (the forwarder, and the nested namespace).
    loop {
        let (pid, status) = match sys::wait_any() {
            Ok(reaped) => reaped,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => exit(125),
        };
        if pid == r {
            if libc::WIFSIGNALED(status) {
                // The reaper itself was killed (the memory cgroup's OOM killer, or the workload
                // lowering its own limits): it could not report, so the init does.
                let signal = libc::WTERMSIG(status);
                send(&msg_w, &ChildMsg::Ending(Ending::Signaled { signal }));
                exit(128 + signal);
            }
            exit(libc::WEXITSTATUS(status));
        }
    }
}

/// True when the write end of the sync pipe (held by H) is closed.
fn helper_gone(sync_r: &OwnedFd) -> bool {
    let mut p = [sys::PollFd::new(sync_r.as_fd(), libc::POLLIN)];
    matches!(sys::poll(&mut p, 0), Ok(n) if n > 0)
        && p[0].revents() & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Leaves without the destructors and atexit handlers of the state copied from H.
fn exit(code: i32) -> ! {
    sys::exit_immediately(code)
}

/// Brings up `lo` in the new network namespace, the only interface there is.
fn loopback_up() -> Result<(), String> {
    let lo = c"lo";
    let sock = sys::inet_dgram_socket().map_err(|e| format!("socket: {e}"))?;
    let flags =
        sys::interface_flags(sock.as_fd(), lo).map_err(|e| format!("read lo's flags: {e}"))?;
    let up = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    sys::set_interface_flags(sock.as_fd(), lo, flags | up).map_err(|e| format!("bring lo up: {e}"))
}
