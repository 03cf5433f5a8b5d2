"""The Debian package, as a mail admin meets it on a clean Debian 12 machine:

- cpack builds stampd_VERSION_ARCH.deb from the build directory under test,
  with the binary in /usr/sbin, /etc/stampd/stampd.toml as a conffile and
  the systemd unit, and Depends: computed from the linked libraries;
- `apt-get install ./stampd_….deb` succeeds on a minbase root, which has
  nothing but what Depends: pulls in; the packaged config passes
  check-config; postinst made the stampd user, /etc/stampd/keys
  (root:stampd 0750) and enabled the unit;
- following the packaged config's own instructions (genkey into
  /etc/stampd/keys, the key owned by stampd), the binary runs as the
  installed unit runs it: its User, Group, UMask, ExecStartPre and
  ExecStart, on a read-only file system with a private /tmp
  (ProtectSystem=strict, PrivateTmp); a message sent from the host reaches a
  fake upstream on the host's loopback with a signature that verifies, and
  SIGTERM stops it with exit 0;
- `systemd-analyze verify` passes on the unit as installed;
- `apt-get purge` leaves no file of the package: what stays is the key the
  admin made and the stampd user (Debian practice, see deploy/debian/postrm);
  installed again, the same uid is reused, and without keys a purge leaves
  nothing named stampd at all.

Each step prints how long it took.
"""
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import unittest

import debian_root
from smtp_client import SmtpClient, make_message
import test_main
from stampd_harness import (BUILD_DIR, SOURCE_DIR, StampdTestCase, merge_sections, parse_log_line, render_toml,
                            run_cli, sanitizer_build)

UNIT = "/lib/systemd/system/stampd.service"
CONFIG = "/etc/stampd/stampd.toml"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


@contextlib.contextmanager
def step(name):
    """step prints how long the block took (also when it fails)."""
    started = time.monotonic()
    try:
        yield
    finally:
        print("step %-34s %6.1f s" % (name, time.monotonic() - started), file=sys.stderr, flush=True)


def project_version():
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        m = re.search(r"^CMAKE_PROJECT_VERSION:\w+=(\S+)$", f.read(), re.M)
    return m.group(1)


def unit_settings(text):
    """unit_settings returns the [Service] settings of a unit file as
    {name: [values in order]}."""
    out = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            name, _, value = line.partition("=")
            out.setdefault(name, []).append(value)
    return out


class Chrooted:
    """Chrooted is one long-running command inside a root (through
    chroot_run.sh), with its output collected line by line. Closing its
    stdin is the command's signal to stop."""

    def __init__(self, root, command):
        self.proc = subprocess.Popen([debian_root.CHROOT_RUN, root, command], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=dict(os.environ, CHROOT_PASS_ENV=""))
        self.lines = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.lines.append(None)  # end of output
            self._cond.notify_all()

    def output(self):
        with self._cond:
            return "".join(l for l in self.lines if l is not None)

    def wait_for(self, predicate, timeout, what):
        """wait_for returns the first line for which predicate holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if line is None:
                        raise AssertionError("the command ended before %s:\n%s" % (what, self.output()))
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s within %.0f s:\n%s" % (what, timeout, self.output()))
                self._cond.wait(min(left, 0.2))

    def finish(self, timeout=60):
        """finish closes stdin and returns the exit status."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(5)
            self.proc.stdout.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()
        self.proc.stdin.close()


class DebianPackageTest(StampdTestCase):
    def setUp(self):
        if sanitizer_build():
            raise test_main.not_applicable("the binary under test is a sanitizer build; the package holds Release")
        for tool in ("cpack", "dpkg-shlibdeps", "dpkg-deb", "strip"):
            if shutil.which(tool) is None:
                self.skipTest(tool + " is not installed (deploy/install-deps.sh)")
        if not os.path.exists(os.path.join(BUILD_DIR, "CPackConfig.cmake")):
            self.fail("no CPackConfig.cmake in %s: is deploy/debian/package.cmake included?" % BUILD_DIR)

    def run_in(self, root, command, timeout=600, **kwargs):
        return debian_root.run(root, command, timeout=timeout, env=APT_ENV, **kwargs).stdout

    def build_package(self):
        """build_package runs cpack on the build under test into a temp dir
        and returns the .deb's path."""
        out = tempfile.mkdtemp(prefix="stampd-deb-")
        self.addCleanup(shutil.rmtree, out, True)
        r = subprocess.run(["cpack", "-G", "DEB", "-B", out, "--config", os.path.join(BUILD_DIR, "CPackConfig.cmake")],
                           cwd=BUILD_DIR, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
        deb = os.path.join(out, "stampd_%s_%s.deb" % (project_version(), arch))
        self.assertTrue(os.path.exists(deb), "cpack made %s" % os.listdir(out))
        return deb

    def check_package_file(self, deb):
        fields = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True, check=True).stdout
        depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
        print("Depends: " + depends, file=sys.stderr)
        names = {d.split()[0] for d in depends.split(", ")}
        # One package per library the binary links (dpkg-shlibdeps), adduser for postinst.
        for name in ("adduser", "libc6", "libssl3", "libunbound8", "libtomlplusplus3", "libstdc++6"):
            self.assertIn(name, names)
        self.assertFalse([n for n in names if n.endswith("-dev")], depends)
        listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
        files = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
        for path in ("/usr/sbin/stampd", CONFIG, UNIT):
            self.assertIn(path, files)
        control = tempfile.mkdtemp(prefix="stampd-deb-control-")
        self.addCleanup(shutil.rmtree, control, True)
        subprocess.run(["dpkg-deb", "-e", deb, control], check=True)
        with open(os.path.join(control, "conffiles")) as f:
            self.assertEqual(f.read().split(), [CONFIG])

    def serve_as_the_unit(self, root, upstream):
        """serve_as_the_unit runs ExecStartPre and ExecStart of the installed
        unit as its User/Group with its UMask, under ProtectSystem=strict and
        PrivateTmp as far as a chroot can have them, sends one message from
        the host and returns what the upstream received."""
        with open(root + UNIT) as f:
            unit = unit_settings(f.read())
        user, group = unit["User"][0], unit["Group"][0]
        as_unit = "setpriv --reuid=%s --regid=%s --init-groups --no-new-privs --" % (user, group)
        script = "\n".join([
            "set -e",
            "mount -o remount,bind,ro /",  # ProtectSystem=strict: nothing writable but /tmp, /dev, /proc, /run
            "if touch /read-only 2>/dev/null; then echo '/ is writable'; exit 1; fi",
            "mount -t tmpfs -o mode=1777 tmpfs /tmp",  # PrivateTmp=yes: the spool
            "umask %s" % unit["UMask"][0],
            "cd /",
        ] + ["%s %s" % (as_unit, c) for c in unit["ExecStartPre"]] + [
            "%s %s </dev/null &" % (as_unit, unit["ExecStart"][0]),
            "pid=$!",
            "read -r _ || true",  # the test closes stdin: stop like systemctl stop
            "kill -TERM $pid",
            "status=0; wait $pid || status=$?",
            "echo \"stampd exited $status\"",
        ])
        served = Chrooted(root, script)
        self.addCleanup(served.kill)
        line = served.wait_for(lambda l: (parse_log_line(l) or {}).get("event") == "listening", 30,
                               "event=listening")
        host, _, port = parse_log_line(line)["address"].rpartition(":")
        self.assertEqual(host, "127.0.0.1")
        try:
            c = SmtpClient(host, int(port))
            self.addCleanup(c.close)
            self.assertEqual(c.ehlo().code, 250)
            message = make_message(subject="from the package", sender="admin@example.com")
            reply = c.send_mail("admin@example.com", ["rcpt@example.net"], message)
            self.assertEqual(reply.code, 250, reply)
            c.quit()
            received = upstream.wait_for_messages(1)[0]
        finally:
            status = served.finish()
        self.assertEqual(status, 0, served.output())
        self.assertIn("stampd exited 0", served.output())
        if os.environ.get("STAMPD_TEST_VERBOSE"):
            print(served.output(), file=sys.stderr)
        return received

    def test_install_relay_purge(self):
        with step("cpack"):
            deb = self.build_package()
            self.check_package_file(deb)
        with step("clean Debian 12 root"):
            root = debian_root.fresh("deb")
            self.addCleanup(debian_root.remove, root)
            shutil.copy(deb, os.path.join(root, "tmp"))
            name = os.path.basename(deb)
        with step("apt-get install ./" + name):
            self.run_in(root, "apt-get update -q && cd /tmp && apt-get install -y -q ./" + name)

        with step("installed"):
            self.run_in(root, "stampd check-config -c " + CONFIG)
            passwd = self.run_in(root, "getent passwd stampd").strip().split(":")
            self.assertEqual(passwd[5:], ["/nonexistent", "/usr/sbin/nologin"])
            self.assertLess(int(passwd[2]), 1000)  # a system user
            self.assertEqual(self.run_in(root, "stat -c '%a %U %G' /etc/stampd/keys").strip(), "750 root stampd")
            self.assertEqual(self.run_in(root, "dpkg-query --control-show stampd conffiles").split()[0], CONFIG)
            self.run_in(root, "test -L /etc/systemd/system/multi-user.target.wants/stampd.service")
            with open(root + UNIT) as f, open(os.path.join(SOURCE_DIR, "deploy", "systemd", "stampd.service")) as g:
                self.assertEqual(f.read(), g.read())

        with step("relay as the unit runs it"):
            # As the packaged config's header says: a key in /etc/stampd/keys owned by stampd.
            self.run_in(root, "stampd genkey --domain example.com --selector s2026 --dir /etc/stampd/keys"
                              " >/dev/null && chown stampd: /etc/stampd/keys/s2026.private")
            upstream = self.start_upstream()
            with open(root + CONFIG, "rb") as f:
                packaged = tomllib.load(f)
            test_config = merge_sections(packaged, {
                "server": {"listen": ["127.0.0.1:0"]},
                "upstream": {"servers": [upstream.address]},
                "metrics": {"listen": "127.0.0.1:0"},
                "dkim": {"key": [{"name": "example.com-s2026", "domain": "example.com", "selector": "s2026",
                                  "private_key": "keys/s2026.private"}],
                         "sign": [{"from": "*@example.com", "keys": ["example.com-s2026"]}]},
            })
            with open(root + CONFIG, "w") as f:
                f.write(render_toml(test_config))
            received = self.serve_as_the_unit(root, upstream)
            self.assertIn(b"Subject: from the package", received.content)
            self.assertRegex(received.content, rb"DKIM-Signature: [^\r]*d=example\.com")
            r = run_cli("verify", "--key-file", root + "/etc/stampd/keys/s2026.txt", input=received.content)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        with step("systemd-analyze verify (installed)"):
            self.run_in(root, "apt-get install -y -q --no-install-recommends systemd >/dev/null")
            out = self.run_in(root, "systemd-analyze verify " + UNIT)
            self.assertEqual(out.strip(), "", "systemd-analyze complained")

        with step("apt-get purge stampd"):
            uid = self.run_in(root, "id -u stampd").strip()
            self.run_in(root, "apt-get purge -y -q stampd")
            self.run_in(root, "! dpkg -s stampd >/dev/null 2>&1")
            left = self.run_in(root, "find / -xdev -name '*stampd*' | sort").split()
            self.assertEqual(left, ["/etc/stampd", "/tmp/" + name])
            # The admin's key stays (not the package's), and so does the user that owns it.
            self.assertEqual(self.run_in(root, "find /etc/stampd | sort").split(),
                             ["/etc/stampd", "/etc/stampd/keys", "/etc/stampd/keys/s2026.private",
                              "/etc/stampd/keys/s2026.txt"])
            self.assertEqual(self.run_in(root, "find / -xdev -user stampd").split(),
                             ["/etc/stampd/keys/s2026.private"])

        with step("install again, purge without keys"):
            self.run_in(root, "cd /tmp && apt-get install -y -q ./" + name)
            self.assertEqual(self.run_in(root, "id -u stampd").strip(), uid)
            self.run_in(root, "stampd check-config -c " + CONFIG)  # a purged conffile comes back as packaged
            self.run_in(root, "rm /etc/stampd/keys/s2026.* && apt-get purge -y -q stampd")
            self.assertEqual(self.run_in(root, "find / -xdev -name '*stampd*'").split(), ["/tmp/" + name])
            self.assertEqual(self.run_in(root, "find / -xdev \\( -user stampd -o -group stampd \\)").split(), [])


if __name__ == "__main__":
    test_main.main()
