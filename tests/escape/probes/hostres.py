#!/usr/bin/env python3
"""Host-resource probes: `hostres.py MODE GROUP [ARGS]`, MODE is `sandbox` or `bare`.

Each group tries to use up one per-user or system-wide kernel counter, prints one JSON line per
attempt ({"a": name, "ret": value} or {"a": name, "errno": "ENOSPC"}), then prints
{"a": "holding"} and keeps what it took until its stdin closes, so the harness (tests/escape/
hostres.rs) can check, while the run holds it, that the user who started the sandbox still has
their quota. Every group stops at a cap far above the sandbox's bound and below the host's, so a
bare run shows the attempt works without exhausting the host.
"""
import ctypes, errno, json, os, signal, stat, sys

MODE, GROUP = sys.argv[1], sys.argv[2]
ARGS = sys.argv[3:]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CAP = 3000


def out(a, **kw):
    kw["a"] = a
    print(json.dumps(kw), flush=True)


def ename(e):
    return errno.errorcode.get(e, str(e))


def hold():
    out("holding")
    sys.stdin.read()


def fill(a, step, cap=CAP):
    """Calls step() until it raises OSError or `cap` calls succeeded; records the count."""
    n, err = 0, None
    while n < cap:
        try:
            step()
        except OSError as ex:
            err = ename(ex.errno)
            break
        n += 1
    out(a, ret=n, errno=err)


def check(r):
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def group_sigpending():
    # Queued real-time signals to ourselves, blocked so they stay pending.
    sig = signal.SIGRTMIN
    signal.pthread_sigmask(signal.SIG_BLOCK, [sig])

    class SigVal(ctypes.Union):
        _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]

    libc.sigqueue.argtypes = [ctypes.c_int, ctypes.c_int, SigVal]
    pid = os.getpid()
    fill("sigpending:queued", lambda: check(libc.sigqueue(pid, sig, SigVal(0))))
    hold()


def group_timers():
    # POSIX timers: each one preallocates a queued signal, charged like one.
    timers = []

    def step():
        t = ctypes.c_void_p()
        check(libc.timer_create(1, None, ctypes.byref(t)))  # CLOCK_MONOTONIC, SIGALRM
        timers.append(t)

    fill("timers:created", step)
    hold()


class MqAttr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long),
                ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long),
                ("pad", ctypes.c_long * 4)]


def group_mqueue():
    # POSIX message queues of 10 x 8 KiB (the default size), each ~82 KiB of the user's budget.
    libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(MqAttr)]
    libc.mq_unlink.argtypes = [ctypes.c_char_p]
    names = []

    def step():
        name = f"/ce-probe-{os.getpid()}-{len(names)}".encode()
        attr = MqAttr(0, 10, 8192, 0)
        check(libc.mq_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600, ctypes.byref(attr)))
        names.append(name)

    fill("mqueue:queues", step, cap=100)
    hold()
    for n in names:
        libc.mq_unlink(n)


def group_inotify():
    fds = []

    def instance():
        fds.append(check(libc.inotify_init1(os.O_CLOEXEC)))

    fill("inotify:instances", instance, cap=200)
    for f in fds[1:]:
        os.close(f)
    fds = fds[:1]
    if not fds:
        fds.append(check(libc.inotify_init1(os.O_CLOEXEC)))
    # Distinct inodes to watch: files of our own in a temporary directory.
    base = ARGS[0] if ARGS else "/tmp"
    d = os.path.join(base, f"ce-inotify-{os.getpid()}")
    os.makedirs(d, exist_ok=True)
    paths = []
    for i in range(CAP):
        p = os.path.join(d, str(i))
        open(p, "w").close()
        paths.append(p.encode())
    it = iter(paths)
    fill("inotify:watches", lambda: check(libc.inotify_add_watch(fds[0], next(it), 0x2)))
    hold()


def group_sysv():
    IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0

    def attempt(a, make, remove):
        ctypes.set_errno(0)
        r = make()
        if r == -1:
            out(a, errno=ename(ctypes.get_errno()))
        else:
            out(a, ret=r)
            remove(r)

    attempt("sysv:shmget", lambda: libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600),
            lambda i: libc.shmctl(i, IPC_RMID, None))
    attempt("sysv:semget", lambda: libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600),
            lambda i: libc.semctl(i, 0, IPC_RMID))
    attempt("sysv:msgget", lambda: libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600),
            lambda i: libc.msgctl(i, IPC_RMID, None))


def group_aio():
    ctx = ctypes.c_ulong(0)
    ctypes.set_errno(0)
    r = libc.syscall(206, ctypes.c_long(1), ctypes.byref(ctx))  # io_setup
    if r == -1:
        out("aio:io_setup", errno=ename(ctypes.get_errno()))
    else:
        out("aio:io_setup", ret=r)
        libc.syscall(207, ctx)  # io_destroy


def group_memlock():
    size = 1 << 20
    buf = ctypes.create_string_buffer(size)
    ctypes.set_errno(0)
    r = libc.mlock(buf, ctypes.c_size_t(size))
    if r == -1:
        out("memlock:1MiB", errno=ename(ctypes.get_errno()))
    else:
        out("memlock:1MiB", ret=r)
        libc.munlock(buf, ctypes.c_size_t(size))


def group_priority():
    pid = os.fork()
    if pid == 0:
        # In a child, so a bare run leaves the harness's own priority alone.
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -1)
            out("priority:nice_minus_1", ret=0)
        except OSError as ex:
            out("priority:nice_minus_1", errno=ename(ex.errno))
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            out("priority:sched_fifo", ret=0)
        except OSError as ex:
            out("priority:sched_fifo", errno=ename(ex.errno))
        os._exit(0)
    os.waitpid(pid, 0)


def group_userns():
    for name in ["max_inotify_instances", "max_inotify_watches", "max_user_namespaces",
                 "max_fanotify_groups"]:
        try:
            out("userns:" + name, ret=int(open("/proc/sys/user/" + name).read()))
        except OSError as ex:
            out("userns:" + name, errno=ename(ex.errno))


def group_setid():
    # ARGS[0]: a writable directory (a grant); every file made there is stat'ed by the harness.
    d = ARGS[0]

    def attempt(a, fn):
        try:
            fn()
            out(a, ret=0)
        except OSError as ex:
            out(a, errno=ename(ex.errno))

    plain = os.path.join(d, "plain")
    open(plain, "w").close()
    attempt("setid:chmod_4755", lambda: os.chmod(plain, 0o4755))
    attempt("setid:chmod_2755", lambda: os.chmod(plain, 0o2755))
    fd = os.open(plain, os.O_RDONLY)
    attempt("setid:fchmod_6755", lambda: os.fchmod(fd, 0o6755))
    os.close(fd)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    attempt("setid:fchmodat_4755", lambda: os.chmod("plain", 0o4755, dir_fd=dfd))
    attempt("setid:open_creat_4755",
            lambda: os.close(os.open(os.path.join(d, "created"), os.O_CREAT | os.O_WRONLY, 0o4755)))
    attempt("setid:openat_creat_2755",
            lambda: os.close(os.open("created_at", os.O_CREAT | os.O_WRONLY, 0o2755, dir_fd=dfd)))
    attempt("setid:mknod_reg_4755",
            lambda: os.mknod(os.path.join(d, "node"), stat.S_IFREG | 0o4755))
    attempt("setid:mknod_chr_null",
            lambda: os.mknod(os.path.join(d, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3)))
    attempt("setid:mknod_blk",
            lambda: os.mknod(os.path.join(d, "blk"), stat.S_IFBLK | 0o666, os.makedev(7, 0)))
    sub = os.path.join(d, "subdir")
    os.mkdir(sub)
    attempt("setid:chmod_dir_2775", lambda: os.chmod(sub, 0o2775))
    # What a run may still do: ordinary modes, FIFOs.
    attempt("setid:chmod_0755", lambda: os.chmod(plain, 0o755))
    attempt("setid:mkfifo", lambda: os.mkfifo(os.path.join(d, "fifo")))
    os.close(dfd)


def group_hostinfo():
    # Machine-wide facts in /proc: the number of bytes each reads (0 when masked).
    for path in ["/proc/cmdline", "/proc/sys/kernel/random/boot_id", "/proc/kallsyms",
                 "/proc/timer_list", "/proc/keys", "/proc/key-users"]:
        try:
            with open(path, "rb") as f:
                out("hostinfo:" + path, ret=len(f.read()))
        except OSError as ex:
            out("hostinfo:" + path, errno=ename(ex.errno))
    # The directories on the way to the interpreter's install prefix (e.g. /root/.pyenv/
    # versions): what each holds besides the next step of the way.
    prefix = os.path.realpath(sys.base_prefix)
    parts = prefix.strip("/").split("/")
    extra = {}
    for i in range(len(parts)):
        d = "/" + "/".join(parts[:i])
        try:
            others = sorted(set(os.listdir(d)) - {parts[i]})
        except OSError as ex:
            others = ["<" + ename(ex.errno) + ">"]
        if d != "/" and others:
            extra[d] = others
    out("hostinfo:prefix", ret=prefix)
    out("hostinfo:beside_the_way", ret=extra)


def group_helpers():
    # Every process this run can name: in the sandbox, the reaper (1) and ourselves only.
    me = os.getpid()
    seen = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                seen[int(p)] = open(f"/proc/{p}/comm").read().strip()
            except OSError:
                pass
    out("helpers:visible", ret={str(k): v for k, v in sorted(seen.items())})
    # Act on every process we can name that is not ourselves: lower its open-file limit (which
    # would stop a forwarder from accepting), lower its priority.
    libc.prlimit.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    zero = (ctypes.c_ulong * 2)(0, 0)
    acted = {}
    for pid in seen:
        if pid == me:
            continue
        ctypes.set_errno(0)
        r = libc.prlimit(pid, 7, ctypes.byref(zero), None)  # RLIMIT_NOFILE
        did = ["prlimit" if r == 0 else "prlimit:" + ename(ctypes.get_errno())]
        try:
            os.setpriority(os.PRIO_PROCESS, pid, 19)
            did.append("setpriority")
        except OSError as ex:
            did.append("setpriority:" + ename(ex.errno))
        acted[str(pid)] = did
    out("helpers:acted", ret=acted)
    try:
        os.kill(1, signal.SIGKILL)
        out("helpers:kill_1", ret=0)
    except OSError as ex:
        out("helpers:kill_1", errno=ename(ex.errno))


globals()["group_" + GROUP]()
