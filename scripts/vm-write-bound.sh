#!/usr/bin/env bash
# Runs the write_bound tests (tests/sandbox/write_bound.rs) in a Debian bookworm guest under
# QEMU, so the project-quota test really runs where the host kernel lacks ext4 quota support
# (CONFIG_QFMT_V2): there it skips loudly, here it must not.
#
# Usage: scripts/vm-write-bound.sh [--accel auto|kvm|tcg] [--timeout SECS] [--rebuild-image]
#   --accel          auto (default): KVM when /dev/kvm works, TCG when it does not or when the
#                    KVM guest hangs before userspace (nested KVM on some hosts); kvm/tcg force.
#   --timeout        seconds the guest may run before it is killed (default 1200).
#   --rebuild-image  build the cached guest image again.
# Run as root (mmdebstrap, and the guest image's file ownership). Needs network access to
# Debian's archive for the first build only; installs qemu-system-x86, mmdebstrap, e2fsprogs
# and jq with apt when they are missing.
#
# What it does:
#   1. builds sandbox-run and the `sandbox` test binary on the host (cargo);
#   2. builds once, then reuses, a Debian image with the stock kernel, cached in
#      ${XDG_CACHE_HOME:-~/.cache}/code-executor/vm/images/ (outside the checkout);
#   3. boots it with the binaries at their host paths (the test binary finds sandbox-run by the
#      absolute path cargo compiled in), runs `sandbox-run doctor` and the tests filtered to
#      `write_bound::`;
#   4. prints the guest kernel, doctor's verdict, each test's result, and the project-quota
#      test's own line (its writer's result and the report's write_bound layer). Exit status:
#      0 only when every write_bound test passed and the project-quota test ran (no SKIPPED
#      line).
# While the guest is up it also checks the cgroup v2 path as root on a bare cgroup2 mount (the
# CI machine has cgroup v1): the CPU share, memory, nproc and fork-bomb tests, and four 40 MiB
# processes under --memory 64M, whose report must name cgroup-v2. A failure there fails the run.
# The last run's console log and results stay in .../code-executor/vm/runs/write-bound/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$repo/scripts/vm/lib.sh"

accel=${VM_ACCEL:-auto}
timeout=${VM_TIMEOUT:-1200}
rebuild=
while [ $# -gt 0 ]; do
  case $1 in
    --accel) accel=${2:?--accel needs auto, kvm or tcg}; shift 2 ;;
    --accel=*) accel=${1#*=}; shift ;;
    --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --timeout=*) timeout=${1#*=}; shift ;;
    --rebuild-image) rebuild=rebuild; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) vm_die "unknown argument $1 (see --help)" ;;
  esac
done
case $accel in auto | kvm | tcg) ;; *) vm_die "--accel must be auto, kvm or tcg" ;; esac

PQ_TEST=write_bound::a_project_quota_bounds_the_total_and_everything_is_restored_after_the_run
SKIP_MARK="SKIPPED (absent kernel feature)"
started=$SECONDS

# 1. The host's binaries. Sets HOST_BINS (every workspace binary: sandbox-run and the egress
# proxy it starts from beside itself) and TEST_BIN. Absolute paths, as cargo reports them.
build_host_binaries() {
  vm_log "host: cargo build --bins"
  mapfile -t HOST_BINS < <(cd "$repo" && cargo build --bins --message-format=json-render-diagnostics |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable')
  vm_log "host: cargo test --test sandbox --no-run"
  TEST_BIN=$(cd "$repo" && cargo test --test sandbox --no-run --message-format=json-render-diagnostics |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "sandbox" and .profile.test) | .executable' |
    tail -1)
  [ -x "$TEST_BIN" ] || vm_die "no test executable for tests/sandbox.rs"
  SANDBOX_RUN=
  local b
  for b in "${HOST_BINS[@]}"; do
    [ "$(basename "$b")" = sandbox-run ] && SANDBOX_RUN=$b
  done
  [ -n "$SANDBOX_RUN" ] || vm_die "cargo built no sandbox-run"
  # The test binary runs the sandbox-run whose path was compiled in (CARGO_BIN_EXE_sandbox-run);
  # make sure it is the one we copy.
  grep -qaF "$SANDBOX_RUN" "$TEST_BIN" ||
    vm_die "$TEST_BIN does not name $SANDBOX_RUN: the guest would not find sandbox-run"
  vm_log "host: test binary $TEST_BIN"
}

# 3a. The job disk: the binaries at their host paths, the guest job and its settings. The tests
# need nothing else from the checkout (no probe files; PATH's .deps entry may be absent).
make_job() {
  vm_job_new
  local b
  for b in "${HOST_BINS[@]}" "$TEST_BIN"; do
    vm_job_add_file "$b"
  done
  vm_job_set_script "$repo/scripts/vm/write-bound-job.sh"
  vm_job_set_env SANDBOX_RUN "$SANDBOX_RUN"
  vm_job_set_env TEST_BIN "$TEST_BIN"
  vm_job_set_env TEST_FILTER "write_bound::"
  vm_job_make_disk
}

# 4. The summary, from the guest's out/ folder. Returns non-zero when the run does not prove
# the bound: a test failed, none ran, the project-quota test skipped, or the guest did not
# finish.
summarise() {
  local res=$1 boot_rc=$2 ok=1
  r() { cat "$res/$1" 2>/dev/null || echo "(missing)"; }
  echo
  echo "==================== vm-write-bound: results ===================="
  echo "accel:          $VM_ACCEL_USED ($VM_ACCEL_NOTE)"
  echo "image:          $VM_IMAGE_DIR"
  echo "guest kernel:   $(r uname)"
  echo "quota config:   $(r quota-config | tr '\n' ' ')"
  echo "modules:        $(r modules | tr '\n' ' ')"
  echo "prjquota mount: $(r prjquota)"
  if [ ! -f "$res/job.rc" ]; then
    echo "FAIL: the guest did not finish its job (boot status $boot_rc); console: $RUN_DIR/console.log"
    return 1
  fi
  echo "doctor:         $(tail -1 "$res/doctor.txt" 2>/dev/null) (exit $(r doctor.rc))"
  grep -E '^(WARN|FAIL) ' "$res/doctor.txt" 2>/dev/null | sed 's/^/                /' || true
  echo "tests ($(basename "$TEST_BIN") write_bound:: --test-threads=1 --nocapture, exit $(r tests.rc)):"
  # With --nocapture a test's own output can land between "test NAME ..." and its verdict;
  # the verdict lines and libtest's closing line are what count.
  grep -E '^test write_bound::' "$res/tests.log" | sed 's/^/    /' || true
  grep -E '^test result:' "$res/tests.log" | sed 's/^/    /' || true
  if [ "$(r tests.rc)" != 0 ] || ! grep -q '^test result: ok\.' "$res/tests.log"; then
    echo "FAIL: write_bound tests failed (see $res/tests.log)"
    ok=0
  fi
  if ! grep -qE '^test result: ok\. [1-9]' "$res/tests.log"; then
    echo "FAIL: no write_bound test ran"
    ok=0
  fi
  if grep -qF "$SKIP_MARK" "$res/tests.log"; then
    echo "FAIL: the project-quota test SKIPPED in the guest:"
    grep -F "$SKIP_MARK" "$res/tests.log" | sed 's/^/    /'
    ok=0
  elif grep -qE "^test $PQ_TEST \.\.\. " "$res/tests.log" &&
    ! grep -qE "^    $PQ_TEST$" "$res/tests.log" &&
    grep -q 'project quota: the writer said' "$res/tests.log"; then
    # Ran (its name), did not fail (not in libtest's failures list) and got past its checks
    # (the line it prints after them; with --nocapture it stands between name and verdict).
    echo "project-quota test: RAN and passed (no \"$SKIP_MARK\" in its output)"
  else
    echo "FAIL: the project-quota test did not pass (or did not run)"
    ok=0
  fi
  # The project-quota test's own line: what its writer got, and the report's write_bound layer.
  echo "project quota:  $(grep -o 'project quota: the writer said.*' "$res/tests.log" || echo '(no line)')"
  echo "cgroup v2 (bare cgroup2 mount, root): tests, exit $(r cgroup-tests.rc):"
  # With --nocapture a test's output can come between its name and its verdict.
  grep -E '^test [a-z_:]+ \.\.\.|^test result:' "$res/cgroup-tests.log" 2>/dev/null | cut -c1-120 | sed 's/^/    /' || true
  if [ "$(r cgroup-tests.rc)" != 0 ] || ! grep -q '^test result: ok\. 4 passed' "$res/cgroup-tests.log"; then
    echo "FAIL: the cgroup v2 tests failed (see $res/cgroup-tests.log)"
    ok=0
  fi
  if grep -q 'SKIPPED (no CPU controller' "$res/cgroup-tests.log" 2>/dev/null; then
    echo "FAIL: the CPU share was not enforced (the test passed by its no-controller branch)"
    ok=0
  fi
  local mem=$res/cgroup-memory-report.json
  echo "    four 40 MiB processes under --memory 64M: $(r cgroup-memory.out) (exit $(r cgroup-memory.rc))"
  if [ -f "$mem" ]; then
    echo "    report: limit_hit $(jq -c '.limit_hit' "$mem"), memory $(jq -c '.layers.memory' "$mem")"
    if [ "$(jq -r '.layers.memory.mechanism' "$mem")" != cgroup-v2 ]; then
      echo "FAIL: the memory cap was not enforced by cgroup v2"
      ok=0
    fi
  else
    echo "FAIL: no report from the memory run (stderr: $(r cgroup-memory.err))"
    ok=0
  fi
  echo "results:        $res (console: $RUN_DIR/console.log)"
  echo "wall time:      $((SECONDS - started)) s"
  [ "$ok" = 1 ]
}

vm_ensure_host_tools
build_host_binaries
vm_image_ensure "$rebuild"
make_job

RUN_DIR=$VM_CACHE/runs/write-bound
mkdir -p "$RUN_DIR"
rm -f "$RUN_DIR"/console.log*
boot_rc=0
vm_boot_auto "$accel" "$RUN_DIR/console.log" "$timeout" || boot_rc=$?
vm_job_read_results "$RUN_DIR/out"

if summarise "$RUN_DIR/out" "$boot_rc"; then
  echo "PASS: all write_bound tests passed in the guest, the project-quota bound included"
else
  echo "FAILED"
  exit 1
fi
