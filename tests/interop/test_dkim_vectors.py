"""Proves the independent-verifier harness (tests/support/dkim_verifiers.py)
on the published vectors: the RFC 8463 signed message passes every verifier
(Mail::DKIM in Debian 12 reports ed25519 as unsupported, which is allowed),
RFC 6376 Appendix A (errata applied) passes, and tampered copies fail each.
A verifier that is not installed is skipped, not failed."""
import os
import unittest

import dkim_verifiers as V
import test_main

SOURCE = os.environ.get("STAMPD_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(SOURCE, "tests", "data", "dkim")


def read(*parts):
    with open(os.path.join(DATA, *parts), "rb") as f:
        return f.read()


def record(*parts):
    return read(*parts).decode().strip()


RFC8463 = read("rfc8463", "message-signed.eml")
RFC8463_KEYS = {
    "brisbane._domainkey.football.example.com": record("rfc8463", "brisbane._domainkey.football.example.com.txt"),
    "test._domainkey.football.example.com": record("rfc8463", "test._domainkey.football.example.com.txt"),
}
RFC6376 = read("rfc6376", "appendix-a-signed-errata-applied.eml")
RFC6376_KEYS = {"brisbane._domainkey.example.com": record("rfc6376", "brisbane._domainkey.example.com.txt")}

TAMPERINGS = {
    "body": (b"We lost the game.", b"We won the game."),
    "subject": (b"Subject: Is dinner ready?", b"Subject: Is lunch ready?"),
    "added From": (b"From: Joe", b"From: Evil <evil@attacker.example>\r\nFrom: Joe"),
}


class VerifierHarness(unittest.TestCase):
    def check_passes(self, verifier, message, keys, expected_count):
        results = V.verify(verifier, message, keys)
        self.assertEqual(len(results), expected_count, results)
        for r in results:
            if r.status == "unsupported":
                self.assertEqual((verifier, r.algorithm), ("mail-dkim", "ed25519-sha256"), r)
                continue
            self.assertEqual(r.status, "pass", r)
        return results

    def check_fails(self, verifier, message, keys, expected_count):
        results = V.verify(verifier, message, keys)
        self.assertEqual(len(results), expected_count, results)
        for r in results:
            self.assertIn(r.status, ("fail", "unsupported"), r)
            if r.status == "unsupported":
                self.assertEqual(r.algorithm, "ed25519-sha256", r)
        self.assertTrue(any(r.status == "fail" for r in results), results)

    def run_for(self, verifier):
        ok, why = V.available(verifier)
        if not ok:
            self.skipTest(why)
        results = self.check_passes(verifier, RFC8463, RFC8463_KEYS, 2)
        self.assertEqual(sorted(r.algorithm for r in results), ["ed25519-sha256", "rsa-sha256"])
        self.check_passes(verifier, RFC6376, RFC6376_KEYS, 1)
        for name, (old, new) in TAMPERINGS.items():
            with self.subTest(tampered=name):
                self.assertIn(old, RFC8463)
                self.check_fails(verifier, RFC8463.replace(old, new, 1), RFC8463_KEYS, 2)
        with self.subTest(tampered="RFC 6376 as printed (double space)"):
            self.check_fails(verifier, read("rfc6376", "appendix-a-signed-with-double-space.eml"), RFC6376_KEYS, 1)
        with self.subTest(missing="key record"):
            for r in V.verify(verifier, RFC8463, {}):
                self.assertNotEqual(r.status, "pass", r)

    def test_dkimpy(self):
        self.run_for("dkimpy")

    def test_mail_dkim(self):
        self.run_for("mail-dkim")

    def test_opendkim(self):
        self.run_for("opendkim")

    def test_harness_helpers(self):
        sigs = V.signatures(RFC8463)
        self.assertEqual([s["s"] for s in sigs], ["brisbane", "test"])
        recs = V.records_for(['sel._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; " "p=AB\\"C" )'])
        self.assertEqual(recs, {"sel._domainkey.example.com": 'v=DKIM1; k=rsa; p=AB"C'})


if __name__ == "__main__":
    test_main.main()
