//! W: the workload's last steps before exec, in the order that lets each layer be applied:
//! rlimits (inside the user namespace, where RLIMIT_NPROC counts only this sandbox), capability
//! bounding set (needs CAP_SETPCAP, so before the uid change), uid/gid, the remaining capability
//! sets (verified empty), no_new_privs (required for seccomp; also stops setuid gains),
//! Landlock, then seccomp last so it need not allow any setup syscall.

use std::os::fd::OwnedFd;

use super::{caps, landlock, rlimits, seccomp, send, ChildMsg, LaunchSpec, SetupError, Step};

pub(super) fn main(spec: &LaunchSpec, msg_w: &OwnedFd) -> ! {
    let fail = |e: SetupError| -> ! {
        send(msg_w, &ChildMsg::Error(e));
        // SAFETY: _exit in a forked child.
        unsafe { libc::_exit(125) }
    };
    // A new session: no controlling terminal, so /dev/tty and job-control signals cannot reach
    // the caller's terminal (TIOCSTI is also denied by seccomp).
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with integer arguments. Dies with I.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    limit_cpus(spec.max_cpus);

    if let Err(e) = rlimits::apply(&spec.rlimits) {
        fail(SetupError::new(Step::Rlimits, e));
    }
    if let Err(e) = caps::drop_bounding_and_ambient() {
        fail(SetupError::new(Step::Capabilities, e));
    }
    let gid = nix::unistd::Gid::from_raw(spec.ids.inner_gid);
    let uid = nix::unistd::Uid::from_raw(spec.ids.inner_uid);
    if let Err(e) = nix::unistd::setresgid(gid, gid, gid) {
        fail(SetupError::new(
            Step::Capabilities,
            format!("setresgid({gid}): {e}"),
        ));
    }
    if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
        fail(SetupError::new(
            Step::Capabilities,
            format!("setresuid({uid}): {e}"),
        ));
    }
    if let Err(e) = caps::clear_and_verify() {
        fail(SetupError::new(Step::Capabilities, e));
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        fail(SetupError::new(
            Step::NoNewPrivs,
            format!("PR_SET_NO_NEW_PRIVS: {}", std::io::Error::last_os_error()),
        ));
    }
    match landlock::apply(&spec.landlock) {
        Ok(outcome) => send(msg_w, &ChildMsg::Landlock(Some(outcome))),
        Err(landlock::ApplyError::Unsupported(e)) if spec.landlock_required => {
            fail(SetupError::new(Step::Landlock, e))
        }
        Err(landlock::ApplyError::Unsupported(_)) => send(msg_w, &ChildMsg::Landlock(None)),
        Err(landlock::ApplyError::Failed(e)) => {
            let mut err = SetupError::new(Step::Landlock, e);
            err.fix = "a path of the plan could not be fenced; report this with `sandbox-run --explain` output".into();
            fail(err)
        }
    }
    if let Err(e) = nix::unistd::chdir(&spec.workdir) {
        fail(SetupError::new(
            Step::Exec,
            format!("working directory {}: {e}", spec.workdir.display()),
        ));
    }
    // Every fd above 2 is closed at exec (the message pipe too, which tells H the exec worked).
    // SAFETY: close_range with the CLOEXEC flag only marks descriptors.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        fail(SetupError::new(
            Step::Exec,
            format!("close_range: {}", std::io::Error::last_os_error()),
        ));
    }
    if let Err(e) = seccomp::load(&spec.seccomp) {
        fail(SetupError::new(Step::Seccomp, e));
    }
    let argv: Vec<*const libc::c_char> = spec
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = spec
        .env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let prog = match std::ffi::CString::new(spec.program.as_os_str().as_encoded_bytes()) {
        Ok(p) => p,
        Err(_) => fail(SetupError::new(
            Step::Exec,
            "program path contains a NUL byte",
        )),
    };
    // SAFETY: NUL-terminated arrays of C strings that outlive the call.
    unsafe { libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let err = std::io::Error::last_os_error();
    let mut e = SetupError::new(
        Step::Exec,
        format!("execve {}: {err}", spec.program.display()),
    );
    e.exit_code = match err.raw_os_error() {
        Some(libc::ENOENT) => 127,
        _ => 126,
    };
    send(msg_w, &ChildMsg::Error(e.clone()));
    // SAFETY: _exit in a forked child.
    unsafe { libc::_exit(e.exit_code) }
}

/// Restricts the workload to at most `max` CPUs (the first ones it may use). Thread pools of
/// tokio (deno) and libuv/V8 (node) size themselves from this, which keeps their thread counts
/// under the task limit on a 64-core host. Best effort: a failure only leaves more CPUs.
fn limit_cpus(max: usize) {
    // SAFETY: sched_getaffinity/sched_setaffinity on this process with a zeroed set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return;
        }
        let mut kept = 0;
        for cpu in 0..libc::CPU_SETSIZE as usize {
            if libc::CPU_ISSET(cpu, &set) {
                if kept >= max {
                    libc::CPU_CLR(cpu, &mut set);
                } else {
                    kept += 1;
                }
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
