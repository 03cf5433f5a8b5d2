"""The relay core end to end: the real stampd on port 0 in front of the fake
upstream. What the upstream receives is byte for byte what the client sent
(after unstuffing and restuffing), the upstream's verdicts reach the client
exactly (recipients, MAIL, DATA, the final dot), stampd never says 250 before
the upstream did, and pipelined commands get their replies in order."""
import time
import unittest

from fake_upstream import FakeUpstream
from prometheus_tools import scrape
from smtp_client import dot_stuff, make_message
from stampd_harness import StampdTestCase
import test_main


class RelayTest(StampdTestCase):
    def setUp(self):
        self.up = self.start_upstream(capabilities=FakeUpstream.FULL)
        self.stampd = self.start_stampd([self.up.address])

    def client(self):
        c = self.connect(self.stampd)
        self.assertEqual(c.greeting.code, 220)
        self.assertEqual(c.ehlo().code, 250)
        return c

    def relay(self, message, sender="sender@example.com", rcpts=("rcpt@example.net",), params=""):
        c = self.client()
        r = c.send_mail(sender, list(rcpts), message, mail_params=params)
        self.assertEqual(r.code, 250, r)
        c.quit()
        self.up.wait_for_messages(1)
        return self.up.messages[-1]

    def assertRelayedExactly(self, message, tx):
        self.assertEqual(tx.content, message)
        # stampd restuffs itself: the wire form is the canonical one.
        self.assertEqual(bytes(tx.raw), dot_stuff(message))
        self.assertEqual(tx.bare_line_endings(), 0)

    def test_plain_message_is_relayed_byte_exact(self):
        msg = make_message(body=b"Hello there.\r\n\r\nSecond paragraph.\r\n")
        tx = self.relay(msg)
        self.assertRelayedExactly(msg, tx)
        self.assertEqual(tx.mail_from, "sender@example.com")
        self.assertEqual(tx.rcpts, [("rcpt@example.net", "")])
        ev = self.stampd.wait_for_event("message")[0]
        self.assertEqual(ev["outcome"], "relayed")
        self.assertEqual(ev["from"], "<sender@example.com>")
        self.assertEqual(ev["rcpts"], "1")
        self.assertEqual(ev["size"], str(len(msg)))
        self.assertTrue(ev["reply"].startswith("250"), ev)

    def test_dot_stuffed_lines_are_unstuffed_and_restuffed(self):
        body = (b".\r\n..\r\n...three\r\n.leading dot\r\n. space\r\nmid.dle\r\n"
                b".\r\n\r\n.\r\n.\r\n..\r\nlast\r\n")
        msg = make_message(body=body)
        tx = self.relay(msg)
        self.assertRelayedExactly(msg, tx)

    def test_large_message_with_dotted_lines_here_and_there(self):
        # Over many 64 KiB send pieces: pieces without a dotted line go as
        # they are, the others are stuffed; the upstream must get the message
        # exactly. Once all in the spool's memory (spool_memory is 8 MiB by
        # default), once past a spool_memory of 1 MiB, into the file.
        lines = []
        for i in range(50000):
            if i % 997 == 0 or i % 1489 == 0:
                lines.append(b"." * (1 + i % 3) + b"dotted line %d" % i)
            else:
                lines.append(b"line %d " % i + b"x" * (i % 70))
        msg = make_message(body=b"\r\n".join(lines) + b"\r\n")
        self.assertGreater(len(msg), 2 << 20)
        tx = self.relay(msg)
        self.assertRelayedExactly(msg, tx)
        self.stampd.stop()
        self.stampd = self.start_stampd([self.up.address], {"server": {"spool_memory": "1MiB"}})
        self.relay(msg)
        self.up.wait_for_messages(2)
        self.assertRelayedExactly(msg, self.up.messages[1])

    def test_message_whose_first_line_starts_with_a_dot(self):
        msg = b".first line is a dot line\r\n\r\nbody\r\n"
        tx = self.relay(msg)
        self.assertRelayedExactly(msg, tx)

    def test_eight_bit_bytes_pass_unchanged(self):
        every_byte = bytes(b for b in range(256) if b not in (10, 13))
        body = b"".join(every_byte[i:i + 64] + b"\r\n" for i in range(0, len(every_byte), 64))
        body += "Grüße, 日本語, emoji 😀\r\n".encode("utf-8") + b"\x00nul\x00\r\n"
        msg = make_message(subject="8bit", body=body)
        tx = self.relay(msg, params="BODY=8BITMIME")
        self.assertRelayedExactly(msg, tx)
        self.assertEqual(tx.mail_params, "BODY=8BITMIME")

    def test_lines_of_998_octets_pass(self):
        long_line = (b"x" * 997) + b"!"
        dotted = b"." + b"y" * 997  # 998 octets after unstuffing: 999 on the wire
        msg = make_message(body=long_line + b"\r\n" + dotted + b"\r\n" + long_line + b"\r\n")
        tx = self.relay(msg)
        self.assertRelayedExactly(msg, tx)

    def test_large_message_spills_to_disk_and_arrives_intact(self):
        line = b"0123456789abcdefghijklmnopqrstuvwxyz.-ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 15 + b"\r\n"
        body = b"".join(b"." + line if i % 7 == 0 else line for i in range(5000))  # ~4.7 MiB
        msg = make_message(subject="big", body=body)
        tx = self.relay(msg)
        self.assertEqual(len(tx.content), len(msg))
        self.assertRelayedExactly(msg, tx)

    def test_empty_body(self):
        msg = b"Subject: nothing\r\n\r\n"
        tx = self.relay(msg)
        self.assertRelayedExactly(msg, tx)

    def test_several_messages_on_one_connection(self):
        c = self.client()
        msgs = [make_message(subject="n%d" % i, body=("body %d\r\n" % i).encode()) for i in range(3)]
        for i, m in enumerate(msgs):
            r = c.send_mail("s%d@example.com" % i, ["r%d@example.net" % i], m)
            self.assertEqual(r.code, 250, r)
        c.quit()
        self.up.wait_for_messages(3)
        self.assertEqual([t.content for t in self.up.messages], msgs)
        self.assertEqual([t.mail_from for t in self.up.messages],
                         ["s0@example.com", "s1@example.com", "s2@example.com"])
        self.assertEqual(len(self.up.connections), 1, "one upstream connection per client session")

    def test_rejected_recipients_are_mirrored_and_accepted_ones_go_on(self):
        self.up.on("rcpt", match="nobody@", reply="550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown")
        self.up.on("rcpt", match="full@", reply="452 4.2.2 <full@example.net>: Mailbox full, try later")
        self.up.on("rcpt", match="policy@", reply="554 5.7.1 Go away\n554 5.7.1 (second line)")
        c = self.client()
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("ok1@example.net").code, 250)
        r = c.rcpt("nobody@example.net")
        self.assertEqual((r.code, r.enhanced, r.text),
                         (550, "5.1.1", "<nobody@example.net>: Recipient address rejected: User unknown"))
        r = c.rcpt("full@example.net")
        self.assertEqual((r.code, r.enhanced, r.text),
                         (452, "4.2.2", "<full@example.net>: Mailbox full, try later"))
        r = c.rcpt("policy@example.net")
        self.assertEqual((r.code, r.enhanced), (554, "5.7.1"))
        self.assertEqual(r.lines, ["Go away", "(second line)"])
        self.assertEqual(c.rcpt("ok2@example.net").code, 250)
        msg = make_message()
        _, final = c.data(msg)
        self.assertEqual(final.code, 250, final)
        c.quit()
        self.up.wait_for_messages(1)
        tx = self.up.messages[0]
        self.assertEqual([a for a, _ in tx.rcpts], ["ok1@example.net", "ok2@example.net"])
        self.assertEqual(tx.content, msg)
        self.assertEqual(self.stampd.wait_for_event("message")[0]["rcpts"], "2")

    def test_all_recipients_rejected_means_no_data(self):
        self.up.on("rcpt", reply="550 5.1.1 No such user")
        c = self.client()
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("a@example.net").code, 550)
        r = c.cmd("DATA")
        self.assertEqual(r.code // 100, 5, r)
        self.assertEqual(c.cmd("RSET").code, 250)
        c.quit()
        self.up.wait_idle()
        self.assertNotIn("DATA", self.up.all_commands())
        self.assertEqual(self.up.messages, [])

    def test_mail_refused_by_upstream_is_mirrored(self):
        self.up.on("mail", match="spammer@", reply="553 5.7.1 <spammer@example.com>: Sender address rejected: Access denied")
        self.up.on("mail", match="later@", reply="451 4.3.5 Server configuration problem")
        c = self.client()
        # MAIL sent alone goes upstream with the first RCPT, in one write:
        # the upstream's verdict on the sender is that recipient's reply,
        # and each recipient after it tries MAIL again.
        self.assertEqual(c.mail("spammer@example.com").code, 250)
        for _ in range(2):
            r = c.rcpt("rcpt@example.net")
            self.assertEqual((r.code, r.enhanced, r.text),
                             (553, "5.7.1", "<spammer@example.com>: Sender address rejected: Access denied"))
        self.assertEqual(c.cmd("DATA").code, 554)  # no valid recipients
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.mail("later@example.com").code, 250)
        r = c.rcpt("rcpt@example.net")
        self.assertEqual((r.code, r.enhanced, r.text), (451, "4.3.5", "Server configuration problem"))
        self.assertEqual(c.cmd("RSET").code, 250)
        # Pipelined with its RCPT (RFC 2920), MAIL gets the verdict itself,
        # and the RCPT behind it is out of sequence.
        c.send(b"MAIL FROM:<spammer@example.com>\r\nRCPT TO:<rcpt@example.net>\r\n")
        r, r2 = c.replies(2)
        self.assertEqual((r.code, r.enhanced), (553, "5.7.1"), r)
        self.assertEqual(r2.code, 503, r2)
        # The session goes on: a good sender works.
        r = c.send_mail("good@example.com", ["rcpt@example.net"], make_message())
        self.assertEqual(r.code, 250, r)
        c.quit()
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].mail_from, "good@example.com")

    def test_data_refused_by_upstream_is_mirrored(self):
        self.up.on("data", reply="554 5.5.1 Error: no valid recipients", times=1)
        c = self.client()
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message())
        # stampd takes the message, then relays the upstream's refusal of DATA.
        self.assertEqual((r.code, r.enhanced, r.text), (554, "5.5.1", "Error: no valid recipients"))
        self.assertEqual(self.up.messages, [])
        # The next transaction works.
        msg = make_message(subject="second")
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], msg)
        self.assertEqual(r.code, 250, r)
        c.quit()
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].content, msg)

    def test_final_dot_verdicts_are_mirrored(self):
        for reply in ("554 5.7.1 Message rejected: spam\n554 5.7.1 see https://example.net/why",
                      "452 4.3.1 Insufficient system storage",
                      "550 5.6.0 Content rejected"):
            with self.subTest(reply=reply):
                self.up.clear_rules()
                self.up.on("dot", reply=reply)
                c = self.client()
                r = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message())
                want = reply.split("\n")
                self.assertEqual(r.code, int(want[0][:3]))
                self.assertEqual(r.enhanced, want[0][4:9])
                self.assertEqual(r.lines, [w[10:] for w in want])
                c.quit()
        outcomes = [e["outcome"] for e in self.stampd.wait_for_event("message", count=3)]
        self.assertEqual(outcomes, ["rejected", "tempfailed", "rejected"])

    def test_no_250_before_the_upstreams_250(self):
        delay = 1.5
        self.up.on("dot", delay=delay)
        c = self.client()
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message()))
        sent = time.monotonic()
        r = c.reply(timeout=30)
        got = time.monotonic()
        self.assertEqual(r.code, 250, r)
        tx = self.up.messages[0]
        self.assertIsNotNone(tx.reply_time)
        # The upstream answered first, then the client heard 250.
        self.assertGreaterEqual(got, tx.reply_time)
        self.assertGreaterEqual(got - sent, delay * 0.9)

    def test_delayed_refusal_at_the_dot_reaches_the_client(self):
        self.up.on("dot", delay=1.0, reply="451 4.7.1 Try again later")
        c = self.client()
        start = time.monotonic()
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message())
        self.assertEqual((r.code, r.enhanced, r.text), (451, "4.7.1", "Try again later"))
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.assertEqual(self.up.accepted_messages, [])

    def test_pipelined_commands_get_replies_in_order(self):
        self.up.on("rcpt", match="bad@", reply="550 5.1.1 <bad@example.net>: no such user")
        c = self.connect(self.stampd)
        c.ehlo()
        self.assertIn("PIPELINING", c.capabilities)
        c.send("MAIL FROM:<sender@example.com>\r\nRCPT TO:<a@example.net>\r\n"
               "RCPT TO:<bad@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        replies = c.replies(5)
        self.assertEqual([r.code for r in replies], [250, 250, 550, 250, 354])
        self.assertEqual(replies[2].text, "<bad@example.net>: no such user")
        # The message, then a whole second transaction and QUIT in one write.
        m1 = make_message(subject="one")
        m2 = make_message(subject="two")
        c.send(dot_stuff(m1) + b"RSET\r\nMAIL FROM:<s2@example.com>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n")
        replies = c.replies(5)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 250, 354])
        c.send(dot_stuff(m2) + b"NOOP\r\nQUIT\r\n")
        replies = c.replies(3)
        self.assertEqual([r.code for r in replies], [250, 250, 221])
        c.wait_closed()
        self.up.wait_for_messages(2)
        self.assertEqual([t.content for t in self.up.messages], [m1, m2])
        self.assertEqual([[a for a, _ in t.rcpts] for t in self.up.messages],
                         [["a@example.net", "b@example.net"], ["c@example.net"]])

    def test_hundreds_of_pipelined_recipients_across_read_buffers(self):
        # 600 RCPTs of ~200 octets: more than stampd's 64 KiB read buffer in one write.
        rcpts = ["r%03d@%s.%s.example.net" % (i, "x" * 60, "y" * 60) for i in range(600)]
        c = self.connect(self.stampd)
        c.ehlo()
        c.send("MAIL FROM:<sender@example.com>\r\n" + "".join("RCPT TO:<%s>\r\n" % r for r in rcpts) + "DATA\r\n")
        replies = c.replies(602, timeout=60)
        self.assertEqual([r.code for r in replies], [250] * 601 + [354])
        msg = make_message()
        c.send(dot_stuff(msg))
        self.assertEqual(c.reply(timeout=30).code, 250)
        self.up.wait_for_messages(1)
        self.assertEqual([a for a, _ in self.up.messages[0].rcpts], rcpts)

    def test_complete_message_is_relayed_even_if_the_client_leaves_at_once(self):
        # The final dot arrived, so the message is whole: it goes upstream
        # even though nobody reads the reply.
        c = self.connect(self.stampd)
        c.ehlo()
        msg = make_message(subject="fire and forget")
        c.send(b"MAIL FROM:<s@example.com>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n")
        self.assertEqual([r.code for r in c.replies(3)], [250, 250, 354])
        c.send(dot_stuff(msg) + b"QUIT\r\n")
        c.close()
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].content, msg)

    def test_whole_transaction_in_one_write_with_pipelined_quit(self):
        c = self.connect(self.stampd)
        msg = make_message()
        c.send(b"EHLO client.test\r\n")
        c.reply()
        c.send(b"MAIL FROM:<s@example.com>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n")
        self.assertEqual([r.code for r in c.replies(3)], [250, 250, 354])
        c.send(dot_stuff(msg) + b"QUIT\r\n")
        self.assertEqual([r.code for r in c.replies(2)], [250, 221])
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].content, msg)

    def test_pipelined_envelope_goes_upstream_in_one_write(self):
        # RFC 2920 on both sides: the recipients the client sent behind MAIL
        # reach the upstream with MAIL, before MAIL's (slow) reply came, and
        # each client command gets the upstream's own verdict, in order.
        self.up.on("mail", delay=0.3)
        self.up.on("rcpt", match="bad@", reply="550 5.1.1 <bad@example.net>: no such user")
        c = self.connect(self.stampd)
        c.send(b"EHLO client.test\r\n")
        c.reply()
        c.send(b"MAIL FROM:<s@example.com>\r\nRCPT TO:<r@example.net>\r\n"
               b"RCPT TO:<bad@example.net>\r\nRCPT TO:<t@example.net>\r\nDATA\r\n")
        replies = c.replies(5)
        self.assertEqual([r.code for r in replies], [250, 250, 550, 250, 354])
        self.assertIn("no such user", replies[2].text)
        c.send(dot_stuff(make_message()) + b"QUIT\r\n")
        self.assertEqual([r.code for r in c.replies(2)], [250, 221])
        self.up.wait_for_messages(1)
        self.assertEqual([a for a, _ in self.up.messages[0].rcpts], ["r@example.net", "t@example.net"])
        conn = self.up.connections[-1]
        first = conn.verbs().index("MAIL")
        # DATA too: the upstream offers no CHUNKING, so the message goes as DATA.
        self.assertEqual(conn.verbs()[first:first + 5], ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"])
        self.assertEqual(len(set(conn.arrivals[first:first + 5])), 1,
                         "MAIL, the recipients and DATA came in separate writes: %s" % conn.arrivals)

    def test_rset_aborts_the_upstream_transaction(self):
        c = self.client()
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        self.assertEqual(c.cmd("RSET").code, 250)
        self.up.wait_for(lambda u: "RSET" in u.all_commands(), what="RSET upstream")
        r = c.send_mail("other@example.com", ["x@example.net"], make_message())
        self.assertEqual(r.code, 250)
        c.quit()
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].mail_from, "other@example.com")
        self.assertEqual([a for a, _ in self.up.messages[0].rcpts], ["x@example.net"])

    def test_local_commands(self):
        c = self.client()
        self.assertEqual(c.cmd("NOOP").code, 250)
        self.assertEqual(c.cmd("VRFY postmaster").code, 252)
        self.assertEqual(c.cmd("HELP").code, 214)
        self.assertEqual(c.cmd("EXPN list").code, 502)
        self.assertEqual(c.cmd("DATA").code, 503)
        self.assertEqual(c.cmd("RCPT TO:<a@example.net>").code, 503)
        self.assertEqual(c.cmd("FOO bar").code // 100, 5)
        r = c.quit()
        self.assertEqual(r.code, 221)

    def test_mail_before_ehlo_is_refused(self):
        c = self.connect(self.stampd)
        self.assertEqual(c.mail("sender@example.com").code, 503)
        self.assertEqual(c.cmd("HELO client.test").code, 250)
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message())
        self.assertEqual(r.code, 250)

    def test_upstream_connection_is_kept_for_the_next_client(self):
        # A client's QUIT ends its session, not the upstream connection: the
        # next client's transaction goes over the same one (one I/O thread,
        # one pool).
        self.stampd = self.start_stampd([self.up.address], {"server": {"threads": 1}})
        for i in range(3):
            c = self.client()
            self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], make_message()).code, 250)
            c.quit()
        self.up.wait_for_messages(3)
        self.assertEqual(len(self.up.connections), 1)
        self.assertTrue(self.up.connections[0].open)
        self.stampd.wait_for_event("disconnect", reason="quit", count=3)

    def test_kept_connection_is_closed_with_quit_after_idle_timeout(self):
        stampd = self.start_stampd([self.up.address], {"upstream": {"idle_timeout": "1s"}})
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], make_message()).code, 250)
        c.quit()
        self.up.wait_for(lambda u: u.connections[-1].closed_by == "quit", 5, "QUIT after idle_timeout")
        self.assertEqual(self.up.connections[-1].commands[-1], "QUIT")

    def test_pooled_connections_are_counted_and_closed_with_quit_on_drain(self):
        # Two clients in a transaction at once need two upstream connections;
        # both are kept afterwards (stampd_upstream_connections says 2) and a
        # SIGTERM drain ends them with QUIT, not a dropped connection.
        stampd = self.start_stampd([self.up.address], {"server": {"threads": 1, "drain_timeout": "5s"},
                                                      "metrics": {"listen": "127.0.0.1:0"}})
        a, b = self.connect(stampd), self.connect(stampd)
        for c in (a, b):
            c.ehlo()
            self.assertEqual(c.mail("sender@example.com").code, 250)
            self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        for c in (a, b):
            self.assertEqual(c.data(make_message())[1].code, 250)
            c.quit()
        self.up.wait_for_messages(2)
        self.assertEqual(len(self.up.connections), 2)
        self.assertEqual(scrape(stampd).value("stampd_upstream_connections"), 2)
        started = time.monotonic()
        self.assertEqual(stampd.stop(timeout=10), 0)
        self.assertLess(time.monotonic() - started, 4, "the drain waited for nothing")
        for conn in self.up.connections:
            self.assertEqual(conn.closed_by, "quit")
            self.assertEqual(conn.commands[-1], "QUIT")



class DataAheadTest(StampdTestCase):
    """DATA pipelined behind the recipients goes upstream with them (RFC 2920),
    so the upstream waits for the message once it said 354. A message refused
    here then (too big) cannot be reset there: the connection is closed
    without a word, nothing is delivered, and the session sends DATA at the
    end of the message from then on."""

    def setUp(self):
        self.up = self.start_upstream(capabilities=FakeUpstream.FULL)
        self.stampd = self.start_stampd([self.up.address],
                                        {"server": {"max_message_size": "64KiB"}})

    def pipelined(self, c, rcpt="r@example.net"):
        c.send("MAIL FROM:<s@example.com>\r\nRCPT TO:<%s>\r\nDATA\r\n" % rcpt)
        self.assertEqual([r.code for r in c.replies(3)], [250, 250, 354])

    def test_a_message_refused_here_after_the_354_is_never_completed_upstream(self):
        c = self.connect(self.stampd)
        c.ehlo()
        self.pipelined(c)
        first = self.up.connections[-1]
        start = first.verbs().index("MAIL")
        self.assertEqual(first.verbs()[start:], ["MAIL", "RCPT", "DATA"])
        self.assertEqual(len(set(first.arrivals[start:])), 1, first.arrivals)
        big = make_message(body=(b"x" * 70 + b"\r\n") * 2000)  # 144 KiB
        c.send(dot_stuff(big))
        self.assertEqual(c.reply(timeout=30).code, 552)
        self.up.wait_for(lambda u: first.closed_by is not None, what="the connection closed")
        self.assertEqual(first.closed_by, "client")
        self.assertEqual(first.verbs()[start:], ["MAIL", "RCPT", "DATA"], "no RSET or QUIT as text")
        self.assertEqual(self.up.messages, [])
        ev = self.stampd.wait_for_event("message")[0]
        self.assertEqual((ev["outcome"], ev.get("upstream_abandoned")), ("rejected", "yes"), ev)
        # The same session: DATA now waits for the end of the message.
        self.pipelined(c, "t@example.net")
        msg = make_message(subject="after the refusal")
        c.send(dot_stuff(msg) + b"QUIT\r\n")
        self.assertEqual([r.code for r in c.replies(2)], [250, 221])
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].content, msg)
        second = self.up.connections[-1]
        self.assertIsNot(second, first)
        verbs = second.verbs()
        rcpt, data = verbs.index("RCPT"), verbs.index("DATA")
        self.assertNotEqual(second.arrivals[rcpt], second.arrivals[data],
                            "DATA went ahead again after a refusal")

    def test_a_client_gone_after_the_354_leaves_nothing_upstream(self):
        c = self.connect(self.stampd)
        c.ehlo()
        self.pipelined(c)
        conn = self.up.connections[-1]
        c.send(b"Subject: half\r\n\r\nsome of the bo")
        c.close()
        self.up.wait_for(lambda u: conn.closed_by is not None, what="the connection closed")
        self.assertEqual(conn.verbs()[-1], "DATA")
        self.assertEqual(self.up.messages, [])
        ev = self.stampd.wait_for_event("message")[0]
        self.assertEqual(ev["outcome"], "aborted", ev)

if __name__ == "__main__":
    test_main.main()
