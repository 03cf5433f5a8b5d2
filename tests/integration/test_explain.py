"""`stampd explain -c FILE [--ip --helo --mail-from --rcpt] < message`
(issue 13): what the proxy would do with a message, from the same stages the
daemon runs, against a real unbound on loopback for SPF.

- signed: the rule (file:line, pattern, keys, on_error), each key, the
  header fields signed and oversigned, the self-verification, the fields
  added; the DKIM-Signature fields it prints, put in front of the message,
  verify with dkimpy (both) and Mail::DKIM (the RSA one: Debian 12's has no
  Ed25519) against the records genkey wrote; exit 0;
- unsigned (no rule for the From domain): why; exit 1;
- refused: a client outside trusted_networks; a must_sign domain without a
  usable rule (451 4.7.0); SPF in enforce mode failing at MAIL FROM
  (550 5.7.23), with the record and the lookup trace; exit 3;
- a config that does not load, or a bad --ip: exit 2.
"""
import os
import re
import shutil
import tempfile
import unittest

import dkim_verifiers as V
import test_main
from stampd_harness import make_key, render_toml, run_cli
from unbound_server import UnboundServer, find_unbound, zone_line_txt

MESSAGE = (b"From: Alice <alice@example.com>\n"  # LF line ends, as saved to a file
           b"To: Bob <bob@example.net>\n"
           b"Subject: explain me\n"
           b"Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
           b"\n"
           b"Hello Bob.\n")


class ExplainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if find_unbound() is None:
            raise unittest.SkipTest("unbound is not installed")
        cls.dir = tempfile.mkdtemp(prefix="stampd-explain-")
        cls.key, cls.txt = make_key(os.path.join(cls.dir, "keys"), "example.com", "s1", "ed25519")
        cls.rsa_key, cls.rsa_txt = make_key(os.path.join(cls.dir, "keys"), "example.com", "r1", "rsa-2048")
        cls.dns = UnboundServer(zones=["example.com", "spf.example"], records=[
            ("spf.example", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
            ("example.com", "TXT", "v=spf1 ip4:127.0.0.0/8 -all"),
        ])
        cls.dns.start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def config(self, **dkim):
        sections = {
            "server": {"listen": ["127.0.0.1:0"], "trusted_networks": ["127.0.0.0/8", "192.0.2.0/24"],
                       "hostname": "relay.test"},
            "upstream": {"servers": ["127.0.0.1:1"]},
            "dns": {"resolvers": [self.dns.resolver], "timeout": "2s"},
            "spf": {"mode": "enforce"},
            "dkim": dict({
                "self_verify": "all",
                "key": [{"name": "ed", "domain": "example.com", "selector": "s1", "private_key": self.key},
                        {"name": "rsa", "domain": "example.com", "selector": "r1",
                         "private_key": self.rsa_key}],
                "sign": [{"from": "*@example.com", "keys": ["ed", "rsa"]}],
            }, **dkim),
        }
        path = os.path.join(self.dir, "stampd.toml")
        with open(path, "w") as f:
            f.write(render_toml(sections))
        return path

    def explain(self, *args, message=MESSAGE):
        r = run_cli("explain", "-c", self.config_path, *args, input=message)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def setUp(self):
        self.config_path = self.config()

    def records(self):
        out = {}
        for path in (self.txt, self.rsa_txt):
            with open(path) as f:
                out.update(V.records_for(f.read().splitlines()))
        return out

    def test_signed_message_is_explained_and_its_signatures_verify(self):
        status, out, err = self.explain()
        self.assertEqual(status, 0, out + err)
        self.assertIn("client: 127.0.0.1 HELO localhost: in [server] trusted_networks", out)
        self.assertIn("spf: pass, action", out)
        self.assertRegex(out, r"dkim rule: .*stampd\.toml:\d+: from \"\*@example\.com\" matches From "
                              r"alice@example\.com; keys ed rsa; on_error fail-closed")
        self.assertIn("key ed: d=example.com s=s1 (ed25519-sha256)", out)
        self.assertIn("key rsa: d=example.com s=r1 (rsa-sha256)", out)
        self.assertIn("self-verification: pass", out)
        self.assertIn("signs: from subject date to", out)
        self.assertIn("oversigns (a copy added later breaks the signature): ", out)
        self.assertTrue(out.rstrip().endswith("verdict: relayed, signed"), out)
        fields = out.split("fields added in front of the message:\n", 1)[1].rsplit("verdict:", 1)[0]
        self.assertTrue(fields.startswith("Received-SPF: pass (relay.test: domain of alice@example.com"), fields)
        self.assertEqual(len(re.findall(r"^DKIM-Signature:", fields, re.M)), 2, fields)
        signed = fields.replace("\r\n", "\n").replace("\n", "\r\n").encode() + MESSAGE.replace(b"\n", b"\r\n")
        # Debian 12's Mail::DKIM has no Ed25519: it checks the RSA one.
        for verifier, want in (("dkimpy", ["pass", "pass"]), ("mail-dkim", ["unsupported", "pass"])):
            with self.subTest(verifier=verifier):
                results = V.verify(verifier, signed, self.records())
                self.assertEqual([(r.selector, r.status) for r in results], list(zip(["s1", "r1"], want)),
                                 results)

    def test_unsigned_says_why(self):
        status, out, _ = self.explain(message=MESSAGE.replace(b"alice@example.com", b"x@other.example"))
        self.assertEqual(status, 1, out)
        self.assertIn("dkim rule: no [[dkim.sign]] rule matches From x@other.example", out)
        self.assertIn("verdict: relayed unsigned (no signing rule for the From domain other.example)", out)
        fields = out.split("fields added in front of the message:\n", 1)[1]
        self.assertTrue(fields.startswith("Received-SPF: none (relay.test: no SPF record at other.example)"), out)
        self.assertNotIn("DKIM-Signature", fields)

    def test_refusals(self):
        status, out, _ = self.explain("--ip", "203.0.113.9")
        self.assertEqual(status, 3, out)
        self.assertIn("not in [server] trusted_networks", out)
        self.assertIn("verdict: refused", out)

        self.config_path = self.config(must_sign=["must.example"])
        status, out, _ = self.explain(message=MESSAGE.replace(b"alice@example.com", b"a@must.example"))
        self.assertEqual(status, 3, out)
        self.assertIn("verdict: refused at end of data: 451 4.7.0", out)

        # SPF: spf.example allows only 192.0.2.0/24; 127.0.0.1 fails, enforce refuses.
        status, out, _ = self.explain("--mail-from", "a@spf.example")
        self.assertEqual(status, 3, out)
        self.assertIn("spf: fail", out)
        self.assertIn("record: v=spf1 ip4:192.0.2.0/24 -all", out)
        self.assertIn("-all", out.split("record:", 1)[1])  # the trace names the deciding term
        self.assertIn("verdict: refused at MAIL FROM: 550 5.7.23", out)
        status, out, _ = self.explain("--mail-from", "a@spf.example", "--ip", "192.0.2.7")
        self.assertEqual(status, 0, out)
        self.assertIn("spf: pass", out)

    def test_usage_errors(self):
        status, _, err = self.explain("--ip", "not-an-ip")
        self.assertEqual(status, 2)
        self.assertIn("--ip", err)
        r = run_cli("explain", "-c", os.path.join(self.dir, "missing.toml"), input=MESSAGE)
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.toml", r.stderr.decode())


if __name__ == "__main__":
    test_main.main()
