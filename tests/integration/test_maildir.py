"""The maildir: upstream: each accepted message is written to tmp/ and then
renamed into new/, so a reader never sees a partial file; the file holds a
Return-Path line and the message as relayed."""
import os
import threading
import time
import unittest

from smtp_client import make_message
from stampd_harness import StampdTestCase
import test_main


class MaildirTest(StampdTestCase):
    def setUp(self):
        self.stampd = self.start_stampd(["maildir:mail"])
        self.maildir = os.path.join(self.stampd.workdir, "mail")

    def new_files(self):
        d = os.path.join(self.maildir, "new")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def test_message_lands_in_new(self):
        msg = make_message(body=b".dotted\r\n8-bit \xe2\x9c\x93\r\n")
        c = self.connect(self.stampd)
        c.ehlo()
        self.assertIn("8BITMIME", c.capabilities)
        r = c.send_mail("sender@example.com", ["rcpt@example.net", "two@example.net"], msg)
        self.assertEqual(r.code, 250, r)
        self.assertIn("delivered as", r.text)
        c.quit()
        files = self.new_files()
        self.assertEqual(len(files), 1)
        self.assertEqual(os.listdir(os.path.join(self.maildir, "tmp")), [])
        self.assertTrue(os.path.isdir(os.path.join(self.maildir, "cur")))
        with open(os.path.join(self.maildir, "new", files[0]), "rb") as f:
            self.assertEqual(f.read(), b"Return-Path: <sender@example.com>\r\n" + msg)
        self.assertIn(files[0], r.text)
        ev = self.stampd.wait_for_event("message")[0]
        self.assertEqual(ev["outcome"], "relayed")

    def test_null_sender_and_several_messages(self):
        c = self.connect(self.stampd)
        c.ehlo()
        for i in range(5):
            self.assertEqual(c.send_mail("", ["rcpt@example.net"], make_message(subject="n%d" % i)).code, 250)
        c.quit()
        files = self.new_files()
        self.assertEqual(len(set(files)), 5)
        with open(os.path.join(self.maildir, "new", files[0]), "rb") as f:
            self.assertTrue(f.read().startswith(b"Return-Path: <>\r\n"))

    def test_files_appear_in_new_only_when_complete(self):
        # A watcher polls new/ while a large message is written: every file
        # it ever sees already has its final size.
        body = (b"m" * 998 + b"\r\n") * 16384  # 16 MiB
        msg = make_message(subject="big", body=body)
        expected_size = len(b"Return-Path: <sender@example.com>\r\n") + len(msg)
        seen = {}
        stop = threading.Event()
        new_dir = os.path.join(self.maildir, "new")

        def scan():
            try:
                for name in os.listdir(new_dir):
                    if name not in seen:
                        seen[name] = os.stat(os.path.join(new_dir, name)).st_size
            except FileNotFoundError:
                pass

        def watch():
            while not stop.is_set():
                scan()
                time.sleep(0.0005)
            # Once more after stop: a busy machine may not have run a scan
            # between the last 250 and the stop.
            scan()
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        self.addCleanup(stop.set)
        c = self.connect(self.stampd)
        c.ehlo()
        for _ in range(2):
            self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], msg, timeout=60).code, 250)
        c.quit()
        stop.set()
        t.join()
        self.assertEqual(len(seen), 2, seen)
        self.assertEqual(set(seen.values()), {expected_size}, seen)
        self.assertEqual(os.listdir(os.path.join(self.maildir, "tmp")), [])


class MaildirFailureTest(StampdTestCase):
    def test_unwritable_maildir_is_a_4xx(self):
        # The Maildir's parent is a regular file, so nothing can be created.
        stampd = self.start_stampd(["maildir:blocker/mail"], files={"blocker": "not a directory\n"})
        c = self.connect(stampd)
        c.ehlo()
        r = c.mail("sender@example.com")
        self.assertEqual(r.code // 100, 4, r)


if __name__ == "__main__":
    test_main.main()
