"""A tiny authoritative DNS server for tests, on loopback port 0 (UDP and
TCP on the same port), answering from a dict of records, so that stampd's
resolver ([dns] resolvers = ["127.0.0.1:PORT"]) can look up SPF and DKIM
records without the network. Built on dnspython (python3-dnspython).

    dns = FakeDns({"example.com": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
                   "sel._domainkey.example.com": [("TXT", "v=DKIM1; k=ed25519; p=...")]})
    dns.start(); ...; dns.resolver  # "127.0.0.1:PORT"; dns.queries: [(name, type)]
    dns.stop()

Names are case-insensitive and given without the final dot. TXT values
longer than 255 bytes are split into 255-byte strings. A name with no
records answers NXDOMAIN; a name with records of another type, NODATA.
"""
import socket
import struct
import threading
import unittest

try:
    import dns.flags
    import dns.message
    import dns.name
    import dns.rcode
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset
except ImportError:  # pragma: no cover - the tests that need it skip
    dns = None

from loopback_sockets import LoopbackDnsServer


def _txt_rdata(value):
    data = value.encode("utf-8") if isinstance(value, str) else value
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    text = " ".join('"%s"' % c.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"') for c in chunks)
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)


class FakeDns(LoopbackDnsServer):
    thread_name = "fake-dns"

    def __init__(self, records=None, host="127.0.0.1", ttl=60):
        if dns is None:
            raise unittest.SkipTest("python3-dnspython is not installed")
        super().__init__(host)
        self.ttl = ttl
        self.records = {}
        self.queries = []
        self._lock = threading.Lock()
        for name, rrs in (records or {}).items():
            for rtype, value in rrs:
                self.add(name, rtype, value)

    def add(self, name, rtype, value):
        """add serves one more record: add("example.com", "TXT", "v=spf1 -all")."""
        with self._lock:
            self.records.setdefault(name.rstrip(".").lower(), []).append((rtype.upper(), value))

    def answer(self, wire):
        """answer returns the response (wire bytes) to one query, or None."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        q = query.question[0]
        qname = q.name.to_text(omit_final_dot=True).lower()
        qtype = dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self.queries.append((qname, qtype))
            rrs = list(self.records.get(qname, ()))
        if not rrs:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        matching = [v for t, v in rrs if t == qtype]
        if matching:
            rrset = dns.rrset.RRset(q.name, dns.rdataclass.IN, q.rdtype)
            for value in matching:
                rd = _txt_rdata(value) if qtype == "TXT" else dns.rdata.from_text(
                    dns.rdataclass.IN, q.rdtype, value)
                rrset.add(rd, self.ttl)
            response.answer.append(rrset)
        return response.to_wire()

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                wire, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            out = self.answer(wire)
            if out is not None:
                try:
                    self._udp.sendto(out, peer)
                except OSError:
                    pass

    def _tcp_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    while True:
                        head = self._recv_exact(conn, 2)
                        if head is None:
                            break
                        wire = self._recv_exact(conn, struct.unpack("!H", head)[0])
                        if wire is None:
                            break
                        out = self.answer(wire)
                        if out is None:
                            break
                        conn.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    pass

    @staticmethod
    def _recv_exact(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
