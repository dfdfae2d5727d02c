"""Test harness: take a kernel feature away from a program, for real.

Usage: deny_syscalls.py NR[,NR...] ERRNO -- PROGRAM [ARGS...]

Installs a seccomp filter in this process that makes the listed syscalls fail with ERRNO
(e.g. 38 = ENOSYS, what a kernel without the feature answers), then execs PROGRAM under it.
It is a harness of the tests, not part of the shipped binaries.
"""
import ctypes
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06

sep = sys.argv.index("--")
nrs = [int(n) for n in sys.argv[1].split(",")]
err = int(sys.argv[2])
prog = sys.argv[sep + 1:]

ins = [(LD_W_ABS, 0, 0, 0)]
for nr in nrs:
    ins.append((JEQ_K, 0, 1, nr))
    ins.append((RET_K, 0, 0, SECCOMP_RET_ERRNO | err))
ins.append((RET_K, 0, 0, SECCOMP_RET_ALLOW))
raw = b"".join(struct.pack("HBBI", *i) for i in ins)
buf = ctypes.create_string_buffer(raw)


class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


fprog = Fprog(len(ins), ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
    sys.exit("deny_syscalls: no_new_privs failed")
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
    sys.exit("deny_syscalls: seccomp failed: errno %d" % ctypes.get_errno())
os.execv(prog[0], prog)
