"""Slow clients (issue 15): a slowloris (500 connections, each sending a
command one byte every second and never ending it) is cut by the
whole-line command deadline, and a DATA trickle (one byte a second, each
inside data_timeout) by the minimum data rate, while a normal client from
another address is served in under a second. A slow link that keeps the
rate is not cut. Deadlines are short here (3 s, 2 s) so the test costs
seconds; the defaults are RFC 5321's minutes."""
import select
import socket
import time
import unittest

from smtp_client import SmtpClient, make_message
from stampd_harness import StampdTestCase, wait_until
import test_main

SLOW_CONNECTIONS = 500


def open_slow(address, n):
    """open_slow opens n connections and reads their greetings."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(address, timeout=10)
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        if not s.recv(512).startswith(b"220"):
            raise AssertionError("no greeting")
        s.setblocking(False)
    return socks


def closed_by_peer(s):
    """closed_by_peer reads what the server sent; True once it closed."""
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


class SlowClientsTest(StampdTestCase):
    def setUp(self):
        self.up = self.start_upstream()

    def stampd(self, **server):
        sections = {"server": dict({"command_timeout": "3s", "data_timeout": "2s",
                                    "max_connections": 2000, "max_connections_per_ip": 1000},
                                   **server)}
        return self.start_stampd([self.up.address], sections)

    def normal_client_seconds(self, stampd, source):
        started = time.monotonic()
        c = SmtpClient(*stampd.address, timeout=10, source_address=(source, 0))
        self.addCleanup(c.close)
        c.ehlo()
        r = c.send_mail("normal@example.com", ["rcpt@example.net"], make_message())
        self.assertEqual(r.code, 250, r)
        c.quit()
        return time.monotonic() - started

    def test_slowloris_is_cut_by_the_command_deadline(self):
        stampd = self.stampd()
        socks = open_slow(stampd.address, SLOW_CONNECTIONS)
        self.addCleanup(lambda: [s.close() for s in socks])
        started = time.monotonic()
        line = b"EHLO slowloris.example.com"  # never ended by CRLF
        open_ = set(range(len(socks)))
        served = []
        step = 0
        while open_ and time.monotonic() - started < 15:
            for i in list(open_):
                try:
                    socks[i].send(line[step % len(line):step % len(line) + 1])
                except (BlockingIOError, ConnectionResetError, BrokenPipeError):
                    pass
                if closed_by_peer(socks[i]):
                    open_.discard(i)
            if step == 1:
                # While all 500 hold their sessions: another client is served.
                served.append(self.normal_client_seconds(stampd, "127.0.0.2"))
            step += 1
            select.select([], [], [], 1.0)
        cut_after = time.monotonic() - started
        sys_msg = "slowloris: %d connections, one byte a second; cut after %.1f s " \
                  "(command_timeout 3 s); a normal client meanwhile took %.3f s" % (
                      SLOW_CONNECTIONS, cut_after, served[0] if served else -1)
        print(sys_msg)
        self.assertEqual(open_, set(), "still open after 15 s: %d" % len(open_))
        self.assertLess(cut_after, 8.0)
        self.assertTrue(served)
        self.assertLess(served[0], 1.0)
        # Every one of them got its 421 and a log line, and stampd serves on.
        wait_until(lambda: len(stampd.events("disconnect", reason="timeout")) >= SLOW_CONNECTIONS,
                   what="500 timeouts logged")
        self.assertLess(self.normal_client_seconds(stampd, "127.0.0.3"), 1.0)

    def trickle_client(self, stampd, message, pace, piece):
        c = SmtpClient(*stampd.address, timeout=30)
        self.addCleanup(c.close)
        c.ehlo()
        self.assertEqual(c.mail("trickle@example.com").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        wire = message + b".\r\n"
        started = time.monotonic()
        try:
            for i in range(0, len(wire), piece):
                c.send(wire[i:i + piece])
                time.sleep(pace)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return c.reply(30), time.monotonic() - started

    def test_data_trickle_is_cut_by_the_minimum_rate(self):
        stampd = self.stampd()
        message = make_message(subject="trickle", body=b"x" * 64 + b"\r\n")
        # One byte every 1.5 s: inside data_timeout (2 s) every time.
        c = SmtpClient(*stampd.address, timeout=30)
        self.addCleanup(c.close)
        c.ehlo()
        c.mail("trickle@example.com")
        c.rcpt("rcpt@example.net")
        self.assertEqual(c.cmd("DATA").code, 354)
        started = time.monotonic()
        r = None
        for b in message:
            try:
                c.send(bytes([b]))
            except (ConnectionResetError, BrokenPipeError):
                break
            ready, _, _ = select.select([c.sock], [], [], 1.5)
            if ready:
                r = c.reply(5)
                break
        cut_after = time.monotonic() - started
        print("DATA trickle, one byte every 1.5 s (data_timeout 2 s, min_data_rate 500): "
              "cut after %.1f s with %s" % (cut_after, r))
        self.assertIsNotNone(r)
        self.assertEqual((r.code, r.enhanced), (421, "4.4.2"))
        self.assertLess(cut_after, 6.0)
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual(ev["outcome"], "aborted")
        self.assertIn("min_data_rate", ev["reply"])
        self.assertEqual(self.up.messages, [])
        # Meanwhile and after, others are served.
        self.assertLess(self.normal_client_seconds(stampd, "127.0.0.2"), 1.0)

    def test_a_slow_link_that_keeps_the_rate_is_not_cut(self):
        stampd = self.stampd()
        # 6 KiB at about 1.5 KiB/s: longer than data_timeout in all, but each
        # piece inside it and the rate above 500 octets a second.
        message = make_message(subject="slow link", body=(b"y" * 62 + b"\r\n") * 96)
        r, seconds = self.trickle_client(stampd, message, pace=0.5, piece=768)
        self.assertEqual(r.code, 250, r)
        self.assertGreater(seconds, 3.0)
        self.up.wait_for_messages(1)

    def test_min_data_rate_zero_leaves_only_the_per_read_timeout(self):
        stampd = self.stampd(min_data_rate=0)
        message = make_message(subject="no rate", body=b"z" * 10 + b"\r\n")
        # Twelve pieces a second apart: far below 500 octets a second.
        r, seconds = self.trickle_client(stampd, message, pace=1.0,
                                         piece=max(1, len(message) // 12))
        self.assertEqual(r.code, 250, r)
        self.assertGreater(seconds, 8.0)


if __name__ == "__main__":
    test_main.main()
