"""Listeners: IPv6 on [::1] (client and upstream), several listeners at once,
and SIGTERM: a draining stampd refuses new clients with 421 and exits 0."""
import signal
import socket
import unittest

from fake_upstream import FakeUpstream
from smtp_client import SmtpClient, make_message
from stampd_harness import StampdTestCase
import test_main


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(have_ipv6_loopback(), "no IPv6 loopback on this machine")
class Ipv6Test(StampdTestCase):
    def test_ipv6_listener_and_upstream(self):
        up = self.start_upstream(host="::1", capabilities=FakeUpstream.BASIC + [FakeUpstream.XFORWARD])
        stampd = self.start_stampd([up.address], {"server": {"listen": ["[::1]:0", "127.0.0.1:0"]}})
        self.assertEqual(stampd.addresses[0][0], "::1")
        self.assertEqual(stampd.addresses[1][0], "127.0.0.1")
        msg = make_message(subject="over v6")
        c = self.connect(stampd.addresses[0])
        self.assertEqual(c.sock.family, socket.AF_INET6)
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], msg).code, 250)
        c.quit()
        up.wait_for_messages(1)
        self.assertEqual(up.messages[0].content, msg)
        # The original client, in Postfix's XFORWARD notation for IPv6.
        self.assertEqual(up.messages[0].xforward["ADDR"], "IPV6:::1")
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual(ev["client"].rsplit(":", 1)[0], "[::1]")
        # The IPv4 listener works at the same time.
        c4 = self.connect(stampd.addresses[1])
        c4.ehlo()
        self.assertEqual(c4.send_mail("sender@example.com", ["rcpt@example.net"], msg).code, 250)

    def test_ipv6_client_outside_trusted_networks(self):
        up = self.start_upstream()
        stampd = self.start_stampd([up.address], {"server": {"listen": ["[::1]:0"],
                                                             "trusted_networks": ["127.0.0.0/8"]}})
        c = self.connect(stampd)
        c.ehlo()
        r = c.mail("sender@example.com")
        self.assertEqual((r.code, r.enhanced), (554, "5.7.1"))


class DrainTest(StampdTestCase):
    def test_sigterm_drains(self):
        up = self.start_upstream()
        stampd = self.start_stampd([up.address], {"server": {"drain_timeout": "5s"}})
        busy = self.connect(stampd)
        busy.ehlo()
        self.assertEqual(busy.mail("sender@example.com").code, 250)
        stampd.proc.send_signal(signal.SIGTERM)
        stampd.wait_for_event("draining")
        late = SmtpClient(*stampd.address)
        self.addCleanup(late.close)
        self.assertEqual(late.greeting.code, 421)
        # The session in flight may finish its message.
        self.assertEqual(busy.rcpt("rcpt@example.net").code, 250)
        _, final = busy.data(make_message())
        self.assertEqual(final.code, 250)
        busy.quit()
        self.assertEqual(stampd.stop(timeout=10), 0)
        self.assertEqual(len(up.messages), 1)


if __name__ == "__main__":
    test_main.main()
