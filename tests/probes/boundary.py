# Boundary probe: each check prints one JSON line {"name", "ok", "errno", "detail"}.
# It runs inside the sandbox; the Rust tests assert on each line by name.
import ctypes, errno, json, os, socket, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def out(name, **kw):
    print(json.dumps({"name": name, **kw}), flush=True)


def attempt(name, fn):
    try:
        r = fn()
        out(name, ok=True, detail=repr(r)[:200])
    except OSError as e:
        out(name, ok=False, errno=errno.errorcode.get(e.errno, str(e.errno)), detail=str(e))
    except Exception as e:  # noqa: BLE001 - report anything else verbatim
        out(name, ok=False, errno=type(e).__name__, detail=str(e))


def sys_call(nr, *args):
    def f():
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return r
    return f


status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
out("identity", uid=os.getuid(), gid=os.getgid(), euid=os.geteuid(), groups=os.getgroups())
out("status", **{k: status[k].strip() for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"]})
attempt("setuid0", lambda: os.setuid(0))
for path in ["/probe-file", "/usr/probe-file", "/etc/probe-file", "/etc/passwd"]:
    attempt("write " + path, lambda p=path: open(p, "a").write("x"))
attempt("write /workspace", lambda: open("/workspace/ok", "w").write("x"))
attempt("write /tmp", lambda: open("/tmp/ok", "w").write("x"))
for var in ["SECRET_PATH", "HOST_TMP_MARKER", "PLANTED_LINK"]:
    p = os.environ.get(var)
    if p:
        attempt("read " + var, lambda p=p: open(p).read())
        out("exists " + var, ok=os.path.exists(p))
out("root listing", entries=sorted(os.listdir("/")))
out("home", exists=os.path.exists(os.path.expanduser("~root/.bash_history")), listing=sorted(os.listdir("/root")) if os.path.isdir("/root") else None)
ifaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
out("interfaces", names=ifaces)


def connect(host, port):
    def f():
        s = socket.create_connection((host, port), timeout=3)
        s.close()
    return f


attempt("tcp outside", connect("1.1.1.1", 443))
attempt("dns", lambda: socket.getaddrinfo("example.com", 443))
hp = os.environ.get("HOST_PORT")
if hp:
    attempt("host loopback", connect("127.0.0.1", int(hp)))

AF_VSOCK, AF_NETLINK = 40, 16
attempt("ptrace", sys_call(101, 0, 0, 0, 0))  # PTRACE_TRACEME
attempt("bpf", sys_call(321, 0, 0, 0))
attempt("perf_event_open", sys_call(298, 0, 0, 0, 0, 0))
attempt("userfaultfd", sys_call(323, 0))
attempt("unshare user", sys_call(272, 0x10000000))
attempt("mount", sys_call(165, 0, 0, 0, 0, 0))
attempt("chroot", sys_call(161, 0))
attempt("keyctl", sys_call(250, 0, 0, 0, 0))
attempt("io_uring_setup", sys_call(425, 1, 0))
attempt("socket vsock", sys_call(41, AF_VSOCK, 1, 0))
attempt("socket vsock 64-bit", sys_call(41, AF_VSOCK | (1 << 32), 1, 0))
attempt("socket netlink", sys_call(41, AF_NETLINK, 3, 0))
attempt("socket inet", lambda: os.close(sys_call(41, 2, 1, 0)()))
attempt("ioctl TIOCSTI", sys_call(16, 0, 0x5412, 0))
attempt("ioctl TIOCSTI 64-bit", sys_call(16, 0, 0x5412 | (1 << 32), 0))
attempt("clone3", sys_call(435, 0, 0))
attempt("clone newuser", sys_call(56, 0x10000000 | 17, 0, 0, 0, 0))
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
out("fds", fds=fds)
out("env", keys=sorted(os.environ))
