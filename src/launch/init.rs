//! I: PID 1 of the sandbox's namespaces. Builds the root, starts the egress forwarder, clones
//! the reaper (which forks the workload in a nested PID namespace), and exits with the
//! reaper's status. Its exit kills everything left in the PID namespace.

use std::os::fd::OwnedFd;
use std::path::Path;

use super::{mounts, rlimits, send, ChildMsg, Ending, LaunchSpec, SetupError, Step};

/// Never returns: exits with the workload's status, or 125 after reporting a setup error.
pub(super) fn main(spec: &LaunchSpec, sync_r: OwnedFd, msg_w: OwnedFd) -> ! {
    // If H dies, so do we (and with us, the whole PID namespace).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
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
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };

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
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
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
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack) of this single-threaded process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWPID | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        fail(SetupError::new(
            Step::Fork,
            format!(
                "clone the reaper into a new PID namespace: {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    if r == 0 {
        super::reaper::main(spec, &msg_w);
    }
    let r = r as libc::pid_t;

    // Reap the forwarder when it ends; when the reaper ends, exit with its status, which kills
    // everything left in this PID namespace (the forwarder, and the nested namespace).
    loop {
        let mut status = 0;
        // SAFETY: wait for any child of PID 1.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            exit(125);
        }
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
    let mut p = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(sync_r),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing of the copied parent state.
    unsafe { libc::_exit(code) }
}

/// Brings up `lo` in the new network namespace, the only interface there is.
fn loopback_up() -> Result<(), String> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        let r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &mut ifr);
            if r != 0 {
                let e = std::io::Error::last_os_error();
                libc::close(s);
                return Err(format!("bring lo up: {e}"));
            }
        }
        libc::close(s);
    }
    Ok(())
}
