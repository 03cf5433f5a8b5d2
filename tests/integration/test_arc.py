"""ARC sealing (RFC 8617) end to end, checked by dkimpy's ARC verifier.

stampd relays mail through a rule with arc_seal; the chain a message brings
is made by dkimpy's own sealer (arc_sign), keys are served by a real unbound
on loopback, and every message stampd seals is validated with
dkim.arc_verify against the same records (and its DKIM signature by the
three DKIM verifiers):

- no chain: stampd adds i=1 with cv=none; the AAR carries arc=none and the
  Authentication-Results bearing our authserv-id, not another's;
- a valid chain of one set: i=2 with cv=pass, and the whole chain passes;
- a chain broken after sealing (Subject changed): i=2 with cv=fail, and the
  log says which signature failed;
- a chain whose last seal says cv=fail: no set is added (§5.1.1);
- a message with 40 ARC sets: failed at once on the cap, no key looked up;
- the chain's key cannot be fetched now (the resolver fails): the
  fail-closed rule answers 451 and nothing is relayed.
"""
import os
import re
import shutil
import tempfile
import time
import unittest

import dkim_verifiers as V
from prometheus_tools import scrape
from smtp_client import make_message
from stampd_harness import StampdTestCase, make_key, run_cli
from unbound_server import UnboundServer, find_unbound, zone_line_txt
import test_main

OURS = "relay.example"
THEIRS = "list.example"
AUTHSERV = "mx.relay.example"


def config(resolver, on_error="fail-closed"):
    return """
[server]
listen = ["127.0.0.1:0"]
[upstream]
servers = ["maildir:mail"]
health_check_interval = "0s"
[metrics]
listen = "127.0.0.1:0"
[dns]
resolvers = ["%s"]
timeout = "2s"
[dkim]
dns_check_interval = "0s"
[[dkim.key]]
name = "seal"
domain = "%s"
selector = "arc1"
private_key = "keys/arc1.private"
[[dkim.sign]]
from = "*"
keys = ["seal"]
arc_seal = "seal"
on_error = "%s"
[arc]
authserv_id = "%s"
max_sets = 10
""" % (resolver, OURS, on_error, AUTHSERV)


def arc_verify(message, records):
    import dkim

    def dnsfunc(name, timeout=5):
        key = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
        txt = records.get(key)
        return txt.encode() if txt is not None else None

    cv, results, reason = dkim.arc_verify(message, dnsfunc=dnsfunc)
    return cv.decode() if isinstance(cv, bytes) else cv, results, reason


def assert_terminated_by_our_seal(test, message, records, instance):
    """dkimpy's verdict on a chain our cv=fail seal ends: it reports the chain
    terminated (cv None), having validated our ARC-Message-Signature. (It
    checks a cv=fail seal over the whole chain, where RFC 8617 §5.1.2 and the
    ValiMail suite's reference sealers cover only the new set, so it is not
    asked to validate that seal.)"""
    cv, results, reason = arc_verify(message, records)
    test.assertIsNone(cv, (reason, results))
    test.assertIn("reported failure, the chain is terminated", reason)
    test.assertEqual((results[0]["instance"], results[0]["cv"], results[0]["ams-valid"],
                      results[0]["ams-domain"]), (instance, b"fail", True, OURS.encode()), results[0])


def arc_fields(message):
    head = message.split(b"\r\n\r\n", 1)[0]
    out = []
    for field in V.header_fields(head):
        name, value = field.split(b":", 1)
        if name.lower().startswith(b"arc-"):
            out.append((name.decode(), value))
    return out


class ArcSealingTest(StampdTestCase):
    def setUp(self):
        if find_unbound() is None:
            self.skipTest("unbound is not installed (Debian package unbound)")
        for module, package in (("dkim", "python3-dkim"), ("authres", "python3-authres")):
            try:
                __import__(module)
            except ImportError:
                self.skipTest("%s is not installed (dkimpy's ARC sealer needs it)" % package)
        self.workdir = tempfile.mkdtemp(prefix="stampd-arc-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        keys = os.path.join(self.workdir, "keys")
        _, ours = make_key(keys, OURS, "arc1", "rsa-2048")
        self.their_key, theirs = make_key(os.path.join(self.workdir, "their"), THEIRS, "s1", "rsa-2048")
        rows = []
        self.records = {}
        for path in (ours, theirs):
            with open(path) as f:
                name, value = zone_line_txt(f.read())
            rows.append((name, "TXT", value))
            self.records[name.rstrip(".").lower()] = value
        self.rows = rows
        self.dns = UnboundServer(zones=[OURS, THEIRS], records=rows, ttl=1)
        self.dns.start()
        self.addCleanup(self.dns.stop)

    def start(self, on_error="fail-closed"):
        return self.start_stampd(config_text=config(self.dns.resolver, on_error), workdir=self.workdir)

    def send(self, stampd, message, expect=250):
        c = self.connect(stampd)
        c.ehlo()
        r = c.send_mail("bounce@list.example", ["you@example.net"], message)
        self.assertEqual(r.code, expect, r)
        c.quit()
        if expect != 250:
            return None
        new = os.path.join(stampd.workdir, "mail", "new")
        newest = sorted(os.listdir(new), key=lambda n: os.stat(os.path.join(new, n)).st_mtime_ns)[-1]
        with open(os.path.join(new, newest), "rb") as f:
            return f.read()

    def their_seal(self, message, results="arc=none"):
        """The list's own ARC set on message, made by dkimpy."""
        import dkim
        message = b"Authentication-Results: %s; %s\r\n" % (THEIRS.encode(), results.encode()) + message
        with open(self.their_key, "rb") as f:
            key = f.read()
        fields = dkim.arc_sign(message, b"s1", THEIRS.encode(), key, THEIRS.encode(),
                               include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        self.assertEqual(len(fields), 3, "dkimpy made no ARC set")
        return b"".join(fields) + message

    def assert_dkim_passes(self, message):
        for verifier in V.VERIFIERS:
            ok, why = V.available(verifier)
            if not ok:
                self.fail(why)
            results = V.verify(verifier, message, self.records)
            self.assertEqual([r.status for r in results if r.domain == OURS], ["pass"], (verifier, results))

    def test_first_set_on_a_message_without_a_chain(self):
        stampd = self.start()
        message = (b"Authentication-Results: " + AUTHSERV.encode() +
                   b"; spf=pass smtp.mailfrom=bounce@list.example\r\n"
                   b"Authentication-Results: elsewhere.example; dkim=pass header.d=forged.example\r\n" +
                   make_message(sender="alice@example.com"))
        out = self.send(stampd, message)
        fields = arc_fields(out)
        self.assertEqual([n.lower() for n, _ in fields],
                         ["arc-seal", "arc-message-signature", "arc-authentication-results"])
        seal = dict(fields)
        self.assertRegex(seal["ARC-Seal"], rb"\bcv=none;")
        self.assertRegex(seal["ARC-Seal"], rb"\bi=1;")
        self.assertRegex(seal["ARC-Seal"], rb"\bd=relay\.example;")
        aar = b" ".join(seal["ARC-Authentication-Results"].split())
        self.assertTrue(aar.startswith(b"i=1; mx.relay.example; arc=none; spf=pass smtp.mailfrom="), aar)
        self.assertNotIn(b"forged.example", aar)
        # The ARC-Message-Signature covers our DKIM-Signature.
        self.assertRegex(b" ".join(seal["ARC-Message-Signature"].split()), rb"h=[^;]*dkim-signature")
        cv, results, reason = arc_verify(out, self.records)
        self.assertEqual(cv, "pass", (reason, results))
        self.assert_dkim_passes(out)
        event = stampd.wait_for_event("message")[0]
        self.assertEqual((event.get("arc"), event.get("arc_set")), ("none", "i=1"), event)

    def test_valid_chain_gets_cv_pass(self):
        stampd = self.start()
        incoming = self.their_seal(make_message(sender="alice@example.com", subject="list post"))
        cv, _, reason = arc_verify(incoming, self.records)
        self.assertEqual(cv, "pass", reason)  # the control: dkimpy's own set is valid
        out = self.send(stampd, incoming)
        instances = re.findall(rb"^ARC-Seal:.*?\bi=(\d+);", out, re.M | re.S)
        self.assertEqual(sorted(instances), [b"1", b"2"])
        self.assertRegex(out, rb"(?sm)^ARC-Seal: .*?cv=pass;.*?i=2;")
        cv, results, reason = arc_verify(out, self.records)
        self.assertEqual(cv, "pass", (reason, results))
        self.assertEqual(len(results), 2, results)
        self.assert_dkim_passes(out)
        event = stampd.wait_for_event("message")[0]
        self.assertEqual((event.get("arc"), event.get("arc_set")), ("pass", "i=2"), event)
        self.assertEqual(scrape(stampd).value("stampd_arc_sets_total", cv="pass"), 1)
        # explain says the same, looking the chain's keys up itself.
        r = run_cli("explain", "-c", stampd.config_path, "--ip", "127.0.0.1", "--helo", "h.list.example",
                    "--rcpt", "you@example.net", input=incoming, cwd=stampd.workdir)
        explained = r.stdout.decode()
        self.assertEqual(r.returncode, 0, explained + r.stderr.decode())
        self.assertIn("; arc_seal seal\n", explained)
        self.assertIn("arc: incoming chain pass; set added: i=2\n", explained)
        self.assertRegex(explained, r"(?m)^ARC-Seal: a=rsa-sha256;")

    def test_broken_chain_gets_cv_fail_and_then_no_more_sets(self):
        stampd = self.start()
        incoming = self.their_seal(make_message(sender="alice@example.com", subject="list post"))
        broken = incoming.replace(b"Subject: list post", b"Subject: list post, edited")
        self.assertNotEqual(broken, incoming)
        out = self.send(stampd, broken)
        self.assertRegex(out, rb"(?sm)^ARC-Seal: .*?cv=fail;.*?i=2;")
        assert_terminated_by_our_seal(self, out, self.records, 2)
        self.assert_dkim_passes(out)
        event = stampd.wait_for_event("message")[0]
        self.assertEqual((event.get("arc"), event.get("arc_set")), ("fail", "i=2"), event)
        self.assertIn("ARC-Message-Signature i=1", event.get("arc_chain", ""))
        self.assertIn("signature mismatch", event.get("arc_chain", ""))

        # That message again: its newest seal says cv=fail, so no set is added.
        again = self.send(stampd, out)
        self.assertEqual(len(re.findall(rb"^ARC-Seal:", again, re.M)), 2)
        event = stampd.wait_for_event("message", count=2)[1]
        self.assertEqual((event.get("arc"), event.get("arc_set")), ("fail", "none"), event)

    def test_too_many_sets_fail_without_a_lookup(self):
        stampd = self.start()
        incoming = self.their_seal(make_message(sender="alice@example.com", subject="long chain"))
        head, body = incoming.split(b"\r\n\r\n", 1)
        sets = b"".join(b"ARC-Seal: i=%d; a=rsa-sha256; cv=pass; d=%s; s=s%d; b=AAAA\r\n"
                        b"ARC-Message-Signature: i=%d; a=rsa-sha256; d=%s; s=s%d; h=from; bh=AAAA; b=AAAA\r\n"
                        b"ARC-Authentication-Results: i=%d; %s; arc=pass\r\n"
                        % (i, THEIRS.encode(), i, i, THEIRS.encode(), i, i, THEIRS.encode())
                        for i in range(40, 1, -1))
        # stampd looks up its own key once at start (the key watch); that
        # answer may land after start() returned: wait for it, so that it
        # is not taken for a lookup of the chain's keys.
        deadline = time.monotonic() + 15
        while not scrape(stampd).series("stampd_dkim_key_dns_state", selector="arc1"):
            self.assertLess(time.monotonic(), deadline, "stampd never checked its own key")
            time.sleep(0.05)
        queries_before = scrape(stampd).value("stampd_dns_queries_total", type="TXT", status="ok")
        out = self.send(stampd, sets + head + b"\r\n\r\n" + body)
        event = stampd.wait_for_event("message")[0]
        self.assertEqual(event.get("arc"), "fail", event)
        self.assertIn("more than 30 ARC header fields", event.get("arc_chain", ""))
        # The highest instance read was 40: the new set is 41, cv=fail.
        self.assertEqual(event.get("arc_set"), "i=41", event)
        # No key of the chain was looked up (the DKIM check of our own key is off).
        self.assertEqual(scrape(stampd).value("stampd_dns_queries_total", type="TXT", status="ok"),
                         queries_before)
        self.assertEqual(scrape(stampd).value("stampd_arc_sets_total", cv="fail"), 1)
        assert_terminated_by_our_seal(self, out, self.records, 41)

    def test_key_lookup_failure_follows_on_error(self):
        incoming = self.their_seal(make_message(sender="alice@example.com", subject="dns down"))
        # The list's zone now fails at the resolver.
        self.dns.set_records(records=[self.rows[0]], zones=[OURS], refuse_zones=[THEIRS])
        stampd = self.start()
        self.send(stampd, incoming, expect=451)
        self.assertEqual(stampd.messages(outcome="relayed"), [], "a message was relayed")
        stampd.stop()
        stampd = self.start(on_error="send-unsigned")
        out = self.send(stampd, incoming)
        self.assertEqual(len(re.findall(rb"^ARC-Seal:", out, re.M)), 1)  # only the list's
        event = stampd.wait_for_event("message")[0]
        self.assertEqual(event.get("arc_set"), "none", event)
        self.assertIn("could not be checked", event.get("arc_reason", ""))


if __name__ == "__main__":
    test_main.main()
