#!/usr/bin/env bash
# security-check.sh: check, on this machine, that sandbox-run isolates what it claims to.
# Builds nothing. Uses $SANDBOX_RUN, else `sandbox-run` on PATH, else target/{release,debug}/
# of this repository. Needs python3 (the probes run in it, inside the sandbox).
# Prints one line per check (PASS, WARN or FAIL, with the reason) and a summary; exits 1 on any
# FAIL, 2 when sandbox-run or python3 cannot be found.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SR="${SANDBOX_RUN:-}"
if [ -z "$SR" ]; then
  if command -v sandbox-run >/dev/null 2>&1; then SR="$(command -v sandbox-run)"
  elif [ -x "$here/target/release/sandbox-run" ]; then SR="$here/target/release/sandbox-run"
  elif [ -x "$here/target/debug/sandbox-run" ]; then SR="$here/target/debug/sandbox-run"
  else echo "security-check: sandbox-run not found: set SANDBOX_RUN, put it on PATH, or build it (cargo build)"; exit 2; fi
fi
command -v python3 >/dev/null 2>&1 || { echo "security-check: python3 not found on PATH (the probes need it)"; exit 2; }

pass=0; warn=0; fail=0
PASS() { printf 'PASS  %-34s %s\n' "$1" "$2"; pass=$((pass+1)); }
WARN() { printf 'WARN  %-34s %s\n' "$1" "$2"; warn=$((warn+1)); }
FAIL() { printf 'FAIL  %-34s %s\n' "$1" "$2"; fail=$((fail+1)); }

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cd /   # so the current directory is not shared into the sandbox

# sb OPTIONS... -- CMD: runs under sandbox-run, stdout to $tmp/out, stderr $tmp/err, report $tmp/r.json
sb() { "$SR" --report "$tmp/r.json" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null; }
# field NAME: a top-level or dotted field of the last report
field() { python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v.get(k) if isinstance(v,dict) else None
print("" if v is None else v)' "$tmp/r.json" "$1" 2>/dev/null; }

echo "sandbox-run: $SR"

# 1. The machine supports every layer.
if "$SR" doctor >"$tmp/doctor" 2>&1; then
  if grep -q '^WARN' "$tmp/doctor"; then WARN "doctor" "$(grep '^WARN' "$tmp/doctor" | head -1 | cut -c6-)"
  else PASS "doctor" "every layer available"; fi
else FAIL "doctor" "$(grep '^FAIL' "$tmp/doctor" | head -1 | cut -c6-) (run: $SR doctor)"; fi

# 2. Layers in force (report) and degraded modes.
if sb -- python3 -c 'pass'; then
  deg="$(field degraded)"; ll="$(field layers.landlock_abi)"; mem="$(field layers.memory.mechanism)"
  if [ "$deg" = "[]" ] || [ -z "$deg" ]; then PASS "no degraded mode" "landlock ABI ${ll:-?}"; else FAIL "no degraded mode" "degraded: $deg"; fi
  case "$mem" in
    cgroup-v2|cgroup-v1) PASS "memory cap" "$mem: the whole run is capped" ;;
    *) WARN "memory cap" "$mem: per-process RLIMIT_DATA only (run as root or give a writable cgroup for a whole-run cap)" ;;
  esac
  hu="$(field layers.host_uid)"
  if [ "$hu" != "0" ] && [ -n "$hu" ]; then PASS "non-root on the host" "workload is host uid $hu"; else FAIL "non-root on the host" "host uid '$hu'"; fi
else FAIL "trial run" "python3 did not run in the sandbox: $(head -c 300 "$tmp/err")"; fi

# 3. Identity, capabilities, no_new_privs, seccomp, as the workload sees them.
sb -- python3 -c '
import os
st=dict(l.split(":\t",1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
print(os.getuid(), st["CapEff"].strip(), st["CapBnd"].strip(), st["NoNewPrivs"].strip(), st["Seccomp"].strip())'
read -r uid capeff capbnd nnp secc < "$tmp/out" || true
[ "${uid:-}" = "1000" ] && PASS "non-root inside" "uid 1000" || FAIL "non-root inside" "uid '${uid:-?}'"
[ "${capeff:-}" = "0000000000000000" ] && [ "${capbnd:-}" = "0000000000000000" ] && PASS "capabilities dropped" "effective and bounding sets empty" || FAIL "capabilities dropped" "CapEff=${capeff:-?} CapBnd=${capbnd:-?}"
[ "${nnp:-}" = "1" ] && PASS "no_new_privs" "set" || FAIL "no_new_privs" "NoNewPrivs=${nnp:-?}"
[ "${secc:-}" = "2" ] && PASS "seccomp filter" "mode 2 (filter)" || FAIL "seccomp filter" "Seccomp=${secc:-?}"

# 4. Seccomp denials (EPERM even with bit 32 set in int arguments); x32 killed.
sb -- python3 -c '
import ctypes,errno
l=ctypes.CDLL(None,use_errno=True); l.syscall.restype=ctypes.c_long
def t(name,nr,*a):
    r=l.syscall(ctypes.c_long(nr),*[ctypes.c_long(x) for x in a]); e=ctypes.get_errno()
    print(name, "EPERM" if r==-1 and e==errno.EPERM else "ret=%d/%s"%(r,errno.errorcode.get(e,e)))
t("mount",165,0,0,0,0,0); t("unshare(CLONE_NEWUSER)",272,0x10000000); t("ptrace",101,16,1,0,0)
t("bpf",321,0,0,0); t("keyctl",250,0,0,0,0,0); t("io_uring_setup",425,1,0)
t("socket(AF_NETLINK)",41,16,3,0); t("socket(AF_VSOCK|1<<32)",41,40|(1<<32),1,0); t("socket(AF_PACKET)",41,17,3,0)
t("ioctl(TIOCSTI|1<<32)",16,0,0x5412|(1<<32),0)'
while read -r name res; do
  [ "$res" = "EPERM" ] && PASS "seccomp: $name" "EPERM" || FAIL "seccomp: $name" "not denied: $res"
done < "$tmp/out"
sb -- python3 -c 'import ctypes; ctypes.CDLL(None).syscall(ctypes.c_long(39|0x40000000))'
rc=$?; [ "$rc" = 159 ] && PASS "seccomp: x32 syscall" "killed by SIGSYS" || FAIL "seccomp: x32 syscall" "exit $rc, expected 159 (SIGSYS)"

# 5. Read-only file system; host files invisible.
sb -- python3 -c '
import os
for p in ["/usr/bin/x-security-check", "/x-security-check", "/etc/passwd"]:
    try: os.close(os.open(p, os.O_WRONLY|os.O_CREAT, 0o644)); print(p, "WRITABLE")
    except OSError as e: print(p, "denied:"+os.strerror(e.errno).replace(" ","_"))
for p in ["/etc/shadow", "/root/.ssh", "/home", "/sys/fs/cgroup", "/var/run/docker.sock"]:
    print(p, "VISIBLE" if os.path.exists(p) else "absent")
open("/tmp/ok","w").write("x"); open("/workspace/ok","w").write("x"); print("/tmp+/workspace writable")'
while read -r p res; do
  case "$res" in
    denied:*|absent) PASS "filesystem: $p" "${res//_/ }" ;;
    writable) PASS "filesystem: private scratch" "$p" ;;
    *) if [ "$p" = "/tmp+/workspace" ]; then PASS "filesystem: private /tmp, /workspace" "writable"; else FAIL "filesystem: $p" "$res"; fi ;;
  esac
done < "$tmp/out"

# 6. Network isolation.
sb -- python3 -c '
import socket
def c(h,p):
    s=socket.socket(); s.settimeout(3)
    try: s.connect((h,p)); return "CONNECTED"
    except OSError as e: return "denied:"+(e.strerror or str(e)).replace(" ","_")
print("tcp-1.1.1.1:443", c("1.1.1.1",443)); print("tcp-8.8.8.8:53", c("8.8.8.8",53))
try: socket.getaddrinfo("example.com",80); print("dns RESOLVED")
except OSError as e: print("dns denied:"+str(e.strerror).replace(" ","_"))
print("interfaces", ",".join(sorted(l.split(":")[0].strip() for l in open("/proc/self/net/dev").read().splitlines()[2:])))'
while read -r what res; do
  case "$res" in
    denied:*) PASS "network: $what" "${res//_/ }" ;;
    lo) PASS "network: interfaces" "only lo" ;;
    *) FAIL "network: $what" "$res" ;;
  esac
done < "$tmp/out"

# 7. Process and host isolation, secrets.
SECRET_TOKEN=security-check-secret sb -- python3 -c '
import os
print("pids", len([p for p in os.listdir("/proc") if p.isdigit()]))
print("secret", "LEAKED" if any("security-check-secret" in v for v in os.environ.values()) else "absent")
try: open("/proc/1/environ","rb").read(); print("init-environ READABLE")
except OSError as e: print("init-environ", "denied")
print("hostname", os.uname().nodename)'
while read -r what res; do
  case "$what:$res" in
    pids:1|pids:2|pids:3) PASS "pid namespace" "$res processes visible" ;;
    secret:absent) PASS "environment" "host secrets not passed" ;;
    init-environ:denied) PASS "init /proc/1/environ" "unreadable" ;;
    hostname:sandbox) PASS "uts namespace" "hostname 'sandbox'" ;;
    *) FAIL "$what" "$res" ;;
  esac
done < "$tmp/out"

# 8. Resource limits.
sb --memory 64M -- python3 -c 'b=[]
while True: b.append(bytearray(16<<20))'
[ "$(field limit_hit)" = "memory" ] && PASS "memory limit" "64M bomb stopped ($(field layers.memory.mechanism))" || FAIL "memory limit" "limit_hit='$(field limit_hit)' status=$(field status)"
sb -- python3 -c '
import os,errno
n=0
try:
    while n<500:
        if os.fork()==0:
            import time; time.sleep(3); os._exit(0)
        n+=1
    print("forks", n, "UNLIMITED")
except OSError as e: print("forks", n, errno.errorcode[e.errno])'
read -r _ n res < "$tmp/out" || true
[ "${res:-}" = "EAGAIN" ] && PASS "process limit" "fork bomb stopped after ${n} forks" || FAIL "process limit" "${n:-?} forks: ${res:-?}"
sb --timeout 1 -- python3 -c 'while True: pass'
rc=$?; [ "$rc" = 124 ] && PASS "wall-clock timeout" "spin killed after 1 s (exit 124)" || FAIL "wall-clock timeout" "exit $rc"
# Killing sandbox-run itself (SIGKILL) must take the whole run with it.
marker="$((RANDOM % 900 + 100)).9191"
"$SR" --timeout 60 -- /bin/sleep "$marker" >/dev/null 2>&1 </dev/null &
srpid=$!
for _ in $(seq 50); do pgrep -f "^/bin/sleep $marker" >/dev/null && break; sleep 0.1; done
kill -9 "$srpid" 2>/dev/null; wait "$srpid" 2>/dev/null
left=""
for _ in $(seq 30); do left=$(pgrep -f "sleep $marker" || true); [ -z "$left" ] && break; sleep 0.1; done
[ -z "$left" ] && PASS "sandbox-run killed" "nothing of the run survives SIGKILL of sandbox-run" || FAIL "sandbox-run killed" "survivors: $left"
sb --cpu-time 1 --timeout 20 -- python3 -c 'while True: pass'
[ "$(field limit_hit)" = "cpu" ] && PASS "cpu-time limit" "spin killed by RLIMIT_CPU" || FAIL "cpu-time limit" "limit_hit='$(field limit_hit)'"
sb --max-file-size 1M -- python3 -c '
try: open("/tmp/big","wb").write(b"0"*(2<<20)); print("WROTE")
except OSError as e: print("EFBIG" if e.errno==27 else e)'
[ "$(cat "$tmp/out")" = "EFBIG" ] && PASS "file-size limit" "2M write to a 1M cap: EFBIG" || FAIL "file-size limit" "$(cat "$tmp/out")"

echo "summary: $pass passed, $warn warnings, $fail failed"
[ "$fail" -eq 0 ]
