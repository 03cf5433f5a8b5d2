"""DKIM signing in the running proxy (issue 3), end to end: the real stampd
on port 0 in front of the fake upstream, keys made at test time with
`stampd genkey` (and openssl for a weak 1024-bit one), every signature the
upstream receives checked with python3-dkim (dkimpy) offline.

* Eligibility: the rule is chosen by the From: address (exact address,
  `*@domain`, `*@*.domain` = subdomains only, first match wins in file
  order); several keys give several signatures; a rule can sign with our
  domain and a relay domain at once (i= only where d= covers it). No From,
  two From fields, a From with two addresses, a domain without a rule: relayed
  unsigned, `dkim=unsigned dkim_reason=...` on the event=message line.
* Fail closed: a rule whose key is unusable (mode 0644 without
  allow_group_readable_keys, a missing file) gives 451 4.7.5, the upstream
  gets no DATA, stampd_dkim_failures_total grows; with on_error =
  "send-unsigned" the mail is relayed unsigned; check-config exits 1 naming
  the key.
* The OpenDKIM import: KeyTable and refile: SigningTable as the classic
  Postfix+OpenDKIM how-tos write them (opendkim.conf's `refile:` and `file:`
  prefixes included).
* Received-SPF (ours, with [spf] mode = "tag" against a fake DNS server, and a
  client's) is never in h=, even if sign_headers/oversign_headers name it.
* Header names in odd case; the signature folded to <= 78 columns; x= only
  with signature_lifetime.
* The commands: genkey (S.private mode 0600, S.txt a zone-file line of
  <= 255-byte strings whose key is the private key's), sign -c (dkimpy
  verifies), verify with --key-file and with -c over DNS (pass/fail lines,
  exit codes 0/1/2); a weak key is warned about by check-config and run.
"""
import base64
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

import dkim_verifiers as V
from fake_upstream import FakeUpstream
from stampd_harness import StampdTestCase, check_config, make_key, render_toml, run_cli
import test_main

try:
    import dkim  # python3-dkim
except ImportError:  # pragma: no cover
    dkim = None

KEYS = None  # module-wide keys: {name: Key}


class Key:
    def __init__(self, name, domain, selector, path, txt_path):
        self.name, self.domain, self.selector = name, domain, selector
        self.path, self.txt_path = path, txt_path
        with open(txt_path) as f:
            self.zone_line = f.read().strip()
        self.record = V.records_for([self.zone_line])

    def toml(self, **extra):
        d = {"name": self.name, "domain": self.domain, "selector": self.selector, "private_key": self.path}
        d.update(extra)
        return d


def genkey(directory, name, domain, selector, algorithm="rsa-2048"):
    return Key(name, domain, selector, *make_key(os.path.join(directory, name), domain, selector, algorithm))


def setUpModule():
    global KEYS, KEYDIR
    KEYDIR = tempfile.mkdtemp(prefix="stampd-dkim-proxy-keys-")
    specs = [
        ("alice", "example.com", "alice", "rsa-2048"),
        ("ex-rsa", "example.com", "rsa2026", "rsa-2048"),
        ("ex-ed", "example.com", "ed2026", "ed25519"),
        ("sub", "example.com", "sub2026", "ed25519"),
        ("first", "example.net", "first", "ed25519"),
        ("second", "example.net", "second", "ed25519"),
        ("customer", "customer.example", "cust", "ed25519"),
        ("relay", "relay.example.org", "relay", "rsa-2048"),
    ]
    KEYS = {s[0]: genkey(KEYDIR, *s) for s in specs}


def tearDownModule():
    shutil.rmtree(KEYDIR, ignore_errors=True)


def all_records():
    out = {}
    for k in KEYS.values():
        out.update(k.record)
    return out


def dkimpy_results(message, records=None):
    """[(status, tags)] per DKIM-Signature, dkimpy's verdict with the given records."""
    if dkim is None:
        raise unittest.SkipTest("python3-dkim is not installed")
    return [(r.status, t) for r, t in zip(V.verify("dkimpy", message, records or all_records()),
                                          V.signatures(message))]


def signature_fields(message):
    fields = V.header_fields(message.split(b"\r\n\r\n", 1)[0])
    return [f for f in fields if f.lower().startswith(b"dkim-signature:")]


def h_names(tags):
    return [n.strip().lower() for n in tags["h"].split(":")]


def http_get(address, path):
    import http.client
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def metric_sum(text, family, **labels):
    """metric_sum adds the samples of family whose labels include labels."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?\s+(\S+)", line)
        if not m or m.group(1) != family:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


class DkimProxyCase(StampdTestCase):
    def setUp(self):
        if dkim is None:
            self.skipTest("python3-dkim is not installed")
        self.up = self.start_upstream(capabilities=FakeUpstream.FULL)

    def start_signing(self, dkim_section, extra=None, files=None):
        sections = {"dkim": dkim_section}
        sections.update(extra or {})
        return self.start_stampd([self.up.address], sections=sections, files=files)

    def send(self, stampd, messages, sender="envelope@example.com"):
        """send relays each message in one session; returns the replies."""
        logged = len(stampd.messages())
        c = self.connect(stampd)
        self.assertEqual(c.ehlo().code, 250)
        replies = []
        for i, m in enumerate(messages):
            replies.append(c.send_mail(sender, ["rcpt%d@example.net" % i], m, mail_params="BODY=8BITMIME"))
        c.quit()
        stampd.wait_for_event("message", count=logged + len(messages))
        return replies

    def relay(self, stampd, messages):
        """relay sends messages that must all be relayed; returns what the upstream got, in order."""
        before = len(self.up.messages)
        replies = self.send(stampd, messages)
        for r in replies:
            self.assertEqual(r.code, 250, r)
        self.up.wait_for_messages(before + len(messages))
        return [t.content for t in self.up.messages[before:before + len(messages)]]


def msg(from_header, subject="test", extra=(), body=b"Hello.\r\n", from_line=None):
    """A small message with one From line (or none when from_header is None)."""
    lines = []
    if from_header is not None:
        lines.append(from_line or ("From: " + from_header))
    lines += ["To: <rcpt@example.net>", "Subject: " + subject, "Date: Thu, 01 Jan 2026 00:00:00 +0000",
              "Message-ID: <%s.%d@test.example>" % (re.sub(r"\W", "-", subject), time.time_ns())]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ============================================================== eligibility

class EligibilityTest(DkimProxyCase):
    def setUp(self):
        super().setUp()
        k = KEYS
        self.stampd = self.start_signing({
            "signature_lifetime": "7d",
            "key": [k[n].toml() for n in ("alice", "ex-rsa", "ex-ed", "sub", "first", "second",
                                           "customer", "relay")],
            "sign": [
                {"from": "alice@example.com", "keys": ["alice"]},
                {"from": "*@example.com", "keys": ["ex-rsa", "ex-ed"]},
                {"from": "*@*.example.com", "keys": ["sub"]},
                # Order decides, not specificity: bob@example.net never reaches "second".
                {"from": "*@example.net", "keys": ["first"]},
                {"from": "bob@example.net", "keys": ["second"]},
                # Our customer's domain plus the relay's own domain; i= only where d= covers it.
                {"from": "*@customer.example", "keys": ["customer", "relay"], "identity": "@%"},
            ],
        })

    def selectors(self, message):
        results = dkimpy_results(message)
        for status, tags in results:
            self.assertEqual(status, "pass", tags)
        return [(t["d"], t["s"]) for _, t in results]

    def test_rules_pick_keys_by_from_address(self):
        cases = [
            ("<alice@example.com>", [("example.com", "alice")]),          # exact address, first rule
            ("Alice <ALICE@Example.COM>", [("example.com", "alice")]),     # case-insensitive
            ("<carol@example.com>", [("example.com", "rsa2026"), ("example.com", "ed2026")]),
            ("<dave@mail.example.com>", [("example.com", "sub2026")]),     # *@*.example.com
            ("<eve@a.b.example.com>", [("example.com", "sub2026")]),
            ("<bob@example.net>", [("example.net", "first")]),              # first match wins
            ("<x@customer.example>", [("customer.example", "cust"), ("relay.example.org", "relay")]),
        ]
        got = self.relay(self.stampd, [msg(f, subject="rule %d" % i) for i, (f, _) in enumerate(cases)])
        for (from_header, want), message in zip(cases, got):
            with self.subTest(from_header=from_header):
                self.assertEqual(self.selectors(message), want)
        logged = self.stampd.messages(dkim="signed")
        self.assertEqual(len(logged), len(cases))
        self.assertEqual(logged[2]["dkim_keys"], "example.com:rsa2026,example.com:ed2026")

    def test_identity_only_where_the_domain_covers_it(self):
        [message] = self.relay(self.stampd, [msg("<x@customer.example>")])
        tags = {t["d"]: t for _, t in dkimpy_results(message)}
        self.assertEqual(tags["customer.example"].get("i"), "@customer.example")
        self.assertNotIn("i", tags["relay.example.org"])

    def test_subdomain_rule_does_not_cover_lookalikes(self):
        # *@*.example.com is subdomains only; *@example.com is that domain
        # only: neither covers notexample.com or example.com.evil.
        got = self.relay(self.stampd, [msg("<m@notexample.com>"), msg("<m@example.com.evil>"),
                                       msg("<m@sub.example.net>")])
        for message in got:
            self.assertEqual(signature_fields(message), [])
        reasons = [e["dkim_reason"] for e in self.stampd.messages(dkim="unsigned")]
        self.assertEqual(len(reasons), 3)
        for domain, reason in zip(("notexample.com", "example.com.evil", "sub.example.net"), reasons):
            self.assertIn("no signing rule", reason)
            self.assertIn(domain, reason)

    def test_unsignable_from_is_relayed_unsigned_with_the_reason(self):
        cases = [
            ("no From", msg(None), "no from field"),
            ("two From fields", msg("<a@example.com>", extra=["From: <b@example.com>"]), "more than one from"),
            ("two addresses", msg("<a@example.com>, <b@example.com>"), "2 addresses"),
            ("group syntax", msg("friends: <a@example.com>, <b@example.com>;"), "2 addresses"),
            ("no rule", msg("<someone@elsewhere.example>"), "no signing rule for the from domain elsewhere.example"),
            ("malformed header", b"From: <a@example.com>\r\nnot a header line\r\nSubject: x\r\n\r\nbody\r\n",
             "malformed header"),
        ]
        sent = [m for _, m, _ in cases]
        got = self.relay(self.stampd, sent)
        events = self.stampd.messages()[-len(cases):]
        for (label, original, needle), message, ev in zip(cases, got, events):
            with self.subTest(case=label):
                self.assertEqual(message, original, "relayed exactly, nothing added")
                self.assertEqual(ev["outcome"], "relayed")
                self.assertEqual(ev.get("dkim"), "unsigned", ev)
                self.assertTrue(ev.get("dkim_reason"), ev)
                self.assertIn(needle, ev["dkim_reason"].lower(), ev)

    def test_odd_case_names_folding_and_expiry(self):
        long_subject = "A subject that is long enough " * 6
        message = (b"fROM: Alice <alice@example.com>\r\n"
                   b"tO: Bob <bob@example.net>\r\n"
                   b"SUBJECT: " + long_subject.encode() + b"\r\n"
                   b"date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
                   b"MESSAGE-id: <odd-case@test.example>\r\n"
                   b"content-TYPE: text/plain; charset=utf-8\r\n"
                   b"\r\nbody\r\n")
        [got] = self.relay(self.stampd, [message])
        self.assertTrue(got.endswith(message))
        [(status, tags)] = dkimpy_results(got)
        self.assertEqual(status, "pass")
        for name in ("from", "to", "subject", "date", "message-id", "content-type"):
            self.assertIn(name, h_names(tags))
        # From is always oversigned: one more "from" than there are From fields.
        self.assertEqual(h_names(tags).count("from"), 2)
        for field in signature_fields(got):
            for line in field.split(b"\r\n"):
                self.assertLessEqual(len(line), 78, line)
            self.assertGreater(field.count(b"\r\n"), 2, "folded")
        # signature_lifetime = 7d: x= = t= + 7 days.
        self.assertEqual(int(tags["x"]) - int(tags["t"]), 7 * 86400)
        self.assertLess(abs(int(tags["t"]) - time.time()), 120)
        # Tampering with the odd-case Subject breaks it.
        bad = got.replace(b"SUBJECT: A subject", b"SUBJECT: A Subject")
        self.assertEqual(dkimpy_results(bad)[0][0], "fail")


# ============================================================== reload

class ReloadTest(DkimProxyCase):
    def test_sighup_keeps_the_keys_when_the_new_ones_are_broken(self):
        import signal
        d = tempfile.mkdtemp(prefix="stampd-dkim-reload-")
        self.addCleanup(shutil.rmtree, d, True)
        old = genkey(d, "old", "example.com", "old2026", "ed25519")
        new = genkey(d, "new", "example.com", "new2026", "ed25519")
        rule = [{"from": "*@example.com", "keys": ["k"]}]
        s = self.start_signing({"key": [old.toml(name="k")], "sign": rule})
        records = dict(old.record, **new.record)

        def rewrite(key_toml):
            sections = dict(s.sections)
            sections["dkim"] = {"key": [key_toml], "sign": rule}
            with open(s.config_path, "w") as f:
                f.write(render_toml(sections))
            s.proc.send_signal(signal.SIGHUP)

        def selector_now():
            [got] = self.relay(s, [msg("<a@example.com>")])
            [(status, tags)] = dkimpy_results(got, records)
            self.assertEqual(status, "pass")
            return tags["s"]

        self.assertEqual(selector_now(), "old2026")
        os.chmod(new.path, 0o640)  # unusable: a reload must refuse it and keep the old key
        rewrite(new.toml(name="k"))
        ev = s.wait_for_event("reload-failed")[0]
        self.assertIn(new.path, ev["error"])
        self.assertEqual(selector_now(), "old2026")
        os.chmod(new.path, 0o600)
        rewrite(new.toml(name="k"))
        s.wait_for_event("reloaded")
        self.assertEqual(selector_now(), "new2026")


# ============================================================== fail-closed

class FailClosedTest(DkimProxyCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="stampd-dkim-failclosed-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        good = KEYS["ex-ed"]
        loose = genkey(self.dir, "loose", "example.org", "loose")
        os.chmod(loose.path, 0o644)
        self.loose = loose
        self.missing = os.path.join(self.dir, "nowhere", "gone.private")
        self.config = {
            "key": [good.toml(name="good", domain="good.example"),
                    {"name": "loose", "domain": "example.org", "selector": "loose", "private_key": loose.path},
                    {"name": "missing", "domain": "example.org", "selector": "gone", "private_key": self.missing}],
            "sign": [
                {"from": "*@closed.example", "keys": ["loose"]},
                {"from": "*@missing.example", "keys": ["missing"]},
                {"from": "*@mixed.example", "keys": ["good", "missing"]},
                {"from": "*@open.example", "keys": ["loose"], "on_error": "send-unsigned"},
                {"from": "*@good.example", "keys": ["good"]},
            ],
        }
        self.stampd = self.start_signing(self.config, extra={"metrics": {"listen": "127.0.0.1:0"}})
        ev = self.stampd.wait_for_event("metrics-listening")[0]
        self.metrics = ev["address"]

    def failures(self):
        status, text = http_get(self.metrics, "/metrics")
        self.assertEqual(status, 200)
        return metric_sum(text, "stampd_dkim_failures_total")

    def test_start_up_logs_the_unusable_keys(self):
        broken = [e["detail"] for e in self.stampd.events("dkim-key-unusable")]
        self.assertEqual(len(broken), 2, broken)
        self.assertTrue(any("loose" in b and self.loose.path in b for b in broken), broken)
        self.assertTrue(any("missing" in b for b in broken), broken)

    def test_unusable_key_gives_451_and_nothing_upstream(self):
        for domain in ("closed.example", "missing.example", "mixed.example"):
            with self.subTest(domain=domain):
                before = self.failures()
                [r] = self.send(self.stampd, [msg("<a@%s>" % domain)])
                self.assertEqual((r.code, r.enhanced), (451, "4.7.5"), r)
                self.assertEqual(self.failures(), before + 1)
                ev = self.stampd.messages()[-1]
                self.assertEqual(ev["outcome"], "tempfailed")
                self.assertEqual(ev.get("dkim"), "failed", ev)
        self.assertEqual(self.up.messages, [])
        self.assertFalse(any(t.data_started for t in self.up.transactions), self.up.all_commands())

    def test_session_goes_on_after_a_tempfail(self):
        # The refused transaction leaves nothing behind: the next one in the
        # same session is signed and relayed, and only it reaches DATA upstream.
        r1, r2 = self.send(self.stampd, [msg("<a@closed.example>"), msg("<b@good.example>")])
        self.assertEqual((r1.code, r2.code), (451, 250))
        self.up.wait_for_messages(1)
        self.assertEqual([t.mail_from for t in self.up.transactions if t.data_started], ["envelope@example.com"])
        self.assertEqual([(t["d"], t["s"]) for t in V.signatures(self.up.messages[0].content)],
                         [("good.example", "ed2026")])

    def test_send_unsigned_rule_relays_unsigned(self):
        before = self.failures()
        original = msg("<a@open.example>")
        [got] = self.relay(self.stampd, [original])
        self.assertEqual(got, original)
        ev = self.stampd.messages()[-1]
        self.assertEqual(ev.get("dkim"), "unsigned", ev)
        self.assertIn("send-unsigned", ev.get("dkim_reason", ""))
        self.assertEqual(self.failures(), before + 1)

    def test_usable_rule_still_signs_and_no_expiry_by_default(self):
        [got] = self.relay(self.stampd, [msg("<a@good.example>")])
        [(status, tags)] = dkimpy_results(got, {"ed2026._domainkey.good.example": KEYS["ex-ed"].record[
            "ed2026._domainkey.example.com"]})
        self.assertEqual(status, "pass")
        self.assertNotIn("x", tags)

    def check_config_of(self, config):
        text = render_toml({"server": {"listen": ["127.0.0.1:0"]}, "upstream": {"servers": [self.up.address]},
                            "dkim": config})
        rc, out, err, _ = check_config(text)
        return rc, err

    def test_check_config_refuses_the_unusable_keys(self):
        loose_only = {"key": [self.config["key"][1]], "sign": [self.config["sign"][0]]}
        rc, err = self.check_config_of(loose_only)
        self.assertEqual(rc, 1, err)
        self.assertIn("loose", err)
        self.assertIn(self.loose.path, err)
        self.assertRegex(err.lower(), r"group|others|mode|permission")
        self.assertRegex(err, r"stampd\.toml:\d+")
        missing_only = {"key": [self.config["key"][2]], "sign": [self.config["sign"][1]]}
        rc, err = self.check_config_of(missing_only)
        self.assertEqual(rc, 1, err)
        self.assertIn(self.missing, err)
        # allow_group_readable_keys accepts the 0644 file.
        rc, err = self.check_config_of(dict(loose_only, allow_group_readable_keys=True))
        self.assertEqual(rc, 0, err)


# ============================================================== must-sign

class MustSignTest(DkimProxyCase):
    """[dkim] must_sign: a listed From domain is tempfailed (451 4.7.0) when
    its mail would leave unsigned (no rule, an unusable key under a
    send-unsigned rule); "*.d" covers d's subdomains only; other domains
    keep their behaviour."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="stampd-dkim-mustsign-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        loose = genkey(self.dir, "loose", "example.org", "loose")
        os.chmod(loose.path, 0o644)  # unusable: group and others may read it
        good = KEYS["ex-ed"]
        self.stampd = self.start_signing({
            "must_sign": ["example.com", "Norule.Example", "*.corp.example", "open.example"],
            "key": [good.toml(name="good"),
                    {"name": "loose", "domain": "example.org", "selector": "loose", "private_key": loose.path}],
            "sign": [{"from": "*@example.com", "keys": ["good"]},
                     {"from": "*@open.example", "keys": ["loose"], "on_error": "send-unsigned"},
                     {"from": "*@other.example", "keys": ["loose"], "on_error": "send-unsigned"}],
        }, extra={"metrics": {"listen": "127.0.0.1:0"}})
        self.metrics = self.stampd.wait_for_event("metrics-listening")[0]["address"]

    def refused(self):
        status, text = http_get(self.metrics, "/metrics")
        self.assertEqual(status, 200)
        return metric_sum(text, "stampd_dkim_failures_total", reason="must-sign")

    def test_listed_domains_are_tempfailed_when_they_would_leave_unsigned(self):
        cases = ["<a@norule.example>", "<a@NORULE.example>", "<a@x.corp.example>",
                 "<a@deep.x.corp.example>", "<a@open.example>"]
        replies = self.send(self.stampd, [msg(f) for f in cases])
        for f, r in zip(cases, replies):
            self.assertEqual((r.code, r.enhanced), (451, "4.7.0"), (f, r))
            self.assertIn("must be signed", r.text)
        for ev in self.stampd.messages()[-len(cases):]:
            self.assertEqual((ev["outcome"], ev.get("dkim")), ("tempfailed", "failed"), ev)
        self.assertEqual(self.refused(), len(cases))
        self.assertFalse(any(t.data_started for t in self.up.transactions), self.up.all_commands())

    def test_signed_and_unlisted_mail_is_relayed(self):
        # A listed domain with a working rule is signed; the apex of a "*."
        # entry, an unlisted domain without a rule and an unlisted domain
        # whose send-unsigned rule failed leave unsigned, as without must_sign.
        signed, apex, unlisted, other = self.relay(self.stampd, [
            msg("<a@example.com>"), msg("<a@corp.example>"), msg("<a@elsewhere.example>"),
            msg("<a@other.example>")])
        [(status, _)] = dkimpy_results(signed, KEYS["ex-ed"].record)
        self.assertEqual(status, "pass")
        for m in (apex, unlisted, other):
            self.assertEqual(V.signatures(m), [])
        self.assertEqual(self.refused(), 0)

    def test_check_config_names_a_bad_entry(self):
        for bad in ("*", "example", "a@example.com", "*.*.example.com", "exa mple.com"):
            with self.subTest(entry=bad):
                text = render_toml({"server": {"listen": ["127.0.0.1:0"]},
                                    "upstream": {"servers": [self.up.address]},
                                    "dkim": {"must_sign": [bad]}})
                rc, out, err, path = check_config(text)
                self.assertEqual(rc, 1, (out, err))
                self.assertIn("must_sign", err)
                self.assertIn(path, err)


# ============================================================== OpenDKIM import

class SelfVerifyTest(DkimProxyCase):
    """[dkim] self_verify = "all": every message's new signatures are checked
    before they leave; the log line says dkim_self_verify=pass and the
    counter counts them; what the upstream gets verifies with dkimpy. (A
    signing path that hashes other bytes than it spools cannot be provoked
    from outside; the unit tests DkimStageSelfVerify do it and show the 451
    and the send-unsigned handling.)"""

    def setUp(self):
        super().setUp()
        k = KEYS
        self.stampd = self.start_signing({
            "self_verify": "all",
            "key": [k["ex-rsa"].toml(), k["ex-ed"].toml()],
            "sign": [{"from": "*@example.com", "keys": ["ex-rsa", "ex-ed"]}],
        }, extra={"metrics": {"listen": "127.0.0.1:0"}})
        self.metrics = self.stampd.wait_for_event("metrics-listening")[0]["address"]

    def test_every_message_is_verified_before_it_leaves(self):
        bodies = [b"Hello.\r\n", b"", (b"x" * 70 + b"\r\n") * 100, b"line  with   spaces \t\r\n\r\n\r\n",
                  ("caf\u00e9 8-bit\r\n".encode())]
        got = self.relay(self.stampd, [msg("<a@example.com>", subject="sv %d" % i, body=b)
                                       for i, b in enumerate(bodies)])
        for message in got:
            results = dkimpy_results(message)
            self.assertEqual([status for status, _ in results], ["pass", "pass"], results)
        for ev in self.stampd.messages()[-len(bodies):]:
            self.assertEqual((ev.get("dkim"), ev.get("dkim_self_verify")), ("signed", "pass"), ev)
        status, text = http_get(self.metrics, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(metric_sum(text, "stampd_dkim_self_verify_total", result="pass"), len(bodies))
        self.assertEqual(metric_sum(text, "stampd_dkim_self_verify_total", result="fail"), 0)

    def test_unsigned_mail_is_not_verified(self):
        self.relay(self.stampd, [msg("<a@elsewhere.example>")])
        ev = self.stampd.messages()[-1]
        self.assertNotIn("dkim_self_verify", ev)


class OpenDkimImportTest(DkimProxyCase):
    """KeyTable / SigningTable as the classic how-to writes them: key names
    like default._domainkey.example.com, absolute key paths, a refile:
    SigningTable with *@domain and *@*.domain lines."""

    def write_tables(self, d, prefix_key_table, prefix_signing_table, relative, plain=False):
        keys = os.path.join(d, "keys")
        os.makedirs(keys)
        rsa = genkey(keys, "example.com", "example.com", "default")
        ed = genkey(keys, "example.net", "example.net", "mail", "ed25519")
        rsa_path = "./keys/example.com/default.private" if relative else rsa.path
        with open(os.path.join(d, "KeyTable"), "w") as f:
            f.write("# OpenDKIM KeyTable\n"
                    "default._domainkey.example.com example.com:default:%s\n"
                    "mail._domainkey.example.net    example.net:mail:%s\n" % (rsa_path, ed.path))
        with open(os.path.join(d, "SigningTable"), "w") as f:
            if plain:  # opendkim.conf(5) lookup keys: host, .parent
                f.write("# OpenDKIM SigningTable (plain)\n"
                        "example.com\tdefault._domainkey.example.com\n"
                        ".example.com\tdefault._domainkey.example.com\n"
                        "example.net    mail._domainkey.example.net\n")
            else:
                f.write("# OpenDKIM SigningTable (refile)\n"
                        "*@example.com\tdefault._domainkey.example.com\n"
                        "*@*.example.com\tdefault._domainkey.example.com\n"
                        "*@example.net    mail._domainkey.example.net\n")
        key_table = prefix_key_table + ("KeyTable" if relative else os.path.join(d, "KeyTable"))
        signing_table = prefix_signing_table + ("SigningTable" if relative else os.path.join(d, "SigningTable"))
        records = dict(rsa.record)
        records.update(ed.record)
        return {"opendkim_key_table": key_table, "opendkim_signing_table": signing_table}, records

    def run_import(self, prefix_key_table, prefix_signing_table, relative, plain=False):
        d = tempfile.mkdtemp(prefix="stampd-opendkim-import-")
        self.addCleanup(shutil.rmtree, d, True)
        tables, records = self.write_tables(d, prefix_key_table, prefix_signing_table, relative, plain)
        stampd = self.start_stampd([self.up.address], sections={"dkim": tables}, workdir=d)
        got = self.relay(stampd, [msg("<a@example.com>"), msg("<b@lists.example.com>"),
                                  msg("<c@example.net>"), msg("<d@example.org>")])
        want = [[("example.com", "default")], [("example.com", "default")], [("example.net", "mail")], []]
        for message, w in zip(got, want):
            results = dkimpy_results(message, records)
            self.assertEqual([(t["d"], t["s"]) for _, t in results], w)
            for status, tags in results:
                self.assertEqual(status, "pass", tags)
        self.assertIn("no signing rule", stampd.messages()[-1]["dkim_reason"])
        rc, out, err, _ = check_config(path=stampd.config_path)
        self.assertEqual(rc, 0, err)
        self.assertIn("OpenDKIM tables included", out)

    def test_refile_signing_table_with_absolute_paths(self):
        self.run_import("", "refile:", relative=False)

    def test_tables_relative_to_the_config(self):
        self.run_import("", "refile:", relative=True)

    def test_opendkim_conf_prefixes_as_written(self):
        # opendkim.conf writes "KeyTable refile:/etc/opendkim/key.table" (or
        # file:); the value copied as it is must work.
        self.run_import("refile:", "refile:", relative=False)
        self.run_import("file:", "refile:", relative=True)
        self.run_import("file:", "file:", relative=False, plain=True)
        self.run_import("", "", relative=True, plain=True)

    def test_wildcards_need_refile(self):
        d = tempfile.mkdtemp(prefix="stampd-opendkim-import-")
        self.addCleanup(shutil.rmtree, d, True)
        tables, _ = self.write_tables(d, "", "", relative=True)  # refile content, no refile: prefix
        text = render_toml({"server": {"listen": ["127.0.0.1:0"]}, "upstream": {"servers": [self.up.address]},
                            "dkim": tables})
        path = os.path.join(d, "stampd.toml")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err, _ = check_config(path=path)
        self.assertEqual(rc, 1, out)
        self.assertIn("SigningTable:2", err)
        self.assertIn("refile:", err)


# ============================================================== Received-SPF

class ReceivedSpfTest(DkimProxyCase):
    def test_client_received_spf_is_not_signed(self):
        stampd = self.start_signing({
            # Even when a config names it, Received-SPF is left out of h=.
            "sign_headers": ["From", "To", "Subject", "Received-SPF", "Date"],
            "oversign_headers": ["From", "Received-SPF"],
            "oversign_absent": True,
            "key": [KEYS["ex-ed"].toml()],
            "sign": [{"from": "*@example.com", "keys": ["ex-ed"]}],
        })
        m = msg("<a@example.com>", extra=["Received-SPF: pass (client.example: 192.0.2.1 is allowed)"])
        [got] = self.relay(stampd, [m])
        [(status, tags)] = dkimpy_results(got)
        self.assertEqual(status, "pass")
        self.assertNotIn("received-spf", h_names(tags))
        self.assertIn("to", h_names(tags))

    def test_tagged_received_spf_is_not_signed(self):
        import fake_dns
        dns = fake_dns.FakeDns({"example.com": [("TXT", "v=spf1 ip4:127.0.0.0/8 -all")]})
        dns.start()
        self.addCleanup(dns.stop)
        stampd = self.start_signing({
            "key": [KEYS["ex-rsa"].toml(), KEYS["ex-ed"].toml()],
            "sign": [{"from": "*@example.com", "keys": ["ex-rsa", "ex-ed"]}],
        }, extra={"spf": {"mode": "tag"}, "dns": {"resolvers": [dns.resolver], "timeout": "3s"}})
        [got] = self.relay(stampd, [msg("<a@example.com>")])
        head = got.split(b"\r\n\r\n", 1)[0]
        self.assertRegex(head, rb"(?im)^Received-SPF: pass ")
        results = dkimpy_results(got)
        self.assertEqual(len(results), 2)
        for status, tags in results:
            self.assertEqual(status, "pass")
            self.assertNotIn("received-spf", h_names(tags))
        self.assertEqual(stampd.messages()[-1].get("spf"), "pass")
        # `stampd verify -c` finds the keys over DNS, through [dns] resolvers.
        for k in ("ex-rsa", "ex-ed"):
            for name, txt in KEYS[k].record.items():
                dns.add(name, "TXT", txt)
        r = run_cli("verify", "-c", stampd.config_path, input=got)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertEqual(sorted(l.split()[0] for l in out.splitlines()), ["pass", "pass"], out)
        r = run_cli("verify", "-c", stampd.config_path, input=got.replace(b"Hello.", b"Hellp."))
        self.assertEqual(r.returncode, 1)
        self.assertEqual([l.split()[0] for l in r.stdout.decode().splitlines()], ["fail", "fail"])


# ============================================================== commands

class CommandsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stampd-dkim-cmd-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def public_der(self, private_path):
        r = subprocess.run(["openssl", "pkey", "-in", private_path, "-pubout", "-outform", "DER"],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest("openssl cannot read the key: " + r.stderr.decode())
        return r.stdout

    def test_genkey_writes_private_key_and_zone_line(self):
        for algorithm, k in (("rsa-2048", "rsa"), ("rsa-3072", "rsa"), ("ed25519", "ed25519")):
            with self.subTest(algorithm=algorithm):
                d = os.path.join(self.dir, algorithm)
                r = run_cli("genkey", "--domain", "example.com", "--selector", "s1", "--algorithm", algorithm,
                            "--dir", d)
                self.assertEqual(r.returncode, 0, r.stderr)
                private, txt = os.path.join(d, "s1.private"), os.path.join(d, "s1.txt")
                self.assertEqual(stat.S_IMODE(os.stat(private).st_mode), 0o600)
                with open(txt) as f:
                    lines = f.read().splitlines()
                self.assertEqual(len(lines), 1, lines)
                m = re.match(r'^s1\._domainkey\.example\.com\.\s+(?:\d+\s+)?IN\s+TXT\s+\(?\s*((?:"[^"]*"\s*)+)\)?\s*$',
                             lines[0])
                self.assertIsNotNone(m, lines[0])
                strings = re.findall(r'"([^"]*)"', m.group(1))
                for s in strings:
                    self.assertLessEqual(len(s.encode()), 255)
                self.assertTrue(all(len(s) == 255 for s in strings[:-1]), [len(s) for s in strings])
                record = "".join(strings)
                tags = dict(t.strip().split("=", 1) for t in record.split(";") if t.strip())
                self.assertEqual(tags["v"], "DKIM1")
                self.assertEqual(tags["k"], k)
                p = base64.b64decode(tags["p"])
                der = self.public_der(private)
                self.assertEqual(p, der if k == "rsa" else der[-32:])
                self.assertEqual(V.records_for(lines), {"s1._domainkey.example.com": record})
                # The printed instructions carry the same line.
                self.assertIn(lines[0], r.stdout.decode())
                # Never overwrites a key.
                again = run_cli("genkey", "--domain", "example.com", "--selector", "s1", "--algorithm",
                                algorithm, "--dir", d)
                self.assertNotEqual(again.returncode, 0)
                self.assertEqual(stat.S_IMODE(os.stat(private).st_mode), 0o600)
        bad = run_cli("genkey", "--domain", "example.com", "--selector", "s", "--algorithm", "rsa-512",
                      "--dir", self.dir)
        self.assertEqual(bad.returncode, 2)

    def sign_config(self, key, extra=None):
        dkim_section = {"key": [key.toml()], "sign": [{"from": "*@" + key.domain, "keys": [key.name]}]}
        dkim_section.update(extra or {})
        path = os.path.join(self.dir, "sign.toml")
        with open(path, "w") as f:
            f.write(render_toml({"server": {"listen": ["127.0.0.1:0"]},
                                 "upstream": {"servers": ["127.0.0.1:1"]}, "dkim": dkim_section}))
        return path

    def test_sign_then_verify(self):
        key = KEYS["ex-rsa"]
        config = self.sign_config(key, {"signature_lifetime": "1h"})
        message = msg("<a@example.com>", body=b"line one\r\n\r\nline two  \r\n").replace(b"\r\n", b"\n")
        r = run_cli("sign", "-c", config, input=message)
        self.assertEqual(r.returncode, 0, r.stderr)
        signed = r.stdout
        self.assertTrue(signed.endswith(message.replace(b"\n", b"\r\n")))
        [(status, tags)] = dkimpy_results(signed)
        self.assertEqual(status, "pass")
        self.assertEqual(int(tags["x"]) - int(tags["t"]), 3600)

        # verify --key-file: the .txt zone line, the bare record, or the private key.
        bare = os.path.join(self.dir, "bare.txt")
        with open(bare, "w") as f:
            f.write(key.record["rsa2026._domainkey.example.com"] + "\n")
        for key_file in (key.txt_path, bare, key.path):
            r = run_cli("verify", "--key-file", key_file, input=signed)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stdout.decode().split()[:4], ["pass", "d=example.com", "s=rsa2026", "a=rsa-sha256"])
        tampered = signed.replace(b"line two", b"line 2")
        r = run_cli("verify", "--key-file", key.txt_path, input=tampered)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.decode().startswith("fail d=example.com s=rsa2026"), r.stdout)
        self.assertRegex(r.stdout.decode(), r"\(.+\)")  # and why
        r = run_cli("verify", "--key-file", KEYS["alice"].txt_path, input=signed)  # wrong key
        self.assertEqual(r.returncode, 1)
        r = run_cli("verify", "--key-file", key.txt_path, input=message)  # no signature
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.decode().startswith("none"), r.stdout)
        r = run_cli("verify", "--key-file", os.path.join(self.dir, "absent.txt"), input=signed)
        self.assertEqual(r.returncode, 2)

        # A From without a rule: printed unsigned, exit 0, the reason on stderr.
        other = msg("<a@elsewhere.example>")
        r = run_cli("sign", "-c", config, input=other)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, other)
        self.assertIn("not signed", r.stderr.decode())

    def test_weak_key_is_warned_about(self):
        weak = os.path.join(self.dir, "weak.private")
        r = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                            "-out", weak], capture_output=True)
        if r.returncode != 0:
            self.skipTest("openssl cannot make a 1024-bit key: " + r.stderr.decode())
        os.chmod(weak, 0o600)
        key = Key.__new__(Key)
        key.name, key.domain, key.selector, key.path = "weak", "example.com", "weak", weak
        config = self.sign_config(key)
        rc, out, err, _ = check_config(path=config)
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"(?i)warning: .*weak.*1024")
        # stampd run logs it too, and still signs with it.
        import stampd_harness
        up = FakeUpstream()
        up.start()
        self.addCleanup(up.stop)
        sections = stampd_harness.merge_sections(stampd_harness.default_sections([up.address]), {
            "dkim": {"key": [key.toml()], "sign": [{"from": "*@example.com", "keys": ["weak"]}]}})
        s = stampd_harness.Stampd(sections=sections)
        self.addCleanup(s.cleanup)
        s.start()
        ev = s.wait_for_event("dkim-key-weak")[0]
        self.assertIn("1024", ev["detail"])
        self.assertEqual(ev["level"].lower()[:4], "warn")
        c = stampd_harness.StampdTestCase.connect(self, s)
        c.ehlo()
        self.assertEqual(c.send_mail("a@example.com", ["b@example.net"], msg("<a@example.com>")).code, 250)
        c.quit()
        up.wait_for_messages(1)
        pub = base64.b64encode(self.public_der(weak)).decode()
        [(status, tags)] = dkimpy_results(up.messages[0].content,
                                          {"weak._domainkey.example.com": "v=DKIM1; k=rsa; p=" + pub})
        self.assertEqual(status, "pass")


if __name__ == "__main__":
    test_main.main()
