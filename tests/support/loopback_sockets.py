"""loopback_sockets: a UDP and a TCP socket bound to the same free loopback
port, as a DNS server needs (queries come over both)."""

import socket


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
