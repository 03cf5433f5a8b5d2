"""SMTP smuggling (CVE-2023-51764 class): only <CRLF>.<CRLF> ends a message.
Each lookalike sequence is sent with a whole second transaction after it;
that text must arrive inside the one message the upstream receives, in
canonical CRLF form that the upstream cannot mistake for an end either, and
stampd must answer exactly once. Also: bare CR / LF are normalized to CRLF by
default and refused with bare_line_endings = "reject"."""
import re
import socket
import time
import unittest

from fake_upstream import FakeUpstream
from smtp_client import ConnectionClosed
from stampd_harness import StampdTestCase
import test_main

SMUGGLED = (b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
            b"From: <ceo@example.com>\r\nSubject: smuggled\r\n\r\nPay the invoice.\r\n")

SEQUENCES = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.LF": b"\r.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "CRLF.CR.CRLF": b"\r\n.\r.\r\n",
    "LF.CR": b"\n.\r",
    "CR.CRLF-nul": b"\r\n.\x00\r\n",
}


def normalize(data):
    """normalize turns every bare CR or bare LF into CRLF (stampd's default)."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


def unstuff_client(data):
    """unstuff_client applies RFC 5321 §4.5.2 to what a client sent (lines that
    start with a dot after a real CRLF lose it)."""
    out = re.sub(rb"(?<=\r\n)\.", b"", data)
    return out[1:] if out.startswith(b".") else out


class SmugglingTest(StampdTestCase):
    reject = False

    def setUp(self):
        self.up = self.start_upstream(capabilities=FakeUpstream.FULL)
        server = {"bare_line_endings": "reject"} if self.reject else {}
        self.stampd = self.start_stampd([self.up.address], {"server": server})

    def send_pieces(self, pieces):
        """send_pieces opens a session, sends DATA, then each piece as its own TCP write."""
        c = self.connect(self.stampd)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.ehlo()
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        for p in pieces:
            c.send(p)
            time.sleep(0.02)
        return c

    def replies_until_close(self, c):
        c.send(b"QUIT\r\n")
        codes = []
        try:
            while True:
                codes.append(c.reply(timeout=10).code)
        except ConnectionClosed:
            pass
        return codes

    def attempt(self, seq, split):
        head = b"From: <sender@example.com>\r\nSubject: innocent\r\n\r\nbefore"
        tail = b".\r\n"  # SMUGGLED ends with CRLF
        client_data = head + seq + SMUGGLED
        if split == "whole":
            pieces = [client_data + tail]
        elif split == "around":
            pieces = [head, seq, SMUGGLED + tail]
        else:  # every byte of the sequence in its own write
            pieces = [head] + [seq[i:i + 1] for i in range(len(seq))] + [SMUGGLED + tail]
        before = self.up.mark()
        c = self.send_pieces(pieces)
        codes = self.replies_until_close(c)
        self.up.wait_idle()
        commands = self.up.commands_since(before)
        messages = [t for t in self.up.transactions_since(before) if t.completed]
        # Only the MAIL that the client really sent reached the upstream.
        mails = [x for x in commands if x.upper().startswith("MAIL")]
        self.assertEqual(mails, ["MAIL FROM:<sender@example.com>"])
        self.assertNotIn("evil@attacker.example", " ".join(commands))
        if self.reject and re.search(rb"\r(?!\n)|(?<!\r)\n", client_data):
            self.assertEqual(codes, [550, 221])
            self.assertEqual(messages, [])
            return
        self.assertEqual(codes, [250, 221], "stampd answered exactly once")
        self.assertEqual(len(messages), 1)
        tx = messages[0]
        expected = normalize(unstuff_client(client_data))
        self.assertEqual(tx.content, expected)
        self.assertIn(b"MAIL FROM:<evil@attacker.example>\r\n", tx.content)
        raw = bytes(tx.raw)
        self.assertEqual(tx.bare_line_endings(), 0, raw)
        # The only end-of-data on the wire is the last one, however lax the reader.
        self.assertTrue(raw.endswith(b"\r\n.\r\n"))
        for lookalike in (b"\n.\n", b"\r.\r", b"\n.\r", b"\r.\n"):
            self.assertNotIn(lookalike, raw[:-3])

    def test_lookalike_sequences_never_end_the_message(self):
        for name, seq in SEQUENCES.items():
            for split in ("whole", "around", "bytewise"):
                with self.subTest(sequence=name, split=split):
                    self.attempt(seq, split)

    def test_real_end_split_across_writes_is_still_the_end(self):
        # <CRLF>.<CR> | <LF>: the real terminator in two TCP segments ends the
        # message exactly as in one; the commands after it are commands.
        c = self.send_pieces([b"Subject: split\r\n\r\nbody\r\n.\r", b"\n"])
        r = c.reply(timeout=10)
        self.assertEqual(r.code, 250)
        self.assertEqual(c.mail("second@example.com").code, 250)
        self.assertEqual(c.cmd("RSET").code, 250)
        c.quit()
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].content, b"Subject: split\r\n\r\nbody\r\n")

    def test_dot_cr_then_other_byte_in_the_next_write(self):
        # <CRLF>.<CR> | "X": the decoder held state across the write; the
        # dot was stuffing and the CR is bare, so no end here.
        c = self.send_pieces([b"Subject: split\r\n\r\nbody\r\n.\r", b"X\r\n.\r\n"])
        codes = self.replies_until_close(c)
        self.up.wait_idle()
        if self.reject:
            self.assertEqual(codes, [550, 221])
            self.assertEqual(self.up.messages, [])
        else:
            self.assertEqual(codes, [250, 221])
            self.assertEqual(self.up.messages[0].content, b"Subject: split\r\n\r\nbody\r\n\r\nX\r\n")


class SmugglingRejectTest(SmugglingTest):
    reject = True


class BareLineEndingsTest(StampdTestCase):
    MESSAGE = b"Subject: bare\r\n\r\nlf\nonly\ncr\ronly\rmixed\r\r\n\n\r\nend\r\n"

    def relay(self, mode):
        up = self.start_upstream()
        server = {"bare_line_endings": mode} if mode else {}
        stampd = self.start_stampd([up.address], {"server": server})
        c = self.connect(stampd)
        c.ehlo()
        c.mail("sender@example.com")
        c.rcpt("rcpt@example.net")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(self.MESSAGE + b".\r\n")
        r = c.reply()
        # Either way the session goes on with a clean message.
        clean = b"Subject: clean\r\n\r\nok\r\n"
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], clean).code, 250)
        c.quit()
        up.wait_idle()
        return r, up, clean, stampd

    def test_normalized_by_default(self):
        r, up, clean, _ = self.relay(None)
        self.assertEqual(r.code, 250, r)
        self.assertEqual([t.content for t in up.messages], [normalize(self.MESSAGE), clean])
        self.assertEqual(up.messages[0].content,
                         b"Subject: bare\r\n\r\nlf\r\nonly\r\ncr\r\nonly\r\nmixed\r\n\r\n\r\n\r\nend\r\n")
        self.assertEqual(up.messages[0].bare_line_endings(), 0)

    def test_explicit_normalize(self):
        r, up, _, _ = self.relay("normalize")
        self.assertEqual(r.code, 250, r)
        self.assertEqual(up.messages[0].content, normalize(self.MESSAGE))

    def test_rejected_when_configured(self):
        r, up, clean, stampd = self.relay("reject")
        self.assertEqual((r.code, r.enhanced), (550, "5.6.0"), r)
        self.assertEqual([t.content for t in up.messages], [clean])
        self.assertEqual(stampd.wait_for_event("message")[0]["outcome"], "rejected")


if __name__ == "__main__":
    test_main.main()
