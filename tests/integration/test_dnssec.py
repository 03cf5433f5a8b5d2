"""DNSSEC validation, the secure and the bogus path, against a real signed zone.

Two zones are signed with ldnsutils (ECDSA P-256, NSEC3) and served by a
real `unbound -d` on loopback as auth-zones, RRSIGs included:

* secure.example: SPF records and a DKIM key record, signed as they are;
* forged.example: signed, then its SPF TXT record's data replaced (the
  RRSIG left over the old data), which is what a forged answer looks like.

stampd gets both zones' DS records as [dns] trust_anchor_file. What is shown:

* `stampd spf` marks every answer from secure.example "(DNSSEC secure)" in
  its trace (and does not without the trust anchor: the flag comes from the
  validator, not from the zone's name); a secure NXDOMAIN is marked too;
* the forged record is never used: `stampd spf` gives temperror with
  "DNSSEC validation failed", although the forged record would pass;
* `stampd dns-check` says the published key matches "(DNSSEC secure)";
* the running proxy (ip = "client", enforce) relays mail from
  secure.example with spf=pass, and answers 451 4.7.24 at MAIL FROM for
  forged.example;
* key rotation trusts only validated answers: in rotate.example (signed)
  the replacing key's record is forged to publish its public half; with the
  trust anchor the answer is bogus, the gate stays shut and the old key
  signs; without it the forged record opens the gate (so the test can fail).
"""
import os
import shutil
import tempfile
import unittest

import smtp_client
from dnssec_zone import SignedZone, find_ldns_tools
from stampd_harness import StampdTestCase, make_key, render_toml, run_cli
from unbound_server import UnboundServer, find_unbound, zone_line_txt
import test_main

_dns = None
_dir = None
_anchor = None
_key_dir = None


def setUpModule():
    global _dns, _dir, _anchor, _key_dir
    if find_unbound() is None:
        raise unittest.SkipTest("unbound is not installed (Debian package unbound)")
    if find_ldns_tools() is None:
        raise unittest.SkipTest("ldns-signzone is not installed (Debian package ldnsutils)")
    _dir = tempfile.mkdtemp(prefix="stampd-dnssec-")
    try:
        _key_dir = os.path.join(_dir, "dkim")
        _, record = make_key(_key_dir, "secure.example", "s1", "ed25519")
        with open(record) as f:
            key_owner, key_value = zone_line_txt(f.read())
        secure = SignedZone("secure.example", [
            ("secure.example", "TXT", "v=spf1 ip4:127.0.0.1 a:mail.secure.example -all"),
            ("mail.secure.example", "A", "127.0.0.8"),
            (key_owner, "TXT", key_value),
        ]).sign(_dir)
        forged = SignedZone(
            "forged.example",
            [("forged.example", "TXT", "v=spf1 ip4:192.0.2.1 -all")],
            tamper=("forged.example", "TXT", "v=spf1 ip4:192.0.2.1 -all",
                    "v=spf1 ip4:127.0.0.1 -all")).sign(_dir)
        rotate = _rotation_zone().sign(_dir)
        _anchor = os.path.join(_dir, "anchors.ds")
        with open(_anchor, "w") as f:
            f.write(secure.ds + "\n" + forged.ds + "\n" + rotate.ds + "\n")
        _dns = UnboundServer(auth_zones=[("secure.example", secure.signed_path),
                                         ("forged.example", forged.signed_path),
                                         ("rotate.example", rotate.signed_path)])
        _dns.start()
    except BaseException:
        tearDownModule()  # unittest does not call it when setUpModule fails
        raise


def _rotation_zone():
    """rotate.example: r1's record as it is; r2's record signed as r1's key,
    then swapped for r2's own (what a forged answer looks like)."""
    records = {}
    for selector in ("r1", "r2"):
        _, record = make_key(os.path.join(_dir, "rotate"), "rotate.example", selector, "ed25519")
        with open(record) as f:
            records[selector] = zone_line_txt(f.read())
    r1_owner, r1_value = records["r1"]
    r2_owner, r2_value = records["r2"]
    return SignedZone("rotate.example", [(r1_owner, "TXT", r1_value), (r2_owner, "TXT", r1_value)],
                      tamper=(r2_owner, "TXT", r1_value, r2_value))


def tearDownModule():
    if _dns is not None:
        _dns.stop()
    if _dir:
        shutil.rmtree(_dir, ignore_errors=True)


class CliTest(unittest.TestCase):
    def config(self, anchor=True, dkim=False):
        d = tempfile.mkdtemp(prefix="stampd-dnssec-cli-")
        self.addCleanup(shutil.rmtree, d, True)
        dns = {"resolvers": [_dns.resolver], "timeout": "5s"}
        if anchor:
            dns["trust_anchor_file"] = _anchor
        sections = {"server": {"listen": ["127.0.0.1:0"]}, "dns": dns}
        if dkim:
            sections["dkim"] = {
                "key": [{"name": "s1", "domain": "secure.example", "selector": "s1",
                         "private_key": os.path.join(_key_dir, "s1.private")}],
                "sign": [{"from": "*@secure.example", "keys": ["s1"]}]}
        path = os.path.join(d, "stampd.toml")
        with open(path, "w") as f:
            f.write(render_toml(sections))
        return path

    def spf(self, config, ip, sender):
        r = run_cli("spf", "-c", config, "--ip", ip, "--mail-from", sender)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_answers_from_the_signed_zone_are_secure(self):
        rc, out, err = self.spf(self.config(), "127.0.0.8", "a@secure.example")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("result: pass", out)
        queries = [line for line in out.splitlines() if line.strip().startswith("query ")]
        self.assertEqual(len(queries), 2, out)  # the TXT record and a:mail.secure.example
        for q in queries:
            self.assertIn("(DNSSEC secure)", q)
        self.assertIn("query A mail.secure.example -> ok (DNSSEC secure): 127.0.0.8", out)

    def test_a_proven_nxdomain_is_secure_too(self):
        rc, out, err = self.spf(self.config(), "127.0.0.9", "a@nothing.secure.example")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("result: none", out)
        self.assertIn("query TXT nothing.secure.example -> nxdomain (DNSSEC secure)", out)

    def test_without_a_trust_anchor_nothing_is_marked_secure(self):
        rc, out, err = self.spf(self.config(anchor=False), "127.0.0.8", "a@secure.example")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("result: pass", out)
        self.assertNotIn("DNSSEC", out)

    def test_a_forged_record_is_temperror_not_its_forged_verdict(self):
        # Without validation the forged record is believed: 127.0.0.1 passes.
        rc, out, _ = self.spf(self.config(anchor=False), "127.0.0.1", "a@forged.example")
        self.assertIn("result: pass", out)
        rc, out, err = self.spf(self.config(), "127.0.0.1", "a@forged.example")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("result: temperror", out)
        self.assertIn("DNSSEC validation failed", out)

    def test_dns_check_says_the_key_record_is_secure(self):
        r = run_cli("dns-check", "-c", self.config(dkim=True))
        out = r.stdout.decode() + r.stderr.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("s1._domainkey.secure.example): ok: the published key matches "
                      "(DNSSEC secure)", out)
        r = run_cli("dns-check", "-c", self.config(anchor=False, dkim=True))
        out = r.stdout.decode() + r.stderr.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertNotIn("DNSSEC", out)


class ProxyTest(StampdTestCase):
    def setUp(self):
        self.up = self.start_upstream()
        self.stampd = self.start_stampd([self.up.address], sections={
            "spf": {"mode": "enforce", "ip": "client"},
            "dns": {"resolvers": [_dns.resolver], "timeout": "5s",
                    "trust_anchor_file": _anchor}})

    def session(self):
        c = smtp_client.SmtpClient(self.stampd.host, self.stampd.port,
                                   source_address=("127.0.0.1", 0))
        self.addCleanup(c.close)
        self.assertEqual(c.ehlo("client.example").code, 250)
        return c

    def test_secure_pass_is_relayed(self):
        c = self.session()
        self.assertEqual(c.mail("a@secure.example").code, 250)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        _, final = c.data(smtp_client.make_message(sender="a@secure.example"))
        self.assertEqual(final.code, 250, final)
        c.quit()
        event = self.stampd.wait_for_event("message")[-1]
        self.assertEqual(event.get("spf"), "pass", event)

    def test_forged_record_is_a_tempfail_at_mail_from(self):
        c = self.session()
        reply = c.mail("a@forged.example")
        self.assertEqual(reply.code, 451, reply)
        self.assertIn("4.7.24", str(reply))
        c.quit()
        self.assertEqual(self.up.messages, [])


class RotationGateTest(StampdTestCase):
    def signing_selector(self, anchor):
        up = self.start_upstream()
        dns = {"resolvers": [_dns.resolver], "timeout": "5s"}
        if anchor:
            dns["trust_anchor_file"] = _anchor
        keys = os.path.join(_dir, "rotate")
        stampd = self.start_stampd([up.address], sections={
            "dns": dns,
            "dkim": {"key": [{"name": "old", "domain": "rotate.example", "selector": "r1",
                              "private_key": os.path.join(keys, "r1.private")},
                             {"name": "new", "domain": "rotate.example", "selector": "r2",
                              "private_key": os.path.join(keys, "r2.private"), "replaces": "old"}],
                     "sign": [{"from": "*@rotate.example", "keys": ["old"]}]}})
        # The first check of r2 is done (bogus: a failed lookup; else a match).
        if anchor:
            event = stampd.wait_for_event("dkim-key-dns", selector="r2", timeout=20)[0]
            self.assertEqual(event["state"], "unknown", event)
            self.assertIn("DNSSEC validation failed", event["detail"])
        else:
            stampd.wait_for_event("dkim-key-gate", selector="r2", signs="yes", timeout=20)
        c = self.connect(stampd)
        c.ehlo()
        r = c.send_mail("a@rotate.example", ["rcpt@example.net"],
                        smtp_client.make_message(sender="a@rotate.example"))
        self.assertEqual(r.code, 250, r)
        c.quit()
        return stampd.wait_for_event("message")[-1]["dkim_keys"]

    def test_a_forged_record_does_not_open_the_gate(self):
        self.assertEqual(self.signing_selector(anchor=True), "rotate.example:r1")

    def test_without_validation_the_forged_record_would(self):
        self.assertEqual(self.signing_selector(anchor=False), "rotate.example:r2")


if __name__ == "__main__":
    test_main.main()
