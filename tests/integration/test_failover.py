"""Failover between [upstream] servers (issue 15): a refused connection, a
421 or a drop before the final dot moves the transaction to the next server
with MAIL and the accepted recipients replayed, and the client sees only
250s; a drop after the final dot is never sent elsewhere (the duplicate
window: the client gets a 4xx); a failing server is skipped with backoff;
/readyz says not ready only when every server is failing."""
import time
import unittest
import urllib.error
import urllib.request

from smtp_client import dot_stuff, make_message
from stampd_harness import StampdTestCase, closed_port, free_port
import test_main

SHORT = {"upstream": {"connect_timeout": "1s", "command_timeout": "2s", "data_timeout": "2s"}}


class FailoverTest(StampdTestCase):
    def pair(self, first_address=None, sections=None):
        a = None if first_address else self.start_upstream()
        b = self.start_upstream()
        servers = [first_address or a.address, b.address]
        stampd = self.start_stampd(servers, dict(SHORT, **(sections or {})))
        return stampd, a, b

    def send(self, stampd, tag, recipients=("r1@example.net", "r2@example.net"), lines=2000):
        """send runs one transaction; returns (message, RCPT codes, final code)."""
        c = self.connect(stampd)
        c.ehlo()
        msg = make_message(subject=tag, body=b"line\r\n" * lines)
        self.assertEqual(c.mail("s@example.com").code, 250)
        codes = [c.rcpt(r).code for r in recipients]
        r, final = c.data(msg)
        c.quit()
        return msg, codes, final.code if final else r.code

    def test_refused_connection_goes_to_the_next_server(self):
        stampd, _, b = self.pair(first_address="127.0.0.1:%d" % closed_port())
        start = time.monotonic()
        msg, codes, final = self.send(stampd, "refused")
        self.assertEqual((codes, final), ([250, 250], 250))
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual([t.content for t in b.accepted_messages], [msg])

    def check_moved(self, step, lines=2000, **rule):
        stampd, a, b = self.pair()
        # Warm up: a carries a first message, its connection is kept.
        self.assertEqual(self.send(stampd, "warm")[2], 250)
        a.on(step, times=1, **rule)
        msg, codes, final = self.send(stampd, "moved at " + step, lines=lines)
        self.assertEqual((codes, final), ([250, 250], 250), step)
        self.assertEqual([t.content for t in b.accepted_messages], [msg])
        self.assertEqual([sorted(a for a, _ in t.rcpts) for t in b.accepted_messages],
                         [["r1@example.net", "r2@example.net"]])
        self.assertEqual(len(a.accepted_messages), 1)  # the warm-up only
        stampd.wait_for_event("upstream-failover", step="data")

    def test_421_at_rcpt_replays_mail_and_the_accepted_recipient(self):
        stampd, a, b = self.pair()
        a.on("rcpt", match="r2@", times=1, reply="421 4.3.2 shutting down", close=True)
        msg, codes, final = self.send(stampd, "421 at rcpt")
        self.assertEqual((codes, final), ([250, 250], 250))
        self.assertEqual([t.content for t in b.accepted_messages], [msg])
        # b got MAIL and r1 replayed, then r2: the recipient set is the same.
        self.assertEqual([sorted(x for x, _ in t.rcpts) for t in b.accepted_messages],
                         [["r1@example.net", "r2@example.net"]])
        self.assertEqual(a.accepted_messages, [])
        stampd.wait_for_event("upstream-failover", step="rcpt")

    def test_drop_in_the_body_moves_the_message(self):
        # 8 MiB: more than the socket buffers hold, so the drop fails the
        # write before the final dot went out. (With a message the buffers
        # hold, the dot is out when the drop shows: the duplicate window.)
        self.check_moved("body", lines=1400000, after_bytes=4096, drop=True)

    def test_421_at_data_moves_the_message(self):
        self.check_moved("data", reply="421 4.3.2 shutting down", close=True)

    def test_421_at_the_dot_moves_the_message(self):
        self.check_moved("dot", reply="421 4.3.2 shutting down", close=True)

    def test_drop_after_the_dot_is_not_sent_elsewhere(self):
        stampd, a, b = self.pair()
        a.on("dot", times=1, drop=True, commit=True)
        msg, codes, final = self.send(stampd, "window")
        self.assertEqual(codes, [250, 250])
        self.assertEqual(final // 100, 4)
        self.assertEqual([t.content for t in a.accepted_messages], [msg])  # the window
        self.assertEqual(b.accepted_messages, [])

    def test_a_recipient_the_new_server_refuses_at_the_replay_is_a_4xx(self):
        stampd, a, b = self.pair()
        a.on("rcpt", match="r2@", times=1, reply="421 4.3.2 shutting down", close=True)
        b.on("rcpt", match="r1@", reply="550 5.1.1 no such user")
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.mail("s@example.com").code, 250)
        self.assertEqual(c.rcpt("r1@example.net").code, 250)
        self.assertEqual(c.rcpt("r2@example.net").code // 100, 4)
        r, final = c.data(make_message())
        self.assertIsNone(final)
        self.assertNotEqual(r.code, 354)
        self.assertEqual(a.accepted_messages + b.accepted_messages, [])

    def test_readyz_says_not_ready_only_when_every_server_fails(self):
        port = free_port()
        dead = "127.0.0.1:%d" % closed_port()
        b = self.start_upstream()
        sections = {"upstream": dict(SHORT["upstream"], health_check_interval="1s"),
                    "metrics": {"listen": "127.0.0.1:%d" % port}}
        stampd = self.start_stampd([dead, b.address], sections)
        stampd.wait_for_event("metrics-listening")

        def readyz():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=5) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        deadline = time.monotonic() + 10
        while readyz() != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(readyz(), 200)  # the first server is down, b answers
        self.assertEqual(self.send(stampd, "one down")[2], 250)
        self.assertEqual(readyz(), 200)
        b.stop()
        deadline = time.monotonic() + 10
        while readyz() == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(readyz(), 503)


if __name__ == "__main__":
    test_main.main()
