#!/bin/bash
# The guest's init (PID 1), run from the job disk by the image's stub /sbin/vm-init with the job
# disk mounted on /job (see scripts/vm/lib.sh). Generic: it makes the guest a usable Linux
# system (the mounts a systemd boot would make), puts the host's files in place, runs
# /job/job.sh with /job/env, records facts and the job's exit status in /job/out, and powers
# off. No systemd: a TCG boot is slow enough without it.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
exec </dev/null >/dev/console 2>&1
out=/job/out
mkdir -p "$out"

say() { echo "vm-init: $*"; }

power_off() {
  sync
  # Unmount the job disk so the host reads a clean file system; sysrq 'o' needs no init system.
  cd /
  umount /job 2>/dev/null || mount -o remount,ro /job 2>/dev/null || true
  sync
  say "powering off"
  echo o >/proc/sysrq-trigger
  sleep 30
  exit 1 # PID 1 exiting panics the kernel, and panic=-1 with -no-reboot ends QEMU anyway
}

mount_on() { # type source target [options]
  mkdir -p "$3"
  mountpoint -q "$3" || mount -t "$1" ${4:+-o "$4"} "$2" "$3" || say "mount $1 on $3 failed"
}

mount_on proc proc /proc
mount_on sysfs sysfs /sys
mount_on devtmpfs devtmpfs /dev
mount_on devpts devpts /dev/pts gid=5,mode=620,ptmxmode=666
mount_on tmpfs tmpfs /dev/shm mode=1777
mount_on tmpfs tmpfs /run mode=755
mount_on tmpfs tmpfs /tmp mode=1777,size=1G
mount_on securityfs securityfs /sys/kernel/security
mount_on cgroup2 cgroup2 /sys/fs/cgroup
for l in fd:/proc/self/fd stdin:/proc/self/fd/0 stdout:/proc/self/fd/1 stderr:/proc/self/fd/2; do
  [ -e "/dev/${l%%:*}" ] || ln -s "${l#*:}" "/dev/${l%%:*}"
done
echo vm >/proc/sys/kernel/hostname
ip link set lo up 2>/dev/null || true

# The host's files at their host paths (the test binaries find sandbox-run by absolute path).
if [ -d /job/root ]; then
  cp -a /job/root/. /
fi

# Facts for the host's summary.
uname -r >"$out/kernel-release"
uname -a >"$out/uname"
cat /proc/cmdline >"$out/cmdline"
cat /sys/kernel/security/lsm >"$out/lsm" 2>/dev/null || true
say "kernel $(uname -r), lsm $(cat "$out/lsm" 2>/dev/null)"

set -a
# shellcheck disable=SC1091
. /job/env
set +a
say "running /job/job.sh"
cd /
rc=0
/job/job.sh || rc=$?
say "job.sh exited $rc"
# Written last: its presence tells the host the job ran to the end.
echo "$rc" >"$out/job.rc"
power_off
