"""DNS that times out or answers SERVFAIL, for the running proxy's SPF and for
`stampd dns-check`, and the same process once the DNS answers again.

SERVFAIL comes from real servers, as in the field when a zone's
authoritative servers refuse or fail: one `unbound -d` (the zone's server)
refuses broken.example, a second (the resolver stampd asks) forwards the
zone to it and answers SERVFAIL. The zone comes back when the first one is
reloaded to serve it. A timeout is a loopback socket that never answers
(SilentDns); it comes back as an unbound started on the same port.
What is shown (test_spf_dns.py has the timeout's 451 in each SPF mode):

* SPF in enforce mode with SERVFAIL: temperror, MAIL FROM gets 451 4.7.24 at
  once (not after the [dns] timeout), the event=mail-refused line says
  temperror and tempfail, stampd_dns_queries_total{status="servfail"} and
  stampd_spf_results_total{result="temperror",action="tempfail"} count it;
  in tag mode the message is relayed with Received-SPF: temperror;
* recovery: the same stampd process (same pid, no signal) passes the next
  message once the resolver answers again, after SERVFAIL and after
  timeouts (measured: how long after the DNS came back);
* dns-check with the DNS timing out and with SERVFAIL: every check it could
  not make says UNKNOWN and names the lookup and why (never "no record",
  never a record to publish), and the exit status is 3 (1 is reserved for a
  problem found); once the DNS answers, exit 0.
"""
import os
import re
import shutil
import tempfile
import time
import unittest

import prometheus_tools
import smtp_client
from stampd_harness import StampdTestCase, make_key, render_toml, run_cli
from unbound_server import SilentDns, UnboundServer, find_unbound, udp_ask, zone_line_txt
import test_main

ZONE = "broken.example"
SPF_RECORD = ("broken.example", "TXT", "v=spf1 ip4:127.0.0.2 -all")
DMARC_RECORD = ("_dmarc.broken.example", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@broken.example")


def servfail_pair(test):
    """servfail_pair starts the zone's server (refusing it) and the resolver
    that forwards the zone there; both are stopped when test ends. Returns
    (zone server, resolver)."""
    auth = UnboundServer(refuse_zones=[ZONE])
    auth.start()
    test.addCleanup(auth.stop)
    resolver = UnboundServer(forward_zones=[(ZONE, auth.resolver)])
    resolver.start()
    test.addCleanup(resolver.stop)
    return auth, resolver


def wait_for_answer(server, name, timeout=30.0):
    """wait_for_answer asks server for name's TXT until it answers NOERROR
    with data; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        rcode, answers = udp_ask(server.port, name, qtype=16, timeout=1.0)
        if rcode == 0 and answers > 0:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError("%s did not answer %s within %.0fs" % (server.resolver, name, timeout))


class SpfDnsFailureCase(StampdTestCase):
    """SpfDnsFailureCase runs stampd with [spf] against a resolver a test
    makes fail, and sends from 127.0.0.2 (which the record passes)."""

    spf = {"mode": "enforce"}
    dns_timeout = "2s"

    def start_proxy(self, resolver):
        self.up = self.start_upstream()
        sections = {"spf": dict(self.spf), "metrics": {"listen": "127.0.0.1:0"},
                    "dns": {"resolvers": [resolver], "timeout": self.dns_timeout}}
        self.stampd = self.start_stampd([self.up.address], sections=sections)

    def mail(self, sender="a@broken.example"):
        """mail opens a session from 127.0.0.2 and sends MAIL FROM; returns
        (reply, seconds it took, client)."""
        c = smtp_client.SmtpClient(self.stampd.host, self.stampd.port, source_address=("127.0.0.2", 0))
        self.addCleanup(c.close)
        self.assertEqual(c.ehlo("client.test").code, 250)
        start = time.monotonic()
        r = c.mail(sender)
        return r, time.monotonic() - start, c

    def assertTempfailed(self, reply, status):
        self.assertEqual((reply.code, reply.enhanced), (451, "4.7.24"), reply)
        ev = self.stampd.wait_for_event("mail-refused", stage="spf")[-1]
        self.assertEqual((ev.get("spf"), ev.get("spf_action")), ("temperror", "tempfail"), ev)
        page = prometheus_tools.scrape(self.stampd)
        self.assertEqual(page.value("stampd_spf_results_total", result="temperror", action="tempfail"), 1)
        self.assertGreaterEqual(page.value("stampd_dns_queries_total", status=status), 1,
                                page.series("stampd_dns_queries_total"))
        self.assertEqual(self.up.transactions, [])
        return ev

    def assertPasses(self, what):
        """assertPasses relays one message from 127.0.0.2: SPF pass, 250."""
        pid = self.stampd.pid
        r, elapsed, c = self.mail()
        self.assertEqual(r.code, 250, "%s: %r" % (what, r))
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        _, final = c.data(smtp_client.make_message(sender="a@broken.example"))
        self.assertEqual(final.code, 250, final)
        c.quit()
        self.up.wait_for_messages(1)
        ev = self.stampd.wait_for_event("message", outcome="relayed")[-1]
        self.assertEqual(ev.get("spf"), "pass", ev)
        self.assertEqual(self.stampd.pid, pid)
        self.assertTrue(self.stampd.alive())
        return elapsed


class ServfailEnforceTest(SpfDnsFailureCase):
    def test_servfail_is_451_at_once_then_the_same_process_passes(self):
        auth, resolver = servfail_pair(self)
        self.start_proxy(resolver.resolver)
        r, elapsed, c = self.mail()
        ev = self.assertTempfailed(r, "servfail")
        print("\nSPF with SERVFAIL (enforce): %d %s after %.3fs; log spf_detail=%r"
              % (r.code, r.enhanced, elapsed, ev.get("spf_detail")))
        self.assertLess(elapsed, 1.0, "SERVFAIL is an answer: no wait for the [dns] timeout")
        self.assertRegex(ev.get("spf_detail", ""), r"(?i)servfail|temperror")
        self.assertEqual(c.cmd("RSET").code, 250)  # the session goes on

        # The zone's server serves it again; the resolver answers once its
        # own negative cache of the SERVFAIL runs out.
        back = time.monotonic()
        auth.set_records([SPF_RECORD], zones=[ZONE], refuse_zones=[])
        waited = wait_for_answer(resolver, ZONE)
        passed_in = self.assertPasses("after the DNS came back")
        print("recovery after SERVFAIL: the resolver answered %.1fs after the zone came back; "
              "the same stampd passed the next message in %.3fs" % (waited, passed_in))
        self.assertLess(time.monotonic() - back, 30)


class ServfailTagTest(SpfDnsFailureCase):
    spf = {"mode": "tag"}

    def test_servfail_in_tag_mode_is_relayed_tagged_temperror(self):
        _, resolver = servfail_pair(self)
        self.start_proxy(resolver.resolver)
        c = smtp_client.SmtpClient(self.stampd.host, self.stampd.port, source_address=("127.0.0.2", 0))
        self.addCleanup(c.close)
        c.ehlo("client.test")
        r = c.send_mail("a@broken.example", ["rcpt@example.net"],
                        smtp_client.make_message(sender="a@broken.example"))
        self.assertEqual(r.code, 250, r)
        copy = self.up.wait_for_messages(1)[-1]
        self.assertRegex(copy.content.split(b"\r\n")[0], rb"^Received-SPF: temperror ")
        self.assertEqual(self.stampd.wait_for_event("message")[-1].get("spf"), "temperror")


class TimeoutRecoveryTest(SpfDnsFailureCase):
    dns_timeout = "1s"

    def test_after_timeouts_the_same_process_passes_once_the_server_answers(self):
        silent = SilentDns().start()
        self.addCleanup(silent.stop)
        self.start_proxy(silent.resolver)
        for i in range(3):  # a few timeouts in a row, as while a resolver is down
            r, elapsed, c = self.mail()
            self.assertEqual((r.code, r.enhanced), (451, "4.7.24"), r)
            c.quit()
        page = prometheus_tools.scrape(self.stampd)
        self.assertGreaterEqual(page.value("stampd_dns_queries_total", status="timeout"), 3)
        port = silent.port
        silent.stop()
        dns = UnboundServer(zones=[ZONE], records=[SPF_RECORD], port=port)
        dns.start()
        self.addCleanup(dns.stop)
        back = time.monotonic()
        passed_in = self.assertPasses("after the resolver came back")
        print("\nrecovery after 3 timeouts: the same stampd passed the first message %.3fs "
              "after the resolver came back on the same port (MAIL FROM took %.3fs)"
              % (time.monotonic() - back, passed_in))


# --- dns-check -----------------------------------------------------------------------

class DnsCheckDnsFailureTest(unittest.TestCase):
    """dns-check for a key and an egress address in broken.example, with the
    DNS failing, then answering."""

    @classmethod
    def setUpClass(cls):
        if find_unbound() is None:
            raise unittest.SkipTest("unbound is not installed (Debian package unbound)")
        cls.dir = tempfile.mkdtemp(prefix="stampd-dns-failures-")
        private, record = make_key(cls.dir, ZONE, "s1", "ed25519")
        with open(record) as f:
            cls.key_record = zone_line_txt(f.read())
        cls.private = private

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def records(self):
        return [SPF_RECORD, DMARC_RECORD, (self.key_record[0], "TXT", self.key_record[1])]

    def dns_check(self, resolver, timeout="5s"):
        sections = {"server": {"listen": ["127.0.0.1:0"]},
                    "dkim": {"key": [{"name": "k", "domain": ZONE, "selector": "s1",
                                      "private_key": self.private}],
                             "sign": [{"from": "*@" + ZONE, "keys": ["k"]}]},
                    "spf": {"egress_ips": ["127.0.0.2"]},
                    "dns": {"resolvers": [resolver], "timeout": timeout}}
        path = os.path.join(self.dir, "stampd-%s.toml" % self.id().split(".")[-1])
        with open(path, "w") as f:
            f.write(render_toml(sections))
        start = time.monotonic()
        r = run_cli("dns-check", "-c", path, timeout=120)
        elapsed = time.monotonic() - start
        out = r.stdout.decode()
        print("\n--- dns-check, %s (exit %d, %.1fs):\n%s%s" % (self.id().split(".")[-1], r.returncode,
                                                             elapsed, out, r.stderr.decode()))
        return r.returncode, out

    def assertUnknownNotMissing(self, out, why):
        lines = [l for l in out.splitlines() if re.match(r"^(DKIM|SPF|DMARC|ADSP) ", l)]
        self.assertTrue(lines, out)
        by_kind = {l.split(" ")[0]: l for l in lines}
        for kind in ("DKIM", "SPF", "DMARC"):
            self.assertIn(kind, by_kind, out)
            self.assertIn("UNKNOWN: ", by_kind[kind], out)
            self.assertRegex(by_kind[kind], why, out)
            self.assertIn("not a missing record", by_kind[kind], out)
        self.assertIn("s1._domainkey.broken.example", by_kind["DKIM"])
        for l in lines:
            self.assertNotRegex(l, r"\bFAIL:|no TXT record|no DMARC record|publish", out)
        self.assertNotIn("    publish:", out)
        self.assertNotIn("IN TXT", out)  # no record suggested for what could not be read
        self.assertRegex(out.splitlines()[-1], r"^dns-check: \d+ check\(s\) could not be made")

    def test_servfail_is_unknown_with_exit_3_then_ok(self):
        auth, resolver = servfail_pair(self)
        rc, out = self.dns_check(resolver.resolver)
        self.assertUnknownNotMissing(out, r"(?i)servfail")
        self.assertEqual(rc, 3, out)

        auth.set_records(self.records(), zones=[ZONE], refuse_zones=[])
        wait_for_answer(resolver, ZONE)
        rc, out = self.dns_check(resolver.resolver)
        self.assertEqual(rc, 0, out)
        self.assertIn("DKIM k (s1._domainkey.broken.example): ok", out)
        self.assertIn("SPF broken.example: ok", out)

    def test_timeout_is_unknown_with_exit_3(self):
        silent = SilentDns().start()
        self.addCleanup(silent.stop)
        rc, out = self.dns_check(silent.resolver, timeout="1s")
        self.assertUnknownNotMissing(out, r"(?i)timeout|no answer within")
        self.assertEqual(rc, 3, out)

    def test_a_problem_found_is_exit_1_even_when_other_lookups_failed(self):
        # The key record is there but is another key's; SPF and DMARC are
        # refused: the wrong key is a problem found (1), the rest UNKNOWN.
        other_dir = tempfile.mkdtemp(prefix="stampd-dns-failures-other-")
        self.addCleanup(shutil.rmtree, other_dir, True)
        _, other_record = make_key(other_dir, ZONE, "s1", "ed25519")
        with open(other_record) as f:
            name, value = zone_line_txt(f.read())
        auth = UnboundServer(zones=["_domainkey." + ZONE], records=[(name, "TXT", value)],
                             refuse_zones=[ZONE])
        auth.start()
        self.addCleanup(auth.stop)
        resolver = UnboundServer(forward_zones=[(ZONE, auth.resolver)])
        resolver.start()
        self.addCleanup(resolver.stop)
        rc, out = self.dns_check(resolver.resolver)
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: the published key is not the public half", out)
        self.assertRegex(out, r"SPF broken.example: UNKNOWN: ")


if __name__ == "__main__":
    test_main.main()
