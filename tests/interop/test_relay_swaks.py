"""Interop with real tools: swaks as the client, Postfix's smtp-sink as the
upstream (with its per-message dumps), stampd in between. The sink must
count and hold exactly what swaks sent, and the sink's refusals must reach
swaks."""
import os
import shutil
import subprocess
import unittest

from postfix_tools import SmtpSink, parse_dump
from stampd_harness import StampdTestCase
import test_main

SWAKS = shutil.which("swaks")


@unittest.skipIf(SWAKS is None, "swaks is not installed")
class SwaksThroughStampdTest(StampdTestCase):
    def start_sink(self, **kwargs):
        sink = SmtpSink(**kwargs)
        self.addCleanup(sink.cleanup)
        return sink.start()

    def swaks(self, stampd, *args, check=True):
        cmd = [SWAKS, "--server", "%s:%d" % stampd.address, "--helo", "client.test",
               "--from", "sender@example.com", "--timeout", "30"] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def test_one_message_with_several_recipients(self):
        sink = self.start_sink(dump=True)
        stampd = self.start_stampd([sink.address])
        body = os.path.join(stampd.workdir, "body.txt")
        with open(body, "wb") as f:
            f.write(b"Subject: interop\r\nFrom: <sender@example.com>\r\n\r\n"
                    b"first line\r\n.a line that starts with a dot\r\n.\r\n..\r\n"
                    b"caf\xc3\xa9 8-bit\r\nlast line\r\n")
        r = self.swaks(stampd, "--to", "a@example.net,b@example.net", "--data", "@" + body,
                       "--pipeline")
        self.assertIn("<-  250 2.0.0 Ok\n -> QUIT", r.stdout)
        sink.wait_for_messages(1)
        self.assertEqual(sink.messages(), 1)
        dumps = sink.dumps()
        self.assertEqual(len(dumps), 1)
        headers, message = parse_dump(dumps[0])
        self.assertEqual(headers["X-Mail-Args"], ["<sender@example.com>"])
        self.assertEqual(headers["X-Rcpt-Args"], ["<a@example.net>", "<b@example.net>"])
        self.assertEqual(headers["X-Helo-Args"], ["stampd.test"])
        # smtp-sink stores lines with LF (and swaks ends the data with one
        # more CRLF before the dot).
        self.assertTrue(message.startswith(b"Subject: interop\nFrom: <sender@example.com>\n\n"
                                           b"first line\n.a line that starts with a dot\n.\n..\n"
                                           b"caf\xc3\xa9 8-bit\nlast line\n"), message)
        # Byte for byte what the same swaks run gives straight into a sink.
        direct = self.start_sink(dump=True)
        subprocess.run([SWAKS, "--server", direct.address, "--helo", "client.test", "--from",
                        "sender@example.com", "--to", "a@example.net,b@example.net",
                        "--data", "@" + body, "--pipeline"], capture_output=True, timeout=60, check=True)
        direct.wait_for_messages(1)
        self.assertEqual(parse_dump(direct.dumps()[0])[1], message)
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual((ev["outcome"], ev["rcpts"]), ("relayed", "2"))

    def test_default_swaks_message_and_xforward(self):
        sink = self.start_sink(dump=True, options=["-v"])
        stampd = self.start_stampd([sink.address])
        self.swaks(stampd, "--to", "rcpt@example.net", "--header", "Subject: from swaks",
                   "--local-interface", "127.0.0.2")
        sink.wait_for_messages(1)
        headers, message = parse_dump(sink.dumps()[0])
        self.assertIn(b"Subject: from swaks\n", message)
        self.assertIn(b"This is a test mailing", message)
        # smtp-sink offers XFORWARD NAME ADDR PROTO HELO, so stampd told it
        # about the real client (-v shows the command; the dump shows only XCLIENT).
        self.assertIn("XFORWARD ADDR=127.0.0.2 HELO=client.test PROTO=ESMTP", sink.output())
        self.assertEqual(stampd.wait_for_event("connect")[0]["client"].split(":")[0], "127.0.0.2")

    def test_sink_refusing_the_dot_reaches_swaks(self):
        sink = self.start_sink(options=["-f", "."])
        stampd = self.start_stampd([sink.address])
        r = self.swaks(stampd, "--to", "rcpt@example.net", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("<** 500 5.3.0 Error: command failed", r.stdout)
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual(ev["outcome"], "rejected")

    def test_sink_soft_refusing_rcpt_reaches_swaks(self):
        sink = self.start_sink(options=["-r", "RCPT"])
        stampd = self.start_stampd([sink.address])
        r = self.swaks(stampd, "--to", "rcpt@example.net", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("<** 450 4.3.0 Error: command failed", r.stdout)
        self.assertEqual(sink.messages(), 0)

    def test_sink_without_8bitmime_hides_it(self):
        sink = self.start_sink(options=["-8"])
        stampd = self.start_stampd([sink.address])
        r = self.swaks(stampd, "--to", "rcpt@example.net", "--quit-after", "EHLO")
        self.assertNotIn("250-8BITMIME", r.stdout)
        sink2 = self.start_sink()
        stampd2 = self.start_stampd([sink2.address])
        r = self.swaks(stampd2, "--to", "rcpt@example.net", "--quit-after", "EHLO")
        self.assertIn("8BITMIME", r.stdout)
        self.assertIn("DSN", r.stdout)

    def test_helo_client(self):
        sink = self.start_sink()
        stampd = self.start_stampd([sink.address])
        self.swaks(stampd, "--to", "rcpt@example.net", "--protocol", "SMTP")
        sink.wait_for_messages(1)


if __name__ == "__main__":
    test_main.main()
