#!/usr/bin/env bash
# install-apparmor-profile.sh [PATH-TO-sandbox-run]
# Installs scripts/apparmor/code-executor as /etc/apparmor.d/code-executor for the given binary
# (default: /usr/local/bin/sandbox-run) and loads it with apparmor_parser -r. Needed on Ubuntu
# 24.04+ where kernel.apparmor_restrict_unprivileged_userns=1. Refuses when AppArmor is absent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="$here/apparmor/code-executor"
bin="${1:-/usr/local/bin/sandbox-run}"
dest="${APPARMOR_DIR:-/etc/apparmor.d}/code-executor"

die() { echo "install-apparmor-profile: $*" >&2; exit 1; }

[ -f "$template" ] || die "profile template not found: $template"
case "$bin" in /*) ;; *) bin="$(cd "$(dirname "$bin")" 2>/dev/null && pwd)/$(basename "$bin")" ;; esac
[ -x "$bin" ] || die "$bin is not an executable file: give the absolute path of the installed sandbox-run"
bin="$(readlink -f "$bin")"  # AppArmor attaches by the real path
case "$bin" in *[[:space:]\"\'\{\}\[\]\*\?\^,]*) die "$bin contains characters an AppArmor path rule cannot take as is; install sandbox-run under a plain path" ;; esac

# Refuse clearly when AppArmor is not there.
if [ ! -d /sys/kernel/security/apparmor ] && [ ! -e /sys/module/apparmor/parameters/enabled ]; then
  die "AppArmor is not available on this machine (no /sys/kernel/security/apparmor): nothing to install; sandbox-run needs no profile here (check with: sandbox-run doctor)"
fi
if [ -r /sys/module/apparmor/parameters/enabled ] && [ "$(cat /sys/module/apparmor/parameters/enabled)" != "Y" ]; then
  die "AppArmor is present but disabled (/sys/module/apparmor/parameters/enabled is not Y): nothing to install"
fi
command -v apparmor_parser >/dev/null 2>&1 || die "apparmor_parser not found: install the apparmor package (apt install apparmor)"
[ "$(id -u)" = 0 ] || die "must run as root (writes $dest and loads it into the kernel)"
[ -d "$(dirname "$dest")" ] || die "$(dirname "$dest") does not exist"

tmp="$(mktemp)"; trap 'rm -f "$tmp"' EXIT
sed "s|@SANDBOX_RUN@|$bin|g" "$template" > "$tmp"
# Validate before touching /etc: -Q parses without loading, -K skips the cache.
apparmor_parser -Q -K "$tmp" || die "the generated profile does not parse (AppArmor older than 4.0 lacks abi/4.0 and userns rules; this profile is for Ubuntu 23.10+)"
install -m 0644 "$tmp" "$dest"
apparmor_parser -r "$dest"
echo "installed $dest for $bin and loaded it; check with: sandbox-run doctor"
