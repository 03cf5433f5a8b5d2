"""A clean Debian 12 machine for tests that must not see this one's packages.

The .deb install test and the container image test start from a minbase
Debian 12 root: nothing installed but what debootstrap puts there, so a
missing Depends: or install step fails them as it would fail a newcomer.

    root = debian_root.fresh("deb-install")      # a copy of the pristine root
    debian_root.run(root, "apt-get install -y ./stampd.deb")
    debian_root.remove(root)

The pristine root is made once per build directory with debootstrap from
this machine's own apt source (under a lock, so tests running in parallel
share it) and copied for every use. Commands run through chroot_run.sh:
private mount and PID namespaces, so nothing a test starts in the root
outlives it.
"""
import fcntl
import os
import re
import shutil
import subprocess
import unittest

import stampd_harness

SUPPORT_DIR = os.path.dirname(os.path.abspath(__file__))
CHROOT_RUN = os.path.join(SUPPORT_DIR, "chroot_run.sh")
RELEASE = "bookworm"


def roots_dir():
    """roots_dir is where the roots live: under the build directory, so a
    new build directory starts clean and `rm -rf build` removes them."""
    path = os.path.join(stampd_harness.BUILD_DIR, "test-roots")
    os.makedirs(path, exist_ok=True)
    return path


def apt_source():
    """apt_source returns (mirror URL, path of the deb822 sources file or
    None) of this machine's Debian archive, so the root uses the same one."""
    deb822 = "/etc/apt/sources.list.d/debian.sources"
    if os.path.exists(deb822):
        with open(deb822) as f:
            m = re.search(r"^URIs:\s*(\S+)", f.read(), re.M)
        if m:
            return m.group(1), deb822
    if os.path.exists("/etc/apt/sources.list"):
        with open("/etc/apt/sources.list") as f:
            for line in f:
                m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + RELEASE + r"\s", line)
                if m:
                    return m.group(1), None
    raise AssertionError("no Debian %s source in this machine's apt configuration" % RELEASE)


def pristine():
    """pristine returns the path of the untouched minbase root, making it with
    debootstrap the first time (about a minute with a near mirror)."""
    if shutil.which("debootstrap") is None:
        raise unittest.SkipTest("debootstrap is not installed (Debian package debootstrap)")
    path = os.path.join(roots_dir(), RELEASE + ".pristine")
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(path, ".ready")):
            return path
        shutil.rmtree(path, ignore_errors=True)
        mirror, deb822 = apt_source()
        log = path + ".log"
        with open(log, "w") as out:
            r = subprocess.run(["debootstrap", "--variant=minbase", RELEASE, path, mirror],
                               stdout=out, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            with open(log) as f:
                raise AssertionError("debootstrap failed:\n" + f.read()[-3000:])
        if deb822:
            shutil.copy(deb822, os.path.join(path, "etc/apt/sources.list.d/"))
            try:
                os.remove(os.path.join(path, "etc/apt/sources.list"))
            except FileNotFoundError:
                pass
        if os.path.exists("/etc/resolv.conf"):
            shutil.copy("/etc/resolv.conf", os.path.join(path, "etc/resolv.conf"))
        open(os.path.join(path, ".ready"), "w").close()
    return path


def fresh(name):
    """fresh returns a new copy of the pristine root named NAME (an older copy
    of that name is removed first)."""
    source = pristine()
    path = os.path.join(roots_dir(), name + ".run")
    remove(path)
    subprocess.run(["cp", "-a", source, path], check=True)
    return path


def run(root, command, timeout=1200, env=None, check=True):
    """run runs the bash COMMAND as root inside ROOT and returns the
    CompletedProcess (stdout and stderr together, as text). ENV is a dict of
    variables to set inside; with CHECK a non-zero exit fails the test with
    the output."""
    environ = dict(os.environ)
    names = []
    for key, value in (env or {}).items():
        environ[key] = value
        names.append(key)
    environ["CHROOT_PASS_ENV"] = " ".join(names)
    r = subprocess.run([CHROOT_RUN, root, command], env=environ, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise AssertionError("in %s, `%s` exited %d:\n%s"
                             % (os.path.basename(root), command, r.returncode, r.stdout[-4000:]))
    return r


def remove(root):
    """remove deletes a root made by fresh (its mounts died with its namespace)."""
    if os.path.isdir(root):
        subprocess.run(["rm", "-rf", "--one-file-system", root], check=True)
