"""`stampd dns-check` and `stampd spf` against a real DNS server on loopback.

One `unbound -d` (Debian's; the tests skip when it is missing) serves the
zone check.example, and the commands ask it through [dns] resolvers. Keys
come from `stampd genkey`, and the record a test publishes is the .txt file
genkey wrote. What is shown:

* dns-check on DKIM keys: the right key (ed25519, and RSA-2048 whose record
  spans several TXT strings) is "ok" with exit 0; a different key's record, a
  missing record, a revoked key (empty p=) and a malformed record each FAIL
  with exit 1 and say so (and what to publish where stampd knows); so do the
  failures seen in the field, each named: two TXT records at one selector,
  an RSA record cut at 255 characters by a DNS panel ("truncated"), and a
  published key shorter than the private key;
* dns-check on SPF: a record that omits egress addresses fails with exit 1,
  names them and prints the record to publish; with that record published,
  exit 0;
* `stampd spf`: result, summary, explanation, the lookup counts and a trace
  of every query, the term that decided; exit 0 for pass, 1 otherwise;
  temperror within the [dns] timeout against a server that never answers.
"""
import os
import re
import shutil
import tempfile
import time
import unittest

import signal

from prometheus_tools import scrape
from stampd_harness import StampdTestCase, make_key, render_toml, run_cli
from unbound_server import SilentDns, UnboundServer, find_unbound, zone_line_txt
import test_main

ZONE = "check.example"
EGRESS = ["127.0.0.2", "198.51.100.7", "2001:db8:25::1"]

SPF_RECORDS = [
    ("mixed.check.example", "TXT", "v=spf1 ip4:127.0.0.2 include:chain1.check.example "
                                   "~ip4:127.0.0.4 -all exp=exp.check.example"),
    ("exp.check.example", "TXT", "%{i} is not a mail server of %{d}"),
    ("chain1.check.example", "TXT", "v=spf1 include:chain2.check.example -all"),
    ("chain2.check.example", "TXT", "v=spf1 a:host.chain2.check.example -all"),
    ("host.chain2.check.example", "A", "127.0.0.3"),
    ("eleven.check.example", "TXT",
     "v=spf1 %s -all" % " ".join("include:t%d.check.example" % i for i in range(1, 12))),
    ("void3.check.example", "TXT",
     "v=spf1 a:nx1.check.example a:nx2.check.example a:nx3.check.example -all"),
    ("helo.check.example", "TXT", "v=spf1 ip4:127.0.0.2 -all"),
    ("v6.check.example", "TXT", "v=spf1 ip6:2001:db8::/32 -all"),
] + [("t%d.check.example" % i, "TXT", "v=spf1 ?all") for i in range(1, 12)]

_dns = None
_keys = None  # tempdir with genkey output


def setUpModule():
    global _dns, _keys
    if find_unbound() is None:
        raise unittest.SkipTest("unbound is not installed (Debian package unbound)")
    _keys = tempfile.mkdtemp(prefix="stampd-dnscheck-")
    try:
        _make_keys_and_serve()
    except BaseException:
        tearDownModule()  # unittest does not call it when setUpModule fails
        raise


def _make_keys_and_serve():
    global _dns
    for name, domain, algorithm in [("good", "good.check.example", "ed25519"),
                                    ("rsa", "rsa.check.example", "rsa-2048"),
                                    ("other", "other.check.example", "ed25519"),
                                    ("wrong", "wrong.check.example", "ed25519"),
                                    ("missing", "missing.check.example", "ed25519"),
                                    ("revoked", "revoked.check.example", "ed25519"),
                                    ("malformed", "malformed.check.example", "ed25519"),
                                    ("several", "several.check.example", "ed25519"),
                                    ("truncated", "truncated.check.example", "rsa-2048"),
                                    ("shorter", "shorter.check.example", "rsa-3072"),
                                    ("short2048", "short2048.check.example", "rsa-2048")]:
        make_key(os.path.join(_keys, name), domain, "s1", algorithm)
    _dns = UnboundServer(zones=[ZONE], records=SPF_RECORDS + dkim_records())
    _dns.start()


def tearDownModule():
    if _dns is not None:
        _dns.stop()
    if _keys:
        shutil.rmtree(_keys, ignore_errors=True)


def published(name):
    """published returns (owner, TXT value) of the record genkey wrote for key name."""
    with open(os.path.join(_keys, name, "s1.txt")) as f:
        return zone_line_txt(f.read())


def dkim_records():
    good = published("good")
    rsa = published("rsa")
    _, other_value = published("other")
    return [
        ("%s" % good[0], "TXT", good[1]),
        ("%s" % rsa[0], "TXT", rsa[1]),
        # wrong: another key's record at this key's name.
        ("s1._domainkey.wrong.check.example", "TXT", other_value),
        # missing: nothing at s1._domainkey.missing.check.example.
        ("s1._domainkey.revoked.check.example", "TXT", "v=DKIM1; k=ed25519; p="),
        ("s1._domainkey.malformed.check.example", "TXT", "v=DKIM1; k=ed25519; p=!!not*base64!!"),
        # several: our record and a second one at the same selector.
        ("s1._domainkey.several.check.example", "TXT", published("several")[1]),
        ("s1._domainkey.several.check.example", "TXT", other_value),
        # truncated: what a DNS panel with a 255-character field keeps.
        ("s1._domainkey.truncated.check.example", "TXT", published("truncated")[1][:255]),
        # shorter: a 2048-bit key published for a 3072-bit private key.
        ("s1._domainkey.shorter.check.example", "TXT", published("short2048")[1]),
    ]


class CliCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stampd-cli-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def config(self, keys=(), egress=(), resolver=None, timeout="5s"):
        """config writes a stampd.toml with these [dkim] keys (names of
        genkey'd keys), one signing rule per key's domain, [spf] egress_ips
        and [dns] pointing at the module's unbound; returns its path."""
        sections = {"server": {"listen": ["127.0.0.1:0"]},
                    "dkim": {"key": [], "sign": []},
                    "spf": {"egress_ips": list(egress)},
                    "dns": {"resolvers": [resolver or _dns.resolver], "timeout": timeout}}
        for name in keys:
            domain = "%s.check.example" % name
            sections["dkim"]["key"].append({"name": name, "domain": domain, "selector": "s1",
                                            "private_key": os.path.join(_keys, name, "s1.private")})
            sections["dkim"]["sign"].append({"from": "*@" + domain, "keys": [name]})
        if not keys:
            del sections["dkim"]
        path = os.path.join(self.dir, "stampd.toml")
        with open(path, "w") as f:
            f.write(render_toml(sections))
        return path

    def run_cmd(self, *args, timeout=60):
        r = run_cli(*args, timeout=timeout)
        out, err = r.stdout.decode(), r.stderr.decode()
        return r.returncode, out, err


class DnsCheckDkimTest(CliCase):
    def check(self, key):
        rc, out, err = self.run_cmd("dns-check", "-c", self.config([key]))
        lines = [l for l in out.splitlines() if l.startswith("DKIM %s " % key)]
        self.assertEqual(len(lines), 1, out + err)
        return rc, out, lines[0]

    def test_correct_ed25519_key(self):
        rc, out, line = self.check("good")
        self.assertEqual(rc, 0, out)
        self.assertIn("ok: the published key matches", line)
        self.assertIn("s1._domainkey.good.check.example", line)
        self.assertIn("dns-check: everything matches", out)

    def test_correct_rsa_key_in_several_strings(self):
        # An RSA-2048 record is longer than one 255-byte TXT string.
        self.assertGreater(len(published("rsa")[1]), 255)
        rc, out, line = self.check("rsa")
        self.assertEqual(rc, 0, out)
        self.assertIn("ok: the published key matches", line)

    def test_wrong_key(self):
        rc, out, line = self.check("wrong")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: the published key is not the public half of", line)
        # It says what to publish: our record, as genkey wrote it.
        with open(os.path.join(_keys, "wrong", "s1.txt")) as f:
            self.assertIn(f.read().strip(), out)
        self.assertIn("dns-check: problems found", out)

    def test_missing_record(self):
        rc, out, line = self.check("missing")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: no TXT record published; publish:", line)
        with open(os.path.join(_keys, "missing", "s1.txt")) as f:
            self.assertIn(f.read().strip(), out)

    def test_revoked_key(self):
        rc, out, line = self.check("revoked")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: the published key is revoked", line)

    def test_malformed_record(self):
        rc, out, line = self.check("malformed")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: the published record is malformed", line)

    def test_several_records_at_one_selector(self):
        rc, out, line = self.check("several")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: several TXT records: 2 TXT records at one selector", line)
        self.assertEqual(out.count("    found: "), 2, out)

    def test_record_truncated_by_a_dns_panel(self):
        rc, out, line = self.check("truncated")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: the published key is truncated: p= holds ", line)
        self.assertIn("it is the start of our key", line)
        with open(os.path.join(_keys, "truncated", "s1.txt")) as f:
            self.assertIn(f.read().strip(), out)  # what to publish instead

    def test_shorter_key_than_the_private_key(self):
        rc, out, line = self.check("shorter")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: the published key is truncated: the published key has 2048 bits, "
                      "ours 3072", line)

    def test_all_at_once(self):
        names = ["good", "rsa", "wrong", "missing", "revoked", "malformed"]
        rc, out, err = self.run_cmd("dns-check", "-c", self.config(names))
        self.assertEqual(rc, 1, out + err)
        verdicts = {}
        for l in out.splitlines():
            m = re.match(r"DKIM (\w+) \(s1\._domainkey\.\w+\.check\.example\): (ok|FAIL)", l)
            if m:
                verdicts[m.group(1)] = m.group(2)
        self.assertEqual(verdicts, {"good": "ok", "rsa": "ok", "wrong": "FAIL", "missing": "FAIL",
                                    "revoked": "FAIL", "malformed": "FAIL"}, out)


class DnsCheckSpfTest(CliCase):
    def setUp(self):
        super().setUp()
        self.addCleanup(_dns.set_records, SPF_RECORDS + dkim_records())

    def test_spf_that_omits_egress_addresses_and_the_suggestion(self):
        _dns.add_records([("good.check.example", "TXT", "v=spf1 ip4:127.0.0.2 ~all")])
        path = self.config(["good"], egress=EGRESS)
        rc, out, err = self.run_cmd("dns-check", "-c", path)
        self.assertEqual(rc, 1, out + err)
        spf = [l for l in out.splitlines() if l.startswith("SPF good.check.example: ")]
        self.assertEqual(len(spf), 1, out)
        self.assertIn("FAIL", spf[0])
        self.assertIn("198.51.100.7 gets softfail", spf[0])
        self.assertIn("2001:db8:25::1 gets softfail", spf[0])
        self.assertNotIn("127.0.0.2 gets", spf[0])
        m = re.search(r'publish: good\.check\.example\. IN TXT ("(?:[^"\\]|\\.)*"(?: "(?:[^"\\]|\\.)*")*)', out)
        self.assertIsNotNone(m, out)
        suggested = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))
        print("\nsuggested: %s" % suggested)
        self.assertTrue(suggested.startswith("v=spf1 "), suggested)
        for ip in EGRESS:
            self.assertIn(ip, suggested)
        # Publish what it says: now every egress address passes.
        _dns.set_records(SPF_RECORDS + dkim_records() + [("good.check.example", "TXT", suggested)])
        rc, out, err = self.run_cmd("dns-check", "-c", path)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("SPF good.check.example: ok: every egress address passes", out)

    def test_no_spf_record_at_all(self):
        rc, out, err = self.run_cmd("dns-check", "-c", self.config(["good"], egress=EGRESS))
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"SPF good\.check\.example: FAIL: 127\.0\.0\.2 gets none")
        self.assertRegex(out, r'publish: good\.check\.example\. IN TXT "v=spf1 ')

    def test_without_egress_ips_spf_is_skipped(self):
        rc, out, err = self.run_cmd("dns-check", "-c", self.config(["good"]))
        self.assertEqual(rc, 0, out + err)
        self.assertIn("SPF good.check.example: skipped", out)


class SpfCommandTest(CliCase):
    def spf(self, ip, mail_from, helo=None, resolver=None, timeout="5s"):
        args = ["spf", "--ip", ip, "--mail-from", mail_from,
                "-c", self.config(resolver=resolver, timeout=timeout)]
        if helo:
            args += ["--helo", helo]
        rc, out, err = self.run_cmd(*args)
        fields = {}
        for line in out.splitlines():
            k, sep, v = line.partition(": ")
            if sep and k in ("result", "summary", "identity", "record", "explanation", "problem",
                             "decided by", "lookups"):
                fields[k] = v
        trace = out.split("trace:\n", 1)[1] if "trace:\n" in out else ""
        return rc, fields, trace, out + err

    def test_pass(self):
        rc, f, trace, out = self.spf("127.0.0.2", "a@mixed.check.example")
        self.assertEqual(rc, 0, out)
        self.assertEqual(f["result"], "pass")
        self.assertIn("ip4:127.0.0.2", f["decided by"])
        self.assertIn("v=spf1 ip4:127.0.0.2", f["record"])
        self.assertIn("TXT mixed.check.example", trace)

    def test_include_chain_is_traced(self):
        rc, f, trace, out = self.spf("127.0.0.3", "a@mixed.check.example")
        self.assertEqual(rc, 0, out)
        self.assertEqual(f["result"], "pass")
        self.assertIn("include:chain1.check.example", f["decided by"])
        for q in ("TXT mixed.check.example", "TXT chain1.check.example",
                  "TXT chain2.check.example", "A host.chain2.check.example"):
            self.assertIn(q, trace, out)
        self.assertTrue(f["lookups"].startswith("3 DNS-querying terms"), f["lookups"])

    def test_fail_prints_the_explanation(self):
        rc, f, trace, out = self.spf("127.0.0.6", "a@mixed.check.example")
        self.assertEqual(rc, 1, out)
        self.assertEqual(f["result"], "fail")
        self.assertEqual(f["explanation"], "127.0.0.6 is not a mail server of mixed.check.example")
        self.assertIn("TXT exp.check.example", trace)

    def test_softfail(self):
        rc, f, _, out = self.spf("127.0.0.4", "a@mixed.check.example")
        self.assertEqual((rc, f["result"]), (1, "softfail"), out)

    def test_eleven_includes_permerror(self):
        rc, f, trace, out = self.spf("127.0.0.2", "a@eleven.check.example")
        self.assertEqual((rc, f["result"]), (1, "permerror"), out)
        self.assertIn("more than 10 DNS-querying terms", f["problem"])
        self.assertNotIn("t11.check.example ->", trace)

    def test_void_lookups_permerror(self):
        rc, f, trace, out = self.spf("127.0.0.2", "a@void3.check.example")
        self.assertEqual((rc, f["result"]), (1, "permerror"), out)
        self.assertIn("void", f["problem"])
        self.assertIn("nxdomain", trace)

    def test_null_sender_checks_the_helo_identity(self):
        rc, f, _, out = self.spf("127.0.0.2", "", helo="helo.check.example")
        self.assertEqual((rc, f["result"]), (0, "pass"), out)
        self.assertIn("postmaster@helo.check.example", f["identity"])

    def test_ipv6(self):
        rc, f, _, out = self.spf("2001:db8::25", "a@v6.check.example")
        self.assertEqual((rc, f["result"]), (0, "pass"), out)

    def test_server_that_never_answers_gives_temperror_within_the_timeout(self):
        silent = SilentDns().start()
        self.addCleanup(silent.stop)
        start = time.monotonic()
        rc, f, trace, out = self.spf("127.0.0.2", "a@mixed.check.example",
                                     resolver=silent.resolver, timeout="1s")
        elapsed = time.monotonic() - start
        print("\nstampd spf against a silent server ([dns] timeout 1s): temperror in %.3fs"
              % elapsed)
        self.assertEqual((rc, f["result"]), (1, "temperror"), out)
        self.assertIn("timeout", trace)
        self.assertLess(elapsed, 3.0)


class DaemonKeyWatchTest(StampdTestCase):
    """The running daemon checks each key's record as dns-check does, at
    start and after SIGHUP ([dkim] dns_check_interval for the rest): the
    stampd_dkim_key_dns_state gauge is 1 for each key's state, and each key
    whose record is not right gets an event=dkim-key-dns warning naming it."""

    STATES = {"good": "matches", "rsa": "matches", "wrong": "other-key", "missing": "missing",
              "revoked": "revoked", "malformed": "malformed", "several": "several",
              "truncated": "truncated", "shorter": "truncated"}

    def test_states_on_metrics_and_in_the_log(self):
        keys = list(self.STATES)
        sections = {"dkim": {"key": [{"name": n, "domain": "%s.check.example" % n, "selector": "s1",
                                      "private_key": os.path.join(_keys, n, "s1.private")} for n in keys],
                             "sign": [{"from": "*@good.check.example", "keys": ["good"]}]},
                    "dns": {"resolvers": [_dns.resolver], "timeout": "5s"},
                    "metrics": {"listen": "127.0.0.1:0"}}
        stampd = self.start_stampd(["127.0.0.1:9"], sections=sections)
        warned = len(self.STATES) - 2
        events = stampd.wait_for_event("dkim-key-dns", count=warned, timeout=20)
        by_domain = {e["domain"]: e for e in events}
        for name, state in self.STATES.items():
            domain = "%s.check.example" % name
            if state == "matches":
                self.assertNotIn(domain, by_domain)
            else:
                self.assertEqual((by_domain[domain]["state"], by_domain[domain]["level"]), (state, "warning"))
        page = scrape(stampd)
        for name, state in self.STATES.items():
            domain = "%s.check.example" % name
            with self.subTest(key=name):
                self.assertEqual(page.value("stampd_dkim_key_dns_state", domain=domain, selector="s1",
                                            state=state), 1, page.series("stampd_dkim_key_dns_state"))
                self.assertEqual(page.value("stampd_dkim_key_dns_state", domain=domain, selector="s1"), 1)
        # A reload checks again at once (one more TXT query per key); nothing
        # changed, so nothing more is logged.
        queries = page.value("stampd_dns_queries_total", type="TXT")
        self.assertEqual(queries, len(self.STATES), page.series("stampd_dns_queries_total"))
        stampd.proc.send_signal(signal.SIGHUP)
        stampd.wait_for_event("reloaded")
        deadline = time.monotonic() + 10
        while scrape(stampd).value("stampd_dns_queries_total", type="TXT") < 2 * queries:
            self.assertLess(time.monotonic(), deadline, "no second check after SIGHUP")
            time.sleep(0.1)
        self.assertEqual(len(stampd.events("dkim-key-dns")), warned)


if __name__ == "__main__":
    test_main.main()
