"""Postfix's test programs as peers: smtp-sink (an SMTP server that counts,
and optionally dumps, what it receives) and smtp-source (a parallel SMTP
load generator). Both are in Debian's postfix package (/usr/sbin). Tests
that need them skip politely when they are missing."""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from stampd_harness import free_port

SBIN = ("/usr/sbin", "/usr/lib/postfix/sbin")


def find_tool(name):
    """find_tool returns the path of smtp-sink / smtp-source or None."""
    for d in SBIN:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def require_tool(name):
    path = find_tool(name)
    if path is None:
        raise unittest.SkipTest(name + " is not installed (Debian package postfix)")
    return path


_COUNTERS = re.compile(r"sess=(\d+) quit=(\d+) mesg=(\d+)")


class SmtpSink:
    """SmtpSink runs `smtp-sink -c` on a free loopback port.

    counters() parses its running counters (sessions, quits, messages: a
    message counts when its final dot arrived). With dump=True each message
    is also written to a file in dump_dir (slow: for content checks, not for
    benchmarks). options are extra smtp-sink flags (for example ["-8"] to not
    offer 8BITMIME, ["-f", "."] to refuse the final dot)."""

    def __init__(self, dump=False, options=(), host="127.0.0.1", backlog=256):
        self.binary = require_tool("smtp-sink")
        self.host = host
        self.options = list(options)
        self.backlog = backlog
        self.dump = dump
        self.dir = tempfile.mkdtemp(prefix="stampd-sink-")
        self.dump_dir = os.path.join(self.dir, "dump")
        self.proc = None
        self.port = None
        self._out = []
        self._lock = threading.Lock()
        self._reader = None

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def command(self, port):
        cmd = [self.binary, "-c"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # smtp-sink refuses to run as root
        if self.dump:
            cmd += ["-d", os.path.join(self.dump_dir, "%Y%m%d%H%M%S.")]
        return cmd + self.options + ["%s:%d" % (self.host, port), str(self.backlog)]

    def start(self, timeout=10.0):
        if self.dump:
            os.makedirs(self.dump_dir)
            os.chmod(self.dir, 0o777)
            os.chmod(self.dump_dir, 0o777)
        for _ in range(5):  # the free port may be taken between probe and bind
            port = free_port(self.host)
            self.proc = subprocess.Popen(self.command(port), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection((self.host, port), timeout=1) as s:
                        s.recv(100)  # the greeting; then we hang up (counts as a session)
                    self.port = port
                    self.baseline = self.counters()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("smtp-sink did not start: " + self.output())

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(1)
            if not chunk:
                return
            with self._lock:
                self._out.append(chunk.decode("latin-1"))

    def output(self):
        with self._lock:
            return "".join(self._out)

    def counters(self):
        """counters returns {"sessions", "quits", "messages"} as smtp-sink last printed them."""
        found = _COUNTERS.findall(self.output())
        s, q, m = map(int, found[-1]) if found else (0, 0, 0)
        return {"sessions": s, "quits": q, "messages": m}

    def messages(self):
        """messages counts the final dots received since start (our probe excluded)."""
        return self.counters()["messages"] - self.baseline["messages"]

    def wait_for_messages(self, n, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.messages() < n:
            if time.monotonic() > deadline:
                raise AssertionError("smtp-sink counted %d of %d messages; output tail: %r"
                                     % (self.messages(), n, self.output()[-300:]))
            time.sleep(0.05)

    def dumps(self):
        """dumps returns the dump files' contents (bytes), oldest first."""
        files = sorted(glob.glob(os.path.join(self.dump_dir, "*")), key=os.path.getmtime)
        out = []
        for f in files:
            with open(f, "rb") as fh:
                out.append(fh.read())
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_dump(data):
    """parse_dump splits one smtp-sink dump into (sink headers dict of lists, message bytes)."""
    headers = {}
    lines = data.split(b"\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(b"Received: ") and b"(smtp-sink)" in b"\n".join(lines[i:i + 3]):
            i += 3
            break
        k, _, v = line.decode("utf-8", "replace").partition(": ")
        headers.setdefault(k, []).append(v)
        i += 1
    return headers, b"\n".join(lines[i:])


def smtp_source(address, messages=1, sessions=1, size=None, sender="sender@example.com",
                recipient="rcpt@example.net", recipients=1, options=(), timeout=600, message_file=None):
    """smtp_source runs smtp-source against address ("host:port") and returns
    (CompletedProcess, seconds). size is the payload length (-l); message_file
    a pre-formatted message (-F)."""
    binary = require_tool("smtp-source")
    cmd = [binary, "-s", str(sessions), "-m", str(messages), "-f", sender, "-t", recipient,
           "-r", str(recipients), "-M", "client.test"]
    if size is not None:
        cmd += ["-l", str(size)]
    if message_file is not None:
        cmd += ["-F", message_file]
    cmd += list(options) + [address]
    start = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return r, time.monotonic() - start
