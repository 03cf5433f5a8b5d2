"""OpenDKIM as a signing milter on a unix socket, the setup the classic
Postfix + OpenDKIM how-to builds, run from a temporary directory for the
benchmark's incumbent (never the system's /etc/opendkim.conf or its socket).

    milter = OpenDkimMilter(domain="example.com", selector="s", key_file="s.private").start()
    ... main.cf: smtpd_milters = milter.postfix_address ...
    milter.cleanup()

Skips (unittest.SkipTest) when opendkim is not installed (Debian package
opendkim). As root it runs as the opendkim user (UserID), which owns the copy
of the key and the socket's directory; Postfix's daemons reach the socket
because it is made with UMask 000.
"""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from stampd_harness import read_text_or_empty

OPENDKIM = "/usr/sbin/opendkim"


def require_opendkim():
    """require_opendkim returns the opendkim binary or skips the test."""
    path = OPENDKIM if os.access(OPENDKIM, os.X_OK) else shutil.which("opendkim")
    if path is None:
        raise unittest.SkipTest("opendkim is not installed (Debian package opendkim)")
    return path


class OpenDkimMilter:
    """OpenDkimMilter is one `opendkim -f` in signing mode (Mode s) for one
    domain with one key (KeyFile: a PEM RSA key, such as `stampd genkey`
    writes), listening on DIR/run/opendkim.sock. canonicalization is c=."""

    def __init__(self, domain, selector, key_file, canonicalization="relaxed/relaxed"):
        self.binary = require_opendkim()
        self.domain = domain
        self.selector = selector
        self.canonicalization = canonicalization
        self.dir = tempfile.mkdtemp(prefix="stampd-opendkim-")
        os.chmod(self.dir, 0o755)  # Postfix's smtpd (user postfix) must reach the socket
        self.run_dir = os.path.join(self.dir, "run")
        self.key_dir = os.path.join(self.dir, "keys")
        self.socket_path = os.path.join(self.run_dir, "opendkim.sock")
        self.config_path = os.path.join(self.dir, "opendkim.conf")
        self.log_path = os.path.join(self.dir, "opendkim.log")
        os.makedirs(self.run_dir, mode=0o755)
        os.makedirs(self.key_dir, mode=0o700)
        self.key_path = os.path.join(self.key_dir, selector + ".private")
        shutil.copyfile(key_file, self.key_path)
        os.chmod(self.key_path, 0o600)
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("opendkim")
            except KeyError:
                self.user = None  # stays root: still a private instance
        if self.user is not None:
            for path in (self.run_dir, self.key_dir, self.key_path):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self.proc = None

    @property
    def postfix_address(self):
        """postfix_address is the milter as main.cf's smtpd_milters names it."""
        return "unix:" + self.socket_path

    def config(self):
        lines = [
            "# Written by stampd's relay_bench: a private signing milter.",
            "Mode s",
            "Syslog no",
            "Socket local:" + self.socket_path,
            "UMask 000",
            "PidFile " + os.path.join(self.run_dir, "opendkim.pid"),
            "Canonicalization " + self.canonicalization,
            "SignatureAlgorithm rsa-sha256",
            "OversignHeaders From",
            "Domain " + self.domain,
            "Selector " + self.selector,
            "KeyFile " + self.key_path,
            # Mail from Postfix's loopback clients is ours to sign (the default too).
            "InternalHosts 127.0.0.1",
            "RequireSafeKeys no",
        ]
        if self.user is not None:
            lines.append("UserID " + self.user.pw_name)  # and its primary group
        return "\n".join(lines) + "\n"

    def start(self, timeout=10.0):
        """start runs opendkim in the foreground and waits for its socket."""
        with open(self.config_path, "w") as f:
            f.write(self.config())
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "-f", "-x", self.config_path], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.socket_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("opendkim did not make its socket %s:\n%s\n%s"
                                   % (self.socket_path, self.config(), read_text_or_empty(self.log_path)))
            time.sleep(0.02)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        if not os.environ.get("STAMPD_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        return read_text_or_empty(self.log_path)
