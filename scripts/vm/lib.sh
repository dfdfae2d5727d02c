# shellcheck shell=bash
# Shared functions for running the test suite inside a QEMU guest; sourced, not run.
#
# Split in three parts so a larger VM matrix (scripts/vm-test.sh) can reuse them as they are:
#   vm_image_ensure  - a Debian rootfs built with mmdebstrap, made into a raw ext4 disk image,
#                      with its kernel and initrd beside it; cached outside the checkout.
#   vm_job_*         - the per-run "job disk": the host's binaries at their absolute paths, the
#                      guest's init and job script, and an out/ folder the guest writes results to.
#   vm_boot          - qemu-system-x86_64 with -kernel/-initrd, KVM or TCG, a boot timeout.
#
# Everything the guest does lives on the job disk (scripts/vm/guest-init.sh and a job script),
# not in the cached image: changing it never rebuilds the image. The image's own PID 1 is a stub
# that only mounts the job disk and hands over.
#
# Callers set `set -euo pipefail` before sourcing.

VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Outside the checkout: the image is ~1 GB and outlives work trees.
VM_CACHE=${VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/code-executor/vm}

# The guest. Bump VM_RECIPE_VERSION when the build steps change in a way the key below misses.
VM_RECIPE_VERSION=1
VM_SUITE=${VM_SUITE:-bookworm}
VM_MIRRORS=(
  "deb http://deb.debian.org/debian $VM_SUITE main"
  "deb http://deb.debian.org/debian $VM_SUITE-updates main"
  "deb http://deb.debian.org/debian-security $VM_SUITE-security main"
)
# linux-image-amd64: Debian's stock kernel (CONFIG_QUOTA=y, CONFIG_QFMT_V2=m, landlock).
# e2fsprogs: mkfs.ext4 -O quota,project, chattr/lsattr -p. quota: quotaon/repquota, to show the
# kernel's view. python3: the tests' writer. util-linux/mount: mount, losetup, su (the test's
# "nobody can write past it now" step). kmod: modprobe loop / quota_v2.
VM_PACKAGES=(linux-image-amd64 initramfs-tools kmod e2fsprogs quota python3 util-linux mount procps)
# Sparse; the guest's root writes go to a throw-away QEMU snapshot, so this is only headroom.
VM_ROOT_SIZE=${VM_ROOT_SIZE:-3G}

VM_MEM=${VM_MEM:-2048}
VM_SMP=${VM_SMP:-2}
# How long a KVM boot may take to reach the stub init before it counts as hung (auto falls
# back to TCG then): a KVM boot reaches userspace in seconds.
VM_KVM_USERSPACE_TIMEOUT=${VM_KVM_USERSPACE_TIMEOUT:-60}
# The line the stub prints once the kernel and initrd got to the real root.
VM_USERSPACE_MARKER="vm-stub: reached userspace"

vm_log() { echo "vm: $*" >&2; }
vm_die() {
  echo "vm: error: $*" >&2
  exit 1
}

# Paths removed and QEMU processes killed when the calling script exits, however it exits.
VM_CLEANUP_PATHS=()
VM_QEMU_PID=
vm_cleanup() {
  if [ -n "$VM_QEMU_PID" ] && kill -0 "$VM_QEMU_PID" 2>/dev/null; then
    vm_log "stopping QEMU (pid $VM_QEMU_PID)"
    kill "$VM_QEMU_PID" 2>/dev/null || true
    wait "$VM_QEMU_PID" 2>/dev/null || true
  fi
  local p
  for p in "${VM_CLEANUP_PATHS[@]}"; do
    rm -rf -- "$p"
  done
}
trap vm_cleanup EXIT
trap 'exit 130' INT TERM

# Installs what the host needs with apt, only when a command is missing.
vm_ensure_host_tools() {
  local -A want=(
    [qemu-system-x86_64]=qemu-system-x86
    [mmdebstrap]=mmdebstrap
    [mkfs.ext4]=e2fsprogs
    [debugfs]=e2fsprogs
    [jq]=jq
    [flock]=util-linux
  )
  local cmd missing=()
  for cmd in "${!want[@]}"; do
    command -v "$cmd" >/dev/null || missing+=("${want[$cmd]}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [ "$(id -u)" = 0 ] || vm_die "missing ${missing[*]}: install them (apt-get install) or run as root"
    vm_log "installing ${missing[*]} with apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The image's PID 1. Kept tiny and stable (it is part of the image's cache key): it only mounts
# the job disk (the second virtio disk, /dev/vdb) and execs its /init.
vm_stub_init() {
  cat <<'EOF'
#!/bin/sh
# PID 1 of the cached VM image (scripts/vm/lib.sh): hands over to the job disk's /init, so what
# the guest does lives in the repo and changing it never rebuilds the image.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
echo "vm-stub: reached userspace" >/dev/console
# The root disk is a QEMU snapshot: writes are thrown away at power-off.
mount -o remount,rw /
if mount -t ext4 /dev/vdb /job && [ -x /job/init ]; then
  exec /job/init
fi
echo "vm-stub: no job disk (/dev/vdb with an executable /init): powering off" >/dev/console
sync
echo o >/proc/sysrq-trigger
sleep 30
EOF
}

vm_image_key() {
  {
    echo "recipe $VM_RECIPE_VERSION"
    echo "suite $VM_SUITE"
    printf 'mirror %s\n' "${VM_MIRRORS[@]}"
    printf 'package %s\n' "${VM_PACKAGES[@]}"
    echo "size $VM_ROOT_SIZE"
    vm_stub_init
  } | sha256sum | cut -c1-12
}

# Sets VM_IMAGE_DIR to a folder with root.img, vmlinuz, initrd.img and packages.txt, building
# it first unless it is cached. $1 = "rebuild" forces a new build.
vm_image_ensure() {
  local force=${1:-} key dir lock
  key=$(vm_image_key)
  dir=$VM_CACHE/images/$VM_SUITE-$key
  mkdir -p "$VM_CACHE/images"
  # One builder at a time; a second caller waits and then finds the image built.
  exec {lock}>"$VM_CACHE/images/.lock"
  flock "$lock"
  if [ "$force" = rebuild ] && [ -d "$dir" ]; then
    vm_log "image: --rebuild-image: removing $dir"
    rm -rf -- "$dir"
  fi
  if [ -f "$dir/complete" ]; then
    vm_log "image: cached $dir"
  else
    vm_image_build "$dir"
  fi
  exec {lock}>&-
  VM_IMAGE_DIR=$dir
}

vm_image_build() {
  local dir=$1 tmp root started=$SECONDS
  [ "$(id -u)" = 0 ] || vm_die "building the image needs root (mmdebstrap, file ownership in the image)"
  tmp=$(mktemp -d "$VM_CACHE/images/.build.XXXXXX")
  VM_CLEANUP_PATHS+=("$tmp")
  root=$tmp/rootfs
  vm_log "image: building Debian $VM_SUITE with mmdebstrap into $tmp (a few minutes, once)"
  # minbase: Essential packages + apt; the rest is named. No recommends (mmdebstrap's default),
  # so the kernel comes without firmware or AppArmor's userspace. The hooks' $1 is the rootfs,
  # expanded by mmdebstrap, not here.
  # shellcheck disable=SC2016
  mmdebstrap --quiet --variant=minbase --include="$(
    IFS=,
    echo "${VM_PACKAGES[*]}"
  )" \
    --customize-hook='mkdir -p "$1/job"' \
    --customize-hook='echo vm >"$1/etc/hostname"' \
    --customize-hook='chroot "$1" dpkg-query -W -f="\${Package} \${Version}\n" >"$1/.packages.txt"' \
    "$VM_SUITE" "$root" "${VM_MIRRORS[@]}"

  vm_stub_init >"$root/sbin/vm-init"
  chmod 755 "$root/sbin/vm-init"

  # The kernel and initrd are booted with -kernel/-initrd: no boot loader in the image.
  local kernel initrd
  kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
  initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -1)
  if [ -z "$kernel" ] || [ -z "$initrd" ]; then
    vm_die "image: no kernel/initrd in $root/boot"
  fi
  cp "$kernel" "$tmp/vmlinuz"
  cp "$initrd" "$tmp/initrd.img"
  basename "$kernel" | sed 's/^vmlinuz-//' >"$tmp/kernel-release"
  mv "$root/.packages.txt" "$tmp/packages.txt"

  # A raw ext4 image filled from the folder (no loop mount, no qemu-img needed).
  vm_log "image: mkfs.ext4 -d ($VM_ROOT_SIZE, sparse)"
  truncate -s "$VM_ROOT_SIZE" "$tmp/root.img"
  mkfs.ext4 -q -F -L vmroot -d "$root" "$tmp/root.img"
  rm -rf -- "$root"
  touch "$tmp/complete"
  mv "$tmp" "$dir"
  vm_log "image: built $dir in $((SECONDS - started)) s (kernel $(cat "$dir/kernel-release"))"
}

# The job disk: a folder laid out as the guest sees it under /job, made into an ext4 image.
#   init      - the guest's init after the stub (scripts/vm/guest-init.sh)
#   job.sh    - what to run; its output and exit status go to out/
#   env       - shell variables for job.sh
#   root/     - copied over the guest's / before the job (binaries at their host paths)
#   out/      - results, read back by the host with debugfs
vm_job_new() {
  VM_JOB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vm-job.XXXXXX")
  VM_CLEANUP_PATHS+=("$VM_JOB_DIR")
  mkdir -p "$VM_JOB_DIR/tree/root" "$VM_JOB_DIR/tree/out"
  install -m 755 "$VM_LIB_DIR/guest-init.sh" "$VM_JOB_DIR/tree/init"
  : >"$VM_JOB_DIR/tree/env"
}

# Copies a host file into the guest at the same absolute path.
vm_job_add_file() {
  local src=$1 dest=$VM_JOB_DIR/tree/root$1
  mkdir -p "$(dirname "$dest")"
  cp -p "$src" "$dest"
}

vm_job_set_script() { install -m 755 "$1" "$VM_JOB_DIR/tree/job.sh"; }

vm_job_set_env() { printf '%s=%q\n' "$1" "$2" >>"$VM_JOB_DIR/tree/env"; }

# Sets VM_JOB_IMG: the folder as an ext4 image with room for the results.
vm_job_make_disk() {
  local mb
  mb=$(du -sm "$VM_JOB_DIR/tree" | cut -f1)
  VM_JOB_IMG=$VM_JOB_DIR/job.img
  truncate -s "$((mb + 256))M" "$VM_JOB_IMG"
  mkfs.ext4 -q -F -L vmjob -d "$VM_JOB_DIR/tree" "$VM_JOB_IMG"
}

# Copies the guest's out/ into folder $1 (read from the image, nothing mounted on the host).
vm_job_read_results() {
  local dest=$1 tmp
  tmp=$(mktemp -d "$VM_JOB_DIR/results.XXXXXX")
  # rdump writes the folder itself (out/) into the target folder.
  debugfs -R "rdump /out $tmp" "$VM_JOB_IMG" >/dev/null 2>&1 || true
  [ -d "$tmp/out" ] || vm_die "could not read the results from $VM_JOB_IMG"
  rm -rf -- "$dest"
  mv "$tmp/out" "$dest"
  # rdump keeps the guest's owners and modes; make them the caller's.
  chown -R "$(id -u):$(id -g)" "$dest" 2>/dev/null || true
}

# Whether KVM can be used at all: the device opens and QEMU can initialise it. (Says nothing of
# whether a guest then boots: see vm_boot_auto.)
vm_kvm_usable() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  echo quit | timeout 20 qemu-system-x86_64 -accel kvm -machine none -nodefaults \
    -display none -monitor stdio >/dev/null 2>&1
}

# Boots the image with the job disk once. $1 = kvm|tcg, $2 = console log, $3 = overall timeout
# in seconds, $4 = seconds to reach the stub init (0: no separate limit).
# Returns 0 when the guest powered off by itself, 2 when it did not reach userspace (in time,
# or QEMU failed), 3 on the overall timeout; the console is streamed to stderr as it comes.
vm_boot() {
  local accel=$1 log=$2 timeout=$3 userspace_timeout=$4 cpu tail_pid rc=0 started=$SECONDS
  case $accel in
    kvm) cpu=host ;;
    tcg) cpu=max ;;
    *) vm_die "vm_boot: unknown accel $accel" ;;
  esac
  : >"$log"
  # quiet: only our init's lines (and kernel errors) on the console. panic=-1 plus -no-reboot:
  # a dying PID 1 ends QEMU instead of hanging the guest.
  local append="root=/dev/vda ro rootfstype=ext4 console=ttyS0,115200 init=/sbin/vm-init panic=-1 quiet loglevel=3"
  # Only one QEMU at a time on this machine (2 cores, other people's benchmarks).
  local lock
  mkdir -p "$VM_CACHE"
  exec {lock}>"$VM_CACHE/.qemu.lock"
  flock "$lock"
  vm_log "boot: accel=$accel smp=$VM_SMP mem=${VM_MEM}M timeout=${timeout}s"
  qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp "$VM_SMP" -m "$VM_MEM" \
    -nodefaults -no-reboot -display none -monitor none \
    -serial "file:$log" \
    -kernel "$VM_IMAGE_DIR/vmlinuz" -initrd "$VM_IMAGE_DIR/initrd.img" -append "$append" \
    -drive "file=$VM_IMAGE_DIR/root.img,format=raw,if=virtio,snapshot=on" \
    -drive "file=$VM_JOB_IMG,format=raw,if=virtio" &
  VM_QEMU_PID=$!
  tail -n +1 -f --pid="$VM_QEMU_PID" "$log" | sed -u 's/^/  guest| /' >&2 &
  tail_pid=$!
  while kill -0 "$VM_QEMU_PID" 2>/dev/null; do
    sleep 1
    if [ "$userspace_timeout" -gt 0 ] && [ $((SECONDS - started)) -ge "$userspace_timeout" ] &&
      ! grep -q "$VM_USERSPACE_MARKER" "$log"; then
      vm_log "boot: no userspace after ${userspace_timeout}s under $accel: the guest hangs"
      rc=2
      break
    fi
    if [ $((SECONDS - started)) -ge "$timeout" ]; then
      vm_log "boot: the guest did not power off within ${timeout}s"
      rc=3
      break
    fi
  done
  if kill -0 "$VM_QEMU_PID" 2>/dev/null; then
    kill "$VM_QEMU_PID" 2>/dev/null || true
  fi
  local qemu_rc=0
  wait "$VM_QEMU_PID" 2>/dev/null || qemu_rc=$?
  VM_QEMU_PID=
  # QEMU itself can fail under KVM (here: `-cpu host` aborts on an MSR nested KVM refuses):
  # that is "no userspace" too, for the fallback.
  if [ "$rc" = 0 ] && ! grep -q "$VM_USERSPACE_MARKER" "$log"; then
    vm_log "boot: QEMU ended (status $qemu_rc) before the guest reached userspace"
    rc=2
  fi
  wait "$tail_pid" 2>/dev/null || true
  exec {lock}>&-
  vm_log "boot: QEMU ended after $((SECONDS - started)) s"
  return "$rc"
}

# Boots with the requested accelerator (auto|kvm|tcg) and sets VM_ACCEL_USED and
# VM_ACCEL_NOTE. Under auto: KVM when it is usable, and TCG when it is not or when the KVM guest
# hangs before userspace (nested KVM on some hosts). The job disk must be fresh for each boot
# that runs the job; a hang before userspace never touched it.
# shellcheck disable=SC2034 # VM_ACCEL_USED and VM_ACCEL_NOTE are for the caller
vm_boot_auto() {
  local requested=$1 log=$2 timeout=$3 rc
  VM_ACCEL_NOTE=
  case $requested in
    kvm)
      vm_kvm_usable || vm_die "--accel kvm: /dev/kvm is not usable here"
      VM_ACCEL_USED=kvm
      VM_ACCEL_NOTE="forced with --accel kvm"
      vm_boot kvm "$log" "$timeout" "$VM_KVM_USERSPACE_TIMEOUT"
      ;;
    tcg)
      VM_ACCEL_USED=tcg
      VM_ACCEL_NOTE="forced with --accel tcg (software emulation)"
      vm_boot tcg "$log" "$timeout" 0
      ;;
    auto)
      if vm_kvm_usable; then
        VM_ACCEL_USED=kvm
        VM_ACCEL_NOTE="auto: /dev/kvm works"
        vm_log "accel: KVM (/dev/kvm works); TCG if the guest hangs before userspace"
        rc=0
        vm_boot kvm "$log" "$timeout" "$VM_KVM_USERSPACE_TIMEOUT" || rc=$?
        if [ "$rc" = 2 ]; then
          vm_log "accel: KVM did not get the guest to userspace: falling back to TCG (software emulation, slower)"
          cp "$log" "$log.kvm-hung"
          VM_ACCEL_USED=tcg
          VM_ACCEL_NOTE="auto: under KVM the guest did not reach userspace (QEMU failed or hung ${VM_KVM_USERSPACE_TIMEOUT}s; console kept in $(basename "$log").kvm-hung), fell back to TCG"
          vm_boot tcg "$log" "$timeout" 0
        else
          return "$rc"
        fi
      else
        VM_ACCEL_USED=tcg
        VM_ACCEL_NOTE="auto: /dev/kvm is not usable, TCG (software emulation)"
        vm_log "accel: TCG (/dev/kvm is not usable here)"
        vm_boot tcg "$log" "$timeout" 0
      fi
      ;;
    *) vm_die "--accel must be auto, kvm or tcg (was $requested)" ;;
  esac
}
