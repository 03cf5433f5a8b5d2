"""SPF decided by the running proxy against a real DNS server on loopback.

One `unbound -d` (Debian's; the tests skip when it is missing) serves the
zone spf.example from local-data, and stampd asks it through [dns] resolvers =
["127.0.0.1:PORT"]. Clients connect from different loopback addresses
(127.0.0.2 ... 127.0.0.6) so that one published record gives every verdict.
What is shown:

* pass (ip4, and through a three-level include chain), fail (with the
  domain's exp= explanation in the 550 5.7.23 reply), softfail, neutral, none;
* the RFC 7208 §4.6.4 limits: ten includes pass, eleven are permerror; two
  void lookups pass, three are permerror; a syntax error is permerror; each
  gets 550 5.7.24 in enforce mode;
* a DNS server that never answers: temperror, 451 4.7.24, within the
  configured [dns] timeout (measured);
* ip = "client" (the connecting address, or the XFORWARD ADDR of a trusted
  content filter) and ip = "egress" (the worst over egress_ips);
* tag mode: the Received-SPF field the upstream receives, checked against
  the RFC 7208 §9.1 grammar; per-domain overrides; the null sender checked
  with the HELO identity; the event=message / event=mail-refused fields;
  stampd_spf_results_total and stampd_dns_queries_total on /metrics.
"""
import re
import time
import unittest

import prometheus_tools
import smtp_client
from stampd_harness import StampdTestCase
from unbound_server import SilentDns, UnboundServer
import test_main

ZONE = "spf.example"


def _includes(prefix, n):
    return " ".join("include:%s%d.%s" % (prefix, i, ZONE) for i in range(1, n + 1))


RECORDS = [
    # One record, every verdict, by client address.
    ("mixed.spf.example", "TXT", "v=spf1 ip4:127.0.0.2 include:chain1.spf.example ~ip4:127.0.0.4 "
                              "?ip4:127.0.0.5 -all exp=exp.spf.example"),
    ("mixed.spf.example", "TXT", "some-site-verification=0123456789"),  # not SPF: ignored
    ("exp.spf.example", "TXT", "%{i} is not a mail server of %{d}"),
    ("chain1.spf.example", "TXT", "v=spf1 include:chain2.spf.example -all"),
    ("chain2.spf.example", "TXT", "v=spf1 include:chain3.spf.example -all"),
    ("chain3.spf.example", "TXT", "v=spf1 a:host.chain3.spf.example -all"),
    ("host.chain3.spf.example", "A", "127.0.0.3"),
    # Limits (RFC 7208 §4.6.4).
    ("ten.spf.example", "TXT", "v=spf1 %s ip4:127.0.0.0/8 -all" % _includes("t", 10)),
    ("eleven.spf.example", "TXT", "v=spf1 %s ip4:127.0.0.0/8 -all" % _includes("t", 11)),
    ("void2.spf.example", "TXT", "v=spf1 a:nx1.spf.example a:nx2.spf.example ip4:127.0.0.0/8 -all"),
    ("void3.spf.example", "TXT",
     "v=spf1 a:nx1.spf.example a:nx2.spf.example a:nx3.spf.example ip4:127.0.0.0/8 -all"),
    ("broken.spf.example", "TXT", "v=spf1 ip4:127.0.0.300 -all"),
    ("none.spf.example", "A", "127.0.0.9"),  # no TXT at all: SPF "none"
    # XFORWARD ADDR of a content filter's original client.
    ("xf.spf.example", "TXT", "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all"),
    # The HELO identity for the null sender.
    ("helo.spf.example", "TXT", "v=spf1 ip4:127.0.0.2 -all"),
    # Egress mode.
    ("egress-all.spf.example", "TXT", "v=spf1 ip4:127.0.0.2 ip4:198.51.100.0/24 ip6:2001:db8:25::/48 -all"),
    ("egress-some.spf.example", "TXT", "v=spf1 ip4:127.0.0.2 ip4:198.51.100.7 -all"),
    ("egress-soft.spf.example", "TXT", "v=spf1 ip4:127.0.0.2 ~all"),
    # Per-domain overrides.
    ("lenient.spf.example", "TXT", "v=spf1 -all"),
    ("a.strict.spf.example", "TXT", "v=spf1 ~all"),
    ("untouched.spf.example", "TXT", "v=spf1 -all"),
]
RECORDS += [("t%d.spf.example" % i, "TXT", "v=spf1 ?all") for i in range(1, 12)]

EGRESS = ["127.0.0.2", "198.51.100.7", "2001:db8:25::1"]

_dns = None


def setUpModule():
    global _dns
    _dns = UnboundServer(zones=[ZONE], records=RECORDS)
    _dns.start()


def tearDownModule():
    if _dns is not None:
        _dns.stop()


# --- RFC 7208 §9.1 ------------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = r"%s+(?:\.%s+)*" % (_ATEXT, _ATEXT)
_QUOTED = r'"(?:[^"\\\r\n]|\\.)*"'
_COMMENT = r"\((?:[^()\\\r\n]|\\.)*\)"  # no nesting in what we write
_FWS = r"(?:[ \t]*\r\n)?[ \t]+"
_RESULT = r"(?:pass|fail|softfail|neutral|none|temperror|permerror)"
_KEY = r"[A-Za-z][A-Za-z0-9_.-]*"
_PAIR = r"%s=(?:%s|%s)" % (_KEY, _DOT_ATOM, _QUOTED)
RECEIVED_SPF = re.compile(
    r"^Received-SPF:[ \t]*(?P<result>%s)%s(?:(?P<comment>%s)%s)?"
    r"(?P<pairs>%s(?:;(?:%s)?%s)*;?)\r\n$"
    % (_RESULT, _FWS, _COMMENT, _FWS, _PAIR, _FWS, _PAIR))
_PAIR_SPLIT = re.compile(r"(%s)=(%s|%s)" % (_KEY, _DOT_ATOM, _QUOTED))


def parse_received_spf(field):
    """parse_received_spf checks one Received-SPF field (with its CRLF and
    folding) against RFC 7208 §9.1 and returns (result, comment, {key: value})."""
    m = RECEIVED_SPF.match(field)
    if not m:
        raise AssertionError("not an RFC 7208 §9.1 Received-SPF field: %r" % field)
    pairs = {}
    for k, v in _PAIR_SPLIT.findall(m.group("pairs")):
        pairs[k] = v[1:-1] if v.startswith('"') else v
    return m.group("result"), (m.group("comment") or "")[1:-1], pairs


def header_fields(content, name):
    """header_fields returns the raw fields (folding and CRLF kept) named name."""
    head = content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace") + "\r\n"
    fields = re.findall(r"(?m)^[^ \t\r\n][^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", head)
    return [f for f in fields if f.lower().startswith(name.lower() + ":")]


# --- the proxy -----------------------------------------------------------------------

class SpfCase(StampdTestCase):
    """SpfCase runs stampd with [spf] settings against the module's unbound
    and a fake upstream, and sends transactions from chosen loopback addresses."""

    spf = {"mode": "enforce"}
    dns_timeout = "5s"
    metrics = False

    def setUp(self):
        self.up = self.start_upstream()
        sections = {"spf": dict(self.spf),
                    "dns": {"resolvers": [self.resolver()], "timeout": self.dns_timeout}}
        if self.metrics:
            sections["metrics"] = {"listen": "127.0.0.1:0"}
        self.stampd = self.start_stampd([self.up.address], sections=sections)

    def resolver(self):
        return _dns.resolver

    def session(self, source="127.0.0.1", helo="client.test"):
        c = smtp_client.SmtpClient(self.stampd.host, self.stampd.port, source_address=(source, 0))
        self.addCleanup(c.close)
        self.assertEqual(c.ehlo(helo).code, 250)
        return c

    def send(self, sender, source="127.0.0.1", helo="client.test", xforward=None):
        """send runs one transaction; returns (MAIL reply, final reply or None,
        the upstream's copy or None, the event=message line or None)."""
        before = len(self.up.messages)
        logged = len(self.stampd.messages())
        c = self.session(source, helo)
        if xforward:
            self.assertEqual(c.cmd("XFORWARD " + xforward).code, 250)
        mail = c.mail(sender)
        if mail.code != 250:
            c.quit()
            return mail, None, None, None
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        _, final = c.data(smtp_client.make_message(sender=sender or "bounce@client.test"))
        c.quit()
        copy = self.up.wait_for_messages(before + 1)[-1] if final.code == 250 else None
        event = self.stampd.wait_for_event("message", count=logged + 1)[-1]
        return mail, final, copy, event

    def refused_event(self, sender, **match):
        """refused_event waits for the SPF refusal that names sender (and has
        the fields in match: a test with two refusals of one sender tells
        them apart so) and returns the latest."""
        return self.stampd.wait_for_event("mail-refused", stage="spf",
                                          where=lambda e: sender in e.get("reason", ""), **match)[-1]

    def assertRelayed(self, sent, verdict, ip, action="tag"):
        mail, final, copy, event = sent
        self.assertEqual(mail.code, 250, mail)
        self.assertEqual(final.code, 250, final)
        self.assertEqual(event.get("spf"), verdict, event)
        self.assertEqual(event.get("spf_ip"), ip, event)
        self.assertEqual(event.get("spf_action"), action, event)
        self.assertTrue(event.get("spf_detail", "").startswith(verdict), event)
        fields = header_fields(copy.content, "Received-SPF")
        if action == "tag":
            self.assertEqual(len(fields), 1, copy.content[:600])
            result, _, pairs = parse_received_spf(fields[0])
            self.assertEqual(result, verdict)
            self.assertEqual(pairs["client-ip"], ip)
        else:
            self.assertEqual(fields, [])
        return copy, event


class ClientEnforceTest(SpfCase):
    """ip = "client", mode = "enforce" with the default actions: fail and
    permerror rejected at MAIL FROM, the rest relayed and tagged."""

    spf = {"mode": "enforce", "ip": "client"}

    def test_pass_by_ip4_from_127_0_0_2(self):
        copy, event = self.assertRelayed(self.send("a@mixed.spf.example", source="127.0.0.2"),
                                         "pass", "127.0.0.2")
        self.assertIn("ip4:127.0.0.2", event["spf_detail"])
        self.assertEqual(copy.mail_from, "a@mixed.spf.example")

    def test_pass_through_an_include_chain_from_127_0_0_3(self):
        _, event = self.assertRelayed(self.send("a@mixed.spf.example", source="127.0.0.3"),
                                      "pass", "127.0.0.3")
        # Decided by the include at the top (three levels deep, by chain3's a:).
        self.assertIn("include:chain1.spf.example", event["spf_detail"])

    def test_softfail_from_127_0_0_4_is_relayed_and_tagged(self):
        self.assertRelayed(self.send("a@mixed.spf.example", source="127.0.0.4"), "softfail",
                           "127.0.0.4")

    def test_neutral_from_127_0_0_5_is_relayed_and_tagged(self):
        self.assertRelayed(self.send("a@mixed.spf.example", source="127.0.0.5"), "neutral",
                           "127.0.0.5")

    def test_fail_from_127_0_0_6_is_550_5_7_23_with_the_explanation(self):
        mail, final, _, _ = self.send("a@mixed.spf.example", source="127.0.0.6")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.23"), mail)
        self.assertIsNone(final)
        # exp=exp.spf.example: "%{i} is not a mail server of %{d}" (RFC 7208 §6.2).
        self.assertIn("127.0.0.6 is not a mail server of mixed.spf.example", mail.text)
        self.assertEqual([t.mail_from for t in self.up.transactions], [],
                         "a refused sender must cost the upstream nothing")
        ev = self.refused_event("mixed.spf.example")
        self.assertIn("fail", ev["reason"])
        self.assertEqual(ev.get("spf"), "fail", ev)
        self.assertEqual(ev.get("spf_ip"), "127.0.0.6", ev)
        self.assertEqual(ev.get("spf_action"), "reject", ev)

    def test_none_without_a_record(self):
        mail, final, copy, event = self.send("a@none.spf.example", source="127.0.0.2")
        self.assertEqual(final.code, 250)
        self.assertEqual(event.get("spf"), "none")

    def test_ten_includes_are_allowed(self):
        self.assertRelayed(self.send("a@ten.spf.example", source="127.0.0.2"), "pass", "127.0.0.2")

    def test_eleven_includes_are_permerror_550_5_7_24(self):
        mail, _, _, _ = self.send("a@eleven.spf.example", source="127.0.0.2")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.24"), mail)
        ev = self.refused_event("eleven.spf.example")
        self.assertEqual(ev.get("spf"), "permerror", ev)
        self.assertRegex(ev.get("spf_detail", ""), r"(?i)limit|too many|10")

    def test_two_void_lookups_are_allowed(self):
        self.assertRelayed(self.send("a@void2.spf.example", source="127.0.0.2"), "pass",
                           "127.0.0.2")

    def test_three_void_lookups_are_permerror(self):
        mail, _, _, _ = self.send("a@void3.spf.example", source="127.0.0.2")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.24"), mail)
        ev = self.refused_event("void3.spf.example")
        self.assertEqual(ev.get("spf"), "permerror", ev)
        self.assertRegex(ev.get("spf_detail", ""), r"(?i)void")

    def test_syntax_error_is_permerror(self):
        mail, _, _, _ = self.send("a@broken.spf.example", source="127.0.0.2")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.24"), mail)

    def test_null_sender_uses_the_helo_identity(self):
        ok = self.send("", source="127.0.0.2", helo="helo.spf.example")
        copy, event = self.assertRelayed(ok, "pass", "127.0.0.2")
        _, _, pairs = parse_received_spf(header_fields(copy.content, "Received-SPF")[0])
        self.assertEqual(pairs["envelope-from"], "postmaster@helo.spf.example")
        self.assertEqual(pairs["helo"], "helo.spf.example")
        mail, _, _, _ = self.send("", source="127.0.0.6", helo="helo.spf.example")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.23"), mail)

    def test_xforward_addr_of_a_trusted_content_filter_is_checked(self):
        # Postfix content_filter: the MTA (127.0.0.1) connects, XFORWARD names the client.
        copy, event = self.assertRelayed(
            self.send("a@xf.spf.example", xforward="NAME=client.example ADDR=192.0.2.10 HELO=mx.client.example"),
            "pass", "192.0.2.10")
        self.assertEqual(event.get("xforward_addr"), "192.0.2.10")
        _, _, pairs = parse_received_spf(header_fields(copy.content, "Received-SPF")[0])
        self.assertEqual(pairs["helo"], "mx.client.example")
        self.assertRelayed(self.send("a@xf.spf.example", xforward="ADDR=IPV6:2001:db8::10"),
                           "pass", "2001:db8::10")
        # The same sender without XFORWARD is checked against 127.0.0.1: fail.
        mail, _, _, _ = self.send("a@xf.spf.example")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.23"), mail)
        mail, _, _, _ = self.send("a@xf.spf.example", xforward="ADDR=192.0.2.11")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.23"), mail)
        self.assertEqual(self.refused_event("xf.spf.example", spf_ip="192.0.2.11")["stage"], "spf")
        # [UNAVAILABLE] leaves the connecting address in charge.
        mail, _, _, _ = self.send("a@xf.spf.example", xforward="ADDR=[UNAVAILABLE]")
        self.assertEqual(mail.code, 550, mail)


class OverrideTest(SpfCase):
    """[[spf.override]]: one domain in tag mode under a global enforce, a
    wildcard that rejects softfail, one turned off."""

    spf = {"mode": "enforce",
           "override": [{"domain": "lenient.spf.example", "mode": "tag"},
                        {"domain": "*.strict.spf.example", "actions": {"softfail": "reject"}},
                        {"domain": "untouched.spf.example", "mode": "off"}]}

    def test_tag_override_relays_a_fail_tagged(self):
        self.assertRelayed(self.send("a@lenient.spf.example"), "fail", "127.0.0.1")

    def test_wildcard_override_rejects_softfail(self):
        mail, _, _, _ = self.send("a@a.strict.spf.example")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.23"), mail)
        self.assertEqual(self.refused_event("strict.spf.example").get("spf"), "softfail")

    def test_off_override_does_not_evaluate(self):
        mail, final, copy, event = self.send("a@untouched.spf.example")
        self.assertEqual(final.code, 250)
        self.assertNotIn("spf", event)
        self.assertEqual(header_fields(copy.content, "Received-SPF"), [])

    def test_other_domains_keep_the_global_mode(self):
        mail, _, _, _ = self.send("a@mixed.spf.example", source="127.0.0.6")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.23"), mail)


class TagModeTest(SpfCase):
    """mode = "tag": every result is relayed with a Received-SPF field in the
    RFC 7208 §9.1 form; nothing is refused."""

    spf = {"mode": "tag"}

    def check_field(self, copy, verdict, ip, sender, helo="client.test"):
        fields = header_fields(copy.content, "Received-SPF")
        self.assertEqual(len(fields), 1, copy.content[:800])
        # The field comes first: it is the newest trace field (RFC 7208 §9.1).
        self.assertTrue(copy.content.startswith(b"Received-SPF:"), copy.content[:200])
        result, comment, pairs = parse_received_spf(fields[0])
        self.assertEqual(result, verdict)
        self.assertEqual(pairs.get("client-ip"), ip)
        self.assertEqual(pairs.get("envelope-from"), sender)
        self.assertEqual(pairs.get("helo"), helo)
        self.assertEqual(pairs.get("receiver"), "stampd.test")
        self.assertEqual(pairs.get("identity"), "mailfrom")
        self.assertTrue(comment.startswith("stampd.test: "), comment)
        return comment, fields[0]

    def test_every_verdict_is_tagged(self):
        cases = [("127.0.0.2", "a@mixed.spf.example", "pass", "designates 127.0.0.2 as permitted sender"),
                 ("127.0.0.3", "a@mixed.spf.example", "pass", "designates"),
                 ("127.0.0.4", "a@mixed.spf.example", "softfail", "does not designate"),
                 ("127.0.0.5", "a@mixed.spf.example", "neutral", "neither permitted nor denied"),
                 ("127.0.0.6", "a@mixed.spf.example", "fail", "does not designate 127.0.0.6"),
                 ("127.0.0.2", "a@none.spf.example", "none", ""),
                 ("127.0.0.2", "a@eleven.spf.example", "permerror", ""),
                 ("127.0.0.2", "a@void3.spf.example", "permerror", "")]
        for source, sender, verdict, words in cases:
            with self.subTest(source=source, sender=sender):
                mail, final, copy, event = self.send(sender, source=source)
                self.assertEqual(final.code, 250, final)
                self.assertEqual(event.get("spf_action"), "tag")
                comment, field = self.check_field(copy, verdict, source, sender)
                self.assertIn(words, comment)

    def test_ipv6_client_ip_and_address_literal_helo_keep_the_grammar(self):
        # client-ip holds ':' and a literal HELO '[' ']', which are not dot-atom
        # text: §9.1 then needs a quoted-string.
        mail, final, copy, _ = self.send("a@xf.spf.example", helo="[127.0.0.1]",
                                         xforward="ADDR=IPV6:2001:db8::10 HELO=[192.0.2.10]")
        self.assertEqual(final.code, 250, final)
        self.check_field(copy, "pass", "2001:db8::10", "a@xf.spf.example", helo="[192.0.2.10]")


class EgressTest(SpfCase):
    """ip = "egress": the sender's SPF is checked for every egress address;
    the verdict is the worst over the set, whoever connects."""

    spf = {"mode": "enforce", "ip": "egress", "egress_ips": EGRESS}

    def test_all_egress_addresses_authorized(self):
        # The client (127.0.0.6) is not in the record; in egress mode it does not matter.
        self.assertRelayed(self.send("a@egress-all.spf.example", source="127.0.0.6"), "pass",
                           "127.0.0.2")

    def test_one_unauthorized_egress_address_fails(self):
        mail, _, _, _ = self.send("a@egress-some.spf.example", source="127.0.0.2")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.23"), mail)
        ev = self.refused_event("egress-some.spf.example")
        self.assertEqual(ev.get("spf"), "fail", ev)
        self.assertEqual(ev.get("spf_ip"), "2001:db8:25::1", ev)

    def test_worst_is_the_first_address_with_the_worst_verdict(self):
        _, event = self.assertRelayed(self.send("a@egress-soft.spf.example", source="127.0.0.2"),
                                      "softfail", "198.51.100.7")

    def test_xforward_does_not_change_egress_mode(self):
        mail, _, _, _ = self.send("a@xf.spf.example", xforward="ADDR=192.0.2.10")
        self.assertEqual((mail.code, mail.enhanced), (550, "5.7.23"), mail)
        self.assertEqual(self.refused_event("xf.spf.example", spf_ip="127.0.0.2")["stage"], "spf")


class MetricsTest(SpfCase):
    """Each decision is counted by result and action; each DNS query by type
    and status."""

    spf = {"mode": "enforce"}
    metrics = True

    def test_results_and_queries_are_counted(self):
        page = prometheus_tools.scrape(self.stampd)
        self.assertEqual(page.value("stampd_spf_results_total"), 0)
        self.send("a@mixed.spf.example", source="127.0.0.2")       # pass, tag
        self.send("a@mixed.spf.example", source="127.0.0.4")       # softfail, tag
        self.send("a@mixed.spf.example", source="127.0.0.6")       # fail, reject
        self.send("a@mixed.spf.example", source="127.0.0.6")       # fail, reject (cached)
        self.send("a@eleven.spf.example", source="127.0.0.2")      # permerror, reject
        page = prometheus_tools.scrape(self.stampd)
        v = lambda **l: page.value("stampd_spf_results_total", **l)
        self.assertEqual(v(result="pass", action="tag"), 1)
        self.assertEqual(v(result="softfail", action="tag"), 1)
        self.assertEqual(v(result="fail", action="reject"), 2)
        self.assertEqual(v(result="permerror", action="reject"), 1)
        self.assertEqual(v(), 5)
        q = lambda **l: page.value("stampd_dns_queries_total", **l)
        self.assertGreaterEqual(q(type="TXT", status="ok"), 12, page.series("stampd_dns_queries_total"))
        # chain3's a: term, an A query answered.
        self.assertGreaterEqual(q(type="A", status="ok"), 1, page.series("stampd_dns_queries_total"))
        self.assertEqual(q(status="timeout"), 0)
        self.assertGreater(page.value("stampd_dns_query_duration_seconds_count"), 0)


# --- a DNS server that never answers -------------------------------------------------

class SilentDnsCase(SpfCase):
    dns_timeout = "2s"
    metrics = True
    timeout_s = 2.0

    def setUp(self):
        self.silent = SilentDns().start()
        self.addCleanup(self.silent.stop)
        super().setUp()

    def resolver(self):
        return self.silent.resolver

    def timed_mail(self, sender, source="127.0.0.2", **kw):
        c = self.session(source)
        if kw.get("xforward"):
            c.cmd("XFORWARD " + kw["xforward"])
        start = time.monotonic()
        r = c.mail(sender)
        elapsed = time.monotonic() - start
        return r, elapsed, c


class TemperrorEnforceTest(SilentDnsCase):
    spf = {"mode": "enforce"}

    def test_temperror_is_451_4_7_24_within_the_dns_timeout(self):
        r, elapsed, c = self.timed_mail("a@mixed.spf.example")
        print("\ntemperror (enforce, ip=client, [dns] timeout %.1fs): 451 after %.3fs"
              % (self.timeout_s, elapsed))
        self.assertEqual((r.code, r.enhanced), (451, "4.7.24"), r)
        self.assertGreaterEqual(elapsed, self.timeout_s * 0.9)
        self.assertLess(elapsed, self.timeout_s + 1.0)
        self.assertGreater(self.silent.queries, 0, "the silent server saw no query")
        self.assertEqual(self.up.transactions, [])
        ev = self.refused_event("mixed.spf.example")
        self.assertEqual(ev.get("spf"), "temperror", ev)
        self.assertEqual(ev.get("spf_action"), "tempfail", ev)
        # The session goes on: the client may retry or try another sender.
        self.assertEqual(c.cmd("RSET").code, 250)
        page = prometheus_tools.scrape(self.stampd)
        self.assertEqual(page.value("stampd_spf_results_total", result="temperror", action="tempfail"), 1)
        self.assertGreaterEqual(page.value("stampd_dns_queries_total", status="timeout"), 1,
                                page.series("stampd_dns_queries_total"))


class TemperrorTagTest(SilentDnsCase):
    spf = {"mode": "tag"}

    def test_temperror_in_tag_mode_relays_tagged(self):
        start = time.monotonic()
        mail, final, copy, event = self.send("a@mixed.spf.example", source="127.0.0.2")
        elapsed = time.monotonic() - start
        self.assertEqual(final.code, 250)
        self.assertLess(elapsed, self.timeout_s + 2.0)
        result, _, _ = parse_received_spf(header_fields(copy.content, "Received-SPF")[0])
        self.assertEqual(result, "temperror")
        self.assertEqual(event.get("spf"), "temperror")


class TemperrorHeloCheckTest(SilentDnsCase):
    spf = {"mode": "enforce", "helo_check": True}

    def test_helo_check_costs_one_more_timeout(self):
        # Two identities, two domains: HELO's temperror is not conclusive
        # (RFC 7208 §2.3), so MAIL FROM is looked up too, at most 2 timeouts.
        c = self.session("127.0.0.2", helo="mx.client.example")
        start = time.monotonic()
        r = c.mail("a@mixed.spf.example")
        elapsed = time.monotonic() - start
        print("\ntemperror (enforce, helo_check, [dns] timeout %.1fs): %d after %.3fs"
              % (self.timeout_s, r.code, elapsed))
        self.assertEqual((r.code, r.enhanced), (451, "4.7.24"), r)
        self.assertLess(elapsed, 2 * self.timeout_s + 1.0)


class TemperrorEgressTest(SilentDnsCase):
    spf = {"mode": "enforce", "ip": "egress", "egress_ips": EGRESS}

    def test_egress_temperror_is_451_within_the_dns_timeout(self):
        r, elapsed, _ = self.timed_mail("a@mixed.spf.example")
        print("\ntemperror (enforce, ip=egress x%d, [dns] timeout %.1fs): %d after %.3fs"
              % (len(EGRESS), self.timeout_s, r.code, elapsed))
        self.assertEqual((r.code, r.enhanced), (451, "4.7.24"), r)
        self.assertLess(elapsed, self.timeout_s + 1.0)


if __name__ == "__main__":
    test_main.main()
