#!/bin/bash
# The guest side of scripts/vm-write-bound.sh, run as root by scripts/vm/guest-init.sh with
# SANDBOX_RUN, TEST_BIN and TEST_FILTER from /job/env. Results go to /job/out, one file per
# fact, for the host to summarise:
#   quota-config     the kernel's CONFIG_QUOTA / CONFIG_QFMT_V2 lines
#   modules          what modprobe said for loop and quota_v2
#   prjquota         whether an ext4 with -O quota,project mounts with -o prjquota here
#   doctor.txt/.rc   `sandbox-run doctor`
#   tests.log/.rc    the test binary filtered to $TEST_FILTER
#   cgroup-*         the cgroup v2 caps (see the end of this file)
set -u
out=/job/out

# Loop devices for the tests' ext4 images; quota_v2 for ext4's quota inodes (the kernel would
# request it itself, loading it first makes a missing module visible here).
{
  for m in loop quota_v2; do
    if modprobe "$m" 2>&1; then echo "$m: loaded"; else echo "$m: modprobe failed"; fi
  done
} >"$out/modules" 2>&1
grep -E '^(# )?CONFIG_(QUOTA|QFMT_V2)( |=)' "/boot/config-$(uname -r)" >"$out/quota-config" 2>&1 || true
echo "vm-job: $(tr '\n' ' ' <"$out/quota-config")"

# Preflight: an ext4 with project quotas on a loop file, mounted with prjquota, as the test
# makes its own. A failure here explains a skip before the tests run.
img=/tmp/prjquota.img
mnt=/mnt/prjquota
mkdir -p "$mnt"
truncate -s 64M "$img"
if mkfs.ext4 -q -F -I 256 -O quota,project "$img" &&
  mount -o loop,prjquota "$img" "$mnt" 2>"$out/prjquota.err"; then
  echo "mounted: $(quotaon -Pp "$mnt" 2>&1 | head -1)" >"$out/prjquota"
  umount "$mnt"
else
  echo "failed: $(cat "$out/prjquota.err")" >"$out/prjquota"
fi
echo "vm-job: prjquota $(cat "$out/prjquota")"

echo "vm-job: sandbox-run doctor"
rc=0
"$SANDBOX_RUN" doctor >"$out/doctor.txt" 2>&1 || rc=$?
echo "$rc" >"$out/doctor.rc"
sed 's/^/vm-job: doctor: /' "$out/doctor.txt"

echo "vm-job: $TEST_BIN $TEST_FILTER --test-threads=1 --nocapture"
RUST_BACKTRACE=1 "$TEST_BIN" "$TEST_FILTER" --test-threads=1 --nocapture 2>&1 | tee "$out/tests.log"
rc=${PIPESTATUS[0]}
echo "$rc" >"$out/tests.rc"

# cgroup v2, while the guest is up: the init mounted a bare cgroup2 hierarchy (no systemd, so
# no controller is enabled below the root until sandbox-run enables it). As root the run's
# memory, pids and CPU caps must come from cgroup v2, never the rlimit fallback.
#   cgroup-tests.log/.rc   the tests of the caps that a cgroup enforces
#   cgroup-memory.*        four 40 MiB processes under --memory 64M: the whole-run cap
echo "vm-job: cgroup v2 tests"
RUST_BACKTRACE=1 "$TEST_BIN" cpu::half_a_cpu_holds_a_busy_run_to_half_a_cpu \
  memory_cap_python nproc_cap_holds \
  fork_bomb_is_contained_and_others_still_run --test-threads=1 --exact --nocapture 2>&1 |
  tee "$out/cgroup-tests.log"
echo "${PIPESTATUS[0]}" >"$out/cgroup-tests.rc"
hog="import os, time
kids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        b = bytearray(40 << 20)
        for i in range(0, len(b), 4096): b[i] = 1
        time.sleep(2)
        os._exit(0)
    kids.append(pid)
killed = sum(1 for p in kids if os.WIFSIGNALED(os.waitpid(p, 0)[1]))
print('killed', killed, 'of', len(kids))"
rc=0
(cd / && "$SANDBOX_RUN" --memory 64M --report "$out/cgroup-memory-report.json" \
  -- python3 -c "$hog" >"$out/cgroup-memory.out" 2>"$out/cgroup-memory.err") || rc=$?
echo "$rc" >"$out/cgroup-memory.rc"
echo "vm-job: four 40 MiB processes under 64M (exit $rc): $(cat "$out/cgroup-memory.out")"
exit 0
