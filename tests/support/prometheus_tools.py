"""Prometheus-side helpers for tests: fetch stampd's HTTP endpoints
(/metrics, /healthz, /readyz), parse the text exposition format into
samples, run promtool, and run a real Prometheus server on loopback.

    addr = metrics_address(stampd)              # from the metrics-listening log line
    status, body = http_get(addr, "/readyz")
    m = Exposition(http_get(addr, "/metrics")[1])
    m.value("stampd_messages_total", outcome="relayed")

    prom = PrometheusServer(targets=[addr]); prom.start()
    prom.wait_for_value('stampd_messages_total{outcome="relayed"}', 10)

promtool and prometheus come from Debian's prometheus package; the helpers
raise unittest.SkipTest when they are missing.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from stampd_harness import free_port, read_text_or_empty

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def require(binary):
    """require skips the test unless binary (PROMETHEUS or PROMTOOL) can run."""
    if not os.access(binary, os.X_OK):
        raise unittest.SkipTest("%s is not installed (Debian package prometheus)" % os.path.basename(binary))
    return binary


# --- stampd's HTTP endpoints ---------------------------------------------------

def metrics_address(stampd, timeout=10.0):
    """metrics_address returns "host:port" of a running stampd's metrics
    endpoint, from its event=metrics-listening log line."""
    ev = stampd.wait_for_event("metrics-listening", timeout=timeout)[0]
    return ev["address"]


def http_get(address, path, timeout=10.0, method="GET"):
    """http_get returns (status, body text) of one request to address ("host:port")."""
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


# --- the text exposition format --------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Exposition:
    """Exposition is one parsed /metrics page: samples (name, labels dict,
    value), and the TYPE and HELP of each family."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        self.types = {}
        self.helps = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
            elif line.startswith("# HELP "):
                parts = line.split(" ", 3)
                self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            elif line and not line.startswith("#"):
                m = _SAMPLE.match(line)
                if not m:
                    raise ValueError("not a sample line: %r" % line)
                labels = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _LABEL.findall(m.group(2) or "")}
                self.samples.append((m.group(1), labels, float(m.group(3))))

    def series(self, name, **labels):
        """series returns [(labels, value)] of name whose labels include the given ones."""
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(want) for k, want in labels.items())]

    def value(self, name, default=0.0, **labels):
        """value sums the samples of name matching labels (default when there is none)."""
        found = self.series(name, **labels)
        return sum(v for _, v in found) if found else default

    def label_values(self):
        """label_values returns every label value on the page."""
        return {v for _, l, _ in self.samples for v in l.values()}

    def label_names(self, family):
        """label_names returns the label names used by a family's samples
        (histogram buckets' "le" left out)."""
        names = set()
        for n, l, _ in self.samples:
            if n == family or (self.types.get(family) == "histogram" and n in
                               (family + "_bucket", family + "_sum", family + "_count")):
                names |= set(l) - {"le"}
        return names


def scrape(stampd_or_address):
    """scrape fetches and parses /metrics (from a Stampd or "host:port")."""
    address = stampd_or_address if isinstance(stampd_or_address, str) else metrics_address(stampd_or_address)
    status, body = http_get(address, "/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d: %s" % (status, body[:200]))
    return Exposition(body)


# --- promtool ----------------------------------------------------------------------

def promtool(*args, input=None, timeout=60):
    """promtool runs `promtool ARGS` and returns the CompletedProcess (text)."""
    require(PROMTOOL)
    return subprocess.run([PROMTOOL] + list(args), input=input, capture_output=True, text=True,
                          timeout=timeout)


# --- a Prometheus server -----------------------------------------------------------

class PrometheusServer:
    """PrometheusServer runs the real prometheus binary on a free loopback
    port with its own config and TSDB in a temporary directory.

    targets: "host:port" list scraped as job "stampd" every scrape_interval;
    or config_text: a whole prometheus.yml (then targets is ignored).
    files: name -> text written next to the config (rule files).
    """

    def __init__(self, targets=(), scrape_interval="1s", config_text=None, files=None):
        require(PROMETHEUS)
        self.dir = tempfile.mkdtemp(prefix="stampd-prometheus-")
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        if config_text is None:
            config_text = ("global:\n  scrape_interval: %s\n  evaluation_interval: %s\n"
                           "scrape_configs:\n  - job_name: stampd\n    static_configs:\n"
                           "      - targets: [%s]\n"
                           % (scrape_interval, scrape_interval, ", ".join('"%s"' % t for t in targets)))
        with open(self.config_path, "w") as f:
            f.write(config_text)
        for name, text in (files or {}).items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.port = None
        self.proc = None
        self.log_path = os.path.join(self.dir, "prometheus.log")

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=30.0):
        for _ in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.config_path,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=" + self.address, "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if http_get(self.address, "/-/ready", timeout=2)[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.1)
            self.stop()
        raise RuntimeError("prometheus did not become ready:\n" + self.log())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        return read_text_or_empty(self.log_path)

    def api(self, path, **params):
        """api calls /api/v1/PATH and returns its "data" (raises on an error status)."""
        query = urllib.parse.urlencode(params)
        status, body = http_get(self.address, "/api/v1/" + path + ("?" + query if query else ""))
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise AssertionError("prometheus /api/v1/%s: %d %s" % (path, status, body[:500]))
        return doc["data"]

    def query(self, expr):
        """query runs an instant query and returns [(labels, float value)]."""
        data = self.api("query", query=expr)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def wait_for(self, expr, predicate, timeout=30.0, what=None):
        """wait_for re-runs expr until predicate(result) holds; returns the result."""
        deadline = time.monotonic() + timeout
        result = None
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.25)
        raise AssertionError("prometheus: %s: last result %r\n%s" % (what or expr, result, self.log()[-2000:]))

    def wait_for_value(self, expr, value, timeout=30.0):
        """wait_for_value waits until expr has exactly one series equal to value."""
        return self.wait_for(expr, lambda r: len(r) == 1 and r[0][1] == value, timeout,
                             "%s == %s" % (expr, value))[0]


# --- what obs/metrics.cc declares ------------------------------------------------

_DECLARATION = re.compile(r'Build(Counter|Gauge|Histogram)\(\)\s*\.Name\("([^"]+)"\)\s*'
                          r'\.Help\(((?:"(?:[^"\\]|\\.)*"\s*)+)\)')


def declared_families(source_dir):
    """declared_families reads obs/metrics.cc and returns {name: (type, help)}
    for every family it declares (type: counter, gauge, histogram)."""
    with open(os.path.join(source_dir, "obs", "metrics.cc"), encoding="utf-8") as f:
        text = f.read()
    out = {}
    for kind, name, help_parts in _DECLARATION.findall(text):
        help_text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', help_parts))
        out[name] = (kind.lower(), help_text)
    if not out:
        raise AssertionError("no metric declarations found in obs/metrics.cc")
    return out


def readme_metrics(source_dir):
    """readme_metrics reads the README's metrics table and returns
    {name: (type, set of label names, meaning)}; label names are the
    backticked words of the labels column."""
    with open(os.path.join(source_dir, "README.md"), encoding="utf-8") as f:
        text = f.read()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\| `(stampd_[a-z0-9_]+)` \| (\w+) \|(.*)\|(.*)\|\s*$", line)
        if m:
            out[m.group(1)] = (m.group(2), set(re.findall(r"`([a-z0-9_]+)`", m.group(3))), m.group(4).strip())
    return out
