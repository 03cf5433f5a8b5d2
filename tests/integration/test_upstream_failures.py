"""Nothing is lost: upstream trouble at any step (unreachable, silent, gone)
becomes a 4xx for the client, who keeps the mail; a client that goes away in
the middle of DATA never causes a message, partial or whole, upstream; the
upstream list is tried in order."""
import time
import unittest

from smtp_client import ConnectionClosed, dot_stuff, make_message
from stampd_harness import StampdTestCase, closed_port
import test_main

SHORT = {"upstream": {"connect_timeout": "2s", "command_timeout": "1s", "data_timeout": "1s"}}

STEPS = ["connect", "ehlo", "mail", "rcpt", "data", "body", "dot"]


class UpstreamFailureTest(StampdTestCase):
    def run_transaction(self, stampd, message=None):
        """run_transaction returns the client's reply at the first step that was not 2xx/3xx."""
        c = self.connect(stampd)
        self.assertEqual(c.ehlo().code, 250)
        for step, send in (("mail", lambda: c.mail("sender@example.com")),
                           ("rcpt", lambda: c.rcpt("rcpt@example.net")),
                           ("data", lambda: c.cmd("DATA"))):
            r = send()
            if r.code >= 400:
                return step, r, c
        c.send(dot_stuff(message or make_message()))
        return "dot", c.reply(timeout=30), c

    def test_upstream_unreachable(self):
        stampd = self.start_stampd(["127.0.0.1:%d" % closed_port()], SHORT)
        step, r, c = self.run_transaction(stampd)
        self.assertEqual((step, r.code, r.enhanced), ("mail", 451, "4.4.1"), r)
        # The session stays usable and can try again.
        self.assertEqual(c.cmd("NOOP").code, 250)
        self.assertEqual(c.mail("sender@example.com").code, 451)
        stampd.wait_for_event("upstream-error", kind="connect")

    def check_failure(self, how, step, expected_step):
        up = self.start_upstream()
        up.on(step, times=2, after_bytes=64 * 1024, **{how: True})
        stampd = self.start_stampd([up.address], SHORT)
        big = make_message(body=b"x" * 998 + b"\r\n") if step != "body" else \
            make_message(body=(b"y" * 998 + b"\r\n") * 8192)  # 8 MiB: more than socket buffers
        start = time.monotonic()
        got_step, r, c = self.run_transaction(stampd, big)
        self.assertEqual(got_step, expected_step, r)
        self.assertEqual(r.code // 100, 4, r)
        self.assertLess(time.monotonic() - start, 15)
        self.assertEqual(up.accepted_messages, [])
        # After the trouble (the rule fired at most twice) the same client
        # session can relay the next message.
        up.clear_rules()
        msg = make_message(subject="after " + step)
        c.cmd("RSET")
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], msg)
        self.assertEqual(r.code, 250, r)
        up.wait_for(lambda u: u.accepted_messages, what="the message after recovery")
        self.assertEqual(up.accepted_messages[-1].content, msg)
        stampd.wait_for_event("message", outcome="relayed")
        self.assertEqual(len(stampd.messages(outcome="relayed")), 1)

    def test_upstream_hangs_at_each_step(self):
        for step in STEPS:
            # A silent greeting or EHLO: the open at the client's EHLO fails
            # quietly, the retry at MAIL tells the client. MAIL itself goes
            # with the first RCPT (its capabilities known), which tells.
            expected = {"connect": "mail", "ehlo": "mail", "mail": "rcpt", "data": "dot",
                        "body": "dot"}.get(step, step)
            with self.subTest(step=step):
                self.check_failure("hang", step, expected)

    def test_upstream_drops_at_each_step(self):
        for step in STEPS:
            expected = {"connect": "mail", "ehlo": "mail", "mail": "rcpt", "data": "dot",
                        "body": "dot"}.get(step, step)
            with self.subTest(step=step):
                self.check_failure("drop", step, expected)

    def test_upstream_resets_at_the_dot(self):
        self.check_failure("reset", "dot", "dot")

    def test_next_mail_reconnects_after_the_upstream_died_at_rset(self):
        for how in ("hang", "drop"):
            with self.subTest(how=how):
                up = self.start_upstream()
                up.on("rset", times=1, **{how: True})
                stampd = self.start_stampd([up.address], SHORT)
                c = self.connect(stampd)
                c.ehlo()
                self.assertEqual(c.mail("sender@example.com").code, 250)
                self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
                self.assertEqual(c.cmd("RSET").code, 250)
                # stampd knows that connection is gone: the next MAIL opens a
                # new one instead of failing with 4xx.
                msg = make_message()
                r = c.send_mail("sender@example.com", ["rcpt@example.net"], msg)
                self.assertEqual(r.code, 250, r)
                up.wait_for_messages(1)
                self.assertEqual(len(up.connections), 2)

    def test_upstream_greeting_refused(self):
        up = self.start_upstream()
        up.on("connect", reply="554 5.3.2 fake.upstream Service not available")
        stampd = self.start_stampd([up.address], SHORT)
        step, r, _ = self.run_transaction(stampd)
        self.assertEqual((step, r.code // 100), ("mail", 4), r)

    def test_upstream_closes_after_421(self):
        # The upstream's 421 closes the upstream connection, not the client's.
        # On a kept connection (the one EHLO opened) it is the server closing
        # an idle connection: stampd takes a fresh one and MAIL goes on. On a
        # connection opened for this transaction it is the answer: the client
        # hears 451 with the upstream's code and text, and its next
        # transaction goes over a fresh upstream connection.
        up = self.start_upstream()
        up.on("mail", reply="421 4.3.2 Service shutting down", times=2)
        stampd = self.start_stampd([up.address], SHORT)
        c = self.connect(stampd)
        c.ehlo()
        # MAIL goes upstream with the first RCPT: the verdict is RCPT's reply.
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.com>").code, 250)
        r = c.cmd("RCPT TO:<rcpt@example.net>")
        self.assertEqual((r.code, r.enhanced), (451, "4.3.2"), r)
        self.assertIn("Service shutting down", r.text)
        self.assertEqual(len(up.connections), 2)
        self.assertEqual(c.cmd("RSET").code, 250)
        msg = make_message()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], msg).code, 250)
        c.quit()
        up.wait_for_messages(1)
        self.assertEqual(len(up.connections), 3)

    def test_421_on_a_kept_connection_is_not_the_clients_business(self):
        up = self.start_upstream()
        up.on("mail", reply="421 4.4.2 Idle timeout", times=1)
        stampd = self.start_stampd([up.address], SHORT)
        c = self.connect(stampd)
        c.ehlo()
        msg = make_message()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], msg).code, 250)
        c.quit()
        up.wait_for_messages(1)
        self.assertEqual(len(up.connections), 2)
        self.assertEqual(up.messages[0].content, msg)

    def test_idle_upstream_connection_closed_is_reopened_silently(self):
        # An upstream that closed our idle connection (a Postfix smtpd timeout
        # while the client was quiet) costs the client nothing: MAIL goes out
        # again on a fresh connection.
        up = self.start_upstream()
        up.on("mail", drop=True, times=1)
        stampd = self.start_stampd([up.address], SHORT)
        msg = make_message()
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], msg).code, 250)
        c.quit()
        up.wait_for_messages(1)
        self.assertEqual(up.messages[0].content, msg)
        self.assertEqual(len(up.connections), 2)

    def test_servers_are_tried_in_order(self):
        second = self.start_upstream()
        third = self.start_upstream()
        stampd = self.start_stampd(["127.0.0.1:%d" % closed_port(), second.address, third.address], SHORT)
        msg = make_message()
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], msg).code, 250)
        c.quit()
        second.wait_for_messages(1)
        self.assertEqual(second.messages[0].content, msg)
        self.assertEqual(third.connections, [])
        self.assertEqual(stampd.wait_for_event("message")[0]["upstream"], second.address)

    def test_next_server_when_the_first_refuses_its_greeting(self):
        first = self.start_upstream()
        first.on("connect", reply="421 4.3.2 Too busy")
        second = self.start_upstream()
        stampd = self.start_stampd([first.address, second.address], SHORT)
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], make_message()).code, 250)
        second.wait_for_messages(1)
        self.assertEqual(first.messages, [])

    def test_all_servers_down(self):
        stampd = self.start_stampd(["127.0.0.1:%d" % closed_port(), "127.0.0.1:%d" % closed_port()], SHORT)
        step, r, _ = self.run_transaction(stampd)
        self.assertEqual((step, r.code), ("mail", 451))


class ClientDropTest(StampdTestCase):
    def setUp(self):
        self.up = self.start_upstream()
        self.stampd = self.start_stampd([self.up.address],
                                        {"server": {"data_timeout": "1s", "spool_memory": "64KiB"}})

    def start_data(self):
        c = self.connect(self.stampd)
        c.ehlo()
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        return c

    def assertNothingRelayed(self):
        self.stampd.wait_for_event("message", outcome="aborted")
        self.up.wait_idle()
        self.assertEqual(self.up.messages, [])
        conn = self.up.connections[0]
        self.assertFalse(any(t.data_started for t in conn.transactions), conn.commands)
        self.assertNotIn("DATA", conn.verbs())
        self.assertIn(conn.verbs()[-1], ("QUIT", "RSET"), conn.commands)

    def test_client_closes_mid_data(self):
        c = self.start_data()
        c.send(b"Subject: half\r\n\r\nthe first half of the message\r\n")
        c.close()
        self.assertNothingRelayed()

    def test_client_resets_mid_data_after_a_spilled_megabyte(self):
        c = self.start_data()
        c.send(b"Subject: big\r\n\r\n" + (b"z" * 990 + b"\r\n") * 3000)
        c.abort()
        self.assertNothingRelayed()

    def test_client_drops_after_a_line_that_looks_like_the_end(self):
        # "\r\n.\n" and a bare ".": not the end, so the message is unfinished.
        c = self.start_data()
        c.send(b"Subject: x\r\n\r\nbody\r\n.\nmore\r\n.")
        c.close()
        self.assertNothingRelayed()

    def test_client_silent_mid_data(self):
        c = self.start_data()
        c.send(b"Subject: slow\r\n\r\npart one\r\n")
        self.assertNothingRelayed()
        # stampd gave up on the client after data_timeout.
        try:
            c.wait_closed(timeout=5)
        except ConnectionClosed:
            pass


if __name__ == "__main__":
    test_main.main()
