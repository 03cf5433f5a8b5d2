"""A full spool disk: [server] spool_dir on a small tmpfs mounted by the test.

A message bigger than spool_memory spills to a temporary file in spool_dir.
When that file cannot be created (no inode left) or written (no block left),
what is shown:

* the client gets 451 4.3.0 at the final dot (it keeps the mail and retries);
* an event=spool-error line says why (ENOSPC, naming the directory);
* the upstream never sees DATA: the transaction is reset there, so nothing
  partial is delivered;
* the process stays up, and once the filler file is deleted the next
  message (same session) is relayed whole.

Mounting needs root (CAP_SYS_ADMIN): elsewhere the test skips, and in CI a
skip is a failure (test_main).
"""
import errno
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from smtp_client import make_message
from stampd_harness import StampdTestCase, render_toml
import test_main

TMPFS_SIZE = 256 * 1024
SPOOL_MEMORY = 4096  # the smallest spool_memory: anything larger spills to disk


def mount_tmpfs(path, options):
    """mount_tmpfs mounts a tmpfs on path; SkipTest when this process may not."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "stampd-spool-test", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise unittest.SkipTest("cannot mount a tmpfs: " + r.stderr.strip())


def unmount(path):
    if subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


def fill_blocks(path):
    """fill_blocks writes path until the file system is full; returns its size."""
    chunk = b"\0" * 4096
    written = 0
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                written += f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    return written


def fill_inodes(directory):
    """fill_inodes creates empty files in directory until no inode is left."""
    made = []
    try:
        while True:
            p = os.path.join(directory, "inode-%d" % len(made))
            open(p, "wb").close()
            made.append(p)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    return made


class SpoolFullTest(StampdTestCase):
    SERVER = {"spool_memory": SPOOL_MEMORY}

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stampd-spool-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        # nr_inodes small enough to run out of on purpose (the root counts).
        mount_tmpfs(self.spool, "size=%d,nr_inodes=64,mode=0700" % TMPFS_SIZE)
        self.addCleanup(unmount, self.spool)
        self.up = self.start_upstream()
        self.stampd = self.start_stampd([self.up.address], {
            "server": dict(self.SERVER, spool_dir=self.spool)})
        # Bigger than spool_memory, smaller than the tmpfs: it fits once space is back.
        self.body = b"".join(b"line %06d of a message that spills to the spool file\r\n" % i
                             for i in range(1200))
        self.assertGreater(len(self.body), 10 * SPOOL_MEMORY)
        self.assertLess(len(self.body), TMPFS_SIZE // 2)

    def send(self, client, subject):
        return client.send_mail("sender@example.com", ["rcpt@example.net"],
                                make_message(subject=subject, body=self.body))

    def assertRefusedAndNothingRelayed(self, client, subject, error_words):
        mark = self.up.mark()
        r = self.send(client, subject)
        self.assertEqual((r.code, r.enhanced), (451, "4.3.0"), r)
        ev = self.stampd.wait_for_event("spool-error", count=1,
                                        where=lambda e: error_words in e.get("error", ""))
        self.assertIn("No space left on device", ev[-1]["error"], ev[-1])
        msg = self.stampd.wait_for_event("message", where=lambda e: e.get("reply", "").startswith("451"))
        self.assertEqual(msg[-1].get("outcome"), "tempfailed", msg[-1])
        # MAIL and RCPT went upstream as they came; the message never did.
        self.up.wait_idle()
        seen = [c.split(" ", 1)[0].upper() for c in self.up.commands_since(mark)]
        self.assertIn("MAIL", seen)
        self.assertNotIn("DATA", seen)
        self.assertEqual([t for t in self.up.transactions_since(mark) if t.data_started], [])
        self.assertTrue(self.stampd.alive())

    def assertRelayed(self, client, subject):
        before = len(self.up.messages)
        r = self.send(client, subject)
        self.assertEqual(r.code, 250, r)
        self.up.wait_for_messages(before + 1)
        got = self.up.messages[-1]
        self.assertTrue(got.content.endswith(self.body), "the body arrived changed")

    def test_no_block_left_then_space_back(self):
        filler = os.path.join(self.spool, "filler")
        fill_blocks(filler)
        c = self.connect(self.stampd)
        c.ehlo()
        self.assertRefusedAndNothingRelayed(c, "no-blocks", "cannot write the spool file")
        self.assertIn(self.spool, self.stampd.events("spool-error")[-1]["error"])
        # A message that fits in spool_memory needs no file: still relayed.
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message(subject="small"))
        self.assertEqual(r.code, 250, r)
        os.unlink(filler)
        self.assertRelayed(c, "after-space-back")
        c.quit()

    def test_no_inode_left_then_inodes_back(self):
        made = fill_inodes(self.spool)
        c = self.connect(self.stampd)
        c.ehlo()
        self.assertRefusedAndNothingRelayed(c, "no-inodes", "cannot create a spool file")
        self.assertIn(self.spool, self.stampd.events("spool-error")[-1]["error"])
        for p in made:
            os.unlink(p)
        self.assertRelayed(c, "after-inodes-back")
        c.quit()


class SpoolMemoryTotalTest(SpoolFullTest):
    """[server] spool_memory_total: all messages together stay under it. Here
    it is 64 KiB and spool_memory 1 MiB, so a message of about 66 KB spills
    to the file only because of the total: with the disk full it is refused
    the same way, and relayed once there is space."""

    SERVER = {"spool_memory": "1MiB", "spool_memory_total": "64KiB"}

    def test_no_block_left_then_space_back(self):
        self.assertGreater(len(self.body), 64 * 1024)
        self.assertLess(len(self.body), 1024 * 1024)
        super().test_no_block_left_then_space_back()

    # Once the message spills the path is the one above: not repeated (None:
    # unittest collects no test by that name).
    test_no_inode_left_then_inodes_back = None

    def test_a_reload_applies_a_new_total(self):
        # Disk full: refused while the total is 64 KiB; after a SIGHUP that
        # raises it, the same message fits in memory and is relayed.
        filler = os.path.join(self.spool, "filler")
        fill_blocks(filler)
        c = self.connect(self.stampd)
        c.ehlo()
        self.assertRefusedAndNothingRelayed(c, "before-reload", "cannot write the spool file")
        c.quit()
        sections = dict(self.stampd.sections)
        sections["server"] = dict(sections["server"], spool_memory_total="8MiB")
        with open(self.stampd.config_path, "w") as f:
            f.write(render_toml(sections))
        self.stampd.proc.send_signal(signal.SIGHUP)
        self.stampd.wait_for_event("reloaded")
        c = self.connect(self.stampd)
        c.ehlo()
        self.assertRelayed(c, "after-reload")
        c.quit()


if __name__ == "__main__":
    test_main.main()
