"""The command line itself (parsed by CLI11 in cmd/cli.cc), not what the
subcommands do:

- a usage error exits 2 and says what is wrong: an unknown option (named),
  a missing required option, a value outside --algorithm's set, an unknown
  subcommand, an option without its value, the program's -c before a
  subcommand; nothing runs then;
- --help, for the program and for each subcommand, exits 0 and lists the
  options; `stampd help` is the program's --help; --version prints the version;
- the spellings users have: `-c FILE`, `--config FILE`, `--config=FILE`, and
  plain `stampd -c FILE` meaning `stampd run -c FILE`.
"""
import os
import re
import shutil
import tempfile

import test_main
from stampd_harness import StampdTestCase, check_config, render_toml, run_cli

CONFIG = render_toml({
    "server": {"listen": ["127.0.0.1:0"], "hostname": "stampd.test"},
    "upstream": {"servers": ["127.0.0.1:2525"]},
    "metrics": {"listen": ""},
})

# Each subcommand and options its --help must list.
HELP = {
    "run": ["--config"],
    "check-config": ["--config"],
    "genkey": ["--domain", "--selector", "--algorithm", "--dir", "rsa-2048", "rsa-3072", "ed25519"],
    "sign": ["--config"],
    "verify": ["--key-file", "--config"],
    "spf": ["--ip", "--mail-from", "--helo", "--config"],
    "dns-check": ["--config"],
    "health": ["--config", "--ready"],
}


class CommandLineTest(StampdTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stampd-cli-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.config = os.path.join(self.dir, "stampd.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG)

    def run_text(self, *args):
        r = run_cli(*args, timeout=30)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def assertUsageError(self, args, *words):
        rc, out, err = self.run_text(*args)
        self.assertEqual(rc, 2, "stampd %s: %s%s" % (" ".join(args), out, err))
        self.assertEqual(out, "", "a usage error runs nothing")
        for word in words:
            self.assertIn(word, err)
        self.assertIn("--help", err)  # says where to look
        return err

    def test_unknown_option_is_an_error_that_names_it(self):
        for args, name in ((["check-config", "-c", self.config, "--bogus"], "--bogus"),
                           (["check-config", "--bogus", "-c", self.config], "--bogus"),
                           (["genkey", "--domain", "example.com", "--selector", "s", "--dir", self.dir,
                             "--colour=blue"], "--colour"),
                           (["-c", self.config, "--bogus"], "--bogus"),
                           (["--bogus"], "--bogus")):
            with self.subTest(args=args):
                self.assertUsageError(args, name)
        self.assertEqual(os.listdir(self.dir), ["stampd.toml"], "genkey wrote keys despite the error")

    def test_unknown_subcommand_and_stray_argument(self):
        self.assertUsageError(["frobnicate"], "frobnicate")
        self.assertUsageError(["check-config", "-c", self.config, "extra"], "extra")

    def test_missing_required_option(self):
        for args, option in ((["check-config"], "--config"),
                             (["run"], "--config"),
                             ([], "--config"),
                             (["sign"], "--config"),
                             (["dns-check"], "--config"),
                             (["health"], "--config"),
                             (["genkey", "--selector", "s", "--dir", self.dir], "--domain"),
                             (["genkey", "--domain", "example.com", "--dir", self.dir], "--selector"),
                             (["spf", "--mail-from", "a@example.com"], "--ip")):
            with self.subTest(args=args):
                err = self.assertUsageError(args, option)
                self.assertIn("required", err)

    def test_config_of_the_program_goes_with_no_subcommand(self):
        # `stampd -c FILE` serves; before a subcommand it would be taken by
        # some (verify) and dropped by others (genkey), so it is refused.
        for args in (["-c", self.config, "verify"], ["-c", self.config, "check-config", "-c", self.config],
                     ["-c", self.config, "genkey", "--domain", "example.com", "--selector", "s",
                      "--dir", self.dir]):
            with self.subTest(args=args):
                self.assertUsageError(args, "--config")
        self.assertEqual(os.listdir(self.dir), ["stampd.toml"])

    def test_option_without_its_value(self):
        self.assertUsageError(["check-config", "-c"], "--config")
        self.assertUsageError(["genkey", "--domain", "example.com", "--selector"], "--selector")

    def test_algorithm_outside_its_set_is_refused(self):
        err = self.assertUsageError(["genkey", "--domain", "example.com", "--selector", "s",
                                     "--dir", self.dir, "--algorithm", "rsa-512"], "--algorithm", "rsa-512")
        for allowed in ("rsa-2048", "rsa-3072", "ed25519"):
            self.assertIn(allowed, err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "s.private")))
        rc, out, err = self.run_text("genkey", "--domain", "example.com", "--selector", "s",
                                     "--dir", self.dir, "--algorithm=ed25519")
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "s.private")))

    def test_help_for_the_program_and_each_subcommand(self):
        for spelling in (["--help"], ["-h"], ["help"]):
            rc, out, err = self.run_text(*spelling)
            self.assertEqual(rc, 0, err)
            for name in HELP:
                self.assertRegex(out, r"(?m)^\s+%s\s" % re.escape(name), spelling)
            self.assertNotRegex(out, r"(?m)^\s+help\s")  # the old spelling stays unlisted
        for name, options in HELP.items():
            with self.subTest(subcommand=name):
                rc, out, err = self.run_text(name, "--help")
                self.assertEqual(rc, 0, err)
                self.assertIn("stampd " + name, out)
                for option in options + ["--help"]:
                    self.assertIn(option, out)
        # Help wins over what is missing: nothing runs, nothing is required.
        rc, out, _ = self.run_text("genkey", "--dir", self.dir, "--help")
        self.assertEqual(rc, 0)
        self.assertEqual(os.listdir(self.dir), ["stampd.toml"])

    def test_version(self):
        rc, out, err = self.run_text("--version")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^stampd \S+\n$")

    def test_config_spellings(self):
        for args in (["-c", self.config], ["--config", self.config], ["--config=" + self.config],
                     ["-c" + self.config]):
            with self.subTest(args=args):
                rc, out, err = self.run_text("check-config", *args)
                self.assertEqual(rc, 0, err)
                self.assertIn("[server]", out)
                self.assertIn(self.config + ": ok", err)
        rc, _, err, _ = check_config(CONFIG)
        self.assertEqual(rc, 0, err)

    def test_plain_stampd_with_config_serves(self):
        for args in ((), ("run",)):
            with self.subTest(args=args):
                stampd = self.start_stampd(["127.0.0.1:1"], args=args)
                c = self.connect(stampd)
                self.assertEqual(c.greeting.code, 220)
                self.assertEqual(stampd.stop(), 0)


if __name__ == "__main__":
    test_main.main()
