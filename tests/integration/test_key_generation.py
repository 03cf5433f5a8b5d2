"""[[dkim.key]] generate = true: a key the config names but that does not
exist yet is made by `stampd run` (mode 0600, never replacing a file), its
DNS record written beside it and logged once; what it signs verifies with
independent verifiers against that record."""
import os
import stat
import unittest

import dkim_verifiers as V
from smtp_client import make_message
from stampd_harness import StampdTestCase, check_config, make_key, parse_log_line
import test_main


def config(key_path="keys/example.com/s1.private", extra=""):
    return """
[server]
listen = ["127.0.0.1:0"]
[upstream]
servers = ["maildir:mail"]
health_check_interval = "0s"
[metrics]
listen = ""
[[dkim.key]]
name = "k"
domain = "example.com"
selector = "s1"
private_key = "%s"
generate = true
%s
[[dkim.sign]]
from = "*@example.com"
keys = ["k"]
""" % (key_path, extra)


class KeyGenerationTest(StampdTestCase):
    def send_and_read(self, stampd):
        c = self.connect(stampd)
        c.ehlo()
        r = c.send_mail("me@example.com", ["you@example.net"], make_message(sender="me@example.com"))
        self.assertEqual(r.code, 250, r)
        c.quit()
        new = os.path.join(stampd.workdir, "mail", "new")
        files = sorted(os.listdir(new))
        with open(os.path.join(new, files[-1]), "rb") as f:
            return f.read()

    def assert_verifies(self, message, record_file):
        with open(record_file) as f:
            records = V.records_for(f.read().splitlines())
        self.assertIn("s1._domainkey.example.com", records)
        for verifier in V.VERIFIERS:
            ok, why = V.available(verifier)
            if not ok:
                self.skipTest(why)
            results = V.verify(verifier, message, records)
            self.assertEqual([r.status for r in results], ["pass"], (verifier, results))

    def generated_events(self, stampd):
        return [e for e in map(parse_log_line, stampd.lines) if e and e.get("event") == "dkim-key-generated"]

    def test_first_start_makes_the_key_and_signs_with_it(self):
        s = self.start_stampd(config_text=config())
        key = os.path.join(s.workdir, "keys/example.com/s1.private")
        record = os.path.join(s.workdir, "keys/example.com/s1.txt")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode), 0o700)
        events = self.generated_events(s)
        self.assertEqual(len(events), 1, events)
        with open(record) as f:
            self.assertEqual(events[0]["publish"], f.read().strip())
        self.assertEqual(events[0]["private_key"], key)
        self.assertIn("k=rsa", events[0]["publish"])
        # No stray temporary file beside the key.
        self.assertEqual(sorted(os.listdir(os.path.dirname(key))), ["s1.private", "s1.txt"])
        self.assert_verifies(self.send_and_read(s), record)

        # A restart (and a reload) keep the key: nothing is generated again.
        with open(key, "rb") as f:
            before = f.read()
        s.stop()
        s2 = self.start_stampd(config_text=config(), workdir=s.workdir)
        self.assertEqual(self.generated_events(s2), [])
        with open(key, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assert_verifies(self.send_and_read(s2), record)

    def test_an_existing_key_is_never_replaced(self):
        s = self.start_stampd(config_text=config(), start=False)
        key, record = make_key(os.path.join(s.workdir, "keys/example.com"), "example.com", "s1")
        with open(key, "rb") as f:
            before = f.read()
        s.start()
        self.assertEqual(self.generated_events(s), [])
        with open(key, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assert_verifies(self.send_and_read(s), record)

    def test_ed25519(self):
        s = self.start_stampd(config_text=config(extra='algorithm = "ed25519"'))
        self.assertIn("k=ed25519", self.generated_events(s)[0]["publish"])
        message = self.send_and_read(s)
        self.assertIn(b"a=ed25519-sha256", message)
        with open(os.path.join(s.workdir, "keys/example.com/s1.txt")) as f:
            records = V.records_for(f.read().splitlines())
        results = V.verify("dkimpy", message, records)
        self.assertEqual([r.status for r in results], ["pass"], results)

    def test_a_key_added_on_reload_is_generated(self):
        s = self.start_stampd(config_text=config())
        with open(s.config_path, "a") as f:
            f.write('[[dkim.key]]\nname = "k2"\ndomain = "example.com"\nselector = "s2"\n'
                    'private_key = "keys/example.com/s2.private"\ngenerate = true\n')
        s.proc.send_signal(1)  # SIGHUP
        s.wait_for_event("reloaded")
        events = self.generated_events(s)
        self.assertEqual([e["key"] for e in events], ["k", "k2"])
        self.assertTrue(os.path.exists(os.path.join(s.workdir, "keys/example.com/s2.txt")))

    def test_generation_failure_names_the_key_and_stops_the_start(self):
        s = self.start_stampd(config_text=config(key_path="blocker/s1.private"), start=False,
                              files={"blocker": "a file where a directory should be\n"})
        with self.assertRaises(RuntimeError) as ctx:
            s.start()
        self.assertRegex(str(ctx.exception), r"stampd\.toml:\d+: \[dkim\.key\] \"k\": cannot generate")

    def test_check_config_accepts_a_key_to_generate_and_makes_nothing(self):
        rc, out, err, path = check_config(config())
        self.assertEqual(rc, 0, err)
        self.assertIn("not generated yet", err)
        self.assertIn("generate = true", out)
        self.assertIn('algorithm = "rsa-2048"', out)

    def test_config_errors(self):
        rc, _, err, _ = check_config(config(extra='algorithm = "rsa-512"'))
        self.assertEqual(rc, 1)
        self.assertRegex(err, r'stampd\.toml:\d+: .*algorithm.*"rsa-2048", "rsa-3072" or "ed25519"')
        rc, _, err, _ = check_config(config().replace("generate = true", 'algorithm = "ed25519"'))
        self.assertEqual(rc, 1)
        self.assertIn("only used with generate = true", err)
        # Without generate, a missing key file stays an error.
        rc, _, err, _ = check_config(config().replace("generate = true", ""))
        self.assertEqual(rc, 1)
        self.assertIn("No such file", err)


if __name__ == "__main__":
    test_main.main()
