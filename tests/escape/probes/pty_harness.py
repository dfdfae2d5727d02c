#!/usr/bin/env python3
"""Runs a command with stdin, stdout and stderr on the slave side of a new pty (the pty is also
made the command's controlling terminal, like an interactive shell), and copies what the command
writes to our stdout. `pty_harness.py CMD [ARGS...]`. Bare baseline and sandboxed run alike."""
import os, pty, sys

pid, master = pty.fork()  # child: new session, the pty slave as controlling tty on 0, 1, 2
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
data = b""
while True:
    try:
        c = os.read(master, 65536)
    except OSError:
        break
    if not c:
        break
    data += c
_, st = os.waitpid(pid, 0)
sys.stdout.write(data.decode(errors="replace").replace("\r\n", "\n"))
sys.exit(os.waitstatus_to_exitcode(st) & 0xFF)
