//! The seccomp filter: the last layer, loaded just before exec.
//!
//! It is a deny list over a default of allow: the interpreters use hundreds of syscalls and an
//! allow list would break them with every release, while the kernel attack surface worth cutting
//! is a short, well-known list (what Docker, bubblewrap and nsjail deny). Three details matter:
//! - `int` arguments (socket family, ioctl request) are compared on their low 32 bits, which is
//!   all the kernel reads: a 64-bit compare is bypassed with `socket(AF_VSOCK | 1 << 32, ..)`.
//! - x32 syscalls (nr | 0x40000000) and any other architecture are killed: a default-allow
//!   filter would otherwise let them through under numbers it never matches.
//! - clone3 passes its flags in memory that BPF cannot read, so it fails with ENOSYS and libc
//!   falls back to clone, whose flags we can check. openat2 likewise (its mode is in memory):
//!   ENOSYS, and callers fall back to openat.
//! - Facilities whose counters are shared with the host and have no per-run bound (legacy AIO's
//!   system-wide pool) or whose memory escapes the run's accounting (SysV shared memory outlives
//!   its creator and is not charged to an rlimit) fail with ENOSYS, as on a kernel built
//!   without them, so runtimes take their fallback instead of treating it as a hard error.
//! - Files of the run can never carry a setuid or setgid bit, nor be device nodes: `chmod`,
//!   `open(O_CREAT)` and `mknod` with those mode bits fail with EPERM. This matters for
//!   writable grants, whose files stay on the host after the run.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

/// A compiled filter, ready to load. Compiled once before the clone, so the fragile window
/// between fork and exec does no work that can fail for reasons other than the kernel's.
pub type Program = BpfProgram;

const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// Syscalls denied outright, by name (for reports and tests) and number.
pub const DENIED: &[(&str, i64)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("kcmp", libc::SYS_kcmp),
    ("process_madvise", libc::SYS_process_madvise),
    ("acct", libc::SYS_acct),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("syslog", libc::SYS_syslog),
    ("quotactl", libc::SYS_quotactl),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("uselib", libc::SYS_uselib),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
];

/// Syscalls that fail with ENOSYS (see the module comment): SysV IPC, legacy AIO, openat2.
pub const ENOSYS: &[(&str, i64)] = &[
    ("shmget", libc::SYS_shmget),
    ("shmat", libc::SYS_shmat),
    ("shmctl", libc::SYS_shmctl),
    ("shmdt", libc::SYS_shmdt),
    ("semget", libc::SYS_semget),
    ("semop", libc::SYS_semop),
    ("semtimedop", libc::SYS_semtimedop),
    ("semctl", libc::SYS_semctl),
    ("msgget", libc::SYS_msgget),
    ("msgsnd", libc::SYS_msgsnd),
    ("msgrcv", libc::SYS_msgrcv),
    ("msgctl", libc::SYS_msgctl),
    ("io_setup", libc::SYS_io_setup),
    ("io_destroy", libc::SYS_io_destroy),
    ("io_submit", libc::SYS_io_submit),
    ("io_cancel", libc::SYS_io_cancel),
    ("io_getevents", libc::SYS_io_getevents),
    ("io_pgetevents", SYS_IO_PGETEVENTS),
    ("clone3", libc::SYS_clone3),
    ("openat2", libc::SYS_openat2),
];

/// io_pgetevents (Linux 4.18), which the libc crate does not name for x86_64.
const SYS_IO_PGETEVENTS: i64 = 333;

/// fchmodat2 (Linux 6.6), which the libc crate may not name yet.
const SYS_FCHMODAT2: i64 = 452;

/// The mode bits no file of the run may carry.
const SET_ID_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];
/// Open flags that create a file (O_TMPFILE's own bit; O_TMPFILE also sets O_DIRECTORY).
const CREATING_FLAGS: [u64; 2] = [libc::O_CREAT as u64, 0o20_000_000];
/// File types of device nodes.
const DEVICE_TYPES: [u64; 2] = [libc::S_IFCHR as u64, libc::S_IFBLK as u64];

/// Namespace flags that clone() may not use from inside the sandbox.
const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// The only socket families the workload may create: AF_VSOCK reaches the host on these VMs,
/// AF_NETLINK and AF_PACKET reach kernel interfaces, none of which a script needs.
pub const ALLOWED_SOCKET_FAMILIES: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
];

/// Terminal ioctls that inject input (TIOCSTI) or reach the console (TIOCLINUX).
pub const DENIED_IOCTLS: &[(&str, u64)] = &[("TIOCSTI", 0x5412), ("TIOCLINUX", 0x541C)];

#[derive(Debug, thiserror::Error)]
#[error("seccomp: cannot compile the filter: {0}")]
pub struct CompileError(String);

fn cond(arg: u8, len: Len, op: Op, val: u64) -> Result<Cond, CompileError> {
    Cond::new(arg, len, op, val).map_err(|e| CompileError(e.to_string()))
}

fn rule(conds: Vec<Cond>) -> Result<SeccompRule, CompileError> {
    SeccompRule::new(conds).map_err(|e| CompileError(e.to_string()))
}

/// Builds the filter program.
pub fn compile() -> Result<Program, CompileError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(CompileError(
            "only x86_64 is supported so far; the x32 and arch checks are written for it".into(),
        ));
    }
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DENIED {
        rules.insert(*nr, vec![]);
    }
    // socket(family, ..) and socketpair(family, ..): family outside the allowed set.
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        let conds = ALLOWED_SOCKET_FAMILIES
            .iter()
            .map(|f| cond(0, Len::Dword, Op::Ne, *f))
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(nr, vec![rule(conds)?]);
    }
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|(_, req)| rule(vec![cond(1, Len::Dword, Op::Eq, *req)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    let clone_rules = CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|f| rule(vec![cond(0, Len::Qword, Op::MaskedEq(*f), *f)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    // Setuid/setgid bits: by mode argument (index) of each syscall that sets one.
    for (nr, mode_arg) in [
        (libc::SYS_chmod, 1),
        (libc::SYS_fchmod, 1),
        (libc::SYS_fchmodat, 2),
        (SYS_FCHMODAT2, 2),
    ] {
        let r = SET_ID_BITS
            .iter()
            .map(|bit| rule(vec![cond(mode_arg, Len::Dword, Op::MaskedEq(*bit), *bit)?]))
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(nr, r);
    }
    // open/openat with a creating flag and a set-id bit in the mode; creat always creates.
    for (nr, flags_arg, mode_arg) in [(libc::SYS_open, 1, 2), (libc::SYS_openat, 2, 3)] {
        let mut r = Vec::new();
        for flag in CREATING_FLAGS {
            for bit in SET_ID_BITS {
                r.push(rule(vec![
                    cond(flags_arg, Len::Dword, Op::MaskedEq(flag), flag)?,
                    cond(mode_arg, Len::Dword, Op::MaskedEq(bit), bit)?,
                ])?);
            }
        }
        rules.insert(nr, r);
    }
    let creat = SET_ID_BITS
        .iter()
        .map(|bit| rule(vec![cond(1, Len::Dword, Op::MaskedEq(*bit), *bit)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_creat, creat);
    // mknod/mknodat: no set-id bit, no character or block device.
    for (nr, mode_arg) in [(libc::SYS_mknod, 1), (libc::SYS_mknodat, 2)] {
        let mut r = SET_ID_BITS
            .iter()
            .map(|bit| rule(vec![cond(mode_arg, Len::Dword, Op::MaskedEq(*bit), *bit)?]))
            .collect::<Result<Vec<_>, _>>()?;
        for kind in DEVICE_TYPES {
            r.push(rule(vec![cond(
                mode_arg,
                Len::Dword,
                Op::MaskedEq(libc::S_IFMT as u64),
                kind,
            )?])?);
        }
        rules.insert(nr, r);
    }
    // prlimit64 on any process but the caller (pid 0): the reaper, the only sandbox process the
    // workload can name, must keep its limits (glibc's getrlimit/setrlimit pass 0).
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![cond(0, Len::Dword, Op::Ne, 0)?])?],
    );
    // personality(): only the query (0xffffffff) and plain PER_LINUX; READ_IMPLIES_EXEC and
    // ADDR_NO_RANDOMIZE weaken the process's own hardening.
    rules.insert(
        libc::SYS_personality,
        vec![rule(vec![
            cond(0, Len::Dword, Op::Ne, 0)?,
            cond(0, Len::Dword, Op::Ne, 0xffff_ffff)?,
        ])?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(|e| CompileError(e.to_string()))?;
    let body: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| CompileError(e.to_string()))?;
    let mut prog = prefix();
    prog.extend(body);
    Ok(prog)
}

/// Hand-written instructions that run before seccompiler's program: native arch only, no x32,
/// [`ENOSYS`] → ENOSYS. Jumps in BPF are relative, so prepending keeps the rest valid.
fn prefix() -> Vec<seccompiler::sock_filter> {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let mut prog = vec![
        ins(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        ins(JGE_K, 0, 1, X32_SYSCALL_BIT),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
    ];
    for (_, nr) in ENOSYS {
        prog.push(ins(JEQ_K, 0, 1, *nr as u32));
        prog.push(ins(
            RET_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ));
    }
    prog
}

/// Loads the program into this process. Needs no_new_privs (set before).
pub fn load(prog: &Program) -> Result<(), String> {
    seccompiler::apply_filter(prog).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiles() {
        let p = super::compile().unwrap();
        assert!(p.len() > 50);
        assert!(
            p.len() < 4096,
            "BPF programs are limited to 4096 instructions"
        );
    }
}
