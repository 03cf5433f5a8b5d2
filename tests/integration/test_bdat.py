"""CHUNKING / BDAT in (RFC 3030), end to end: a raw Python client sends
BDAT chunks to the real stampd, which signs the message and relays it to the
fake upstream as DATA with dot-stuffing, or as BDAT when the upstream offers
CHUNKING (BdatOutTest runs every test below again against such an upstream).

* The same message split every way (every single cut point, 1-octet chunks,
  cuts inside a CRLF, inside the header/body boundary, at each octet of a
  <CRLF>.<CRLF> in the body, an empty BDAT 0 LAST) reaches the upstream as
  the same signed message: the same fields and body after the signature, the
  same bh=, and the signature verifies with dkimpy (Mail::DKIM too, for a
  few).
* BDAT chunks pipelined with MAIL and RCPT, each answered in order.
* Sequencing: DATA after BDAT in one transaction is 503 5.5.1; BDAT without
  MAIL/RCPT is 503 and its octets are still read (commands inside them are
  never run); a chunk past the size limit is 552 5.3.4 before it is read,
  the octets consumed, the upstream reset; a malformed BDAT is 501 and the
  connection is closed (the chunk's end cannot be found).
* Bare CR / LF inside chunks follow bare_line_endings as for DATA: each
  smuggling lookalike sequence of test_smuggling.py, with a whole second
  transaction behind it, arrives inside the one message as CRLF text
  (normalize) or the message is refused with 550 (reject).
* EHLO offers CHUNKING, and BINARYMIME only when the upstream offers it
  with CHUNKING (BinaryMimeTest): then a binary body (NUL, 8-bit octets,
  bare CR and LF, dot lines, a last line without CRLF) reaches the upstream
  octet for octet in BDAT chunks after MAIL ... BODY=BINARYMIME, however the
  client cut it, and the signature verifies with dkimpy and Mail::DKIM
  (relaxed and simple); DATA in such a transaction is 503 5.5.1; when the
  only server left does not take BINARYMIME the client gets 451 4.6.3 and
  nothing of the message goes anywhere.
* BDAT out: with CHUNKING upstream, a message sent with DATA and one sent in
  BDAT chunks both leave as BDAT, byte for byte (no dot-stuffing, no
  terminator), the signature verifies; a message over 1 MiB leaves in 1 MiB
  chunks, the last one LAST, and stampd's memory stays far below its size.
  Without CHUNKING upstream the message leaves as DATA.
"""
import os
import re
import shutil
import socket
import tempfile
import time

import dkim_verifiers as V
from fake_upstream import FakeUpstream
from smtp_client import ConnectionClosed, make_message
from stampd_harness import StampdTestCase, make_key, sanitizer_build
from test_smuggling import SEQUENCES, SMUGGLED, normalize
import test_main

SELECTOR = "bdat"

BODY = (b"First line.\r\n"
        b".A line that starts with a dot.\r\n"
        b"..Two dots.\r\n"
        b"\r\n"
        b"A lone dot follows:\r\n"
        b".\r\n"
        b"MAIL FROM:<evil@attacker.example>\r\n"
        b"Last line.\r\n")
MESSAGE = make_message(subject="chunks", body=BODY)


def bdat(chunk, last=False):
    return b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk


def chunked(message, cuts):
    """chunked returns the BDAT commands for message cut at the offsets in
    cuts, the last chunk marked LAST."""
    points = [0] + sorted(cuts) + [len(message)]
    pieces = [message[a:b] for a, b in zip(points, points[1:])]
    return [bdat(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]


def split_signature(message):
    """split_signature returns (the DKIM-Signature field, the rest)."""
    m = re.match(rb"(DKIM-Signature:.*?\r\n)(?=\S)", message, re.S)
    assert m, message[:200]
    return m.group(1), message[m.end():]


def signing_key(test, prefix):
    """signing_key makes example.com's key in a temporary directory removed
    after test; returns (its private key file, its published records)."""
    tmp = tempfile.mkdtemp(prefix=prefix + "-")
    test.addCleanup(shutil.rmtree, tmp, True)
    key_path, record_path = make_key(os.path.join(tmp, "keys"), "example.com", SELECTOR)
    with open(record_path) as f:
        return key_path, V.records_for(f.read().splitlines())


class BdatTest(StampdTestCase):
    reject = False
    upstream_capabilities = None  # FakeUpstream.BASIC: no CHUNKING, stampd sends DATA

    def setUp(self):
        key_path, self.records = signing_key(self, "stampd-bdat-")
        self.up = self.start_upstream(capabilities=self.upstream_capabilities)
        server = {"max_message_size": "8KiB"}
        if self.reject:
            server["bare_line_endings"] = "reject"
        self.stampd = self.start_stampd([self.up.address], {
            "server": server,
            "dkim": {"key": [{"name": "k", "domain": "example.com", "selector": SELECTOR,
                              "private_key": key_path}],
                     "sign": [{"from": "*@example.com", "keys": ["k"]}]},
        })

    def session(self):
        c = self.connect(self.stampd)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.assertEqual(c.ehlo().code, 250)
        return c

    def transaction(self, c, commands, pipelined=True):
        """transaction sends MAIL, RCPT and the BDAT commands and returns the
        replies' codes (pipelined: everything in one write)."""
        head = [b"MAIL FROM:<sender@example.com>\r\n", b"RCPT TO:<rcpt@example.net>\r\n"]
        if pipelined:
            c.send(b"".join(head + commands))
            return [r.code for r in c.replies(len(head) + len(commands))]
        codes = []
        for command in head + commands:
            c.send(command)
            codes.append(c.reply().code)
        return codes

    def check_relayed(self, tx, message=MESSAGE):
        """check_relayed: tx carries message with one signature that verifies;
        returns its bh=."""
        self.assertTrue(tx.accepted)
        self.assertEqual(tx.bare_line_endings(), 0)
        self.check_transfer(tx)
        signature, rest = split_signature(tx.content)
        self.assertEqual(rest, message)
        results = V.verify_dkimpy(tx.content, self.records)
        self.assertEqual([r.status for r in results], ["pass"], results)
        return V.signatures(tx.content)[0]["bh"]

    def check_transfer(self, tx):
        """check_transfer: the message left as BDAT exactly when the upstream offers CHUNKING."""
        verbs = tx.connection.verbs()
        if self.upstream_capabilities and "CHUNKING" in self.upstream_capabilities:
            self.assertTrue(tx.chunks)
            self.assertEqual([last for _, last in tx.chunks], [False] * (len(tx.chunks) - 1) + [True])
            self.assertEqual(sum(size for size, _ in tx.chunks), len(tx.raw))
            self.assertNotIn("DATA", verbs)
        else:
            self.assertEqual(tx.chunks, [])
            self.assertNotIn("BDAT", verbs)

    def test_ehlo_offers_chunking_not_binarymime(self):
        c = self.session()
        self.assertIn("CHUNKING", c.capabilities)
        self.assertNotIn("BINARYMIME", c.capabilities)
        self.assertEqual(c.mail("sender@example.com", "BODY=BINARYMIME").code, 555)

    def test_every_split_gives_the_same_signed_message(self):
        m = MESSAGE
        boundary = m.index(b"\r\n\r\n")
        lone_dot = m.index(b"\r\n.\r\n")
        crlf = m.index(b"\r\n")
        splits = {"whole": [], "empty-last": None}
        for i in range(1, len(m)):
            splits["cut-%d" % i] = [i]
        splits["inside-crlf"] = [crlf + 1]
        splits["header-body-boundary"] = [boundary + k for k in range(1, 4)]
        splits["lone-dot-octets"] = [lone_dot + k for k in range(1, 5)]
        splits["one-octet"] = list(range(1, len(m)))
        c = self.session()
        body_hashes = set()
        sent = 0
        for name, cuts in splits.items():
            with self.subTest(split=name):
                if cuts is None:  # the whole message, then an empty LAST chunk
                    commands = [bdat(m), bdat(b"", last=True)]
                else:
                    commands = chunked(m, cuts)
                codes = self.transaction(c, commands)
                self.assertEqual(codes, [250] * len(codes))
                sent += 1
                tx = self.up.wait_for_messages(sent)[-1]
                body_hashes.add(self.check_relayed(tx))
        self.assertEqual(len(body_hashes), 1, body_hashes)
        # Each non-LAST chunk was answered with its own size.
        c.send(b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<rcpt@example.net>\r\n" +
               bdat(m[:10]) + bdat(m[10:], last=True))
        replies = c.replies(4)
        self.assertEqual(replies[2].wire, "250 2.0.0 10 octets received\r\n")
        self.assertEqual(replies[3].code, 250)
        c.quit()
        # An independent second verifier on a few of them.
        ok, why = V.available("mail-dkim")
        if ok:
            for tx in self.up.messages[:3]:
                results = V.verify_mail_dkim(tx.content, self.records)
                self.assertEqual([r.status for r in results], ["pass"], results)
        # The log line counts the octets of the message as received.
        relayed = self.stampd.messages(outcome="relayed")
        self.assertTrue(relayed)
        self.assertEqual(relayed[0]["size"], str(len(m)))

    def test_chunks_one_by_one_and_not_pipelined(self):
        c = self.session()
        codes = self.transaction(c, chunked(MESSAGE, [5, 200, 201]), pipelined=False)
        self.assertEqual(codes, [250] * 6)
        self.check_relayed(self.up.wait_for_messages(1)[0])

    def test_data_after_bdat_is_503(self):
        c = self.session()
        self.assertEqual(self.transaction(c, [bdat(MESSAGE[:100])]), [250, 250, 250])
        r = c.cmd("DATA")
        self.assertEqual((r.code, r.enhanced), (503, "5.5.1"))
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(self.up.messages, [])
        # The session goes on: DATA in a transaction of its own is fine.
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], MESSAGE).code, 250)
        self.check_relayed(self.up.wait_for_messages(1)[0])
        self.assertEqual(len(self.up.messages), 1)

    def test_bdat_outside_a_transaction_is_503_and_its_octets_are_read(self):
        c = self.session()
        inside = b"RSET\r\nQUIT\r\n"
        c.send(bdat(inside, last=True) + b"NOOP\r\n")
        r = c.reply()
        self.assertEqual((r.code, r.enhanced), (503, "5.5.1"))
        self.assertEqual(c.reply().code, 250)  # the NOOP: QUIT inside the chunk was not run
        self.assertEqual(c.mail("sender@example.com").code, 250)
        c.send(bdat(inside, last=True) + b"NOOP\r\n")  # MAIL but no RCPT
        self.assertEqual(c.reply().code, 554)
        self.assertEqual(c.reply().code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assertEqual(self.up.messages, [])

    def test_oversized_chunks_are_552_before_they_are_read(self):
        c = self.session()
        big = b"x" * 9000
        mark = self.up.mark()
        codes = self.transaction(c, [bdat(big, last=True), b"NOOP\r\n"])
        self.assertEqual(codes, [250, 250, 552, 250])
        # Over several chunks: the one that crosses the limit fails the
        # message; chunks pipelined behind it find no transaction.
        half = b"y" * 5000
        codes = self.transaction(c, [bdat(half), bdat(half), bdat(b"z" * 10, last=True),
                                     b"NOOP\r\n"])
        self.assertEqual(codes, [250, 250, 250, 552, 503, 250])
        self.assertEqual(c.quit().code, 221)
        self.up.wait_idle()
        self.assertEqual(self.up.messages, [])
        self.assertIn("RSET", [x.upper() for x in self.up.commands_since(mark)])
        rejected = self.stampd.wait_for_event("message", count=2, outcome="rejected")
        self.assertTrue(all(e["reply"].startswith("552") for e in rejected[:2]), rejected)

    def test_malformed_bdat_closes_the_connection(self):
        for line in (b"BDAT\r\n", b"BDAT ten LAST\r\n", b"BDAT 10 FIRST\r\n"):
            with self.subTest(line=line):
                c = self.session()
                c.send(line + b"RSET\r\n")
                r = c.reply()
                self.assertEqual((r.code, r.enhanced), (501, "5.5.4"))
                self.assertEqual(c.wait_closed(timeout=5), b"")

    def test_client_gone_mid_chunk_delivers_nothing(self):
        c = self.session()
        c.send(b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<rcpt@example.net>\r\n")
        c.replies(2)
        c.send(b"BDAT 1000 LAST\r\n" + MESSAGE[:300])
        time.sleep(0.2)
        c.close()
        self.stampd.wait_for_event("message", outcome="aborted")
        self.up.wait_idle()
        self.assertEqual(self.up.messages, [])

    def test_smuggling_lookalikes_inside_chunks(self):
        head = b"From: <sender@example.com>\r\nSubject: innocent\r\n\r\nbefore"
        c = self.session()
        delivered = 0
        for name, seq in SEQUENCES.items():
            content = head + seq + SMUGGLED
            for cuts in ([], [len(head) + k for k in range(1, len(seq))]):
                with self.subTest(sequence=name, cuts=cuts):
                    mark = self.up.mark()
                    codes = self.transaction(c, chunked(content, cuts))
                    bare = re.search(rb"\r(?!\n)|(?<!\r)\n", content)
                    if self.reject and bare:
                        self.assertEqual(codes[-1], 550)
                        self.up.wait_idle()
                    else:
                        self.assertEqual(codes, [250] * len(codes))
                        delivered += 1
                        tx = self.up.wait_for_messages(delivered)[-1]
                        _, rest = split_signature(tx.content)
                        self.assertEqual(rest, normalize(content))
                        raw = bytes(tx.raw)
                        self.assertEqual(tx.bare_line_endings(), 0)
                        self.check_transfer(tx)
                        # Out as DATA, no line can end the message early;
                        # out as BDAT, only the chunk sizes end it (a lone
                        # dot line there is just content).
                        for lookalike in (b"\n.\n", b"\r.\r", b"\n.\r", b"\r.\n"):
                            if not tx.chunks:
                                self.assertNotIn(lookalike, raw[:-3])
                    commands = self.up.commands_since(mark)
                    mails = [x for x in commands if x.upper().startswith("MAIL")]
                    self.assertEqual(mails, ["MAIL FROM:<sender@example.com>"])
        self.assertEqual(len(self.up.messages), delivered)


class BdatRejectBareLineEndingsTest(BdatTest):
    reject = True


class BdatOutTest(BdatTest):
    """Every test above again, with an upstream that offers CHUNKING: the
    message leaves as BDAT."""
    upstream_capabilities = FakeUpstream.BASIC + ["CHUNKING"]

    def test_data_from_the_client_leaves_as_bdat(self):
        c = self.session()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], MESSAGE).code, 250)
        tx = self.up.wait_for_messages(1)[0]
        self.check_relayed(tx)
        # One chunk (the message is far below 1 MiB), the octets as they are:
        # the lines that start with a dot are not stuffed.
        self.assertEqual(tx.chunks, [(len(tx.raw), True)])
        self.assertIn(b"\r\n.A line that starts with a dot.\r\n", bytes(tx.raw))
        self.assertIn(b"\r\n.\r\nMAIL FROM:", bytes(tx.raw))
        self.assertFalse(bytes(tx.raw).endswith(b"\r\n.\r\n"))
        self.assertEqual(self.stampd.wait_for_event("message", outcome="relayed")[0]["upstream"],
                         self.up.address)


# Bodies only BINARYMIME can carry, and the verifiers that read each as RFC
# 6376 does. Its line model makes a bare CR or LF an ordinary octet; so does
# Mail::DKIM, which checks the first body: every octet value, bare CR and LF
# (the smuggling lookalikes among them), dot lines, white space before a bare
# CR. dkimpy reads a bare LF as a line end, so it checks the second (NUL,
# 8-bit octets, bare CRs, a 2,000-octet line; no bare LF). OpenDKIM stops at
# NUL and its relaxed canonicalization drops a bare CR, so all three check the
# third (8-bit octets, a long line, dot lines), still more than DATA takes.
def binary_message(body):
    return make_message(subject="binary", body=body, extra_headers=(
        "MIME-Version: 1.0", "Content-Type: application/octet-stream",
        "Content-Transfer-Encoding: binary"))


BINARY_MESSAGE = binary_message(
    b"\x00\x01\xff binary\r\n"
    b"bare LF\n.\nMAIL FROM:<evil@attacker.example>\n"
    b"bare CR\r.\rtrailing space \r\r\n"
    b"\r\n.\r\n" + bytes(range(256)) + b"  \t\r\n\r\n\r\n"
    b"last line\r\n")
VERIFIERS = {
    BINARY_MESSAGE: (V.verify_mail_dkim,),
    binary_message(b"\x00NUL\r\n" + bytes(range(0x80, 0x100)) + b"\r\n"
                   b"bare CR\r.\rand \t more\r\n" + b"x" * 2000 + b"\r\n"):
        (V.verify_dkimpy, V.verify_mail_dkim),
    binary_message(bytes(range(0x80, 0x100)) + b"\r\n" + b"x" * 2000 + b"\r\n"
                   b".\r\n..\r\nlast line\r\n"):
        (V.verify_dkimpy, V.verify_mail_dkim, V.verify_opendkim),
}


class BinaryMimeTest(StampdTestCase):
    """BODY=BINARYMIME (RFC 3030 §3) through to an upstream that takes it."""
    canonicalization = "relaxed/relaxed"

    def setUp(self):
        key_path, self.records = signing_key(self, "stampd-binary-")
        self.up = self.start_upstream(
            capabilities=FakeUpstream.BASIC + ["8BITMIME", "CHUNKING", "BINARYMIME"])
        self.other = self.start_upstream(capabilities=FakeUpstream.BASIC + ["8BITMIME", "CHUNKING"])
        self.stampd = self.start_stampd([self.up.address, self.other.address], {
            "server": {"max_message_size": "8KiB"},
            "dkim": {"canonicalization": self.canonicalization,
                     "key": [{"name": "k", "domain": "example.com", "selector": SELECTOR,
                              "private_key": key_path}],
                     "sign": [{"from": "*@example.com", "keys": ["k"]}]},
        })

    def session(self):
        c = self.connect(self.stampd)
        self.assertEqual(c.ehlo().code, 250)
        return c

    def test_a_binary_body_leaves_as_it_is_and_verifies(self):
        c = self.session()
        self.assertIn("BINARYMIME", c.capabilities)
        n = 0
        for message, verifiers in VERIFIERS.items():
            head = message.index(b"\r\n\r\n") + 4
            splits = [[], [head - 1], [head, head + 1], [head + 9, head + 10, head + 11],
                      list(range(1, len(message)))]
            for cuts in splits:
                c.send(b"MAIL FROM:<sender@example.com> BODY=BINARYMIME\r\n"
                       b"RCPT TO:<rcpt@example.net>\r\n" + b"".join(chunked(message, cuts)))
                codes = [r.code for r in c.replies(3 + len(cuts))]
                self.assertEqual(codes, [250] * (3 + len(cuts)), cuts[:5])
                n += 1
                tx = self.up.wait_for_messages(n)[-1]
                self.assertTrue(tx.accepted)
                self.assertEqual(tx.body_type, "BINARYMIME")
                self.assertTrue(tx.chunks)
                self.assertNotIn("DATA", tx.connection.verbs())
                signature, rest = split_signature(bytes(tx.content))
                self.assertEqual(rest, message)  # octet for octet
                self.assertIn(b"c=%s;" % self.canonicalization.encode(), signature)
                for verify in verifiers:
                    results = verify(bytes(tx.content), self.records)
                    self.assertEqual([r.status for r in results], ["pass"], (verify.__name__, results))
        c.quit()
        self.assertEqual(self.other.messages, [])

    def test_data_in_a_binary_transaction_is_503(self):
        c = self.session()
        self.assertEqual(c.mail("sender@example.com", "BODY=BINARYMIME").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        r = c.cmd("DATA")
        self.assertEqual((r.code, r.enhanced), (503, "5.5.1"), r)
        c.send(bdat(BINARY_MESSAGE, last=True))
        self.assertEqual(c.reply().code, 250)
        tx = self.up.wait_for_messages(1)[0]
        self.assertEqual(split_signature(bytes(tx.content))[1], BINARY_MESSAGE)
        self.assertNotIn("DATA", tx.connection.verbs())

    def test_no_binary_message_for_a_server_without_binarymime(self):
        # Offered while the first server was up; it is gone by MAIL and the
        # other one cannot take the body as it is: a try later, not a bounce.
        c = self.session()
        self.assertIn("BINARYMIME", c.capabilities)
        self.up.stop()
        # MAIL goes upstream with the first RCPT, which takes the connection.
        self.assertEqual(c.mail("sender@example.com", "BODY=BINARYMIME").code, 250)
        r = c.rcpt("rcpt@example.net")
        self.assertEqual((r.code, r.enhanced), (451, "4.6.3"), r)
        self.assertEqual(c.cmd("RSET").code, 250)
        # The server that took over still carries text mail.
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], MESSAGE).code, 250)
        self.assertEqual(len(self.other.wait_for_messages(1)), 1)
        self.assertEqual([tx.body_type for tx in self.other.messages], [None])
        c.quit()
        self.assertEqual(self.stampd.wait_for_event("message", outcome="relayed")[0]["upstream"],
                         self.other.address)


class BinaryMimeSimpleTest(BinaryMimeTest):
    canonicalization = "simple/simple"

    test_data_in_a_binary_transaction_is_503 = None
    test_no_binary_message_for_a_server_without_binarymime = None


def large_message(size):
    """large_message: a text message of about size octets, some lines starting with a dot."""
    lines = [b"%s line %07d of a long message, to be signed and chunked." % (b"." if i % 7 == 0 else b"", i)
             for i in range(size // 60)]
    return make_message(subject="large", body=b"\r\n".join(lines) + b"\r\n")


class BdatOutLargeTest(StampdTestCase):
    """A message of 6 MiB leaves in BDAT chunks of 1 MiB whether the client
    sent DATA or BDAT, read from stampd's spool piece by piece."""

    def setUp(self):
        key_path, self.records = signing_key(self, "stampd-bdat-out-")
        self.up = self.start_upstream(capabilities=FakeUpstream.BASIC + ["CHUNKING"])
        self.stampd = self.start_stampd([self.up.address], {
            # The client checks the first message (dkimpy over 6 MiB) before
            # its next command: on a loaded machine under ASan that has taken
            # longer than the harness's 30 s command timeout.
            # spool_memory 1 MiB: most of the message goes through the file.
            "server": {"max_message_size": "8MiB", "data_timeout": "60s",
                       "command_timeout": "180s", "spool_memory": "1MiB"},
            "dkim": {"key": [{"name": "k", "domain": "example.com", "selector": SELECTOR,
                              "private_key": key_path}],
                     "sign": [{"from": "*@example.com", "keys": ["k"]}]},
        })

    def check(self, tx, message):
        self.assertTrue(tx.accepted)
        mib = 1024 * 1024
        sizes = [size for size, _ in tx.chunks]
        self.assertEqual(sizes[:-1], [mib] * (len(sizes) - 1))
        self.assertEqual([last for _, last in tx.chunks], [False] * (len(sizes) - 1) + [True])
        self.assertEqual(len(sizes), len(tx.raw) // mib + 1)
        _, rest = split_signature(tx.content)
        self.assertEqual(rest, message)
        results = V.verify_dkimpy(tx.content, self.records)
        self.assertEqual([r.status for r in results], ["pass"], results)

    def test_large_message_in_one_mib_chunks(self):
        message = large_message(6 * 1024 * 1024)
        c = self.connect(self.stampd)
        self.assertEqual(c.ehlo().code, 250)
        before = self.stampd.hwm_kib()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], message,
                                     timeout=60).code, 250)
        self.check(self.up.wait_for_messages(1, timeout=60)[0], message)
        cuts = list(range(100000, len(message), 100000))
        c.send(b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<rcpt@example.net>\r\n" +
               b"".join(chunked(message, cuts)))
        replies = [c.reply(timeout=60) for _ in range(3 + len(cuts))]
        self.assertEqual([r.code for r in replies], [250] * (3 + len(cuts)))
        self.check(self.up.wait_for_messages(2, timeout=60)[1], message)
        c.quit()
        # Never the whole message in memory: the spool holds it (memory up
        # to spool_memory, then a file), and it leaves in pieces.
        grown = self.stampd.hwm_kib() - before
        print("\nmessage %d KiB, stampd VmHWM grew %d KiB" % (len(message) // 1024, grown))
        if not sanitizer_build():  # ASan's quarantine keeps what was freed
            self.assertLess(grown * 1024, len(message) // 2)


if __name__ == "__main__":
    test_main.main()
