"""The README's quick start, followed literally on a newcomer's machine.

The commands are taken from README.md itself (the code block that starts
stampd and the one that sends a mail), not copied here, and run as root in a
clean Debian 12 root (debootstrap minbase with git: what a user who just
cloned the repository has). The message that lands in var/maildir/new/ must
carry a DKIM-Signature that `stampd verify` and independent verifiers accept
against the DNS record stampd wrote on its first start.
"""
import os
import re
import subprocess
import time
import unittest

import debian_root
import dkim_verifiers as V
from stampd_harness import SOURCE_DIR
import test_main


def readme_blocks():
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        return re.findall(r"```sh\n(.*?)```", f.read(), re.S)


def block_with(text):
    blocks = [b for b in readme_blocks() if text in b]
    if not blocks:
        raise AssertionError("README.md has no sh block with %r" % text)
    return blocks[0]


def copy_checkout(root):
    """copy_checkout puts the checkout as it is (tracked and new files, not
    what .gitignore names: no build or var) at ROOT/src, as a clone would."""
    files = subprocess.run(["git", "-C", SOURCE_DIR, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], check=True, stdout=subprocess.PIPE).stdout
    names = b"\0".join(n for n in files.split(b"\0") if n and os.path.lexists(os.path.join(SOURCE_DIR.encode(), n)))
    dest = os.path.join(root, "src")
    os.makedirs(dest)
    tar = subprocess.Popen(["tar", "-C", SOURCE_DIR, "--null", "-T", "-", "-cf", "-"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    untar = subprocess.Popen(["tar", "-C", dest, "-xf", "-"], stdin=tar.stdout)
    tar.stdout.close()
    tar.communicate(names)
    untar.wait()
    if tar.returncode or untar.returncode:
        raise AssertionError("copying the checkout failed")


class QuickStartTest(unittest.TestCase):
    def test_readme_quick_start_signs_on_a_clean_debian(self):
        start_block = block_with("./build/stampd run")
        send_block = block_with("swaks")
        # The first command builds and then runs the daemon in the foreground;
        # the test runs it in the background and sends from "a second terminal".
        started = time.monotonic()
        root = debian_root.fresh("quickstart")
        self.addCleanup(debian_root.remove, root)
        copy_checkout(root)
        script = r"""
set -u
cd /src
start=$SECONDS
( %s ) >/root/first.log 2>&1 &
first=$!
until grep -q 'event=metrics-listening' /root/first.log; do
  if ! kill -0 $first 2>/dev/null; then
    echo "the first command exited before stampd listened:"; tail -n 60 /root/first.log; exit 1
  fi
  sleep 1
done
echo "quickstart: first command serving after $((SECONDS - start)) s"
start=$SECONDS
set -e
%s
echo "quickstart: send and verify took $((SECONDS - start)) s"
""" % (start_block.strip(), send_block.strip())
        r = debian_root.run(root, script, timeout=1800, check=False)
        print(r.stdout[-3000:])
        self.assertEqual(r.returncode, 0, r.stdout[-6000:])
        verdicts = [l for l in r.stdout.splitlines() if l.startswith(("pass ", "fail ", "none"))]
        self.assertEqual(len(verdicts), 1, r.stdout[-3000:])
        self.assertRegex(verdicts[0], r"^pass d=example\.com s=quickstart a=rsa-sha256")

        # Independent verifiers, from outside the root, against the record
        # stampd wrote (and logged) on its first start.
        src = os.path.join(root, "src")
        with open(os.path.join(src, "var/keys/example.com/quickstart.txt")) as f:
            records = V.records_for(f.read().splitlines())
        new = os.path.join(src, "var/maildir/new")
        (name,) = os.listdir(new)
        with open(os.path.join(new, name), "rb") as f:
            message = f.read()
        for verifier in V.VERIFIERS:
            ok, why = V.available(verifier)
            if not ok:
                self.skipTest(why)
            results = V.verify(verifier, message, records)
            self.assertEqual([x.status for x in results], ["pass"], (verifier, results))
        print("quickstart: whole test %.0f s" % (time.monotonic() - started))


if __name__ == "__main__":
    test_main.main()
