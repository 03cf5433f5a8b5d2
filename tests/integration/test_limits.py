"""No open relay, and every limit answers with its RFC reply code: untrusted
clients (554 5.7.1), over-long command lines (500 5.5.2), too many recipients
(452 4.5.3), MAIL SIZE= and oversized DATA (552 5.3.4, without buffering the
excess), over-long message lines (550 5.5.2), max_commands / max_errors, the
global and per-IP connection caps (421), the command timeout (421)."""
import time
import unittest

from fake_upstream import FakeUpstream
from smtp_client import make_message
from stampd_harness import StampdTestCase, wait_until
import test_main


class UntrustedClientTest(StampdTestCase):
    def test_untrusted_client_is_refused(self):
        up = self.start_upstream()
        stampd = self.start_stampd([up.address], {"server": {"trusted_networks": ["10.0.0.0/8"]}})
        c = self.connect(stampd)
        self.assertEqual(c.greeting.code, 220)
        self.assertEqual(c.ehlo().code, 250)
        self.assertNotIn("XFORWARD", c.capabilities)
        r = c.mail("sender@example.com")
        self.assertEqual((r.code, r.enhanced), (554, "5.7.1"), r)
        self.assertEqual(c.rcpt("rcpt@example.net").code // 100, 5)
        self.assertEqual(c.cmd("DATA").code // 100, 5)
        r = c.cmd("XFORWARD ADDR=192.0.2.1")
        self.assertEqual(r.code // 100, 5, r)
        c.quit()
        # An untrusted client never causes an upstream connection.
        time.sleep(0.2)
        self.assertEqual(up.connections, [])
        ev = stampd.wait_for_event("connect")[0]
        self.assertEqual(ev["trusted"], "no")

    def test_empty_trusted_networks_trusts_nobody(self):
        up = self.start_upstream()
        stampd = self.start_stampd([up.address], {"server": {"trusted_networks": []}})
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.mail("sender@example.com").code, 554)


class LimitsTest(StampdTestCase):
    def setUp(self):
        self.up = self.start_upstream(capabilities=FakeUpstream.FULL)

    def client(self, stampd):
        c = self.connect(stampd)
        self.assertEqual(c.ehlo().code, 250)
        return c

    def test_over_long_command_line(self):
        stampd = self.start_stampd([self.up.address], {"server": {"max_command_line_length": 512}})
        c = self.client(stampd)
        r = c.cmd("NOOP " + "x" * 600)
        self.assertEqual((r.code, r.enhanced), (500, "5.5.2"), r)
        r = c.cmd("MAIL FROM:<" + "a" * 100000 + "@example.com>")
        self.assertEqual((r.code, r.enhanced), (500, "5.5.2"), r)
        # 512 octets including CRLF is fine (RFC 5321 §4.5.3.1.4).
        line = "NOOP " + "y" * (510 - 5)
        self.assertEqual(len(line) + 2, 512)
        self.assertEqual(c.cmd(line).code, 250)
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], make_message()).code, 250)

    def test_too_many_recipients(self):
        stampd = self.start_stampd([self.up.address], {"server": {"max_recipients": 3}})
        c = self.client(stampd)
        self.assertEqual(c.mail("sender@example.com").code, 250)
        for i in range(3):
            self.assertEqual(c.rcpt("r%d@example.net" % i).code, 250)
        r = c.rcpt("r3@example.net")
        self.assertEqual((r.code, r.enhanced), (452, "4.5.3"), r)
        _, final = c.data(make_message())
        self.assertEqual(final.code, 250)
        self.up.wait_for_messages(1)
        self.assertEqual(len(self.up.messages[0].rcpts), 3)
        self.assertNotIn("RCPT TO:<r3@example.net>", self.up.all_commands())

    def test_mail_size_too_big(self):
        stampd = self.start_stampd([self.up.address], {"server": {"max_message_size": "1MiB"}})
        c = self.client(stampd)
        self.assertEqual(c.capabilities["SIZE"], ["1048576"])
        r = c.mail("sender@example.com", "SIZE=1048577")
        self.assertEqual((r.code, r.enhanced), (552, "5.3.4"), r)
        self.assertEqual(c.mail("sender@example.com", "SIZE=1048576").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)  # MAIL goes with it
        self.assertEqual(self.up.transactions[0].mail_params, "SIZE=1048576")

    def test_upstream_size_is_honoured_when_smaller(self):
        up = self.start_upstream(capabilities=["PIPELINING", "SIZE 500000", "ENHANCEDSTATUSCODES"])
        stampd = self.start_stampd([up.address], {"server": {"max_message_size": "1MiB"}})
        c = self.client(stampd)
        self.assertEqual(c.capabilities["SIZE"], ["500000"])
        self.assertEqual(c.mail("sender@example.com", "SIZE=600000").code, 552)
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        _, final = c.data(make_message(body=b"z" * 998 + b"\r\n") * 1 + (b"q" * 998 + b"\r\n") * 600)
        self.assertEqual((final.code, final.enhanced), (552, "5.3.4"), final)

    def test_message_too_big_during_data_is_not_buffered(self):
        stampd = self.start_stampd([self.up.address],
                                   {"server": {"max_message_size": "1MiB", "spool_memory": "256KiB"}})
        c = self.client(stampd)
        # Warm up: one normal message, so that buffers exist before we measure.
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"],
                                     make_message(body=(b"w" * 998 + b"\r\n") * 900)).code, 250)
        before = stampd.hwm_kib()
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        chunk = (b"o" * 998 + b"\r\n") * 1049  # 1 MiB
        c.send(b"Subject: huge\r\n\r\n")
        for _ in range(64):
            c.send(chunk)
        c.send(b".\r\n")
        r = c.reply(timeout=60)
        self.assertEqual((r.code, r.enhanced), (552, "5.3.4"), r)
        after = stampd.hwm_kib()
        self.assertLess(after - before, 8 * 1024, "stampd grew by %d KiB for a 64 MiB message" % (after - before))
        self.assertEqual(len(self.up.accepted_messages), 1)
        self.assertEqual(self.up.transactions[-1].data_started, False)
        self.assertEqual(stampd.wait_for_event("message", outcome="rejected")[0]["reply"][:3], "552")
        # The session goes on.
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], make_message()).code, 250)

    def test_message_line_too_long(self):
        stampd = self.start_stampd([self.up.address])
        c = self.client(stampd)
        r = c.send_mail("sender@example.com", ["rcpt@example.net"],
                        make_message(body=b"L" * 999 + b"\r\n"))
        self.assertEqual((r.code, r.enhanced), (550, "5.5.2"), r)
        self.assertEqual(self.up.messages, [])

    def test_max_commands(self):
        stampd = self.start_stampd([self.up.address], {"server": {"max_commands": 10}})
        c = self.connect(stampd)
        codes = [c.cmd("NOOP").code for _ in range(10)]
        self.assertEqual(codes, [250] * 10)
        r = c.cmd("NOOP")
        self.assertEqual((r.code, r.enhanced), (421, "4.7.0"), r)
        c.wait_closed(timeout=5)

    def test_max_errors(self):
        stampd = self.start_stampd([self.up.address], {"server": {"max_errors": 3}})
        c = self.connect(stampd)
        codes = []
        for _ in range(10):
            r = c.cmd("BOGUS command")
            codes.append(r.code)
            if r.code == 421:
                break
        self.assertEqual(codes[-1], 421, codes)
        self.assertLessEqual(len(codes), 5, codes)
        self.assertTrue(all(code // 100 == 5 for code in codes[:-1]), codes)
        c.wait_closed(timeout=5)

    def test_command_timeout(self):
        stampd = self.start_stampd([self.up.address], {"server": {"command_timeout": "1s"}})
        c = self.client(stampd)
        start = time.monotonic()
        r = c.reply(timeout=10)
        self.assertEqual((r.code, r.enhanced), (421, "4.4.2"), r)
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        c.wait_closed(timeout=5)
        # The upstream connection EHLO opened is kept for the next client,
        # with no transaction open on it.
        self.up.wait_idle()

    def test_global_connection_cap(self):
        stampd = self.start_stampd([self.up.address], {"server": {"max_connections": 2}})
        a = self.connect(stampd)
        b = self.connect(stampd)
        self.assertEqual((a.greeting.code, b.greeting.code), (220, 220))
        c = self.connect(stampd)
        self.assertEqual((c.greeting.code, c.greeting.enhanced), (421, "4.7.0"), c.greeting)
        c.wait_closed(timeout=5)
        a.quit()
        # The slot comes back when a session ends.
        def free_slot():
            d = self.connect(stampd)
            if d.greeting.code == 220:
                return d
            d.close()
            return None
        d = wait_until(free_slot, timeout=5, interval=0.05, what="a free connection slot")
        self.assertEqual(d.ehlo().code, 250)
        stampd.wait_for_event("connection-refused", reason="max-connections")

    def test_per_ip_connection_cap(self):
        stampd = self.start_stampd([self.up.address],
                                   {"server": {"max_connections": 10, "max_connections_per_ip": 2}})
        a = self.connect(stampd)
        b = self.connect(stampd)
        c = self.connect(stampd)
        self.assertEqual([x.greeting.code for x in (a, b, c)], [220, 220, 421])
        self.assertEqual(c.greeting.enhanced, "4.7.0")
        # Another address is counted on its own.
        try:
            other = self.connect(stampd, source_address=("127.0.0.2", 0))
        except OSError as e:
            self.skipTest("cannot bind 127.0.0.2: %s" % e)
        self.assertEqual(other.greeting.code, 220)
        stampd.wait_for_event("connection-refused", reason="max-connections-per-ip")


if __name__ == "__main__":
    test_main.main()
