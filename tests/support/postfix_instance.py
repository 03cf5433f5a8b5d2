"""A private Postfix instance for tests: its own config directory, queue,
data directory, log file and mailboxes, all in one temporary directory,
started with `postfix -c DIR` (never the system's instance or its config)
and listening on loopback only.

Mail for `mailbox_users` at `mailbox_domains` is delivered by Postfix's
virtual(8) agent into Maildirs DIR/mail/<user>/ as user nobody; everything else goes to
the nexthop the test configures (content_filter, relayhost, transport_maps).
The log goes to DIR/maillog (postlogd; no syslog needed).

    pf = PostfixInstance(main_cf_extra="content_filter = ...", master_cf_extra="...")
    pf.start()                          # needs root (Postfix's daemons switch users)
    ... smtplib.SMTP("127.0.0.1", pf.port) ...
    files = pf.wait_for_delivery("rcpt")
    pf.stop(); pf.cleanup()

Skips (unittest.SkipTest) when Postfix is not installed or we are not root.
"""
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from stampd_harness import free_port, read_text_or_empty

POSTFIX = "/usr/sbin/postfix"

# Every service the tests need, none chrooted (the chroot would need a copy of
# /etc files inside the temporary directory). The smtpd listener is added by
# PostfixInstance with its own port.
BASE_MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def require_postfix():
    """require_postfix skips the test unless Postfix is installed and we are root."""
    if not os.access(POSTFIX, os.X_OK):
        raise unittest.SkipTest("Postfix is not installed (Debian package postfix)")
    if os.geteuid() != 0:
        raise unittest.SkipTest("a private Postfix instance needs root")
    try:
        pwd.getpwnam("postfix")
        pwd.getpwnam("nobody")
    except KeyError:
        raise unittest.SkipTest("the postfix and nobody users are missing")


class PostfixInstance:
    """PostfixInstance is one private Postfix (see the module doc).

    port: the loopback port of its smtpd (default: a free one).
    main_cf_extra / master_cf_extra: text appended to main.cf / master.cf.
    mailbox_domains, mailbox_users: the addresses user@domain delivered
    locally, into the Maildir DIR/mail/<user>/ (others are refused).
    """

    def __init__(self, main_cf_extra="", master_cf_extra="", mailbox_domains=("example.net",),
                 mailbox_users=("rcpt",), port=None, hostname="mx.postfix.test"):
        require_postfix()
        self.dir = tempfile.mkdtemp(prefix="stampd-postfix-")
        # Postfix's daemons run as user postfix and nobody: they must reach in.
        os.chmod(self.dir, 0o755)
        self.config_dir = os.path.join(self.dir, "etc")
        self.queue_dir = os.path.join(self.dir, "queue")
        self.data_dir = os.path.join(self.dir, "data")
        self.mail_dir = os.path.join(self.dir, "mail")
        self.log_path = os.path.join(self.dir, "maillog")
        self.port = port or free_port()
        self.hostname = hostname
        self.mailbox_domains = list(mailbox_domains)
        self.mailbox_users = list(mailbox_users)
        self.main_cf_extra = main_cf_extra
        self.master_cf_extra = master_cf_extra
        self.started = False
        self._master_pid = None

    # configuration

    def main_cf(self):
        nobody = pwd.getpwnam("nobody")
        return "\n".join([
            "# Written by the stampd tests: a private instance in %s." % self.dir,
            "compatibility_level = 3.6",
            "queue_directory = " + self.queue_dir,
            "data_directory = " + self.data_dir,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = " + self.hostname,
            "mydomain = postfix.test",
            "myorigin = $myhostname",
            "mydestination =",
            "relay_domains =",
            # Loopback only, whatever the services say.
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "smtp_bind_address = 127.0.0.1",
            "mynetworks = 127.0.0.0/8",
            "smtp_dns_support_level = disabled",
            "maillog_file = " + self.log_path,
            "maillog_file_prefixes = " + self.dir,
            "alias_maps =",
            "alias_database =",
            "biff = no",
            "virtual_mailbox_domains = " + " ".join(self.mailbox_domains),
            "virtual_mailbox_base = " + self.mail_dir,
            # user@domain -> Maildir "user/" (the trailing slash means Maildir).
            "virtual_mailbox_maps = texthash:" + os.path.join(self.config_dir, "mailboxes"),
            "virtual_uid_maps = static:%d" % nobody.pw_uid,
            "virtual_gid_maps = static:%d" % nobody.pw_gid,
            # Retry deferred mail quickly (a test may make stampd tempfail).
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
            "smtpd_banner = $myhostname ESMTP",
            "",
            self.main_cf_extra,
            "",
        ])

    def master_cf(self):
        smtpd = "127.0.0.1:%d inet  n       -       n       -       -       smtpd\n" % self.port
        return smtpd + BASE_MASTER_CF + "\n" + self.master_cf_extra + "\n"

    # life cycle

    def postfix(self, *args, check=True):
        """postfix runs `postfix -c DIR ARGS` and returns the CompletedProcess.
        Postfix commands print errors only on a terminal, so on failure the
        message is taken from the log (or from a run under script(1))."""
        r = subprocess.run([POSTFIX, "-c", self.config_dir] + list(args), capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            detail = r.stdout + r.stderr
            if not detail.strip() and shutil.which("script"):
                cmd = " ".join([POSTFIX, "-c", self.config_dir] + list(args))
                detail = subprocess.run(["script", "-qc", cmd, "/dev/null"], capture_output=True,
                                        text=True, timeout=60).stdout
            raise RuntimeError("postfix %s failed (%d): %s\n%s" % (" ".join(args), r.returncode,
                                                                 detail.strip(), self.log()[-2000:]))
        return r

    def postconf(self, *args):
        r = subprocess.run(["/usr/sbin/postconf", "-c", self.config_dir] + list(args),
                           capture_output=True, text=True, timeout=30)
        return r.stdout + r.stderr

    def write_config(self):
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.queue_dir, exist_ok=True)
        os.makedirs(self.mail_dir, exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail_dir, nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self.master_cf())
        with open(os.path.join(self.config_dir, "mailboxes"), "w") as f:
            for domain in self.mailbox_domains:
                for user in self.mailbox_users:
                    f.write("%s@%s %s/\n" % (user, domain, user))

    def start(self, timeout=30.0):
        """start writes the configuration, starts the instance and waits until
        its smtpd answers."""
        self.write_config()
        self.started = True
        self.postfix("start")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Postfix did not answer on port %d:\n%s" % (self.port, self.log()[-3000:]))
            time.sleep(0.1)
        self._master_pid = self.master_pid()
        return self

    def listening_addresses(self):
        """listening_addresses returns the local addresses of the TCP sockets
        this instance's master listens on (from ss), or None without ss."""
        if self._master_pid is None or shutil.which("ss") is None:
            return None
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
        found = []
        for line in out.splitlines():
            if "pid=%d," % self._master_pid in line:
                found.append(line.split()[3])
        return found

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _running(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            return state != "Z"
        except (OSError, IndexError):
            return False

    def stop(self, timeout=15.0):
        """stop stops the instance (`postfix stop`, then SIGKILL to its own
        master process if it lingers)."""
        if not self.started:
            return
        self.started = False
        pid = self.master_pid() or self._master_pid
        self.postfix("stop", check=False)
        if pid is None:
            return
        deadline = time.monotonic() + timeout
        while self._running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def cleanup(self):
        self.stop()
        if not os.environ.get("STAMPD_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # what happened

    def log(self):
        return read_text_or_empty(self.log_path)

    def wait_for_log(self, pattern, timeout=30.0):
        """wait_for_log waits until a log line matches pattern (a regex) and returns the match."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.log())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError("Postfix log has no line matching %r within %.0fs:\n%s"
                                     % (pattern, timeout, self.log()[-4000:]))
            time.sleep(0.1)

    def delivered(self, user):
        """delivered returns the files in Maildir DIR/mail/<user>/new, oldest first."""
        files = glob.glob(os.path.join(self.mail_dir, user, "new", "*"))
        return sorted(files, key=os.path.getmtime)

    def wait_for_delivery(self, user, count=1, timeout=30.0):
        """wait_for_delivery waits until count messages are in user's Maildir and returns their bytes."""
        deadline = time.monotonic() + timeout
        while len(self.delivered(user)) < count:
            if time.monotonic() > deadline:
                raise AssertionError("%d of %d message(s) delivered to %s within %.0fs; Postfix log:\n%s"
                                     % (len(self.delivered(user)), count, user, timeout, self.log()[-4000:]))
            time.sleep(0.1)
        out = []
        for path in self.delivered(user):
            with open(path, "rb") as f:
                out.append(f.read())
        return out
