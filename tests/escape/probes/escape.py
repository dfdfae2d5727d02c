#!/usr/bin/env python3
"""Escape and abuse probes. `escape.py MODE GROUP [ARGS]`, MODE is `sandbox` or `bare`.

Every attempt prints one JSON line: {"a": attempt, "ret": value} or {"a": attempt, "errno": "EPERM"}
(plus extra fields). The Rust harness (tests/escape.rs) runs the same groups inside sandbox-run
and bare on the host, and asserts the exact outcome of each. Attempts that would harm the host
when run bare as root use harmless invalid arguments, or a target the probe owns.
"""
import ctypes, errno, json, os, signal, socket, struct, sys, time

MODE, GROUP = sys.argv[1], sys.argv[2]
ARGS = sys.argv[3:]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def out(a, **kw):
    kw["a"] = a
    print(json.dumps(kw), flush=True)


def ename(e):
    return errno.errorcode.get(e, str(e))


def sc(nr, *args):
    """Raw syscall with 64-bit arguments; returns (ret, errno name or None)."""
    cargs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *cargs)
    return (r, ename(ctypes.get_errno()) if r == -1 else None)


def rec(a, nr, *args, close=False):
    r, e = sc(nr, *args)
    if e:
        out(a, errno=e)
    else:
        out(a, ret=r)
        if close and r > 2:
            os.close(r)


def attempt(a, fn):
    """Runs fn; records its return value or the OSError's errno."""
    try:
        v = fn()
        out(a, ret=v)
    except OSError as ex:
        out(a, errno=ename(ex.errno) if ex.errno else str(ex))


def in_child(fn):
    """Runs fn in a forked child (so bare runs do not change the probe's own namespaces);
    returns ('ok', value) or ('errno', name)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            res = {"ret": fn()}
        except OSError as ex:
            res = {"errno": ename(ex.errno)}
        except Exception as ex:  # noqa
            res = {"exc": repr(ex)}
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        c = os.read(r, 4096)
        if not c:
            break
        data += c
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data or b'{"exc":"child died"}')


HI = 1 << 32
s = ctypes.c_char_p
NONEXIST = s(b"/nonexistent-escape-probe")

# Denied syscalls of src/launch/seccomp.rs, each with arguments that are harmless for root on
# the host (bare run): they reach the kernel and fail on the arguments, or are no-ops.
DENIED = [
    ("ptrace", 101, (0x4206 + 1000, 0, 0, 0)),  # unknown request on pid 0 -> ESRCH
    ("process_vm_readv", 310, ("SELF", 0, 0, 0, 0, 0)),  # zero iovecs on self -> 0
    ("process_vm_writev", 311, ("SELF", 0, 0, 0, 0, 0)),
    ("bpf", 321, (9999, 0, 0)),  # unknown command -> EINVAL
    ("perf_event_open", 298, (0, 0, -1, -1, 0)),  # NULL attr -> EFAULT
    ("userfaultfd", 323, (0x7fff0000,)),  # bad flags -> EINVAL
    ("io_uring_setup", 425, (0, 0)),  # 0 entries -> EINVAL/EFAULT
    ("io_uring_enter", 426, (-1, 0, 0, 0, 0, 0)),  # EBADF
    ("io_uring_register", 427, (-1, 0, 0, 0)),  # EBADF
    ("keyctl", 250, (99999, 0, 0, 0, 0)),  # unknown op -> EOPNOTSUPP
    ("add_key", 248, (0, 0, 0, 0, 0)),  # NULL type -> EFAULT
    ("request_key", 249, (0, 0, 0, 0)),  # NULL type -> EFAULT
    ("kexec_load", 246, (0, 0, 0, 0x100)),  # undefined flag -> EINVAL (or EPERM if disabled)
    ("kexec_file_load", 320, (-1, -1, 0, 0, 0x100)),  # EINVAL/EBADF
    ("init_module", 175, (0, 0, NONEXIST)),  # NULL image -> EFAULT
    ("finit_module", 313, (-1, s(b""), 0)),  # EBADF
    ("delete_module", 176, (s(b"no_such_module_escape"), os.O_NONBLOCK)),  # ENOENT
    ("mount", 165, (s(b"none"), NONEXIST, s(b"tmpfs"), 0, 0)),  # ENOENT
    ("umount2", 166, (NONEXIST, 0)),  # ENOENT
    ("fsopen", 430, (s(b"no_such_fs_escape"), 0)),  # ENODEV
    ("fsconfig", 431, (-1, 0, 0, 0, 0)),  # EBADF/EINVAL
    ("fsmount", 432, (-1, 0, 0)),  # EBADF
    ("fspick", 433, (-100, NONEXIST, 0)),  # ENOENT
    ("move_mount", 429, (-100, NONEXIST, -100, NONEXIST, 0)),  # ENOENT
    ("open_tree", 428, (-100, NONEXIST, 0)),  # ENOENT
    ("mount_setattr", 442, (-100, NONEXIST, 0, 0, 0)),  # EINVAL/ENOENT
    ("pivot_root", 155, (NONEXIST, NONEXIST)),  # ENOENT
    ("chroot", 161, (NONEXIST,)),  # ENOENT
    ("unshare", 272, (0,)),  # no flags: a no-op -> 0
    ("setns", 308, (-1, 0)),  # EBADF
    ("open_by_handle_at", 304, (-1, 0, 0)),  # EBADF/EFAULT
    ("name_to_handle_at", 303, (-100, NONEXIST, 0, 0, 0)),  # ENOENT/EFAULT
    ("pidfd_getfd", 438, (-1, 0, 0)),  # EBADF
    ("kcmp", 312, ("SELF", "SELF", 0, 0, 0)),  # KCMP_FILE fd 0 vs 0 -> 0
    ("process_madvise", 440, (-1, 0, 0, 0, 0)),  # EBADF
    ("acct", 163, (NONEXIST,)),  # ENOENT
    ("swapon", 167, (NONEXIST, 0)),  # ENOENT
    ("swapoff", 168, (NONEXIST,)),  # ENOENT
    ("reboot", 169, (0, 0, 0, 0)),  # wrong magic -> EINVAL
    ("syslog", 103, (10, 0, 0)),  # SYSLOG_ACTION_SIZE_BUFFER -> size
    ("quotactl", 179, (0, 0, 0, 0)),  # EINVAL/EFAULT
    ("lookup_dcookie", 212, (0, 0, 0)),  # ENOSYS on new kernels
    ("iopl", 172, (0,)),  # level 0 -> 0
    ("ioperm", 173, (0, 0, 0)),  # nothing -> 0/EINVAL
    ("uselib", 134, (NONEXIST,)),  # ENOENT/ENOSYS
    ("fanotify_init", 300, (0, 0)),  # root: an fd
    ("settimeofday", 164, (0, 0)),  # NULL, NULL: a no-op -> 0
    ("clock_settime", 227, (999, 0)),  # bad clock -> EINVAL
    ("clock_adjtime", 305, (999, 0)),  # bad clock -> EINVAL
    ("sethostname", 170, (0, 100000)),  # too long -> EINVAL
    ("setdomainname", 171, (0, 100000)),  # too long -> EINVAL
]


def fix(args):
    return [os.getpid() if a == "SELF" else a for a in args]


def group_sys():
    if MODE == "bare":
        # Never touch the host's own host name: a private UTS namespace for the bare run.
        assert sc(272, 0x4000000)[1] is None, "bare run: unshare(CLONE_NEWUTS) failed"
    st = open("/proc/self/status").read()
    out("status", seccomp=[l.split()[1] for l in st.splitlines() if l.startswith("Seccomp:")][0],
        nnp=[l.split()[1] for l in st.splitlines() if l.startswith("NoNewPrivs:")][0],
        capeff=[l.split()[1] for l in st.splitlines() if l.startswith("CapEff:")][0],
        capbnd=[l.split()[1] for l in st.splitlines() if l.startswith("CapBnd:")][0],
        uid=os.getuid(), pid=os.getpid(), ppid=os.getppid())
    for name, nr, args in DENIED:
        fdret = name in ("fanotify_init", "userfaultfd", "perf_event_open", "bpf", "open_tree", "fsopen")
        rec("denied:" + name, nr, *fix(args), close=fdret)
        # The syscall number with high bits set in rax: the kernel and seccomp both use the low
        # 32 bits, so this is the same call and must be denied the same way.
        rec("denied_hi:" + name, nr | HI, *fix(args), close=fdret)

    # Socket families (socket and socketpair), and their 32-bit-argument variants.
    fams = [("AF_VSOCK", 40, socket.SOCK_STREAM, 0), ("AF_NETLINK", 16, socket.SOCK_RAW, 0),
            ("AF_PACKET", 17, socket.SOCK_RAW, 0), ("AF_ALG", 38, socket.SOCK_SEQPACKET, 0),
            ("AF_BLUETOOTH", 31, socket.SOCK_RAW, 0), ("AF_KEY", 15, socket.SOCK_RAW, 2),
            ("AF_XDP", 44, socket.SOCK_RAW, 0), ("AF_CAN", 29, socket.SOCK_RAW, 1),
            ("AF_TIPC", 30, socket.SOCK_RDM, 0), ("AF_RDS", 21, socket.SOCK_SEQPACKET, 0)]
    for fam, n, ty, proto in fams:
        rec("socket:" + fam, 41, n, ty, proto, close=True)
        rec("socket_hi:" + fam, 41, n | HI, ty, proto, close=True)
    sv = (ctypes.c_int * 2)()
    for fam, n in [("AF_NETLINK", 16), ("AF_VSOCK", 40)]:
        r, e = sc(53, n, socket.SOCK_RAW, 0, ctypes.addressof(sv))
        out("socketpair:" + fam, **({"errno": e} if e else {"ret": r}))
        r, e = sc(53, n | HI, socket.SOCK_RAW, 0, ctypes.addressof(sv))
        out("socketpair_hi:" + fam, **({"errno": e} if e else {"ret": r}))
    # Allowed families still work: the filter is not a blanket socket ban.
    rec("socket:AF_UNIX", 41, 1, socket.SOCK_STREAM, 0, close=True)
    rec("socket:AF_INET", 41, 2, socket.SOCK_DGRAM, 0, close=True)

    # Raw and ICMP sockets.
    rec("socket:raw_icmp", 41, 2, socket.SOCK_RAW, socket.IPPROTO_ICMP, close=True)
    rec("socket:raw_tcp6", 41, 10, socket.SOCK_RAW, socket.IPPROTO_TCP, close=True)
    rec("socket:ping_dgram", 41, 2, socket.SOCK_DGRAM, socket.IPPROTO_ICMP, close=True)

    # TIOCSTI/TIOCLINUX on a non-terminal: the kernel says ENOTTY, seccomp says EPERM first.
    fd = os.open("/dev/null", os.O_RDONLY)
    ch = ctypes.c_char(b"x")
    rec("ioctl:TIOCSTI_devnull", 16, fd, 0x5412, ctypes.addressof(ch))
    rec("ioctl_hi:TIOCSTI_devnull", 16, fd, 0x5412 | HI, ctypes.addressof(ch))
    rec("ioctl:TIOCLINUX_devnull", 16, fd, 0x541C, ctypes.addressof(ch))
    rec("ioctl_hi:TIOCLINUX_devnull", 16, fd, 0x541C | HI, ctypes.addressof(ch))
    os.close(fd)

    # New namespaces by unshare and clone (in a child, so a bare run keeps its namespaces).
    NS = [("CLONE_NEWUSER", 0x10000000), ("CLONE_NEWNS", 0x20000), ("CLONE_NEWPID", 0x20000000),
          ("CLONE_NEWNET", 0x40000000), ("CLONE_NEWIPC", 0x8000000), ("CLONE_NEWUTS", 0x4000000),
          ("CLONE_NEWCGROUP", 0x2000000), ("CLONE_NEWTIME", 0x80)]
    for fname, flag in NS:
        res = in_child(lambda: sc(272, flag)[1] or 0)
        out("unshare:" + fname, **({"errno": res["ret"]} if isinstance(res.get("ret"), str) else res))
    for fname, flag in NS:
        if flag == 0x80:
            continue  # CLONE_NEWTIME collides with CSIGNAL in clone(); only unshare/clone3
        # Fork-like clone: the child gets 0 and exits at once.
        r, e = sc(56, flag | signal.SIGCHLD, 0, 0, 0, 0)
        if r == 0:
            os._exit(0)
        if r > 0:
            os.waitpid(r, 0)
        out("clone:" + fname, **({"errno": e} if e else {"ret": "child"}))
    # clone3 with a zeroed clone_args: ENOSYS from the filter; EINVAL bare is not reached
    # because size 64 and all-zero args is a valid fork: the child exits at once.
    cargs = (ctypes.c_uint64 * 11)()
    cargs[4] = signal.SIGCHLD  # exit_signal
    r, e = sc(435, ctypes.addressof(cargs), 88)
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
    out("clone3", **({"errno": e} if e else {"ret": "child"}))
    # personality: READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE denied; the query allowed.
    rec("personality:READ_IMPLIES_EXEC", 135, 0x0400000)
    rec("personality:ADDR_NO_RANDOMIZE", 135, 0x0040000)
    rec("personality:query", 135, 0xFFFFFFFF)
    sc(135, 0)  # back to PER_LINUX in the bare run

    # ptrace and process_vm_readv on PID 1 (the sandbox's init) and on the parent. Bare, the
    # targets are a child of the probe: attaching to the host's PID 1 is not a baseline to run.
    target = 1 if MODE == "sandbox" else None
    child = 0
    if MODE == "bare":
        child = os.fork()
        if child == 0:
            time.sleep(30)
            os._exit(0)
        target = child
    for who, pid in [("init", target), ("parent", os.getppid() if MODE == "sandbox" else target)]:
        r, e = sc(101, 16, pid, 0, 0)  # PTRACE_ATTACH
        out("ptrace_attach:" + who, **({"errno": e} if e else {"ret": r}))
        if r == 0:
            os.waitpid(pid, 0)
            sc(101, 17, pid, 0, 0)  # PTRACE_DETACH
        buf = ctypes.create_string_buffer(64)
        liov = (ctypes.c_uint64 * 2)(ctypes.addressof(buf), 64)
        # Read the target's auxv area address: any mapped address will do, use its stack start.
        try:
            addr = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[25])
        except OSError:
            addr = 0x400000
        riov = (ctypes.c_uint64 * 2)(addr, 8)
        r, e = sc(310, pid, ctypes.addressof(liov), 1, ctypes.addressof(riov), 1, 0)
        out("process_vm_readv:" + who, **({"errno": e} if e else {"ret": r}))
        r, e = sc(311, pid, ctypes.addressof(liov), 1, ctypes.addressof(riov), 0, 0)
        out("process_vm_writev:" + who, **({"errno": e} if e else {"ret": r}))
    # PID 1's files: environ, mem, fds, exe (write), and our own exe (write).
    p1 = target
    attempt("proc1:environ", lambda: len(open(f"/proc/{p1}/environ", "rb").read()))
    attempt("proc1:mem", lambda: os.close(os.open(f"/proc/{p1}/mem", os.O_RDONLY)))
    attempt("proc1:fd", lambda: len(os.listdir(f"/proc/{p1}/fd")))
    attempt("proc1:exe_write", lambda: os.close(os.open(f"/proc/{p1}/exe", os.O_WRONLY)))
    attempt("proc1:exe_readlink", lambda: os.readlink(f"/proc/{p1}/exe"))
    attempt("procself:exe_write", lambda: os.close(os.open("/proc/self/exe", os.O_WRONLY)))
    if child:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    # kill PID 1 (Landlock signal scope and PID-1 protection).
    attempt("kill:init", lambda: os.kill(1, 0) if MODE == "bare" else os.kill(1, signal.SIGKILL))

    # Host processes: invisible and unsignalable. HOST_PID is the harness's own pid.
    hp = int(os.environ.get("HOST_PID", "0"))
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out("proc:pids", ret=pids, own=os.getpid())
    attempt("kill:host_pid", lambda: os.kill(hp, 0))
    attempt("proc:host_pid_dir", lambda: os.stat(f"/proc/{hp}").st_uid)

    # Environment secrets.
    out("env:secret", ret=os.environ.get("SECRET_TOKEN"))
    out("env:keys", ret=sorted(os.environ.keys()))
    attempt("env:self_environ_has_secret", lambda: b"SECRET_TOKEN" in open("/proc/self/environ", "rb").read())

    # Host name and SysV IPC.
    out("uts:nodename", ret=os.uname().nodename)
    attempt("uts:sethostname", lambda: libc.sethostname(b"pwned", 5) == 0 or (_ for _ in ()).throw(OSError(ctypes.get_errno(), "")))
    key = int(os.environ.get("SHM_KEY", "0"))
    libc.shmget.restype = ctypes.c_int
    ctypes.set_errno(0)
    r = libc.shmget(ctypes.c_int(key), ctypes.c_size_t(0), ctypes.c_int(0))
    out("ipc:shmget_host_key", **({"errno": ename(ctypes.get_errno())} if r < 0 else {"ret": r}))
    out("ipc:proc_sysvipc_shm_has_key", ret=any(
        l.split()[0] == str(key) for l in open("/proc/sysvipc/shm").read().splitlines()[1:]))

    # Terminal: no /dev/ptmx, no /dev/pts, no /dev/tty.
    attempt("pty:openpty", lambda: [os.close(f) for f in os.openpty()] and "opened")
    attempt("pty:ptmx", lambda: os.close(os.open("/dev/ptmx", os.O_RDWR)))
    attempt("pty:dev_tty", lambda: os.close(os.open("/dev/tty", os.O_RDWR)))

    # Leaked file descriptors: none above 2 (the harness starts us with fd 3..5 open).
    leaked = []
    for fd in range(3, 1024):
        try:
            os.fstat(fd)
            leaked.append(fd)
        except OSError:
            pass
    out("fd:leaked", ret=leaked)


def group_x32():
    # getpid through the x32 ABI: SIGSYS kill in the sandbox; ENOSYS if the host lacks x32.
    r, e = sc(39 | 0x40000000)
    out("x32:getpid", **({"errno": e} if e else {"ret": r}))


def group_i386():
    # getpid (20) through `int 0x80`, the i386 ABI (a foreign audit arch): SIGSYS kill.
    import mmap
    code = bytes([0x53, 0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0x5B, 0xC3])  # push rbx; mov eax,20; int 0x80; pop rbx; ret
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    f = ctypes.CFUNCTYPE(ctypes.c_int)(addr)
    out("i386:getpid", ret=f(), pid=os.getpid())


def group_fs():
    # ARGS: shared dir (holds `victim`; --allow-read in the sandbox), scratch dir (bare only),
    # host unix socket path, host abstract name, host loopback TCP port.
    # Bare, the "read-only" targets are copies in the scratch dir, so the baseline shows each
    # operation works on a writable file system without touching the host's /usr or /.
    shared = ARGS[0]
    if MODE == "sandbox":
        rw, usr, root, tmp = "/workspace", "/usr/bin", "/", "/tmp"
    else:
        import shutil
        rw = ARGS[1] + "/rw"
        usr = ARGS[1] + "/usr"
        root = ARGS[1] + "/root"
        tmp = ARGS[1] + "/tmp"
        for d in (rw, usr, root, tmp):
            os.makedirs(d, exist_ok=True)
        shutil.copy("/usr/bin/env", usr + "/env")
    ro_file = usr + "/env"
    attempt("fs:write_usr", lambda: os.close(os.open(usr + "/escape-probe", os.O_WRONLY | os.O_CREAT, 0o755)))
    attempt("fs:truncate_usr_file", lambda: os.truncate(ro_file, 0))
    attempt("fs:hardlink_usr_to_rw", lambda: os.link(ro_file, rw + "/hl"))
    attempt("fs:rename_usr_to_rw", lambda: os.rename(ro_file, rw + "/mv"))
    attempt("fs:symlink_in_rw_to_usr", lambda: os.symlink(usr, rw + "/usrlink"))
    attempt("fs:write_through_symlink", lambda: os.close(os.open(rw + "/usrlink/escape-probe2", os.O_WRONLY | os.O_CREAT, 0o755)))
    attempt("fs:mknod_chr", lambda: os.mknod(rw + "/null2", 0o20666, os.makedev(1, 3)))
    attempt("fs:mknod_blk", lambda: os.mknod(rw + "/vda", 0o60666, os.makedev(254, 0)))
    attempt("fs:mkdir_root", lambda: os.mkdir(root + "/escape-probe"))
    if MODE == "sandbox":
        attempt("fs:write_etc_passwd", lambda: os.close(os.open("/etc/passwd", os.O_WRONLY | os.O_APPEND)))
        attempt("fs:proc_sys_write", lambda: os.close(os.open("/proc/sys/kernel/hostname", os.O_WRONLY)))
        attempt("fs:sysrq_trigger", lambda: os.close(os.open("/proc/sysrq-trigger", os.O_WRONLY)))
    attempt("fs:read_root_home", lambda: sorted(os.listdir("/root")))
    attempt("fs:read_shadow", lambda: len(open("/etc/shadow", "rb").read()))
    attempt("fs:sys_cgroup", lambda: os.listdir("/sys/fs/cgroup"))
    attempt("fs:tmp_nosuid", lambda: bool(os.statvfs(tmp).f_flag & os.ST_NOSUID))
    v = shared + "/victim"
    attempt("fs:shared_write", lambda: os.close(os.open(v, os.O_WRONLY)))
    attempt("fs:shared_truncate", lambda: os.truncate(v, 0))
    attempt("fs:shared_chmod", lambda: os.chmod(v, 0o777))
    attempt("fs:shared_symlink_write", lambda: (os.symlink(v, tmp + "/victim-sym"), os.close(os.open(tmp + "/victim-sym", os.O_WRONLY | os.O_APPEND)))[1])
    attempt("fs:shared_hardlink_to_tmp", lambda: os.link(v, tmp + "/victim-link"))
    attempt("fs:shared_create", lambda: os.close(os.open(shared + "/new", os.O_WRONLY | os.O_CREAT, 0o644)))
    attempt("fs:shared_rename_to_tmp", lambda: os.rename(v, tmp + "/victim-moved"))
    attempt("fs:shared_unlink", lambda: os.unlink(v))
    # The host pathname Unix socket (in a host temp dir that is not shared) and abstract socket.
    if True:
        def conn(addr):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                c.connect(addr)
                return "connected"
            finally:
                c.close()
        attempt("unix:host_path", lambda: conn(ARGS[2]))
        attempt("unix:host_abstract", lambda: conn("\0" + ARGS[3]))
        def tcp(port):
            c = socket.socket()
            c.settimeout(2)
            try:
                c.connect(("127.0.0.1", int(port)))
                return "connected"
            finally:
                c.close()
        attempt("net:host_loopback_tcp", lambda: tcp(ARGS[4]))
        attempt("net:internet_tcp", lambda: tcp_ext())
        attempt("net:tcp_bind", lambda: tcp_bind())
        attempt("net:udp_internet", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("1.1.1.1", 53)))
        attempt("net:interfaces", lambda: sorted(l.split(":")[0].strip() for l in open("/proc/self/net/dev").read().splitlines()[2:]))


def tcp_ext():
    c = socket.socket()
    c.settimeout(2)
    try:
        c.connect(("1.1.1.1", 443))
        return "connected"
    finally:
        c.close()


def tcp_bind():
    c = socket.socket()
    try:
        c.bind(("127.0.0.1", 0))
        return "bound"
    finally:
        c.close()


def group_tty():
    # stdin is the harness's pty slave: inject a command into it.
    ch = ctypes.c_char(b"X")
    out("tty:isatty", ret=os.isatty(0))
    rec("tty:TIOCSTI", 16, 0, 0x5412, ctypes.addressof(ch))
    rec("tty:TIOCSTI_hi", 16, 0, 0x5412 | HI, ctypes.addressof(ch))
    rec("tty:TIOCSCTTY", 16, 0, 0x540E, 0)


def group_setuid():
    # Exec a setuid-root binary with a pipe on stdin (it waits for a password) and read its
    # credentials while it runs: euid 0 bare as an unprivileged user, never inside.
    prog = ARGS[0]
    r, w = os.pipe()
    cr, cw = os.pipe()
    os.set_inheritable(cw, False)
    pid = os.fork()
    if pid == 0:
        os.dup2(r, 0)
        os.close(cr)
        os.execv(prog, [prog] + ARGS[1:])
    os.close(cw)
    os.read(cr, 1)  # EOF once the exec happened (cw was close-on-exec)
    seen = set()
    deadline = time.time() + 1.5
    while time.time() < deadline:
        try:
            st = open(f"/proc/{pid}/status").read()
        except OSError:
            break
        for l in st.splitlines():
            if l.startswith("Uid:"):
                seen.add(l.split()[2])  # effective uid
        if os.waitpid(pid, os.WNOHANG)[0]:
            pid = 0
            break
        time.sleep(0.01)
    if pid:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    out("setuid:euids", ret=sorted(seen))
    out("setuid:nnp", ret=open("/proc/self/status").read().split("NoNewPrivs:")[1].split()[0])


def group_fork():
    n, err = 0, None
    kids = []
    while n < 200:
        try:
            p = os.fork()
        except OSError as ex:
            err = ename(ex.errno)
            break
        if p == 0:
            time.sleep(5)
            os._exit(0)
        kids.append(p)
        n += 1
    for p in kids:
        os.kill(p, signal.SIGKILL)
        os.waitpid(p, 0)
    out("bomb:fork", ret=n, errno=err)


def group_thread():
    import threading
    ev = threading.Event()
    n, err = 0, None
    while n < 200:
        try:
            threading.Thread(target=ev.wait, daemon=True).start()
            n += 1
        except RuntimeError as ex:
            err = str(ex)
            break
    ev.set()
    out("bomb:thread", ret=n, errno=err)


def group_mem():
    chunks = []
    try:
        while True:
            b = bytearray(16 << 20)  # zero-filled: the pages are touched
            for i in range(0, len(b), 4096):
                b[i] = 1
            chunks.append(b)
            if len(chunks) % 8 == 0:
                print(json.dumps({"a": "bomb:mem_progress", "ret": len(chunks) * 16}), flush=True)
    except MemoryError:
        out("bomb:mem", errno="MemoryError", mib=len(chunks) * 16)


def group_tmpfill():
    n = 0
    try:
        with open("/tmp/fill", "wb") as f:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
                n += 1
    except OSError as ex:
        out("bomb:tmpfill", errno=ename(ex.errno), mib=n)


def group_fsize():
    try:
        with open("/workspace/big", "wb") as f:
            f.write(b"\0" * (3 << 20))
        out("bomb:fsize", ret=os.path.getsize("/workspace/big"))
    except OSError as ex:
        out("bomb:fsize", errno=ename(ex.errno), size=os.path.getsize("/workspace/big"))


def group_fds():
    fds = []
    try:
        while len(fds) < 100000:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as ex:
        out("bomb:fds", errno=ename(ex.errno), n=len(fds))


def group_spin():
    print("spinning", flush=True)
    while True:
        pass


def set_comm(name):
    libc.prctl(15, ctypes.c_char_p(name.encode()), 0, 0, 0)  # PR_SET_NAME


def group_daemon():
    # ARGS: marker (process name), then "wait" (the workload then sleeps past the timeout) or
    # "exit" (it exits at once).
    marker, how = ARGS[0], ARGS[1]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            set_comm(marker)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.closerange(0, 3)
            time.sleep(60)
            os._exit(0)
        os._exit(0)
    os.wait()
    out("daemon:started", ret=True)
    if how == "wait":
        set_comm(marker)
        time.sleep(60)


def group_killall():
    # kill(-1, SIGKILL): everything this process may signal. Inside, only the sandbox.
    kid = os.fork()
    if kid == 0:
        time.sleep(30)
        os._exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    attempt("kill:minus_one", lambda: os.kill(-1, signal.SIGKILL))
    _, st = os.waitpid(kid, 0)
    out("kill:minus_one_child", ret=os.WTERMSIG(st) if os.WIFSIGNALED(st) else -1)


def group_hold():
    # Used by the SIGKILL-of-sandbox-run test: spawn marked children, report, then wait.
    marker = ARGS[0]
    for _ in range(3):
        if os.fork() == 0:
            os.setsid()
            set_comm(marker)
            time.sleep(60)
            os._exit(0)
    set_comm(marker)
    out("hold:ready", ret=True)
    time.sleep(60)


globals()["group_" + GROUP]()
