//! W: the workload's last steps before exec, in the order that lets each layer be applied:
//! rlimits (inside the user namespace, where RLIMIT_NPROC counts only this sandbox), capability
//! bounding set (needs CAP_SETPCAP, so before the uid change), uid/gid, the remaining capability
//! sets (verified empty), no_new_privs (required for seccomp; also stops setuid gains),
//! Landlock, then seccomp last so it need not allow any setup syscall.
//!
//! The CPUs are cut to `max_cpus` first (`sys::keep_first_cpus`): thread pools of tokio (deno)
//! and libuv/V8 (node) size themselves from the CPUs they may use, which keeps their thread
//! counts under the task limit on a 64-core host.

use std::os::fd::OwnedFd;

use crate::sys;

use super::{caps, landlock, rlimits, seccomp, send, ChildMsg, LaunchSpec, SetupError, Step};

pub(super) fn main(spec: &LaunchSpec, msg_w: &OwnedFd) -> ! {
    let fail = |e: SetupError| -> ! {
        send(msg_w, &ChildMsg::Error(e));
        sys::exit_immediately(125)
    };
    // A new session: no controlling terminal, so /dev/tty and job-control signals cannot reach
    // the caller's terminal (TIOCSTI is also denied by seccomp).
    let _ = nix::unistd::setsid();
    // Dies with R (cannot fail for SIGKILL).
    let _ = sys::set_pdeathsig(libc::SIGKILL);
    // Best effort: a failure only leaves more CPUs, which the task limit still bounds.
    let _ = sys::keep_first_cpus(spec.max_cpus);

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
    // Cleared by the uid change above; armed again (R's death also ends the PID namespace).
    let _ = sys::set_pdeathsig(libc::SIGKILL);
    if let Err(e) = caps::clear_and_verify() {
        fail(SetupError::new(Step::Capabilities, e));
    }
    if let Err(e) = sys::set_no_new_privs() {
        fail(SetupError::new(
            Step::NoNewPrivs,
            format!("PR_SET_NO_NEW_PRIVS: {e}"),
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
    if let Err(e) = sys::close_range_cloexec(3) {
        fail(SetupError::new(Step::Exec, format!("close_range: {e}")));
    }
    if let Err(e) = seccomp::load(&spec.seccomp) {
        fail(SetupError::new(Step::Seccomp, e));
    }
    let prog = match std::ffi::CString::new(spec.program.as_os_str().as_encoded_bytes()) {
        Ok(p) => p,
        Err(_) => fail(SetupError::new(
            Step::Exec,
            "program path contains a NUL byte",
        )),
    };
    let err = sys::execve(&prog, &spec.argv, &spec.env);
    let mut e = SetupError::new(
        Step::Exec,
        format!("execve {}: {err}", spec.program.display()),
    );
    e.exit_code = match err.raw_os_error() {
        Some(libc::ENOENT) => 127,
        _ => 126,
    };
    send(msg_w, &ChildMsg::Error(e.clone()));
    sys::exit_immediately(e.exit_code)
}
