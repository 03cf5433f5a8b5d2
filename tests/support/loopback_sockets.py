"""loopback_sockets: a UDP and a TCP socket bound to the same free loopback
port, as a DNS server needs (queries come over both)."""

import socket
import threading


def bind_udp_and_tcp(host="127.0.0.1", attempts=20):
    """bind_udp_and_tcp returns (port, udp, tcp); tcp is listening."""
    for _ in range(attempts):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((host, 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((host, port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        return port, udp, tcp
    raise RuntimeError("no port free for both UDP and TCP")


class LoopbackDnsServer:
    """LoopbackDnsServer is the life cycle the test DNS servers share: a
    UDP+TCP pair on one free loopback port, one thread per socket running
    the subclass's _udp_loop and _tcp_loop, and a stop that closes both plus
    any connections the subclass kept in self._held."""

    thread_name = "test-dns"

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = None
        self._stop = threading.Event()
        self._threads = []
        self._held = []
        self._udp = self._tcp = None

    @property
    def resolver(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self.port, self._udp, self._tcp = bind_udp_and_tcp(self.host)
        for target in (self._udp_loop, self._tcp_loop):
            t = threading.Thread(target=target, daemon=True, name=self.thread_name)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in [self._udp, self._tcp] + self._held:
            if s is not None:
                s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
