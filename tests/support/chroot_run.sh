#!/usr/bin/env bash
# chroot_run.sh ROOT COMMAND: runs the bash COMMAND as root inside the Debian
# root ROOT (a debootstrap tree), the way a newcomer's fresh machine runs it.
# It runs in private mount and PID namespaces, so that every process COMMAND
# leaves behind (daemons started by tests) dies with it and every mount goes
# away with the namespace, even when the caller is killed. ROOT is bind-mounted
# onto itself because container storage remounts "/" and needs it to be a
# mount point; /proc is a new one for the new PID namespace; /dev and /sys are
# the host's (podman needs the cgroup tree), /run a fresh tmpfs.
# The environment is empty but for HOME, TERM, PATH and the names listed in
# CHROOT_PASS_ENV (e.g. CHROOT_PASS_ENV="CI STAMPD_SKIP_ASAN").
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: chroot_run.sh ROOT COMMAND" >&2
  exit 2
fi
root=$(realpath "$1")
envs=(HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
for name in ${CHROOT_PASS_ENV:-}; do
  if [ -n "${!name+x}" ]; then envs+=("$name=${!name}"); fi
done
exec unshare --mount --pid --fork --propagation private --kill-child=SIGKILL \
  bash -euc '
    root=$1; shift
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=0755 tmpfs "$root/run"
    exec chroot "$root" /usr/bin/env -i "$@"
  ' chroot_run "$root" "${envs[@]}" bash -c "$2"
