"""The soak (tests/soak.py) at a reduced size: 100 sessions x 40 messages
with random upstream faults; no message lost or delivered twice outside the
counted duplicate window, RSS and descriptors flat after the warm-up."""
import os
import subprocess
import sys
import unittest

from stampd_harness import SOURCE_DIR, stampd_bin
import test_main


class SoakTest(unittest.TestCase):
    def test_reduced_soak(self):
        binary = stampd_bin()  # skips politely without a binary
        args = ["--sessions", "100", "--messages", "40", "--fault-rate", "0.02"]
        # A sanitizer build's RSS grows with its quarantine: not bounded there.
        with open(binary, "rb") as f:
            if b"__asan_init" in f.read():
                args.append("--no-memory-check")
        r = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "tests", "soak.py")] + args,
                           capture_output=True, text=True, timeout=240)
        sys.stderr.write(r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        self.assertIn("lost 0", r.stdout)


if __name__ == "__main__":
    test_main.main()
