"""`stampd sign` and the proxy sign through one path (auth/dkim/
message_signer.h), so for the same message, config and clock they write the
same bytes. The real stampd runs on port 0 with a maildir: upstream and keys
made by `stampd genkey`; a message goes through it over SMTP (dot-stuffed,
read in socket-sized chunks, spooled to a file past the memory limit); then
`stampd sign -c` on the same config signs the same message with the proxy's
t=. The maildir file must be exactly "Return-Path: <sender>" plus what
`stampd sign` printed: every DKIM-Signature field, b= included. dkimpy
verifies both.

The proxy reads the clock; `stampd sign` reads it too, unless the
environment variable STAMPD_TEST_SIGN_TIMESTAMP (seconds since the epoch,
read in cmd/dkim_commands.cc, deliberately undocumented elsewhere) fixes
t=. This test gives it the t= of the proxy's signatures. RSA PKCS#1 v1.5 and
Ed25519 signatures are deterministic, so equal input gives an equal b=.
"""
import os
import shutil
import tempfile
import unittest

import dkim_verifiers as V
from stampd_harness import StampdTestCase, make_key, run_cli
import test_main

SENDER = "envelope@example.com"
TIMESTAMP_VARIABLE = "STAMPD_TEST_SIGN_TIMESTAMP"


def message(from_header, size=0):
    """A message with what canonicalization and transport must get right:
    folded and odd-case fields, whitespace runs, lines starting with dots,
    8-bit text, a 998-octet line, trailing blank lines; size pads the body
    with text lines to about that many bytes."""
    head = (b"From: " + from_header + b"\r\n"
            b"To: Bob <bob@example.net>\r\n"
            b"SUBJECT: one  signing path,\r\n"
            b"\t folded \t with runs  \r\n"
            b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            b"Message-ID: <one-path.%d@test.example>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n" % size)
    body = (b".a line that starts with a dot\r\n"
            b"..and two\r\n"
            b".\r\n"
            b"trailing whitespace  \t\r\n"
            b"8-bit \xe2\x9c\x93 text\r\n" + b"y" * 998 + b"\r\n")
    line = b"the quick brown fox  jumps over\tthe lazy dog \r\n"
    body += line * (size // len(line))
    return head + b"\r\n" + body + b"\r\n\r\n"


class SignMatchesProxyTest(StampdTestCase):
    @classmethod
    def setUpClass(cls):
        ok, why = V.available("dkimpy")
        if not ok:
            raise unittest.SkipTest(why)
        cls.keydir = tempfile.mkdtemp(prefix="stampd-one-path-keys-")
        cls.keys = {}
        for name, domain, selector, algorithm in (("rsa", "example.com", "rsa2026", "rsa-2048"),
                                                  ("ed", "example.com", "ed2026", "ed25519"),
                                                  ("customer", "customer.example", "cust", "ed25519"),
                                                  ("relay", "relay.example.org", "relay", "rsa-2048")):
            private, txt = make_key(os.path.join(cls.keydir, name), domain, selector, algorithm)
            with open(txt) as f:
                cls.keys[name] = {"name": name, "domain": domain, "selector": selector,
                                  "private_key": private, "zone": f.read().strip()}
        cls.records = V.records_for([k["zone"] for k in cls.keys.values()])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.keydir, ignore_errors=True)

    def start_proxy(self, canonicalization):
        key_tables = [{k: v for k, v in key.items() if k != "zone"} for key in self.keys.values()]
        dkim_section = {
            "canonicalization": canonicalization,
            "signature_lifetime": "7d",
            "key": key_tables,
            "sign": [
                {"from": "*@example.com", "keys": ["rsa", "ed"], "identity": "postmaster@%"},
                # A relay domain's key beside the customer's: i= only where d= covers it.
                {"from": "*@customer.example", "keys": ["customer", "relay"], "identity": "@%"},
            ],
        }
        # spool_memory 1 MiB: the 3 MiB message goes through the spool file.
        return self.start_stampd(["maildir:mail"], sections={"dkim": dkim_section,
                                                             "server": {"spool_memory": "1MiB"}})

    def relay(self, stampd, messages):
        """relay sends messages in one session and returns the maildir files, in order."""
        new = os.path.join(stampd.workdir, "mail", "new")
        before = set(os.listdir(new)) if os.path.isdir(new) else set()
        c = self.connect(stampd)
        self.assertEqual(c.ehlo().code, 250)
        names = []
        for i, m in enumerate(messages):
            r = c.send_mail(SENDER, ["rcpt%d@example.net" % i], m, mail_params="BODY=8BITMIME")
            self.assertEqual(r.code, 250, r)
            added = set(os.listdir(new)) - before - set(names)
            self.assertEqual(len(added), 1, added)
            names.append(added.pop())
        c.quit()
        out = []
        for name in names:
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    def sign(self, stampd, m, timestamp):
        r = run_cli("sign", "-c", stampd.config_path, input=m, env={TIMESTAMP_VARIABLE: str(timestamp)})
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout, r.stderr.decode()

    def check_same_bytes(self, canonicalization):
        stampd = self.start_proxy(canonicalization)
        ours = [("example.com", "rsa2026", "postmaster@example.com"),
                ("example.com", "ed2026", "postmaster@example.com")]
        cases = [
            (message(b"Alice <alice@example.com>"), ours),
            (message(b"Alice <alice@example.com>", size=3 << 20), ours),
            (message(b"<x@customer.example>"),
             [("customer.example", "cust", "@customer.example"), ("relay.example.org", "relay", None)]),
        ]
        delivered = self.relay(stampd, [m for m, _ in cases])
        return_path = b"Return-Path: <%s>\r\n" % SENDER.encode()
        for (m, want), got in zip(cases, delivered):
            with self.subTest(canonicalization=canonicalization, size=len(m), want=want):
                self.assertTrue(got.startswith(return_path))
                proxied = got[len(return_path):]
                tags = V.signatures(proxied)
                self.assertEqual([(t["d"], t["s"], t.get("i")) for t in tags], want)
                self.assertEqual(len({t["t"] for t in tags}), 1, "one t= per message")
                t = int(tags[0]["t"])
                for tag in tags:
                    self.assertEqual(tag["c"], canonicalization)
                    self.assertEqual(int(tag["x"]) - t, 7 * 86400)
                signed, _ = self.sign(stampd, m, t)
                self.assertEqual(signed, proxied, "stampd sign and the proxy wrote different bytes")
                for r in V.verify("dkimpy", proxied, self.records):
                    self.assertEqual(r.status, "pass", r)
                # The fixed clock is what makes the bytes equal: another t= changes t= and b=.
                later, _ = self.sign(stampd, m, t + 1)
                self.assertNotEqual(later, proxied)
                for r in V.verify("dkimpy", later, self.records):
                    self.assertEqual(r.status, "pass", r)
        return stampd

    def test_relaxed_relaxed(self):
        stampd = self.check_same_bytes("relaxed/relaxed")
        # Unsigned alike, with the same reason.
        m = message(b"<someone@elsewhere.example>")
        [got] = self.relay(stampd, [m])
        self.assertEqual(got, b"Return-Path: <%s>\r\n" % SENDER.encode() + m)
        reason = stampd.wait_for_event("message", count=4)[-1]["dkim_reason"]
        printed, stderr = self.sign(stampd, m, 1)
        self.assertEqual(printed, m)
        self.assertIn("not signed: " + reason, stderr)

    def test_simple_simple(self):
        self.check_same_bytes("simple/simple")

    def test_fixed_timestamp_must_be_seconds(self):
        stampd = self.start_proxy("relaxed/relaxed")
        r = run_cli("sign", "-c", stampd.config_path, input=message(b"<a@example.com>"),
                    env={TIMESTAMP_VARIABLE: "soon"})
        self.assertEqual(r.returncode, 2)
        self.assertIn(TIMESTAMP_VARIABLE, r.stderr.decode())


if __name__ == "__main__":
    test_main.main()
