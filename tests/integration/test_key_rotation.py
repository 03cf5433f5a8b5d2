"""Key rotation gated on DNS, end to end against a real unbound on loopback.

`stampd keys rotate` makes key B beside key A (mode 0600) and prints the TXT
record and the [[dkim.key]] block (replaces = A); the block, appended to the
config, passes check-config. The daemon then signs with A while B's record
is absent or publishes another key, with B within one [dkim]
dns_check_interval once B's record is right (event=dkim-key-gate), and with A
again when B's record goes away. Every message is verified by the
independent verifiers against the records served. The command's errors
(unknown domain, several current keys, an existing file, a bad template) are
shown too.
"""
import os
import re
import shutil
import stat
import tempfile
import time
import unittest

import dkim_verifiers as V
from smtp_client import make_message
from stampd_harness import Stampd, StampdTestCase, check_config, make_key, run_cli
from unbound_server import UnboundServer, find_unbound, zone_line_txt
import test_main

ZONE = "rot.example"
NOW = 1796000000  # 2026-11-30 UTC: the default template gives s202611


def base_config(resolver="", extra_key=""):
    dns = '[dns]\nresolvers = ["%s"]\ntimeout = "3s"\n' % resolver if resolver else ""
    return """
[server]
listen = ["127.0.0.1:0"]
[upstream]
servers = ["maildir:mail"]
health_check_interval = "0s"
[metrics]
listen = ""
%s
[dkim]
dns_check_interval = "1s"
[[dkim.key]]
name = "a"
domain = "rot.example"
selector = "s1"
private_key = "keys/s1.private"
%s
[[dkim.sign]]
from = "*@rot.example"
keys = ["a"]
""" % (dns, extra_key)


def rotate(workdir, *args):
    r = run_cli("keys", "rotate", "-c", os.path.join(workdir, "stampd.toml"), *args,
                cwd=workdir, env={"STAMPD_TEST_NOW": str(NOW)})
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def printed_block(out):
    m = re.search(r"^(\[\[dkim\.key\]\]\n(?:\S.*\n)+)", out, re.M)
    assert m, out
    return m.group(1)


def printed_record(out):
    m = re.search(r"^(\S+\._domainkey\.\S+ IN TXT \(.*\))$", out, re.M)
    assert m, out
    return m.group(1)


class KeysRotateCommandTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stampd-rotate-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        make_key(os.path.join(self.dir, "keys"), ZONE, "s1", "rsa-2048")
        self.write(base_config())

    def write(self, text):
        with open(os.path.join(self.dir, "stampd.toml"), "w") as f:
            f.write(text)

    def test_makes_the_next_key_and_prints_what_to_add(self):
        rc, out, err = rotate(self.dir, "--domain", ZONE)
        self.assertEqual(rc, 0, err + out)
        key = os.path.join(self.dir, "keys", "s202611.private")
        txt = os.path.join(self.dir, "keys", "s202611.txt")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        with open(txt) as f:
            self.assertEqual(zone_line_txt(f.read()), zone_line_txt(printed_record(out)))
        block = printed_block(out)
        self.assertIn('selector = "s202611"', block)
        self.assertIn('replaces = "a"', block)
        # The record is the public half of the new key: a message dkimpy
        # signs with the key verifies against the record.
        import dkim
        with open(key, "rb") as f:
            msg = make_message(sender="me@rot.example")
            signature = dkim.sign(msg, b"s202611", b"rot.example", f.read(), include_headers=[b"from"])
        with open(txt) as f:
            records = V.records_for(f.read().splitlines())
        results = V.verify("dkimpy", signature + msg, records)
        self.assertEqual([r.status for r in results], ["pass"], results)
        # Same algorithm as the current key.
        with open(txt) as f:
            self.assertIn("k=rsa", f.read())
        # The config file was not touched; with the block appended it is valid.
        with open(os.path.join(self.dir, "stampd.toml")) as f:
            self.assertNotIn("s202611", f.read())
        self.write(base_config(extra_key="\n" + block))
        rc, out, err, _ = check_config(path=os.path.join(self.dir, "stampd.toml"))
        self.assertEqual(rc, 0, out + err)

        # A second rotation the same month: its selector gets a suffix and it
        # replaces the newest key.
        rc, out, err = rotate(self.dir, "--domain", ZONE)
        self.assertEqual(rc, 0, err + out)
        self.assertIn('selector = "s202611b"', printed_block(out))
        self.assertIn('replaces = "rot.example-s202611"', printed_block(out))

    def test_template_and_algorithm(self):
        rc, out, err = rotate(self.dir, "--domain", ZONE, "--selector", "ed{yyyy}{mm}{dd}",
                              "--algorithm", "ed25519")
        self.assertEqual(rc, 0, err + out)
        self.assertIn('selector = "ed20261130"', printed_block(out))
        self.assertIn("k=ed25519", printed_record(out))

    def test_errors(self):
        rc, out, err = rotate(self.dir, "--domain", "nowhere.example")
        self.assertNotEqual(rc, 0)
        self.assertIn("nowhere.example", err)
        self.assertIn("genkey", err)

        rc, out, err = rotate(self.dir, "--domain", ZONE, "--selector", "bad selector")
        self.assertNotEqual(rc, 0)
        self.assertIn("bad selector", err)

        # The file the new key would go to exists: nothing is replaced.
        existing = os.path.join(self.dir, "keys", "s202611.private")
        with open(existing, "w") as f:
            f.write("mine")
        rc, out, err = rotate(self.dir, "--domain", ZONE)
        self.assertNotEqual(rc, 0)
        self.assertIn("s202611.private", err)
        with open(existing) as f:
            self.assertEqual(f.read(), "mine")
        os.unlink(existing)

        # Two independent keys for the domain: --key must say which.
        make_key(os.path.join(self.dir, "keys"), ZONE, "other", "ed25519")
        self.write(base_config(extra_key='[[dkim.key]]\nname = "b"\ndomain = "rot.example"\n'
                                         'selector = "other"\nprivate_key = "keys/other.private"\n'))
        rc, out, err = rotate(self.dir, "--domain", ZONE)
        self.assertNotEqual(rc, 0)
        self.assertIn("--key", err)
        self.assertIn("--key: a b", err)
        rc, out, err = rotate(self.dir, "--domain", ZONE, "--key", "b")
        self.assertEqual(rc, 0, err)
        self.assertIn('replaces = "b"', printed_block(out))
        self.assertIn("k=ed25519", printed_record(out))


class RotationGatedOnDnsTest(StampdTestCase):
    def setUp(self):
        if find_unbound() is None:
            self.skipTest("unbound is not installed (Debian package unbound)")
        self.workdir = tempfile.mkdtemp(prefix="stampd-rotation-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        _, self.a_txt = make_key(os.path.join(self.workdir, "keys"), ZONE, "s1", "rsa-2048")
        with open(self.a_txt) as f:
            self.a_record = zone_line_txt(f.read())
        # A TTL of 1 s: the daemon's resolver caches answers as long as the
        # TTL says, so "within one check interval" means TTL plus interval.
        self.dns = UnboundServer(zones=[ZONE], records=[self.a_record_row()], ttl=1)
        self.dns.start()
        self.addCleanup(self.dns.stop)

    def a_record_row(self):
        return (self.a_record[0], "TXT", self.a_record[1])

    def send(self, stampd):
        c = self.connect(stampd)
        c.ehlo()
        r = c.send_mail("me@rot.example", ["you@example.net"], make_message(sender="me@rot.example"))
        self.assertEqual(r.code, 250, r)
        c.quit()
        new = os.path.join(stampd.workdir, "mail", "new")
        with open(os.path.join(new, sorted(os.listdir(new), key=lambda n: os.stat(os.path.join(new, n)).st_mtime_ns)[-1]), "rb") as f:
            return f.read()

    def assert_signed_by(self, message, selector, records):
        sigs = re.findall(rb"^DKIM-Signature:.*?(?=^\S)", message, re.M | re.S)
        self.assertEqual(len(sigs), 1, message[:2000])
        self.assertRegex(sigs[0], rb"\bs=%s;" % selector.encode())
        for verifier in V.VERIFIERS:
            ok, why = V.available(verifier)
            if not ok:
                self.skipTest(why)
            results = V.verify(verifier, message, records)
            self.assertEqual([(r.status, r.selector) for r in results], [("pass", selector)],
                             (verifier, results))

    def dns_check(self, stampd):
        r = run_cli("dns-check", "-c", stampd.config_path, cwd=stampd.workdir)
        out = r.stdout.decode()
        self.assertIn("DKIM a (s1._domainkey.rot.example): ok", out)
        return out

    def explain(self, stampd):
        """explain says which key would sign, looking up the records as the daemon does."""
        r = run_cli("explain", "-c", stampd.config_path, "--ip", "127.0.0.1", "--helo", "h.rot.example",
                    "--rcpt", "you@example.net", input=make_message(sender="me@rot.example"),
                    cwd=stampd.workdir)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        return out

    def test_new_key_signs_only_once_its_record_is_right(self):
        with open(os.path.join(self.workdir, "stampd.toml"), "w") as f:
            f.write(base_config(self.dns.resolver))
        rc, out, err = rotate(self.workdir, "--domain", ZONE)
        self.assertEqual(rc, 0, err + out)
        block = printed_block(out)
        b_record = zone_line_txt(printed_record(out))
        config = base_config(self.dns.resolver, extra_key="\n" + block)
        stampd = self.start_stampd(config_text=config, workdir=self.workdir)
        records = {self.a_record[0].rstrip("."): self.a_record[1], b_record[0].rstrip("."): b_record[1]}

        # B's record absent: A signs, and the log says why.
        gate = stampd.wait_for_event("dkim-key-gate", signs="no")[0]
        self.assertEqual((gate["key"], gate["replaces"]), ("rot.example-s202611", "a"))
        self.assertEqual(gate["record"], "missing")
        self.assertIn('key "a" signs in its place', gate["detail"])
        self.assert_signed_by(self.send(stampd), "s1", records)
        explained = self.explain(stampd)
        self.assertIn("s=s1 ", explained)
        self.assertNotIn("s=s202611", explained)
        check = self.dns_check(stampd)
        self.assertIn('rotation: does not sign yet: "a" signs until this key', check)
        self.assertIn('rotation: signs now; "rot.example-s202611" takes over once its record is published',
                      check)

        # B's selector publishes A's key: still A.
        self.dns.set_records([self.a_record_row(), (b_record[0], "TXT", self.a_record[1])])
        stampd.wait_for_event("dkim-key-dns", selector="s202611", state="other-key", timeout=10)
        self.assert_signed_by(self.send(stampd), "s1", records)

        # B's record right: B signs within one check interval (1 s here).
        started = time.monotonic()
        self.dns.set_records([self.a_record_row(), (b_record[0], "TXT", b_record[1])])
        stampd.wait_for_event("dkim-key-gate", signs="yes", timeout=10)
        self.assertLess(time.monotonic() - started, 5)
        self.assert_signed_by(self.send(stampd), "s202611", records)
        # dns-check says A no longer signs and when its record may go.
        explained = self.explain(stampd)
        self.assertIn('key rot.example-s202611: d=rot.example s=s202611', explained)
        self.assertIn('rotation: signs now in place of "a"', explained)
        check = self.dns_check(stampd)
        self.assertIn('rotation: no longer signs ("rot.example-s202611" signs in its place); set '
                      'retire_after', check)
        self.assertIn("may be removed 5 days after its last signature", check)
        self.assertIn('rotation: signs now in place of "a"', check)

        # B's record goes away again: A takes over.
        self.dns.set_records([self.a_record_row()])
        stampd.wait_for_event("dkim-key-gate", signs="no", count=2, timeout=10)
        self.assert_signed_by(self.send(stampd), "s1", records)

    def test_a_retired_key_stops_signing(self):
        # A retired yesterday and its successor not yet published: no key of
        # the chain may sign; the rule (on_error fail-closed by default) answers 451.
        with open(os.path.join(self.workdir, "stampd.toml"), "w") as f:
            f.write(base_config(self.dns.resolver))
        rc, out, err = rotate(self.workdir, "--domain", ZONE)
        self.assertEqual(rc, 0, err + out)
        config = base_config(self.dns.resolver, extra_key="retire_after = 2020-01-01\n\n" + printed_block(out))
        stampd = self.start_stampd(config_text=config, workdir=self.workdir)
        stampd.wait_for_event("dkim-key-gate", signs="no")
        c = self.connect(stampd)
        c.ehlo()
        r = c.send_mail("me@rot.example", ["you@example.net"], make_message(sender="me@rot.example"))
        self.assertEqual(r.code // 100, 4, r)
        c.quit()
        check = self.dns_check(stampd)
        self.assertIn("rotation: no key of its chain may sign", check)
        self.assertIn("retired at 2020-01-01T00:00:00Z", check)

    def test_dns_check_says_when_a_retired_record_may_go(self):
        with open(os.path.join(self.workdir, "stampd.toml"), "w") as f:
            f.write(base_config(self.dns.resolver))
        rc, out, err = rotate(self.workdir, "--domain", ZONE)
        self.assertEqual(rc, 0, err + out)
        b_record = zone_line_txt(printed_record(out))
        self.dns.set_records([self.a_record_row(), (b_record[0], "TXT", b_record[1])])
        config = base_config(self.dns.resolver, extra_key="retire_after = 2020-01-01\n\n" + printed_block(out))
        # x= ten days after t=: the record stays as long as signatures are valid.
        config = config.replace('dns_check_interval = "1s"', 'dns_check_interval = "1s"\nsignature_lifetime = "10d"')
        path = os.path.join(self.workdir, "stampd.toml")
        with open(path, "w") as f:
            f.write(config)
        out = self.dns_check(Stampd(config_text=config, workdir=self.workdir))
        self.assertIn('rotation: no longer signs ("rot.example-s202611" signs in its place); its record '
                      "may be removed after 2020-01-11T00:00:00Z", out)


if __name__ == "__main__":
    test_main.main()
