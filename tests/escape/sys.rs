//! The syscall-level attempts of probes/escape.py `sys`: one guest process in the sandbox, one
//! bare, shared by all tests of this module.

use std::process::Command;
use std::sync::OnceLock;

use crate::support::*;

pub const SECRET: &str = "s3cr3t-token-escape-suite";

pub struct Runs {
    pub sandbox: Results,
    pub bare: Results,
    pub shm_key: i32,
    pub host_pid: u32,
}

/// Runs the `sys` group once in the sandbox and once bare. The sandbox is started through a
/// python wrapper that leaves fds 3, 4 and 5 open (not close-on-exec) and with SECRET_TOKEN in
/// sandbox-run's environment; a SysV shm segment exists on the host for the run.
pub fn runs() -> &'static Runs {
    static R: OnceLock<Runs> = OnceLock::new();
    R.get_or_init(|| {
        let key = 0x5e_0000 + (std::process::id() as i32 % 0xffff);
        let shm = crate::support::ffi::HostShm::create(key).expect("host shmget");
        let host_pid = std::process::id();
        let leak = "import os,sys\nfds=[os.open('/etc/hostname',os.O_RDONLY) for _ in range(3)]\nfor f in fds: os.set_inheritable(f,True)\nos.execv(sys.argv[1],sys.argv[1:])";
        let mut c = Command::new(runtime("python3"));
        c.arg("-c").arg(leak).arg(sandbox_run());
        let inner = sandbox_cmd(
            &["--env", &format!("HOST_PID={host_pid}"), "--env", &format!("SHM_KEY={key}")],
            &["python3", &probe("escape.py"), "sandbox", "sys"],
        );
        c.args(inner.get_args())
            .env("PATH", path_env())
            .env("SECRET_TOKEN", SECRET)
            .current_dir("/");
        let out = c.output().expect("spawn sandbox-run");
        let sandbox = parse(&out.stdout);
        assert!(out.status.success(), "sandboxed sys probe failed: {}", show(&out));

        let bare_out = Command::new("unshare")
            .args(["--mount", "--uts", "--propagation", "private", "--"])
            .arg(runtime("python3"))
            .arg("-c")
            .arg(leak)
            .arg(runtime("python3"))
            .args([&probe("escape.py"), "bare", "sys"])
            .env("HOST_PID", host_pid.to_string())
            .env("SHM_KEY", key.to_string())
            .env("SECRET_TOKEN", SECRET)
            .output()
            .expect("spawn bare probe");
        drop(shm);
        assert!(bare_out.status.success(), "bare sys probe failed: {}", show(&bare_out));
        Runs {
            sandbox,
            bare: parse(&bare_out.stdout),
            shm_key: key,
            host_pid,
        }
    })
}

/// Kernel facilities this host's kernel lacks: bare, they fail with ENOSYS (still past any
/// permission check, so still a non-EPERM baseline), which the test reports.
const BARE_ENOSYS_OK: &[&str] = &[
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "uselib",
];

fn denied(name: &str) {
    let r = runs();
    for a in [format!("denied:{name}"), format!("denied_hi:{name}")] {
        assert_errno(&r.sandbox, &a, "EPERM", "seccomp deny list");
        assert_bare_reaches(&r.bare, &a, "EPERM");
        if errno(&r.bare, &a).as_deref() == Some("ENOSYS") {
            assert!(
                BARE_ENOSYS_OK.contains(&name),
                "baseline: bare `{a}` is ENOSYS on this host, unexpected for {name}"
            );
            eprintln!("note: {name} is not built into this host kernel (bare ENOSYS); the sandbox still answers EPERM first");
        }
    }
}

macro_rules! denied_tests {
    ($($t:ident => $n:literal),* $(,)?) => {
        $( #[test] fn $t() { denied($n); } )*
        /// Every syscall of seccomp.rs's DENIED list has an attempt above (no drift).
        #[test]
        fn seccomp_every_denied_syscall_is_probed() {
            let probed: &[&str] = &[$($n),*];
            for (name, _) in code_executor::launch::seccomp::DENIED {
                assert!(probed.contains(name), "seccomp.rs denies {name} but tests/escape/sys.rs has no attempt for it");
                assert!(runs().sandbox.contains_key(&format!("denied:{name}")), "probe has no attempt for {name}");
            }
        }
    };
}

denied_tests! {
    seccomp_denies_ptrace => "ptrace",
    seccomp_denies_process_vm_readv => "process_vm_readv",
    seccomp_denies_process_vm_writev => "process_vm_writev",
    seccomp_denies_bpf => "bpf",
    seccomp_denies_perf_event_open => "perf_event_open",
    seccomp_denies_userfaultfd => "userfaultfd",
    seccomp_denies_io_uring_setup => "io_uring_setup",
    seccomp_denies_io_uring_enter => "io_uring_enter",
    seccomp_denies_io_uring_register => "io_uring_register",
    seccomp_denies_keyctl => "keyctl",
    seccomp_denies_add_key => "add_key",
    seccomp_denies_request_key => "request_key",
    seccomp_denies_kexec_load => "kexec_load",
    seccomp_denies_kexec_file_load => "kexec_file_load",
    seccomp_denies_init_module => "init_module",
    seccomp_denies_finit_module => "finit_module",
    seccomp_denies_delete_module => "delete_module",
    seccomp_denies_mount => "mount",
    seccomp_denies_umount2 => "umount2",
    seccomp_denies_fsopen => "fsopen",
    seccomp_denies_fsconfig => "fsconfig",
    seccomp_denies_fsmount => "fsmount",
    seccomp_denies_fspick => "fspick",
    seccomp_denies_move_mount => "move_mount",
    seccomp_denies_open_tree => "open_tree",
    seccomp_denies_mount_setattr => "mount_setattr",
    seccomp_denies_pivot_root => "pivot_root",
    seccomp_denies_chroot => "chroot",
    seccomp_denies_unshare => "unshare",
    seccomp_denies_setns => "setns",
    seccomp_denies_open_by_handle_at => "open_by_handle_at",
    seccomp_denies_name_to_handle_at => "name_to_handle_at",
    seccomp_denies_pidfd_getfd => "pidfd_getfd",
    seccomp_denies_kcmp => "kcmp",
    seccomp_denies_process_madvise => "process_madvise",
    seccomp_denies_acct => "acct",
    seccomp_denies_swapon => "swapon",
    seccomp_denies_swapoff => "swapoff",
    seccomp_denies_reboot => "reboot",
    seccomp_denies_syslog => "syslog",
    seccomp_denies_quotactl => "quotactl",
    seccomp_denies_lookup_dcookie => "lookup_dcookie",
    seccomp_denies_iopl => "iopl",
    seccomp_denies_ioperm => "ioperm",
    seccomp_denies_uselib => "uselib",
    seccomp_denies_fanotify_init => "fanotify_init",
    seccomp_denies_settimeofday => "settimeofday",
    seccomp_denies_clock_settime => "clock_settime",
    seccomp_denies_clock_adjtime => "clock_adjtime",
    seccomp_denies_sethostname => "sethostname",
    seccomp_denies_setdomainname => "setdomainname",
}

#[test]
fn layers_in_force_in_the_guest() {
    let r = runs();
    let st = r.sandbox.get("status").expect("status line");
    assert_eq!(st["seccomp"], "2", "seccomp filter mode: {st}");
    assert_eq!(st["nnp"], "1", "no_new_privs: {st}");
    assert_eq!(st["capeff"], "0000000000000000", "effective caps: {st}");
    assert_eq!(st["capbnd"], "0000000000000000", "bounding caps: {st}");
    assert_eq!(st["uid"], 1000);
    let b = r.bare.get("status").unwrap();
    assert_eq!(b["seccomp"], "0", "baseline: bare has no filter: {b}");
    assert_eq!(b["uid"], 0, "baseline: the suite runs as root: {b}");
}

/// Socket families other than unix/inet/inet6, and the same family with bit 32 set (the
/// kernel reads an int; a 64-bit compare would be bypassed).
#[test]
fn socket_families_denied_including_32_bit_variants() {
    let r = runs();
    for fam in [
        "AF_VSOCK",
        "AF_NETLINK",
        "AF_PACKET",
        "AF_ALG",
        "AF_BLUETOOTH",
        "AF_KEY",
        "AF_XDP",
        "AF_CAN",
        "AF_TIPC",
        "AF_RDS",
    ] {
        for a in [format!("socket:{fam}"), format!("socket_hi:{fam}")] {
            assert_errno(
                &r.sandbox,
                &a,
                "EPERM",
                "seccomp socket family filter (32-bit compare)",
            );
            // Bare: created, or EAFNOSUPPORT where this kernel lacks the family (never EPERM).
            assert_bare_reaches(&r.bare, &a, "EPERM");
        }
    }
    // Families this host supports: created bare as root.
    for fam in ["AF_VSOCK", "AF_NETLINK", "AF_PACKET", "AF_XDP"] {
        assert!(
            ret(&r.bare, &format!("socket_hi:{fam}")).is_number(),
            "baseline: bare socket_hi:{fam} should succeed: {:?}",
            r.bare.get(&format!("socket_hi:{fam}"))
        );
    }
    for fam in ["AF_NETLINK", "AF_VSOCK"] {
        for a in [format!("socketpair:{fam}"), format!("socketpair_hi:{fam}")] {
            assert_errno(&r.sandbox, &a, "EPERM", "seccomp socketpair family filter");
            assert_bare_reaches(&r.bare, &a, "EPERM");
        }
    }
    assert!(
        ret(&r.sandbox, "socket:AF_UNIX").is_number(),
        "AF_UNIX stays allowed"
    );
    assert!(
        ret(&r.sandbox, "socket:AF_INET").is_number(),
        "AF_INET stays allowed"
    );
}

#[test]
fn raw_and_icmp_sockets_denied() {
    let r = runs();
    assert_errno(&r.sandbox, "socket:raw_icmp", "EPERM", "no CAP_NET_RAW");
    assert_errno(&r.sandbox, "socket:raw_tcp6", "EPERM", "no CAP_NET_RAW");
    assert!(
        ret(&r.bare, "socket:raw_icmp").is_number(),
        "baseline: root opens raw sockets bare"
    );
    // Unprivileged ICMP: net.ipv4.ping_group_range of the fresh netns is "1 0" (nobody).
    assert_errno(
        &r.sandbox,
        "socket:ping_dgram",
        "EACCES",
        "ping_group_range of the sandbox's netns",
    );
    assert_errno(
        &r.bare,
        "socket:ping_dgram",
        "EACCES",
        "baseline: this host's ping_group_range is `1 0` too",
    );
}

#[test]
fn tiocsti_and_tioclinux_denied_including_32_bit_variants() {
    let r = runs();
    for a in [
        "ioctl:TIOCSTI_devnull",
        "ioctl_hi:TIOCSTI_devnull",
        "ioctl:TIOCLINUX_devnull",
        "ioctl_hi:TIOCLINUX_devnull",
    ] {
        assert_errno(
            &r.sandbox,
            a,
            "EPERM",
            "seccomp ioctl filter, before the tty layer",
        );
        assert_errno(
            &r.bare,
            a,
            "ENOTTY",
            "baseline: bare the ioctl reaches the driver",
        );
    }
}

#[test]
fn new_namespaces_by_unshare_denied() {
    let r = runs();
    for f in [
        "CLONE_NEWUSER",
        "CLONE_NEWNS",
        "CLONE_NEWPID",
        "CLONE_NEWNET",
        "CLONE_NEWIPC",
        "CLONE_NEWUTS",
        "CLONE_NEWCGROUP",
        "CLONE_NEWTIME",
    ] {
        let a = format!("unshare:{f}");
        assert_errno(&r.sandbox, &a, "EPERM", "seccomp denies unshare");
        assert_eq!(
            ret(&r.bare, &a),
            0,
            "baseline: bare unshare({f}) works: {:?}",
            r.bare.get(&a)
        );
    }
}

#[test]
fn new_namespaces_by_clone_denied() {
    let r = runs();
    for f in [
        "CLONE_NEWUSER",
        "CLONE_NEWNS",
        "CLONE_NEWPID",
        "CLONE_NEWNET",
        "CLONE_NEWIPC",
        "CLONE_NEWUTS",
        "CLONE_NEWCGROUP",
    ] {
        let a = format!("clone:{f}");
        assert_errno(&r.sandbox, &a, "EPERM", "seccomp clone namespace-flag rule");
        assert_eq!(ret(&r.bare, &a), "child", "baseline: bare clone({f}) works");
    }
}

#[test]
fn clone3_is_enosys() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "clone3",
        "ENOSYS",
        "clone3 flags are unreadable by BPF: ENOSYS so libc falls back to clone",
    );
    assert_eq!(
        ret(&r.bare, "clone3"),
        "child",
        "baseline: bare clone3 forks"
    );
}

#[test]
fn personality_flags_denied() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "personality:READ_IMPLIES_EXEC",
        "EPERM",
        "seccomp personality rule",
    );
    assert_errno(
        &r.sandbox,
        "personality:ADDR_NO_RANDOMIZE",
        "EPERM",
        "seccomp personality rule",
    );
    assert!(
        ret(&r.sandbox, "personality:query").is_number(),
        "the query stays allowed"
    );
    assert!(
        ret(&r.bare, "personality:READ_IMPLIES_EXEC").is_number(),
        "baseline: bare works"
    );
}

#[test]
fn ptrace_and_process_vm_on_init_and_parent_denied() {
    let r = runs();
    assert_eq!(
        r.sandbox["status"]["ppid"], 1,
        "the workload's parent is the sandbox init"
    );
    for who in ["init", "parent"] {
        for a in [
            format!("ptrace_attach:{who}"),
            format!("process_vm_readv:{who}"),
            format!("process_vm_writev:{who}"),
        ] {
            assert_errno(&r.sandbox, &a, "EPERM", "seccomp");
            assert!(
                ret(&r.bare, &a).is_number(),
                "baseline: bare `{a}` on the probe's own child works: {:?}",
                r.bare.get(&a)
            );
        }
    }
}

#[test]
fn init_environ_mem_fd_unreadable() {
    let r = runs();
    for a in [
        "proc1:environ",
        "proc1:mem",
        "proc1:fd",
        "proc1:exe_readlink",
    ] {
        assert_errno(
            &r.sandbox,
            a,
            "EACCES",
            "init is non-dumpable: ptrace access mode check",
        );
        assert!(
            errno(&r.bare, a).is_none(),
            "baseline: bare `{a}` works on a same-user child: {:?}",
            r.bare.get(a)
        );
    }
}

#[test]
fn write_through_proc_exe_denied() {
    let r = runs();
    assert_errno(
        &r.sandbox,
        "proc1:exe_write",
        "EACCES",
        "init is non-dumpable",
    );
    assert_errno(
        &r.sandbox,
        "procself:exe_write",
        "EACCES",
        "Landlock: the interpreter is read-only",
    );
    assert_errno(
        &r.bare,
        "proc1:exe_write",
        "ETXTBSY",
        "baseline: bare, only the running-text check stops root",
    );
    assert_errno(&r.bare, "procself:exe_write", "ETXTBSY", "baseline");
}

#[test]
fn init_cannot_be_killed() {
    let r = runs();
    assert_errno(&r.sandbox, "kill:init", "EPERM", "Landlock signal scope");
    assert!(
        errno(&r.bare, "kill:init").is_none(),
        "baseline: root may signal"
    );
}

#[test]
fn host_processes_invisible_and_unsignalable() {
    let r = runs();
    // The workload is not always PID 2: the init forks short-lived helpers first (to take the
    // granted mounts), which have exited by now.
    let own = &r.sandbox["proc:pids"]["own"];
    assert_eq!(
        ret(&r.sandbox, "proc:pids"),
        &serde_json::json!([1, own]),
        "only init and the workload are visible"
    );
    assert_errno(&r.sandbox, "kill:host_pid", "ESRCH", "PID namespace");
    assert_errno(
        &r.sandbox,
        "proc:host_pid_dir",
        "ENOENT",
        "fresh /proc of the PID namespace",
    );
    assert!(
        errno(&r.bare, "kill:host_pid").is_none(),
        "baseline: bare sees the harness (pid {})",
        r.host_pid
    );
    assert!(ret(&r.bare, "proc:pids").as_array().unwrap().len() > 2);
}

#[test]
fn environment_secrets_not_visible() {
    let r = runs();
    assert_eq!(
        ret(&r.sandbox, "env:secret"),
        &serde_json::Value::Null,
        "SECRET_TOKEN leaked into the guest"
    );
    let keys = ret(&r.sandbox, "env:keys").to_string();
    assert!(!keys.contains("SECRET"), "{keys}");
    assert_eq!(ret(&r.sandbox, "env:self_environ_has_secret"), false);
    assert_errno(
        &r.sandbox,
        "proc1:environ",
        "EACCES",
        "init's environ (sandbox-run's) is unreadable",
    );
    assert_eq!(
        ret(&r.bare, "env:secret"),
        SECRET,
        "baseline: bare the variable is inherited"
    );
}

#[test]
fn hostname_isolated() {
    let r = runs();
    assert_eq!(ret(&r.sandbox, "uts:nodename"), "sandbox");
    assert_errno(&r.sandbox, "uts:sethostname", "EPERM", "seccomp");
    assert_eq!(
        ret(&r.bare, "uts:sethostname"),
        true,
        "baseline: bare root may (in a private UTS ns)"
    );
}

#[test]
fn sysv_ipc_isolated() {
    let r = runs();
    // SysV IPC is ENOSYS inside (hostres.rs); the IPC namespace stands behind it, and its
    // /proc/sysvipc shows none of the host's segments.
    assert_errno(
        &r.sandbox,
        "ipc:shmget_host_key",
        "ENOSYS",
        "seccomp, then the IPC namespace",
    );
    assert_eq!(ret(&r.sandbox, "ipc:proc_sysvipc_shm_has_key"), false);
    assert!(
        ret(&r.bare, "ipc:shmget_host_key").is_number(),
        "baseline: bare finds key {:#x}",
        r.shm_key
    );
    assert_eq!(ret(&r.bare, "ipc:proc_sysvipc_shm_has_key"), true);
}

#[test]
fn no_pty_can_be_opened() {
    let r = runs();
    assert_errno(&r.sandbox, "pty:openpty", "ENOENT", "no /dev/ptmx");
    assert_errno(&r.sandbox, "pty:ptmx", "ENOENT", "no /dev/ptmx");
    assert_errno(&r.sandbox, "pty:dev_tty", "ENOENT", "no /dev/tty");
    assert_eq!(ret(&r.bare, "pty:openpty"), "opened", "baseline");
}

#[test]
fn leaked_fds_closed() {
    let r = runs();
    assert_eq!(
        ret(&r.sandbox, "fd:leaked"),
        &serde_json::json!([]),
        "fds above 2 reached the guest"
    );
    let bare = ret(&r.bare, "fd:leaked").to_string();
    assert!(
        bare.contains("3") && bare.contains("5"),
        "baseline: the wrapper leaks fds 3..5 bare: {bare}"
    );
}

#[test]
fn x32_syscall_killed_by_sigsys() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let out = sandbox_cmd(
        &["--report", rep.to_str().unwrap()],
        &["python3", &probe("escape.py"), "sandbox", "x32"],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(159),
        "x32 getpid must be killed by SIGSYS (128+31): {}",
        show(&out)
    );
    assert_eq!(report(&rep)["signal"], 31);
    let bare = Command::new(runtime("python3"))
        .args([&probe("escape.py"), "bare", "x32"])
        .output()
        .unwrap();
    let b = parse(&bare.stdout);
    // This host kernel is built without CONFIG_X86_X32_ABI: bare x32 calls fail with ENOSYS.
    // Where x32 is enabled, the bare call returns the pid instead.
    let e = errno(&b, "x32:getpid");
    assert!(
        e.as_deref() == Some("ENOSYS") || ret(&b, "x32:getpid").is_number(),
        "baseline: bare x32 getpid: {b:?}"
    );
}

#[test]
fn i386_int80_syscall_killed_by_sigsys() {
    let out = sandbox_cmd(&[], &["python3", &probe("escape.py"), "sandbox", "i386"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(159),
        "int 0x80 (foreign audit arch) must be killed by SIGSYS: {}",
        show(&out)
    );
    let bare = Command::new(runtime("python3"))
        .args([&probe("escape.py"), "bare", "i386"])
        .output()
        .unwrap();
    let b = parse(&bare.stdout);
    let v = b
        .get("i386:getpid")
        .unwrap_or_else(|| panic!("baseline: {}", show(&bare)));
    assert_eq!(
        v["ret"], v["pid"],
        "baseline: bare int 0x80 getpid works (IA32 emulation on)"
    );
}
