"""Issue 3's proof through the running proxy: every message of the DKIM
corpus (tests/data/dkim-corpus plus the generated 20 MiB one) is sent over
SMTP to a real `stampd run` on loopback that holds an RSA-2048 and an
Ed25519 key (both made at test time with `stampd genkey`) in the same
[[dkim.sign]] rule, so each message leaves with two signatures. What the
fake upstream receives must be

* the client's message byte for byte, with exactly two DKIM-Signature
  fields (rsa-sha256 and ed25519-sha256, folded to <= 78 columns) on top;
* accepted by python3-dkim (dkimpy), Mail::DKIM and `opendkim -t`, offline
  with the records from the genkey .txt files: every signature passes
  (Debian 12's Mail::DKIM has no Ed25519 and must say "unsupported" for it,
  not fail or pass);
* refused by each of them once one body byte, and separately one signed
  header field, is changed;
* and `stampd verify --key-file` says the same, one line per signature, with
  exit code 0 only when every signature passes.

One stampd, one SMTP session for the whole corpus; verification runs in a
small thread pool (the verifiers are mostly subprocesses). Counts are
printed at the end.
"""
import collections
import concurrent.futures
import os
import re
import shutil
import sys
import tempfile
import threading
import unittest

import dkim_corpus
import dkim_verifiers as V
from fake_upstream import FakeUpstream
from smtp_client import SmtpClient
from stampd_harness import Stampd, default_sections, make_key, merge_sections, run_cli, sanitizer_report
import test_main

DOMAIN = "example.com"
RSA_SELECTOR = "rsa2026"
ED_SELECTOR = "ed2026"
WORKERS = 3  # two cores: verifiers are subprocesses (and dkimpy), a little overlap pays


# ---------------------------------------------------------------- message helpers

def as_transported(message):
    """SMTP DATA always ends with CRLF: corpus 11 (no final CRLF) arrives with
    one, which both body canonicalizations add anyway (RFC 6376 §3.4.3/§3.4.4)."""
    return message if message.endswith(b"\r\n") else message + b"\r\n"


def split_head_body(message):
    """(head, separator, body); a message without a blank line is all head."""
    if message.startswith(b"\r\n"):
        return b"", b"\r\n", message[2:]
    head, sep, body = message.partition(b"\r\n\r\n")
    return head, sep, body


def tamper_body(message):
    """tamper_body changes exactly one body byte, to a byte that no
    canonicalization can wash out: the first visible byte becomes another
    letter; a body of only whitespace gets its first blank replaced; an
    empty body gets a one-letter line."""
    head, sep, body = split_head_body(message)
    if not sep:
        return message + b"\r\nx\r\n"  # no body at all: now there is one
    for i, c in enumerate(body):
        if c > 0x20 and c != 0x7f:
            new = b"y" if body[i:i + 1] == b"x" else b"x"
            return head + sep + body[:i] + new + body[i + 1:]
    for i, c in enumerate(body):
        if c in (0x20, 0x09):
            return head + sep + body[:i] + b"x" + body[i + 1:]
    return head + sep + b"x\r\n"  # empty: a line of one byte (a verifier wants the final CRLF)


def tamper_header(message, signed_names):
    """tamper_header changes one character in the value of a signed header
    field (Subject when signed, else the first signed field present, From at
    worst), leaving everything else alone."""
    head, sep, body = split_head_body(message)
    fields = V.header_fields(head)
    wanted = [n.lower() for n in signed_names]
    order = (["subject"] if "subject" in wanted else []) + [n for n in wanted if n != "dkim-signature"]
    for name in order:
        for i, f in enumerate(fields):
            fname = f.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
            if fname != name or fname == "dkim-signature":
                continue
            colon = f.index(b":")
            value = f[colon + 1:]
            m = re.search(rb"[A-Za-z0-9]", value)
            if m:
                j = m.start()
                new = b"Q" if value[j:j + 1] != b"Q" else b"R"
                value = value[:j] + new + value[j + 1:]
            else:
                value = value + b"Q"
            fields[i] = f[:colon + 1] + value
            return b"\r\n".join(fields) + (sep + body if sep else b"\r\n")
    raise AssertionError("no signed header field to tamper with")


def drop_signature(message, selector):
    """drop_signature removes the DKIM-Signature field with s=selector (the
    other signature does not cover it: both were made before either was added)."""
    head, sep, body = split_head_body(message)
    kept = [f for f in V.header_fields(head)
            if not (f.lower().startswith(b"dkim-signature:") and
                    re.search(rb"\bs=\s*" + re.escape(selector.encode()) + rb"\s*;", f))]
    return b"\r\n".join(kept) + (sep + body if sep else b"\r\n")


# ---------------------------------------------------------------- the test

class ProxyCorpus(unittest.TestCase):
    """Sends the corpus through stampd once (setUpClass); each test checks
    what the upstream received with one verifier."""

    counts = collections.OrderedDict()
    lock = threading.Lock()

    @classmethod
    def count(cls, verifier, key, n=1):
        with cls.lock:
            cls.counts.setdefault(verifier, collections.Counter())[key] += n

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="stampd-dkim-proxy-corpus-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        keys = os.path.join(cls.tmp, "keys")
        for selector, algorithm in ((RSA_SELECTOR, "rsa-2048"), (ED_SELECTOR, "ed25519")):
            make_key(keys, DOMAIN, selector, algorithm)
        cls.key_txt = {s: os.path.join(keys, s + ".txt") for s in (RSA_SELECTOR, ED_SELECTOR)}
        zone = []
        for path in cls.key_txt.values():
            with open(path) as f:
                zone += f.read().splitlines()
        cls.records = V.records_for(zone)
        assert len(cls.records) == 2, cls.records

        cls.up = FakeUpstream(capabilities=FakeUpstream.FULL)
        cls.up.start()
        cls.addClassCleanup(cls.up.stop)
        both = ["ex-rsa", "ex-ed"]
        sections = merge_sections(default_sections([cls.up.address]), {
            "server": {"max_message_size": "64MiB", "data_timeout": "120s"},
            "upstream": {"data_timeout": "120s"},
            "dkim": {
                "canonicalization": "relaxed/relaxed",
                "key": [
                    {"name": "ex-rsa", "domain": DOMAIN, "selector": RSA_SELECTOR,
                     "private_key": "keys/%s.private" % RSA_SELECTOR},
                    {"name": "ex-ed", "domain": DOMAIN, "selector": ED_SELECTOR,
                     "private_key": "keys/%s.private" % ED_SELECTOR},
                ],
                # Corpus 42 writes from a subdomain: *@*.example.com covers only those.
                "sign": [{"from": "*@" + DOMAIN, "keys": both},
                         {"from": "*@*." + DOMAIN, "keys": both}],
            },
        })
        cls.stampd = Stampd(sections=sections, workdir=cls.tmp)
        cls.addClassCleanup(cls._stop_stampd)
        cls.stampd.start()

        cls.originals = dkim_corpus.all_messages(include_large=True)
        cls.received = cls._send_all()
        cls._stop_stampd()

    @classmethod
    def _stop_stampd(cls):
        s = cls.stampd
        if s.proc is not None and s.returncode is None:
            s.stop()
            report = sanitizer_report(s.log_text())
            if report:
                raise AssertionError("stampd reported a sanitizer error:\n" + report)

    @classmethod
    def _send_all(cls):
        c = SmtpClient(*cls.stampd.address, timeout=120)
        try:
            assert c.greeting.code == 220, c.greeting
            assert c.ehlo().code == 250
            received = {}
            for i, (name, message) in enumerate(cls.originals):
                params = []
                if any(b >= 0x80 for b in message):
                    params.append("BODY=8BITMIME")
                    head = split_head_body(message)[0]
                    if any(b >= 0x80 for b in head) and "SMTPUTF8" in c.capabilities:
                        params.append("SMTPUTF8")
                r = c.send_mail("sender@" + DOMAIN, ["rcpt%d@example.net" % i], message,
                                mail_params=" ".join(params), timeout=120)
                if r is None or r.code != 250:
                    raise AssertionError("%s: stampd answered %r\n%s" % (name, r, cls.stampd.log_text()[-4000:]))
                cls.up.wait_for_messages(i + 1, timeout=60)
                tx = cls.up.messages[i]
                assert tx.rcpts[0][0] == "rcpt%d@example.net" % i, (name, tx)
                received[name] = tx.content
            c.quit()
        finally:
            c.close()
        cls.stampd.wait_for_event("message", count=len(cls.originals), timeout=30)
        return received

    @classmethod
    def tearDownClass(cls):
        total = len(cls.originals)
        big = len(dict(cls.originals)[dkim_corpus.LARGE_MESSAGE_NAME])
        sys.stderr.write("\nsent %d messages (largest %d bytes) through one stampd in one SMTP session\n"
                         % (total, big))
        for verifier, c in cls.counts.items():
            sys.stderr.write("  %-15s %s\n" % (verifier, ", ".join("%s=%d" % kv for kv in sorted(c.items()))))

    # ------------------------------------------------------------ what arrived

    def test_every_message_arrives_intact_with_two_signatures(self):
        self.assertGreaterEqual(len(self.originals), 45)
        self.assertIn(dkim_corpus.LARGE_MESSAGE_NAME, self.received)
        for name, original in self.originals:
            with self.subTest(message=name):
                got = self.received[name]
                sent = as_transported(original)
                self.assertTrue(got.endswith(sent), "the client's bytes were changed")
                prefix = got[:len(got) - len(sent)]
                fields = V.header_fields(prefix)
                self.assertEqual(b"\r\n".join(fields) + b"\r\n", prefix)
                self.assertEqual(len(fields), 2, fields)
                sigs = V.signatures(got)[:2]
                self.assertEqual(sorted((s["a"], s["s"], s["d"]) for s in sigs),
                                 [("ed25519-sha256", ED_SELECTOR, DOMAIN), ("rsa-sha256", RSA_SELECTOR, DOMAIN)])
                for f in fields:
                    self.assertTrue(f.startswith(b"DKIM-Signature:"), f[:40])
                    for line in f.split(b"\r\n"):
                        self.assertLessEqual(len(line), 78, line)
                for s in sigs:
                    self.assertEqual(s["c"], "relaxed/relaxed")
                    self.assertNotIn("l", s)
                    h = [n.strip().lower() for n in s["h"].split(":")]
                    self.assertIn("from", h)
                    self.assertNotIn("received-spf", h)
                    self.assertNotIn("dkim-signature", h)
                self.count("proxy", "messages")
                self.count("proxy", "signatures", len(sigs))
        logged = self.stampd.messages(outcome="relayed", dkim="signed")
        self.assertEqual(len(logged), len(self.originals))
        for ev in logged:
            self.assertEqual(ev.get("dkim_keys"), "%s:%s,%s:%s" % (DOMAIN, RSA_SELECTOR, DOMAIN, ED_SELECTOR))

    # ------------------------------------------------------------ independent verifiers

    def _check(self, verifier, name, label, message):
        results = V.verify(verifier, message, self.records)
        return name, label, results

    def run_for(self, verifier):
        ok, why = V.available(verifier)
        if not ok:
            self.skipTest(why)
        jobs = []
        for name, _ in self.originals:
            got = self.received[name]
            signed = V.signatures(got)[0]["h"].split(":")
            jobs.append((name, "signed", got))
            jobs.append((name, "body-tampered", tamper_body(got)))
            jobs.append((name, "header-tampered", tamper_header(got, signed)))
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            futures = [pool.submit(self._check, verifier, *job) for job in jobs]
            outcomes = [f.result() for f in futures]
        for name, label, results in outcomes:
            with self.subTest(message=name, copy=label):
                self.assertEqual(len(results), 2, results)
                self.assertEqual(sorted(r.selector for r in results), sorted([ED_SELECTOR, RSA_SELECTOR]),
                                 results)
                for r in results:
                    unsupported = r.status == "unsupported"
                    if unsupported:
                        # Only Debian 12's Mail::DKIM, and only for Ed25519.
                        self.assertEqual((verifier, r.selector), ("mail-dkim", ED_SELECTOR), r)
                        self.count(verifier, label + ":unsupported")
                        continue
                    if label == "signed":
                        self.assertEqual(r.status, "pass", r)
                    else:
                        self.assertEqual(r.status, "fail", (label, r))
                    self.count(verifier, "%s:%s" % (label, r.status))

    def test_dkimpy(self):
        self.run_for("dkimpy")

    def test_mail_dkim(self):
        self.run_for("mail-dkim")

    def test_opendkim(self):
        self.run_for("opendkim")

    # ------------------------------------------------------------ stampd verify --key-file

    def _stampd_verify(self, name, label, message, selector):
        r = run_cli("verify", "--key-file", self.key_txt[selector], input=message, timeout=120)
        lines = r.stdout.decode("utf-8", "replace").splitlines()
        return name, label, selector, r.returncode, lines

    def test_stampd_verify_key_file(self):
        jobs = []
        for name, _ in self.originals:
            got = self.received[name]
            signed = V.signatures(got)[0]["h"].split(":")
            for selector, other in ((RSA_SELECTOR, ED_SELECTOR), (ED_SELECTOR, RSA_SELECTOR)):
                jobs.append((name, "both", got, selector))
                jobs.append((name, "alone", drop_signature(got, other), selector))
                jobs.append((name, "body-tampered", tamper_body(drop_signature(got, other)), selector))
                jobs.append((name, "header-tampered", tamper_header(drop_signature(got, other), signed), selector))
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            outcomes = [f.result() for f in [pool.submit(self._stampd_verify, *j) for j in jobs]]
        line_re = re.compile(r"^(pass|fail|neutral|temperror|permerror|policy|invalid)\s+d=(\S+) s=(\S+) a=(\S+)")
        for name, label, selector, rc, lines in outcomes:
            with self.subTest(message=name, copy=label, key=selector):
                parsed = [line_re.match(l) for l in lines]
                self.assertTrue(all(parsed), lines)
                by_selector = {m.group(3): m.group(1) for m in parsed}
                if label == "both":
                    # One key file: the signature made with it passes, the other cannot.
                    self.assertEqual(len(lines), 2, lines)
                    self.assertEqual(by_selector[selector], "pass", lines)
                    other = ED_SELECTOR if selector == RSA_SELECTOR else RSA_SELECTOR
                    self.assertNotEqual(by_selector[other], "pass", lines)
                    self.assertEqual(rc, 1, lines)
                elif label == "alone":
                    self.assertEqual(by_selector, {selector: "pass"}, lines)
                    self.assertEqual(rc, 0, lines)
                else:
                    self.assertEqual(len(lines), 1, lines)
                    self.assertNotEqual(by_selector[selector], "pass", lines)
                    self.assertEqual(rc, 1, lines)
                self.count("stampd-verify", "%s:rc%d" % (label, rc))


if __name__ == "__main__":
    test_main.main()
