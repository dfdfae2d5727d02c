"""Test harness: run a program as root of a new user namespace that maps ids 0 and 65534
(so the sandbox has an unprivileged id to use), with that namespace's limit on further user
namespaces set to MAX. Used to take user namespaces away from sandbox-run for real.

Usage (as host root): userns.py MAX -- PROGRAM [ARGS...]
"""
import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000
sep = sys.argv.index("--")
limit = sys.argv[1]
prog = sys.argv[sep + 1:]
libc = ctypes.CDLL(None, use_errno=True)

go_r, go_w = os.pipe()
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(go_w)
    os.close(ready_r)
    if libc.unshare(CLONE_NEWUSER) != 0:
        os._exit(90)
    os.write(ready_w, b"1")
    os.read(go_r, 1)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write(limit)
    os.execv(prog[0], prog)
os.close(go_r)
os.close(ready_w)
os.read(ready_r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write("0 0 1\n65534 65534 1\n")
os.write(go_w, b"1")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
