#!/usr/bin/env bash
# chroot_run.sh ROOT COMMAND: runs the bash COMMAND as root inside the Debian
# root ROOT (a debootstrap tree), the way a newcomer's fresh machine runs it.
# It runs in private mount and PID namespaces, so that every process COMMAND
# leaves behind (daemons started by tests) dies with it and every mount goes
# away with the namespace, even when the caller is killed. ROOT is bind-mounted
# onto itself because container storage remounts "/" and needs it to be a
# mount point; /proc is a new one for the new PID namespace; /dev and /sys are
# the host's (podman needs the cgroup tree), /run a fresh tmpfs. ROOT becomes
# the namespace's root with pivot_root rather than chroot: a process that
# joins a container's mount namespace (runc exec, as `podman healthcheck run`
# does) lands on that namespace's root, which under chroot would still be the
# host's "/" without the container's files.
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
    cd "$root"
    pivot_root . .  # pivot_root(2): the old root now sits on top of ".", then detach it
    umount -l .
    cd /
    exec /usr/bin/env -i "$@"
  ' chroot_run "$root" "${envs[@]}" bash -c "$2"
