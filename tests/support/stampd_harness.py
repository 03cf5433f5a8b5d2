"""Runs the real stampd binary for the Python-driven tests.

Stampd writes a config into a temporary directory, starts `stampd run -c` on
port 0, learns the real ports from the `event=listening` log lines, collects
the log (parsed into events), and stops the process when the test ends, even
when it fails. It also renders TOML from Python dicts, runs
`stampd check-config`, and reads a process's memory use from /proc.

Environment (set by CTest): STAMPD_BIN, STAMPD_SOURCE_DIR, STAMPD_BUILD_DIR.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SUPPORT_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("STAMPD_SOURCE_DIR") or os.path.dirname(os.path.dirname(SUPPORT_DIR))
BUILD_DIR = os.environ.get("STAMPD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")


def stampd_bin():
    """stampd_bin returns the binary under test (STAMPD_BIN, else BUILD_DIR/stampd)."""
    path = os.environ.get("STAMPD_BIN") or os.path.join(BUILD_DIR, "stampd")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest("stampd binary not found (set STAMPD_BIN): " + path)
    return path


_sanitizer_build = None


def sanitizer_build():
    """sanitizer_build tells whether the binary under test links ASan, UBSan
    or TSan: it starts several times slower, and ASan's quarantine keeps freed
    memory, so memory high-water marks say nothing about stampd there."""
    global _sanitizer_build
    if _sanitizer_build is None:
        out = subprocess.run(["readelf", "-d", stampd_bin()], capture_output=True, text=True).stdout
        _sanitizer_build = bool(re.search(r"Shared library: \[lib[atu]san\.", out))
    return _sanitizer_build


# --- TOML ------------------------------------------------------------------

def toml_value(value):
    """toml_value renders one Python value as TOML (str, bool, int, float,
    list, and a dict as an inline table: {softfail = "reject"})."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON strings are valid TOML basic strings for what we write.
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join("%s = %s" % (k, toml_value(v)) for k, v in value.items()) + "}"
    raise TypeError("cannot render %r as TOML" % (value,))


def render_toml(sections):
    """render_toml turns {"server": {...}, "dkim": {"key": [{...}]}} into TOML text.

    A value that is a list of dicts becomes an array of tables ([[dkim.key]]);
    a dict inside a section becomes a sub-table. Keys keep their order.
    """
    out = []

    def table(name, values):
        plain = [(k, v) for k, v in values.items() if not isinstance(v, dict) and not _is_table_list(v)]
        out.append("[%s]" % name)
        for k, v in plain:
            out.append("%s = %s" % (k, toml_value(v)))
        out.append("")
        for k, v in values.items():
            if isinstance(v, dict):
                table(name + "." + k, v)
            elif _is_table_list(v):
                for item in v:
                    out.append("[[%s.%s]]" % (name, k))
                    for ik, iv in item.items():
                        out.append("%s = %s" % (ik, toml_value(iv)))
                    out.append("")

    for name, values in sections.items():
        if values is None:
            continue
        table(name, values)
    return "\n".join(out) + "\n"


def _is_table_list(v):
    return isinstance(v, list) and v and all(isinstance(i, dict) for i in v)


def merge_sections(base, override):
    """merge_sections returns base updated section by section with override."""
    merged = {k: dict(v) for k, v in base.items()}
    for name, values in (override or {}).items():
        if values is None:
            merged.pop(name, None)
            continue
        merged.setdefault(name, {}).update(values)
    return merged


_key_support = {}


def supports_key(section, key, value):
    """supports_key tells whether this stampd binary accepts [section] key =
    value (asks check-config once per key), so that the harness can use a
    newer key without breaking on a binary that predates it."""
    k = (section, key)
    if k not in _key_support:
        text = render_toml({"server": {"listen": ["127.0.0.1:0"]}, section: {key: value}})
        rc, _, _, _ = check_config(text)
        _key_support[k] = rc == 0
    return _key_support[k]


def default_sections(upstream_servers):
    """default_sections is a small, fast test config: port 0 on loopback,
    loopback trusted, metrics off, short upstream timeouts, and no upstream
    health probe (its connections would muddle what a test counts upstream;
    tests of the probe turn it on)."""
    sections = {
        "server": {
            "listen": ["127.0.0.1:0"],
            "hostname": "stampd.test",
            "trusted_networks": ["127.0.0.0/8", "::1/128"],
            "command_timeout": "30s",
            "data_timeout": "30s",
            "threads": 2,
            "drain_timeout": "1s",
        },
        "upstream": {
            "servers": list(upstream_servers),
            "connect_timeout": "5s",
            "command_timeout": "10s",
            "data_timeout": "20s",
        },
        "log": {"level": "debug"},
        "metrics": {"listen": ""},
    }
    if supports_key("upstream", "health_check_interval", "0s"):
        sections["upstream"]["health_check_interval"] = "0s"
    return sections


# --- log -------------------------------------------------------------------

_FIELD = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def _unescape(v):
    if not v.startswith('"'):
        return v
    body = v[1:-1]
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n == "x" and i + 3 < len(body):
                out.append(chr(int(body[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(n)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_log_line(line):
    """parse_log_line returns {"ts", "level", "event", key: value...} or None.

    Reads both formats: text (`TS LEVEL event=E k=v k="quoted"`) and JSON.
    """
    line = line.rstrip("\n")
    if line.startswith("{"):
        try:
            return json.loads(line)
        except ValueError:
            return None
    parts = line.split(" ", 2)
    if len(parts) < 3 or not parts[2].startswith("event="):
        return None
    fields = {"ts": parts[0], "level": parts[1]}
    for m in _FIELD.finditer(parts[2]):
        fields[m.group(1)] = _unescape(m.group(2))
    return fields


# --- process ---------------------------------------------------------------

def proc_status(pid):
    """proc_status returns /proc/PID/status as a dict of strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_kib(pid, field):
    """proc_kib returns a /proc/PID/status memory field (VmRSS, VmHWM) in KiB."""
    return int(proc_status(pid)[field].split()[0])


def cpu_seconds(pid):
    """cpu_seconds is utime + stime of pid (all its threads) from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_port_random = random.Random(os.getpid() ^ int(time.time() * 1000))


def free_port(host="127.0.0.1"):
    """free_port returns a port that was free a moment ago (for tools that
    cannot listen on port 0 and report it, like smtp-sink and Postfix).

    It is picked at random below the kernel's ephemeral range: a port from
    that range (what binding port 0 gives) can be taken, before the tool
    binds it, by any outgoing connection of a test running beside this one;
    Postfix's master then fails to start ("mail system startup failed")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = _ephemeral_low()
    if low > 12000:
        for _ in range(200):
            port = _port_random.randrange(10000, low)
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def closed_port(host="127.0.0.1"):
    """closed_port returns a port where nothing listens (connect is refused)."""
    return free_port(host)


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """wait_until polls predicate until it is true; raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Stampd:
    """Stampd is one running stampd process.

    Give it `sections` (dicts rendered with render_toml) or `config_text`;
    `files` are written next to the config (name -> bytes or str) first, so a
    config can name them relative to itself.
    """

    def __init__(self, sections=None, config_text=None, files=None, workdir=None, env=None,
                 args=("run",)):
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="stampd-test-")
        self.sections = sections
        self.config_text = config_text if config_text is not None else render_toml(sections or {})
        self.config_path = os.path.join(self.workdir, "stampd.toml")
        for name, content in (files or {}).items():
            path = os.path.join(self.workdir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.env = dict(os.environ, **(env or {}))
        self.args = list(args)
        self.proc = None
        self.lines = []
        self.addresses = []  # [(host, port)] from event=listening, in config order (listen, then listen_tls)
        self._cond = threading.Condition()
        self._reader = None
        self.returncode = None

    # life cycle

    def start(self, timeout=None):
        """start runs the binary and waits until it listens on every address
        (15 s, 60 s for a sanitizer build: the fault matrix starts dozens at once)."""
        if timeout is None:
            timeout = 60.0 if sanitizer_build() else 15.0
        cmd = [stampd_bin()] + self.args + ["-c", self.config_path]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env, cwd=self.workdir)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        server = (self.sections or {}).get("server", {})
        expected = len(server["listen"]) if "listen" in server else 1
        expected += len(server.get("listen_tls", []))
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.addresses) < expected:
                if self.proc.poll() is not None and self._reader_done:
                    raise RuntimeError("stampd exited with %s before listening:\n%s"
                                       % (self.proc.returncode, self.log_text()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("stampd did not listen within %.0fs:\n%s" % (timeout, self.log_text()))
                self._cond.wait(min(left, 0.1))
        return self

    _reader_done = False

    def _read_log(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._cond:
                self.lines.append(line)
                ev = parse_log_line(line)
                if ev and ev.get("event") == "listening":
                    host, _, port = ev["address"].rpartition(":")
                    self.addresses.append((host.strip("[]"), int(port)))
                self._cond.notify_all()
        with self._cond:
            self._reader_done = True
            self._cond.notify_all()

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """stop sends sig (SIGTERM: drain), then SIGKILL after timeout; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader:
            self._reader.join(5)
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._reader:
            self._reader.join(5)

    def cleanup(self):
        self.stop()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        if self.own_workdir and not os.environ.get("STAMPD_KEEP_TEST_DIRS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # addresses

    @property
    def pid(self):
        return self.proc.pid

    @property
    def host(self):
        return self.addresses[0][0]

    @property
    def port(self):
        return self.addresses[0][1]

    @property
    def address(self):
        return self.addresses[0]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # log

    def log_text(self):
        with self._cond:
            return "".join(self.lines)

    def events(self, event=None, **match):
        """events returns the parsed log lines, optionally only event=E with fields equal to match."""
        with self._cond:
            lines = list(self.lines)
        out = []
        for line in lines:
            ev = parse_log_line(line)
            if ev is None:
                continue
            if event is not None and ev.get("event") != event:
                continue
            if any(ev.get(k) != v for k, v in match.items()):
                continue
            out.append(ev)
        return out

    def wait_for_event(self, event, timeout=10.0, count=1, where=None, **match):
        """wait_for_event waits until `count` event=E lines (matching fields,
        and the predicate `where` when given) were logged. The log arrives
        through a pipe, so a line can lag the SMTP reply it goes with."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events(event, **match) if where is None or where(e)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %d x event=%s %s within %.1fs; log:\n%s"
                                         % (count, event, match, timeout, "".join(self.lines[-60:])))
                self._cond.wait(min(left, 0.1))

    def messages(self, **match):
        """messages returns the event=message summary lines."""
        return self.events("message", **match)

    # memory

    def rss_kib(self):
        return proc_kib(self.pid, "VmRSS")

    def hwm_kib(self):
        return proc_kib(self.pid, "VmHWM")


def run_cli(*args, input=None, timeout=60, cwd=None, env=None):
    """run_cli runs `stampd ARGS...` (sign, verify, genkey, spf, dns-check...)
    and returns the CompletedProcess (bytes stdout/stderr)."""
    return subprocess.run([stampd_bin()] + [str(a) for a in args], input=input, capture_output=True,
                          timeout=timeout, cwd=cwd, env=dict(os.environ, **(env or {})))


def read_text_or_empty(path):
    """read_text_or_empty returns a peer's log file as text, "" when it is
    not there (yet): for failure messages, which must not fail themselves."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def make_key(directory, domain, selector, algorithm=None):
    """make_key runs `stampd genkey` into directory and returns the paths of
    the private key and of the DNS record (.txt); AssertionError when it fails."""
    args = ["genkey", "--domain", domain, "--selector", selector, "--dir", directory]
    if algorithm:
        args += ["--algorithm", algorithm]
    r = run_cli(*args)
    if r.returncode != 0:
        raise AssertionError("stampd %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return os.path.join(directory, selector + ".private"), os.path.join(directory, selector + ".txt")


def check_config(config_text=None, path=None, files=None):
    """check_config runs `stampd check-config -c` on text (written to a temp
    file named stampd.toml) or on an existing path; returns (rc, stdout, stderr, path)."""
    tmp = None
    if path is None:
        tmp = tempfile.mkdtemp(prefix="stampd-check-")
        for name, content in (files or {}).items():
            p = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
        path = os.path.join(tmp, "stampd.toml")
        with open(path, "w") as f:
            f.write(config_text)
    try:
        r = subprocess.run([stampd_bin(), "check-config", "-c", path], capture_output=True,
                           text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr, path
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


class StampdTestCase(unittest.TestCase):
    """StampdTestCase starts stampd and fake peers with cleanups registered, and
    prints stampd's log when a test fails."""

    def start_stampd(self, upstream_servers=(), sections=None, files=None, config_text=None,
                     start=True, **kwargs):
        if config_text is None:
            sections = merge_sections(default_sections(upstream_servers), sections)
        s = Stampd(sections=sections, config_text=config_text, files=files, **kwargs)
        self.addCleanup(self._stampd_cleanup, s)
        if start:
            s.start()
        return s

    def start_upstream(self, **kwargs):
        import fake_upstream
        up = fake_upstream.FakeUpstream(**kwargs)
        self.addCleanup(up.stop)
        up.start()
        return up

    def connect(self, stampd_or_address, **kwargs):
        import smtp_client
        address = stampd_or_address.address if isinstance(stampd_or_address, Stampd) else stampd_or_address
        c = smtp_client.SmtpClient(address[0], address[1], **kwargs)
        self.addCleanup(c.close)
        return c

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        return outcome is not None and not getattr(outcome, "success", True)

    def _stampd_cleanup(self, s):
        s.cleanup()
        report = sanitizer_report(s.log_text())
        if self._failed() or report or os.environ.get("STAMPD_TEST_VERBOSE"):
            tail = "".join(s.lines[-80:])
            sys.stderr.write("\n--- stampd log (%s, last %d lines) ---\n%s--- end ---\n"
                             % (self.id(), min(80, len(s.lines)), tail))
        if report:
            raise AssertionError("stampd reported a sanitizer error:\n" + report)


_SANITIZER = re.compile(r"^.*(ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: ).*$", re.M)


def sanitizer_report(log):
    """sanitizer_report returns the ASan/LSan/UBSan lines in a log ("" if none)."""
    return "\n".join(m.group(0) for m in _SANITIZER.finditer(log))
