"""Logging: with [log] format = "json" every line stderr gets is one JSON
object (valid UTF-8) with ts, level and event, whatever bytes clients send
(quotes, backslashes, control characters, 8-bit bytes in HELO, XFORWARD and
addresses). The event=message line answers "why was this (not) signed, why
was it refused" on its own: outcome, client, envelope, upstream and its
reply, and the DKIM and SPF verdicts with their reasons. A SIGHUP can switch
the format; text lines stay key=value with the same fields.
"""
import json
import os
import shutil
import signal
import tempfile
import unittest

from smtp_client import SmtpClient, make_message
import test_main
from stampd_harness import (StampdTestCase, closed_port, default_sections, make_key, merge_sections,
                            render_toml, stampd_bin)

MESSAGE_FIELDS = ("ts", "level", "event", "session", "msg", "outcome", "client", "from", "rcpts", "size",
                  "upstream", "reply", "duration_ms")


class JsonLogTest(StampdTestCase):
    def setUp(self):
        stampd_bin()
        self.tmp = tempfile.mkdtemp(prefix="stampd-log-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        with open(make_key(self.tmp, "example.com", "s1")[0], "rb") as f:
            self.key = f.read()

    def config(self, up, fmt, level="debug", extras=True):
        """config signs *@example.com; with extras also a rule whose key is
        missing (fail-closed) and SPF tagging against a resolver that never
        answers (temperror)."""
        sections = merge_sections(default_sections([up.address]), {
            "log": {"level": level, "format": fmt},
            "dkim": {
                "key": [{"name": "good", "domain": "example.com", "selector": "s1", "private_key": "s1.private"}],
                "sign": [{"from": "*@example.com", "keys": ["good"]}],
            },
        })
        if extras:
            sections["dkim"]["key"].append({"name": "broken", "domain": "example.org", "selector": "gone",
                                            "private_key": "missing.private"})
            sections["dkim"]["sign"].append({"from": "*@example.org", "keys": ["broken"], "on_error": "fail-closed"})
            sections["spf"] = {"mode": "tag"}
            sections["dns"] = {"resolvers": ["127.0.0.1:%d" % closed_port()], "timeout": "1s"}
        return sections

    def start(self, sections):
        s = self.start_stampd(config_text=render_toml(sections), sections=sections, start=False)
        path = os.path.join(s.workdir, "s1.private")
        with open(path, "wb") as f:
            f.write(self.key)
        os.chmod(path, 0o600)
        return s.start()

    def traffic(self, stampd, up):
        """traffic sends one message of each kind, with hostile client strings."""
        c = SmtpClient(*stampd.address)
        self.addCleanup(c.close)
        c.send(b'EHLO we"ird\\name\x01\xff\xfe.example\r\n')
        c.reply()
        c.ehlo("client.example")
        c.send(b'XFORWARD ADDR=192.0.2.9 HELO=x"f\\\xc3\xa9\xff\r\n')
        c.reply()
        c.send(b'MAIL FROM:<"a\\"b\xff"@example.com>\r\n')
        c.reply()
        c.cmd("RSET")
        results = {}
        for name, author in (("signed", "author@example.com"), ("unsigned", "author@unsigned.test"),
                             ("failed", "author@example.org")):
            results[name] = c.send_mail("sender@example.com", ["rcpt@example.net"],
                                        make_message(subject=name, sender=author))
        up.on("rcpt", match="refused@", reply="550 5.1.1 <refused@example.net>: no such user")
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.rcpt("refused@example.net").code, 550)
        c.cmd("RSET")
        up.on("dot", reply="554 5.7.1 \"quoted\" \\ refusal", times=1)
        results["rejected"] = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message(subject="rej"))
        c.quit()
        self.assertEqual({k: r.code for k, r in results.items()},
                         {"signed": 250, "unsigned": 250, "failed": 451, "rejected": 554})
        stampd.wait_for_event("message", count=4)
        stampd.wait_for_event("disconnect")

    def test_every_line_is_json_and_message_lines_say_why(self):
        up = self.start_upstream()
        stampd = self.start(self.config(up, "json"))
        self.traffic(stampd, up)
        stampd.stop()
        lines = stampd.log_text().splitlines()
        self.assertGreater(len(lines), 10)
        for line in lines:
            self.assertNotIn("\ufffd", line, "not valid UTF-8: %r" % line)  # (decoded with "replace")
            doc = json.loads(line)
            self.assertIsInstance(doc, dict, line)
            for k in ("ts", "level", "event"):
                self.assertIn(k, doc, line)
            self.assertRegex(doc["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(doc["level"], ("debug", "info", "warning", "error"))
            self.assertTrue(all(isinstance(v, str) for v in doc.values()), line)

        messages = [json.loads(l) for l in lines if json.loads(l)["event"] == "message"]
        by_outcome = {}
        for m in messages:
            for k in MESSAGE_FIELDS:
                self.assertIn(k, m, m)
            self.assertTrue(m["client"].startswith("127.0.0.1:"), m)
            self.assertEqual(m["xforward_addr"], "192.0.2.9")
            # Well-formed UTF-8 (é) passes, a stray byte becomes U+FFFD.
            self.assertEqual(m["xforward_helo"], 'x"f\\\u00e9\ufffd')
            self.assertEqual(m["spf"], "temperror", m)
            self.assertEqual(m["spf_ip"], "192.0.2.9", m)  # the XFORWARD address is the one checked
            for k in ("spf_action", "spf_detail"):
                self.assertIn(k, m)
            by_outcome.setdefault(m["outcome"], []).append(m)
        signed, unsigned = by_outcome["relayed"]
        self.assertEqual((signed["dkim"], signed["dkim_keys"]), ("signed", "example.com:s1"))
        self.assertEqual(signed["reply"][:3], "250")
        self.assertEqual(signed["from"], "<sender@example.com>")
        self.assertEqual(signed["rcpts"], "1")
        self.assertEqual(unsigned["dkim"], "unsigned")
        self.assertIn("no signing rule", unsigned["dkim_reason"])
        failed = by_outcome["tempfailed"][0]
        self.assertEqual(failed["dkim"], "failed")
        self.assertEqual(failed["refused_by"], "dkim")
        self.assertIn("fail-closed", failed["reason"])
        self.assertIn("missing.private", failed["reason"])
        self.assertTrue(failed["reply"].startswith("451 4.7.5"), failed)
        rejected = by_outcome["rejected"][0]
        self.assertEqual(rejected["reply"], '554 5.7.1 "quoted" \\ refusal')
        self.assertEqual(rejected["upstream"], up.address)
        # No message body and nothing secret in the log.
        self.assertNotIn("Hello.", stampd.log_text())

    def test_sighup_switches_text_to_json(self):
        up = self.start_upstream()
        text_config = self.config(up, "text", level="info", extras=False)
        stampd = self.start(text_config)
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"],
                                     make_message(subject="t1", sender="author@example.com")).code, 250)
        stampd.wait_for_event("message")
        text_line = [l for l in stampd.log_text().splitlines() if " event=message " in l][0]
        self.assertRegex(text_line, r"^\S+ info event=message session=\S+ msg=\S+ outcome=relayed client=127\.0\.0\.1:\d+ ")
        self.assertIn(" dkim=signed dkim_keys=example.com:s1", text_line)
        self.assertIn(' reply="250 ', text_line)

        with open(stampd.config_path, "w") as f:
            f.write(render_toml(self.config(up, "json", level="info", extras=False)))
        n = len(stampd.lines)
        stampd.proc.send_signal(signal.SIGHUP)
        stampd.wait_for_event("reloaded")
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"],
                                     make_message(subject="t2", sender="author@example.com")).code, 250)
        c.quit()
        stampd.wait_for_event("message", count=2)
        later = stampd.lines[n:]
        # A line logged before the reload took effect is still text (the
        # start-up check of the key's DNS record, which waits on the
        # resolver, can finish after the first message): from the reload's
        # own line on, every line is JSON.
        reloaded = [i for i, l in enumerate(later) if '"event":"reloaded"' in l]
        self.assertTrue(reloaded, later)
        later = later[reloaded[0]:]
        self.assertTrue(later)
        for line in later:
            json.loads(line)
        self.assertEqual([json.loads(l)["outcome"] for l in later if '"event":"message"' in l], ["relayed"])


if __name__ == "__main__":
    test_main.main()
