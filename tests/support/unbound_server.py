"""A real DNS server for the Python-driven tests: Debian's `unbound -d`, on a
free loopback port, answering only from its own local zones (local-zone /
local-data; everything else is NXDOMAIN, nothing goes to the network), with
no chroot, no remote control and its files in a temporary directory. The
Python twin of tests/support/unbound_server.cc.

    dns = UnboundServer(zones=["spf.example"],
                        records=[("a.spf.example", "TXT", "v=spf1 ip4:127.0.0.2 -all"),
                                 ("mx.spf.example", "A", "127.0.0.9")])
    dns.start()           # raises unittest.SkipTest when unbound is not installed
    dns.resolver          # "127.0.0.1:PORT", for [dns] resolvers
    dns.set_records(...)  # rewrites the data and reloads (SIGHUP), same port
    dns.stop()

Serve names under .example (or another real-looking TLD), not .test:
libunbound, stampd's resolver, answers .test, .invalid, .localhost,
home.arpa and the private reverse zones itself (NXDOMAIN, RFC 6761 default
local zones) without asking the forwarder.

SilentDns is the other kind of server a test needs: a UDP (and TCP) socket
on loopback that reads every query and never answers.

A resolver that answers SERVFAIL, as one does when the authoritative servers
of a zone refuse or fail: a first unbound refuses the zone (refuse_zones),
a second forwards the zone to it (forward_zones) and is the one stampd asks.

    auth = UnboundServer(refuse_zones=["broken.example"]).start()
    dns = UnboundServer(forward_zones=[("broken.example", auth.resolver)]).start()
    # later, the zone's servers are back:
    auth.set_records(records, zones=["broken.example"], refuse_zones=[])
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from loopback_sockets import LoopbackDnsServer, bind_udp_and_tcp

_PROBE_ZONE = "stampd-probe.test"


def _die_with_parent():
    """Runs in the child before exec: unbound gets SIGTERM when the test
    process dies, even by SIGKILL (a CTest timeout), so none is left behind."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def find_unbound():
    """find_unbound returns the path of the unbound daemon, or None."""
    found = shutil.which("unbound")
    if found:
        return found
    # The daemon lives in sbin, often not on a user's PATH.
    for d in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        p = os.path.join(d, "unbound")
        if os.access(p, os.X_OK):
            return p
    return None


def free_udp_tcp_port(host="127.0.0.1"):
    """free_udp_tcp_port returns a port free for both UDP and TCP on host."""
    port, udp, tcp = bind_udp_and_tcp(host)
    udp.close()
    tcp.close()
    return port


def txt_strings(value):
    """txt_strings splits a TXT value into quoted <character-string>s of at
    most 255 bytes (RFC 1035 §3.3.14), in zone-file syntax."""
    data = value.encode("utf-8")
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    out = []
    for c in chunks:
        text = c.decode("utf-8", "replace").replace("\\", "\\\\").replace('"', '\\"')
        out.append('"%s"' % text)
    return " ".join(out)


def zone_line_txt(zone_line):
    """zone_line_txt returns (name, TXT value) of a zone-file line such as
    `stampd genkey` writes (`sel._domainkey.example.com. IN TXT ( "v=DKIM1; " "p=..." )`):
    the owner name without the final dot and the strings joined."""
    name = zone_line.split()[0].rstrip(".")
    strings = []
    i = zone_line.find('"')
    while i != -1:
        j = i + 1
        buf = []
        while j < len(zone_line) and zone_line[j] != '"':
            if zone_line[j] == "\\" and j + 1 < len(zone_line):
                j += 1
            buf.append(zone_line[j])
            j += 1
        strings.append("".join(buf))
        i = zone_line.find('"', j + 1)
    return name, "".join(strings)


def dns_query_wire(qid, name, qtype=1):
    """dns_query_wire builds a query (RFC 1035 §4.1) with RD set."""
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack("!HH", qtype, 1)


def udp_ask(port, name, qtype=1, timeout=0.2, host="127.0.0.1"):
    """udp_ask asks host:port once and returns (RCODE, answer count), or
    (-1, 0) when nothing arrives within timeout."""
    qid = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(dns_query_wire(qid, name, qtype), (host, port))
            data, _ = s.recvfrom(4096)
        except OSError:
            return -1, 0
    if len(data) < 12 or struct.unpack("!H", data[:2])[0] != qid:
        return -1, 0
    return data[3] & 0x0F, struct.unpack("!H", data[6:8])[0]


class UnboundServer:
    """UnboundServer is one `unbound -d` process with local zones and records.

    zones: names served locally ("spf.example"); a name inside one with no
    records answers NXDOMAIN, a name with records of another type NODATA.
    records: (name, type, value) triples; TXT values are plain text (split
    into 255-byte strings here), other types in zone-file syntax ("10 mx.x.test.").
    auth_zones: (name, zone file) pairs served from the file with its
    RRSIGs (a signed zone, see dnssec_zone.py).
    refuse_zones: names answered REFUSED (a server that will not serve them).
    forward_zones: (name, "127.0.0.1:PORT") pairs: queries for the name go
    to that server (unbound answers SERVFAIL when it refuses or fails).
    port: the port to serve on (a server coming back where another was);
    default, a free one.
    ttl: the TTL of the records (how long a resolver caches them).
    """

    def __init__(self, zones=(), records=(), host="127.0.0.1", auth_zones=(), refuse_zones=(),
                 forward_zones=(), port=None, ttl=300):
        self.host = host
        self.ttl = ttl
        self.zones = list(zones)
        self.records = list(records)
        self.auth_zones = list(auth_zones)
        self.refuse_zones = list(refuse_zones)
        self.forward_zones = list(forward_zones)
        self.fixed_port = port
        self.port = None
        self.proc = None
        self.dir = None
        self.generation = 0

    @property
    def resolver(self):
        return "%s:%d" % (self.host, self.port)

    # config

    def _conf_text(self):
        lines = [
            "server:",
            "  interface: %s@%d" % (self.host, self.port),
            "  port: %d" % self.port,
            "  do-ip6: no",
            "  do-daemonize: no",
            '  username: ""',
            '  chroot: ""',
            '  directory: "%s"' % self.dir,
            '  pidfile: "%s/unbound.pid"' % self.dir,
            "  use-syslog: no",
            '  logfile: ""',
            "  verbosity: 0",
            "  num-threads: 1",
            "  so-reuseport: no",
            '  module-config: "iterator"',
            "  access-control: 127.0.0.0/8 allow",
            # Forwarders of forward_zones are on loopback.
            "  do-not-query-localhost: no",
            # Hermetic: what is not ours is NXDOMAIN, never a query to the Internet.
            '  local-zone: "." static',
            '  local-zone: "%s." static' % _PROBE_ZONE,
            "  local-data: 'gen%d.%s. A 127.0.0.1'" % (self.generation, _PROBE_ZONE),
        ]
        for z in self.zones:
            lines.append('  local-zone: "%s." static' % z.rstrip("."))
        for name, rtype, value in self.records:
            rdata = txt_strings(value) if rtype.upper() == "TXT" else value
            line = "%s. %d IN %s %s" % (name.rstrip("."), self.ttl, rtype.upper(), rdata)
            if "'" in line:
                raise ValueError("unbound local-data cannot hold a single quote: %r" % line)
            lines.append("  local-data: '%s'" % line)
        for z in self.refuse_zones:
            lines.append('  local-zone: "%s." refuse' % z.rstrip("."))
        for name, _ in list(self.auth_zones) + list(self.forward_zones):
            # Out of the "." static zone, so the auth-zone or forward-zone below answers.
            lines.append('  local-zone: "%s." transparent' % name.rstrip("."))
        lines += ["remote-control:", "  control-enable: no"]
        for name, server in self.forward_zones:
            host, port = server.rsplit(":", 1)
            lines += ["forward-zone:", '  name: "%s."' % name.rstrip("."),
                      "  forward-addr: %s@%s" % (host, port)]
        for name, path in self.auth_zones:
            lines += ["auth-zone:", '  name: "%s."' % name.rstrip("."), '  zonefile: "%s"' % path,
                      "  for-downstream: yes", "  for-upstream: no", "  fallback-enabled: no"]
        lines.append("")
        return "\n".join(lines)

    def _write_conf(self):
        with open(os.path.join(self.dir, "unbound.conf"), "w") as f:
            f.write(self._conf_text())

    def _ready(self):
        rcode, answers = udp_ask(self.port, "gen%d.%s" % (self.generation, _PROBE_ZONE))
        return rcode == 0 and answers > 0

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._ready():
                return True
            time.sleep(0.02)
        return False

    # life cycle

    def start(self, timeout=15.0):
        binary = find_unbound()
        if binary is None:
            raise unittest.SkipTest("unbound is not installed (Debian package unbound)")
        self.dir = tempfile.mkdtemp(prefix="stampd-unbound-")
        for _ in range(1 if self.fixed_port else 3):
            self.port = self.fixed_port or free_udp_tcp_port(self.host)
            self._write_conf()
            conf = os.path.join(self.dir, "unbound.conf")
            check = shutil.which("unbound-checkconf") or "/usr/sbin/unbound-checkconf"
            if os.access(check, os.X_OK):
                r = subprocess.run([check, conf], capture_output=True, text=True)
                if r.returncode != 0:
                    self.stop()
                    raise RuntimeError("unbound-checkconf refused the test config:\n%s%s"
                                       % (r.stdout, r.stderr))
            self._log = open(os.path.join(self.dir, "unbound.log"), "wb")
            self.proc = subprocess.Popen([binary, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
            if self._wait_ready(timeout):
                return self
            died = self.proc.poll() is not None
            self._kill()
            if not died:  # a port race makes it exit at once; anything else is fatal
                break
        log = self.log_text()
        self.stop()
        raise RuntimeError("unbound did not come up:\n" + log)

    def set_records(self, records=None, zones=None, refuse_zones=None, forward_zones=None):
        """set_records replaces the records (and zones, refused and forwarded
        zones, if given) and reloads unbound with SIGHUP (which also empties
        its cache); returns when the new data is served."""
        if records is not None:
            self.records = list(records)
        if zones is not None:
            self.zones = list(zones)
        if refuse_zones is not None:
            self.refuse_zones = list(refuse_zones)
        if forward_zones is not None:
            self.forward_zones = list(forward_zones)
        self.generation += 1
        self._write_conf()
        self.proc.send_signal(signal.SIGHUP)
        if not self._wait_ready(15.0):
            raise RuntimeError("unbound did not reload:\n" + self.log_text())

    def add_records(self, records):
        """add_records serves more records (a reload)."""
        self.set_records(self.records + list(records))

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "unbound.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

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
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def stop(self):
        self._kill()
        if self.dir and not os.environ.get("STAMPD_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SilentDns(LoopbackDnsServer):
    """SilentDns listens on a loopback port (UDP, and TCP on the same port),
    reads every query and never answers: a DNS server that is down without
    refusing. `queries` counts the UDP datagrams it swallowed."""

    thread_name = "silent-dns"

    def __init__(self, host="127.0.0.1"):
        super().__init__(host)
        self.queries = 0

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                self._udp.recvfrom(65535)
                self.queries += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def _tcp_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
                self._held.append(conn)  # accepted, read by nobody, never answered
            except socket.timeout:
                continue
            except OSError:
                return
