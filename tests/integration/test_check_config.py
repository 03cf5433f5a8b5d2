"""`stampd check-config -c FILE`: exit 0 and the effective config for every
config in etc/; exit 1 and `file:line: reason` for each kind of bad value."""
import glob
import os
import re
import unittest

from stampd_harness import SOURCE_DIR, check_config, stampd_bin
import test_main

GOOD = """\
[server]
listen = ["127.0.0.1:0"]
hostname = "stampd.test"
max_message_size = "10MiB"

[upstream]
servers = ["127.0.0.1:2525"]

[metrics]
listen = ""
"""

# (name, text, line of the error, words the reason must contain)
BAD = [
    ("unknown key", '[server]\nlisten = ["127.0.0.1:0"]\nmax_mesage_size = "10MiB"\n', 3, ["max_mesage_size"]),
    ("unknown section", '[server]\nhostname = "x"\n\n[upstreams]\nservers = []\n', 4, ["upstreams"]),
    ("bad size", '[server]\nhostname = "x"\nmax_message_size = "50 MeB"\n', 3, ["max_message_size"]),
    ("negative size", '[server]\n\n\nspool_memory = -5\n', 4, ["spool_memory"]),
    ("bad duration", '[server]\ncommand_timeout = "5 minutes"\n', 2, ["command_timeout"]),
    ("duration out of range", '[upstream]\nservers = ["127.0.0.1:25"]\ndata_timeout = "0s"\n', 3, ["data_timeout"]),
    ("bad CIDR", '[server]\ntrusted_networks = [\n  "127.0.0.0/8",\n  "10.0.0.0/33",\n]\n', 4, ["trusted_networks"]),
    ("bad CIDR address", '[server]\ntrusted_networks = ["10.0.0.300/8"]\n', 2, ["trusted_networks"]),
    ("bad enum tls", '[upstream]\nservers = ["127.0.0.1:25"]\ntls = "sometimes"\n', 3, ["tls", "starttls"]),
    ("bad enum bare_line_endings", '[server]\nbare_line_endings = "fix"\n', 2, ["bare_line_endings", "normalize"]),
    ("bad enum log level", '[log]\nlevel = "loud"\n', 2, ["level"]),
    ("wrong type", '[server]\nmax_recipients = "many"\n', 2, ["max_recipients"]),
    ("count out of range", '[server]\nmax_recipients = 0\n', 2, ["max_recipients"]),
    ("listen on a name", '[server]\nlisten = ["localhost:25"]\n', 2, ["listen"]),
    ("bad listen", '[server]\nlisten = ["127.0.0.1"]\n', 2, ["listen"]),
    ("empty servers", '[upstream]\nservers = []\n', 2, ["servers"]),
    ("maildir beside a server", '[upstream]\nservers = ["127.0.0.1:25", "maildir:m"]\n', 2, ["only server"]),
    ("TOML syntax", '[server]\nhostname = "unterminated\n', 2, []),
    ("auth without password", '[upstream]\nservers = ["127.0.0.1:25"]\nauth_username = "u"\n', 3, ["auth_password_file"]),
    ("missing password file", '[upstream]\nservers = ["127.0.0.1:25"]\nauth_username = "u"\nauth_password_file = "nope.txt"\n', 4, ["nope.txt"]),
    ("missing ca_file", '[upstream]\nservers = ["127.0.0.1:25"]\nca_file = "no-such-ca.pem"\n', 3, ["ca_file"]),
]


class CheckConfigTest(unittest.TestCase):
    def test_every_config_in_etc_is_valid(self):
        files = sorted(glob.glob(os.path.join(SOURCE_DIR, "etc", "**", "*.toml"), recursive=True))
        self.assertTrue(files, "no configs in etc/")
        for path in files:
            with self.subTest(path=os.path.relpath(path, SOURCE_DIR)):
                rc, out, err, _ = check_config(path=path)
                self.assertEqual(rc, 0, err)
                self.assertIn("[server]", out)
                self.assertIn("[upstream]", out)

    def test_good_config_prints_the_effective_config(self):
        rc, out, err, _ = check_config(GOOD)
        self.assertEqual(rc, 0, err)
        self.assertIn('max_message_size = "10MiB"', out)
        self.assertIn('hostname = "stampd.test"', out)
        # Defaults are shown too.
        self.assertIn("max_recipients = 1000", out)
        self.assertIn('bare_line_endings = "normalize"', out)

    def test_password_is_never_printed(self):
        rc, out, err, _ = check_config(
            '[upstream]\nservers = ["127.0.0.1:25"]\nauth_username = "relay"\n'
            'auth_password_file = "secret.txt"\n', files={"secret.txt": "hunter2-secret\n"})
        self.assertEqual(rc, 0, err)
        self.assertNotIn("hunter2-secret", out + err)
        self.assertIn('auth_username = "relay"', out)

    def test_bad_configs_name_file_and_line(self):
        for name, text, line, words in BAD:
            with self.subTest(name):
                rc, out, err, path = check_config(text)
                self.assertEqual(rc, 1, (out, err))
                first = err.strip().splitlines()[0] if err.strip() else ""
                m = re.match(r"^(.*):(\d+): (.+)$", first)
                self.assertIsNotNone(m, "not file:line: reason: %r" % err)
                self.assertEqual(m.group(1), path)
                self.assertEqual(int(m.group(2)), line, first)
                for w in words:
                    self.assertIn(w, m.group(3))

    def test_missing_file(self):
        rc, _, err, _ = check_config(path="/nonexistent/stampd.toml")
        self.assertEqual(rc, 1)
        self.assertIn("/nonexistent/stampd.toml", err)

    def test_run_refuses_a_bad_config_before_listening(self):
        import subprocess
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "stampd.toml")
            with open(p, "w") as f:
                f.write('[server]\nlisten = ["127.0.0.1:0"]\nbogus = 1\n')
            r = subprocess.run([stampd_bin(), "run", "-c", p], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(p + ":3:", r.stderr)
            self.assertNotIn("event=listening", r.stderr)


if __name__ == "__main__":
    test_main.main()
