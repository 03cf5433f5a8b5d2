"""A private HAProxy for tests: Debian's `haproxy`, in the foreground
(`haproxy -db`), with its files in a temporary directory, listening on
loopback only and never touching the system's instance or its config.

It loads a global section of its own (its log on stderr, the runtime API on
a socket in its directory, Debian's stock defaults section) and then the
configuration files the test names, as they are; their "${NAME}" variables
come from `env` (HAProxy expands them itself, so the tested file is the
shipped one, byte for byte).

    lb = HAProxy(["deploy/haproxy/haproxy.cfg"], env={"STAMPD_1": "127.0.0.1:10027", ...},
                 bind_variable="STAMPD_LB_BIND")
    lb.start()                            # raises unittest.SkipTest when haproxy is missing
    lb.port                               # the frontend's port (on 127.0.0.1)
    lb.servers("stampd")                  # {name: {"status": "UP", "check_status": ...}}
    lb.wait_server("stampd", "stampd1", "DOWN", check_status="L7STS")
    lb.stop()
"""
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from stampd_harness import free_port

# Debian 12's stock defaults (/etc/haproxy/haproxy.cfg, without the
# errorfiles): the section a snippet appended to that file inherits.
_GLOBAL = """\
global
    log stderr format short local0 info
    stats socket {dir}/admin.sock mode 600 level admin
    stats timeout 30s

defaults
    log global
    mode http
    option httplog
    option dontlognull
    timeout connect 5000
    timeout client 50000
    timeout server 50000
"""


def find_haproxy():
    """find_haproxy returns the path of the haproxy binary, or None."""
    found = shutil.which("haproxy")
    if found:
        return found
    for d in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        p = os.path.join(d, "haproxy")
        if os.access(p, os.X_OK):
            return p
    return None


def require_haproxy():
    """require_haproxy returns the haproxy binary; unittest.SkipTest when it is missing."""
    binary = find_haproxy()
    if binary is None:
        raise unittest.SkipTest("haproxy is not installed (Debian package haproxy)")
    return binary


def _die_with_parent():
    """Runs in the child before exec: haproxy gets SIGTERM when the test
    process dies, even by SIGKILL (a CTest timeout)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class HAProxy:
    """HAProxy is one `haproxy -db` process (see the module doc).

    configs: configuration files loaded after the test's global section.
    env: their variables. bind_variable: the variable that holds the
    frontend's bind address; it gets 127.0.0.1:PORT on a free port.
    """

    def __init__(self, configs, env=None, bind_variable=None):
        self.configs = list(configs)
        self.env = dict(env or {})
        self.bind_variable = bind_variable
        self.port = None
        self.dir = None
        self.proc = None
        self.lines = []
        self._lock = threading.Lock()
        self._reader = None

    @property
    def socket_path(self):
        return os.path.join(self.dir, "admin.sock")

    def _command(self, binary, *flags):
        cmd = [binary] + list(flags) + ["-f", os.path.join(self.dir, "global.cfg")]
        for c in self.configs:
            cmd += ["-f", c]
        return cmd

    def start(self, timeout=15.0):
        """start checks the configuration (`haproxy -c`), runs haproxy and
        returns once its runtime API answers and the frontend accepts."""
        binary = require_haproxy()
        self.dir = tempfile.mkdtemp(prefix="stampd-haproxy-")
        with open(os.path.join(self.dir, "global.cfg"), "w") as f:
            f.write(_GLOBAL.format(dir=self.dir))
        for _ in range(3):
            env = dict(os.environ, **self.env)
            if self.bind_variable:
                self.port = free_port()
                env[self.bind_variable] = "127.0.0.1:%d" % self.port
            check = subprocess.run(self._command(binary, "-c"), capture_output=True, text=True,
                                   env=env, timeout=30)
            if check.returncode != 0:
                raise RuntimeError("haproxy -c refused the configuration:\n%s%s"
                                   % (check.stdout, check.stderr))
            self.lines = []
            self.proc = subprocess.Popen(self._command(binary, "-db"), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         env=env, cwd=self.dir, preexec_fn=_die_with_parent)
            self._reader = threading.Thread(target=self._read_log, daemon=True, name="haproxy-log")
            self._reader.start()
            if self._wait_started(timeout):
                return self
            died = self.proc.poll() is not None
            self._kill()
            if not died:  # a port taken in between makes it exit at once; anything else is fatal
                break
        log = self.log_text()
        raise RuntimeError("haproxy did not start:\n" + log)

    def _read_log(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace"))

    def _wait_started(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if "Pid:" in self.api("show info"):
                    if self.port is None:
                        return True
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def api(self, command, timeout=5.0):
        """api sends one command to the runtime API and returns its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket_path)
            s.sendall(command.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out.decode("utf-8", "replace")
                out += chunk

    def servers(self, backend):
        """servers returns {server name: row of `show stat`} for backend;
        a row's "status" is UP, DOWN, "UP 1/2" (going down), "DOWN 1/2"
        (coming up), MAINT; "check_status" and "check_code" say why."""
        text = self.api("show stat").lstrip("# ")
        out = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
                out[row["svname"]] = row
        return out

    def wait_server(self, backend, server, status, check_status=None, timeout=15.0):
        """wait_server waits until server's status is exactly status (and
        its last check's check_status, when given: L7OK, L7STS, L4CON...);
        returns its row."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.servers(backend).get(server)
            if row is not None and row["status"] == status and \
                    check_status in (None, row["check_status"]):
                return row
            if time.monotonic() > deadline:
                now = {k: row.get(k) for k in ("status", "check_status", "check_code", "check_desc")} \
                    if row is not None else None
                raise AssertionError("haproxy: %s/%s not %s%s within %.0fs (now %r); log:\n%s"
                                     % (backend, server, status, "/" + check_status if check_status else "",
                                        timeout, now, self.log_text()[-4000:]))
            time.sleep(0.02)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        with self._lock:
            return "".join(self.lines)

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader:
            self._reader.join(5)
        self.proc.stderr.close()
        self.proc = None

    def stop(self):
        self._kill()
        if self.dir and not os.environ.get("STAMPD_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)
