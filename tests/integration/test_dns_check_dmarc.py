"""`stampd dns-check`'s DMARC and ADSP lines against a real DNS server.

One `unbound -d` on loopback (Debian's; see unbound_server.py) serves the
zones dmarc.example, org.example and thirdparty.example. Each test writes a
config with one key (from `stampd genkey`, its DKIM record published so the
DKIM line is ok) and one signing rule for a From domain, runs dns-check and
reads the lines for that domain. What is shown:

* no _dmarc record: a warning with the first record to publish (exit 0);
  publishing exactly that record makes the line ok;
* a good record: parsed (policy, alignment modes, pct, rua), DKIM aligned
  under adkim=s, SPF aligned for the egress address, exit 0;
* misaligned d=: a key of another organization, and a subdomain key under
  adkim=s, FAIL with exit 1; the same subdomain key under adkim=r is ok;
* broken records (unknown p=, pct=150, a rua that is not a URI, v=DMARC1 not
  first) FAIL, each error named;
* two DMARC records FAIL as such;
* a subdomain without its own record gets the organizational domain's
  (sp= applied);
* report addresses in another organization: one that published the
  authorization record (RFC 7489 §7.1) is ok, one that did not is a
  warning that its reports will not be sent;
* an ADSP record is reported as historic, with the advice to remove it.
"""
import os
import re
import shutil
import tempfile
import unittest

from stampd_harness import make_key, render_toml, run_cli
from unbound_server import UnboundServer, find_unbound, zone_line_txt
import test_main

ZONES = ["dmarc.example", "org.example", "thirdparty.example"]

# key name -> (key domain d=, From domain of its rule)
KEYS = {
    "none": ("none.dmarc.example", "none.dmarc.example"),
    "good": ("good.dmarc.example", "good.dmarc.example"),
    "third": ("thirdparty.example", "mis.dmarc.example"),
    "strict": ("mail.strict.dmarc.example", "strict.dmarc.example"),
    "relaxed": ("mail.relaxed.dmarc.example", "relaxed.dmarc.example"),
    "broken": ("broken.dmarc.example", "broken.dmarc.example"),
    "badpct": ("badpct.dmarc.example", "badpct.dmarc.example"),
    "badrua": ("badrua.dmarc.example", "badrua.dmarc.example"),
    "notfirst": ("notfirst.dmarc.example", "notfirst.dmarc.example"),
    "two": ("two.dmarc.example", "two.dmarc.example"),
    "adsp": ("adsp.dmarc.example", "adsp.dmarc.example"),
    "sub": ("mail.org.example", "mail.org.example"),
    "ext": ("ext.dmarc.example", "ext.dmarc.example"),
}

DMARC = [
    ("_dmarc.good.dmarc.example", "TXT",
     "v=DMARC1; p=reject; adkim=s; aspf=s; pct=100; rua=mailto:agg@good.dmarc.example"),
    ("good.dmarc.example", "TXT", "v=spf1 ip4:127.0.0.2 -all"),
    ("_dmarc.mis.dmarc.example", "TXT", "v=DMARC1; p=reject"),
    ("_dmarc.strict.dmarc.example", "TXT", "v=DMARC1; p=quarantine; adkim=s"),
    ("_dmarc.relaxed.dmarc.example", "TXT", "v=DMARC1; p=quarantine; adkim=r"),
    ("_dmarc.broken.dmarc.example", "TXT", "v=DMARC1; p=block"),
    ("_dmarc.badpct.dmarc.example", "TXT", "v=DMARC1; p=none; pct=150"),
    ("_dmarc.badrua.dmarc.example", "TXT", "v=DMARC1; p=none; rua=reports@badrua.dmarc.example"),
    ("_dmarc.notfirst.dmarc.example", "TXT", "p=none; v=DMARC1"),
    ("_dmarc.two.dmarc.example", "TXT", "v=DMARC1; p=none"),
    ("_dmarc.two.dmarc.example", "TXT", "v=DMARC1; p=reject"),
    ("_adsp._domainkey.adsp.dmarc.example", "TXT", "dkim=all"),
    ("_dmarc.ext.dmarc.example", "TXT",
     "v=DMARC1; p=none; rua=mailto:r@thirdparty.example,mailto:agg@reports.org.example!10m"),
    ("ext.dmarc.example._report._dmarc.reports.org.example", "TXT", "v=DMARC1"),
    ("_dmarc.org.example", "TXT", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@org.example"),
]

_dns = None
_keys = None


def setUpModule():
    global _dns, _keys
    if find_unbound() is None:
        raise unittest.SkipTest("unbound is not installed (Debian package unbound)")
    _keys = tempfile.mkdtemp(prefix="stampd-dmarc-")
    try:
        for name, (domain, _) in KEYS.items():
            make_key(os.path.join(_keys, name), domain, "s1", "ed25519")
        _dns = UnboundServer(zones=ZONES, records=records())
        _dns.start()
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if _dns is not None:
        _dns.stop()
    if _keys:
        shutil.rmtree(_keys, ignore_errors=True)


def records():
    out = list(DMARC)
    for name in KEYS:
        with open(os.path.join(_keys, name, "s1.txt")) as f:
            owner, value = zone_line_txt(f.read())
        out.append((owner, "TXT", value))
    return out


class DmarcCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stampd-dmarc-cli-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def dns_check(self, key, egress=()):
        """dns_check runs dns-check with key's config; returns (rc, out, the
        lines about its From domain, continuation lines included)."""
        domain, from_domain = KEYS[key]
        sections = {"server": {"listen": ["127.0.0.1:0"]},
                    "dkim": {"key": [{"name": key, "domain": domain, "selector": "s1",
                                      "private_key": os.path.join(_keys, key, "s1.private")}],
                             "sign": [{"from": "*@" + from_domain, "keys": [key]}]},
                    "spf": {"egress_ips": list(egress)},
                    "dns": {"resolvers": [_dns.resolver], "timeout": "5s"}}
        path = os.path.join(self.dir, "stampd.toml")
        with open(path, "w") as f:
            f.write(render_toml(sections))
        r = run_cli("dns-check", "-c", path)
        out = r.stdout.decode()
        mine, keep = [], False
        for line in out.splitlines():
            if line.startswith("    "):
                if keep:
                    mine[-1] += "\n" + line
                continue
            keep = (line.startswith("DMARC %s " % from_domain)
                    or line.startswith("ADSP %s " % from_domain))
            if keep:
                mine.append(line)
        print("\n--- dns-check %s (exit %d):\n%s" % (key, r.returncode, "\n".join(mine)))
        self.assertIn("DKIM %s " % key, out, out + r.stderr.decode())
        self.assertRegex(out, r"DKIM %s \(.*\): ok" % key)
        return r.returncode, out, mine

    def line(self, lines, what):
        found = [l for l in lines if what in l.split(": ", 1)[0]]
        self.assertEqual(len(found), 1, "%r in %s" % (what, lines))
        return found[0]


class NoRecordTest(DmarcCase):
    def test_suggestion_then_published(self):
        self.addCleanup(_dns.set_records, records())
        rc, out, lines = self.dns_check("none")
        self.assertEqual(rc, 0, out)
        rec = self.line(lines, "(_dmarc.none.dmarc.example)")
        self.assertIn("warn: no DMARC record", rec)
        expected = "v=DMARC1; p=none; rua=mailto:dmarc-reports@none.dmarc.example"
        self.assertIn('_dmarc.none.dmarc.example. IN TXT "%s"' % expected, rec)
        self.assertIn("ok: none d=none.dmarc.example aligns", self.line(lines, "DKIM alignment"))
        # Publish exactly what it says.
        _dns.add_records([("_dmarc.none.dmarc.example", "TXT", expected)])
        rc, out, lines = self.dns_check("none")
        self.assertEqual(rc, 0, out)
        rec = self.line(lines, "(_dmarc.none.dmarc.example)")
        self.assertIn("ok: p=none, adkim relaxed, aspf relaxed, pct 100, reports to "
                      "mailto:dmarc-reports@none.dmarc.example", rec)


class AlignmentTest(DmarcCase):
    def test_good_record_aligned(self):
        rc, out, lines = self.dns_check("good", egress=["127.0.0.2"])
        self.assertEqual(rc, 0, out)
        self.assertIn("dns-check: everything matches", out)
        self.assertIn("ok: p=reject, adkim strict, aspf strict, pct 100, reports to "
                      "mailto:agg@good.dmarc.example", self.line(lines, "(_dmarc.good"))
        self.assertIn("ok: good d=good.dmarc.example aligns with From good.dmarc.example "
                      "(adkim strict)", self.line(lines, "DKIM alignment"))
        self.assertIn("ok: every egress address passes SPF for good.dmarc.example",
                      self.line(lines, "SPF alignment"))

    def test_spf_not_passing_is_named(self):
        rc, out, lines = self.dns_check("good", egress=["127.0.0.2", "198.51.100.7"])
        self.assertEqual(rc, 1, out)  # the SPF line fails
        self.assertIn("warn: not every egress address passes SPF",
                      self.line(lines, "SPF alignment"))
        self.assertIn("ok: good d=good.dmarc.example aligns", self.line(lines, "DKIM alignment"))

    def test_other_organization_d_is_misaligned(self):
        rc, out, lines = self.dns_check("third")
        self.assertEqual(rc, 1, out)
        self.assertIn("dns-check: problems found", out)
        self.assertIn("ok: p=reject", self.line(lines, "(_dmarc.mis.dmarc.example)"))
        dkim = self.line(lines, "DKIM alignment")
        self.assertIn("FAIL: third d=thirdparty.example does not align with From "
                      "mis.dmarc.example (adkim relaxed)", dkim)
        self.assertIn("with a key whose d= is under dmarc.example", dkim)

    def test_subdomain_d_under_strict_is_misaligned(self):
        rc, out, lines = self.dns_check("strict")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: strict d=mail.strict.dmarc.example does not align with From "
                      "strict.dmarc.example (adkim strict)", self.line(lines, "DKIM alignment"))

    def test_subdomain_d_under_relaxed_aligns(self):
        rc, out, lines = self.dns_check("relaxed")
        self.assertEqual(rc, 0, out)
        self.assertIn("ok: relaxed d=mail.relaxed.dmarc.example aligns with From "
                      "relaxed.dmarc.example (adkim relaxed)", self.line(lines, "DKIM alignment"))

    def test_subdomain_inherits_the_organizational_record(self):
        rc, out, lines = self.dns_check("sub")
        self.assertEqual(rc, 0, out)
        rec = self.line(lines, "(_dmarc.mail.org.example)")
        self.assertIn("the organizational domain's _dmarc.org.example applies: ok: p=reject, "
                      "sp=quarantine", rec)


class ReportDestinationTest(DmarcCase):
    def test_external_report_addresses_need_their_consent(self):
        rc, out, lines = self.dns_check("ext")
        self.assertEqual(rc, 0, out)  # warnings only
        ok = self.line(lines, "reports to mailto:agg@reports.org.example!10m")
        self.assertIn("ok: ext.dmarc.example._report._dmarc.reports.org.example accepts them", ok)
        lost = self.line(lines, "reports to mailto:r@thirdparty.example")
        self.assertIn("warn: receivers will not send them: thirdparty.example has not published "
                      'ext.dmarc.example._report._dmarc.thirdparty.example IN TXT "v=DMARC1"', lost)

    def test_own_report_address_needs_no_consent(self):
        _, out, lines = self.dns_check("good")
        self.assertFalse([l for l in lines if "reports to mailto" in l.split(": ", 1)[0]], lines)


class BrokenRecordTest(DmarcCase):
    def broken(self, key, error):
        rc, out, lines = self.dns_check(key)
        self.assertEqual(rc, 1, out)
        rec = self.line(lines, "(_dmarc.%s)" % KEYS[key][1])
        self.assertIn("FAIL: ", rec)
        self.assertIn(error, rec)
        return rec

    def test_unknown_policy(self):
        self.broken("broken", "the record is broken: unknown policy p=block")

    def test_bad_pct(self):
        self.broken("badpct", "pct=150 is not an integer from 0 to 100")

    def test_bad_rua(self):
        self.broken("badrua", 'bad rua URI: "reports@badrua.dmarc.example" is not a URI')

    def test_version_not_first(self):
        rec = self.broken("notfirst", "does not start with v=DMARC1, so receivers discard it")
        # Receivers then look at dmarc.example, which has none: the suggestion.
        self.assertIn('IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@notfirst', rec)

    def test_two_records(self):
        self.broken("two", "2 DMARC records at _dmarc.two.dmarc.example")


class AdspTest(DmarcCase):
    def test_adsp_is_historic(self):
        rc, out, lines = self.dns_check("adsp")
        self.assertEqual(rc, 0, out)  # harmless, a warning
        adsp = self.line(lines, "ADSP adsp.dmarc.example")
        self.assertIn('warn: "dkim=all" is an ADSP record', adsp)
        self.assertIn("Historic in 2013", adsp)
        self.assertIn("remove it", adsp)

    def test_no_adsp_line_without_a_record(self):
        _, out, _ = self.dns_check("good")
        self.assertNotIn("ADSP ", out)


if __name__ == "__main__":
    test_main.main()
