"""stampd's life cycle as operators drive it: SIGHUP reloads, SIGTERM drains,
/healthz and /readyz, and dropping root after binding.

- SIGHUP under load: clients send without pause while the config is rewritten
  (the DKIM selector and key change) and SIGHUP is sent several times. No
  message fails, each one is signed exactly once, every session that started
  after a reload was logged carries that reload's selector, and
  stampd_config_reloads_total{result="ok"} and stampd_config_info follow.
- An invalid new config (syntax, unknown key, unusable key) is refused: a
  reload-failed line with file:line, reloads_total{result="failed"}, and the
  old config keeps signing with the old selector.
- SIGTERM drains: a message in flight (slow upstream, slow client) finishes
  with 250, new connections get 421 4.3.2, /readyz says 503 draining, exit 0;
  a session that never ends is cut at drain_timeout, still exit 0.
  SIGTERM repeated every 2 ms through the drain and the teardown changes
  nothing: one "draining", one "signal-ignored", the message relayed, exit 0.
- /healthz is 200 while the process runs; /readyz is 200 only when the
  upstream answered the last probe and every signing key is usable. A key
  file with mode 0644 is refused (not ready, and its rule fails closed with
  451) unless allow_group_readable_keys is set.
- Started as root with [server] user = "nobody", stampd binds a privileged
  port, then runs as nobody (/proc/PID/status: Uid, Gid, Groups, CapEff) and
  relays; a reload that needs a root-only key file is refused, not fatal.
"""
import hashlib
import os
import pwd
import shutil
import signal
import socket
import tempfile
import threading
import time
import unittest

from dkim_verifiers import records_for, signatures, verify_dkimpy
from fake_upstream import FakeUpstream
from prometheus_tools import http_get, metrics_address, scrape
from smtp_client import SmtpClient, dot_stuff, make_message
import test_main
from stampd_harness import (StampdTestCase, default_sections, free_port, make_key, merge_sections,
                            proc_status, render_toml, stampd_bin, wait_until)


class LifecycleTestCase(StampdTestCase):
    def setUp(self):
        stampd_bin()
        self.tmp = tempfile.mkdtemp(prefix="stampd-lifecycle-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.records = {}

    def genkey(self, selector, algorithm="rsa-2048"):
        private, record = make_key(self.tmp, "example.com", selector, algorithm)
        with open(record) as f:
            self.records.update(records_for(f.read().splitlines()))
        with open(private, "rb") as f:
            return f.read()

    def sections(self, up, selector, extra=None):
        """sections is a config signing *@example.com with selector's key (file SELECTOR.private)."""
        base = default_sections([up.address])
        base["metrics"] = {"listen": "127.0.0.1:0"}
        base["upstream"]["health_check_interval"] = "1s"  # /readyz needs the probe
        base["dkim"] = {
            "key": [{"name": "main", "domain": "example.com", "selector": selector,
                     "private_key": selector + ".private"}],
            "sign": [{"from": "*@example.com", "keys": ["main"], "on_error": "fail-closed"}],
        }
        return merge_sections(base, extra)

    def start_with_keys(self, sections, keys, start=True, **kwargs):
        """start_with_keys writes the keys (mode 0600 unless given as (bytes, mode)) and starts stampd."""
        s = self.start_stampd(config_text=render_toml(sections), sections=sections, start=False, **kwargs)
        self.write_keys(s, keys)
        return s.start() if start else s

    def write_keys(self, stampd, keys):
        for name, content in keys.items():
            data, mode = content if isinstance(content, tuple) else (content, 0o600)
            path = os.path.join(stampd.workdir, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, mode)

    def write_config(self, stampd, text):
        """write_config replaces the config file atomically, as a deploy tool does."""
        tmp = stampd.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, stampd.config_path)
        return hashlib.sha256(text.encode()).hexdigest()

    def reload(self, stampd, text, expect="reloaded"):
        """reload writes text as the config, sends SIGHUP and waits for the
        reloaded (or reload-failed) line; returns (event, new config hash)."""
        before = len(stampd.events(expect))
        digest = self.write_config(stampd, text)
        self.sighup_sent = time.monotonic()
        stampd.proc.send_signal(signal.SIGHUP)
        ev = stampd.wait_for_event(expect, count=before + 1)[-1]
        return ev, digest

    def send_one(self, stampd, subject, author="author@example.com", greeted=None):
        """send_one relays one message on a new session; greeted (a list)
        gets the time the greeting arrived: the session was accepted by then."""
        c = SmtpClient(*stampd.address)
        if greeted is not None:
            greeted.append(time.monotonic())
        try:
            c.ehlo()
            r = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message(subject=subject, sender=author))
            c.quit()
            return r
        finally:
            c.close()

    def selector_of(self, up, subject):
        for tx in up.messages:
            if ("Subject: %s\r\n" % subject).encode() in tx.content:
                sigs = signatures(tx.content)
                return [s["s"] for s in sigs]
        return None


class ReloadTest(LifecycleTestCase):
    def test_sighup_under_load_switches_selector_without_failures(self):
        keys = {"old.private": self.genkey("old"), "new.private": self.genkey("new", "ed25519")}
        up = self.start_upstream()
        config = {sel: render_toml(self.sections(up, sel)) for sel in ("old", "new")}
        stampd = self.start_with_keys(self.sections(up, "old"), keys)
        maddr = metrics_address(stampd)
        first_hash = scrape(maddr).series("stampd_config_info")[0][0]["sha256"]
        with open(stampd.config_path, "rb") as f:
            self.assertEqual(first_hash, hashlib.sha256(f.read()).hexdigest())

        stop = threading.Event()
        sent = []  # (subject, time before connecting, time greeted, reply code)
        lock = threading.Lock()

        def client(n):
            i = 0
            while not stop.is_set():
                subject = "load-%d-%d" % (n, i)
                i += 1
                t = time.monotonic()
                greeted = []
                try:
                    code = self.send_one(stampd, subject, greeted=greeted).code
                except Exception as e:  # counted as a failure below
                    code = repr(e)
                with lock:
                    sent.append((subject, t, greeted[0] if greeted else time.monotonic(), code))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        reloads = [(float("-inf"), float("-inf"), "old")]  # (SIGHUP sent, reloaded line seen, selector)
        try:
            time.sleep(0.3)
            for i, sel in enumerate(["new", "old", "new", "old", "new"]):
                ev, digest = self.reload(stampd, config[sel])
                reloads.append((self.sighup_sent, time.monotonic(), sel))
                self.assertEqual(ev["sha256"], digest)
                m = scrape(maddr)
                self.assertEqual(m.value("stampd_config_reloads_total", result="ok"), i + 1)
                self.assertEqual([l["sha256"] for l, _ in m.series("stampd_config_info")], [digest])
                time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(30)

        self.assertGreater(len(sent), 20)
        failed = [s for s in sent if s[3] != 250]
        self.assertEqual(failed, [], "messages failed during reloads")
        up.wait_for_messages(len(sent))
        self.assertEqual(scrape(maddr).value("stampd_config_reloads_total", result="failed"), 0)
        counts = {"old": 0, "new": 0}
        for subject, t_connect, t_greeted, _ in sent:
            sels = self.selector_of(up, subject)
            self.assertIsNotNone(sels, subject)
            self.assertEqual(len(sels), 1, (subject, sels))  # signed exactly once
            counts[sels[0]] += 1
            # A session that connected after a reload was seen runs on it (or
            # on a later one whose SIGHUP was sent before the session was
            # accepted, which it was by the time it was greeted).
            last = max(i for i, (_, t_seen, _) in enumerate(reloads) if t_seen < t_connect)
            allowed = {reloads[last][2]} | {sel for t_sent, _, sel in reloads[last + 1:] if t_sent < t_greeted}
            self.assertIn(sels[0], allowed, subject)
        self.assertGreater(counts["old"], 0)
        self.assertGreater(counts["new"], 0)
        # Every signature verifies (both keys' records are published).
        for tx in up.messages[-5:]:
            self.assertEqual([r.status for r in verify_dkimpy(tx.content, self.records)], ["pass"])
        # The last config is in force.
        self.assertEqual(self.send_one(stampd, "after-all").code, 250)
        up.wait_for_messages(len(sent) + 1)
        self.assertEqual(self.selector_of(up, "after-all"), ["new"])

    def test_invalid_config_is_refused_and_old_one_keeps_working(self):
        keys = {"old.private": self.genkey("old"), "new.private": self.genkey("new")}
        up = self.start_upstream()
        stampd = self.start_with_keys(self.sections(up, "old"), keys)
        maddr = metrics_address(stampd)
        good_hash = scrape(maddr).series("stampd_config_info")[0][0]["sha256"]
        good_text = render_toml(self.sections(up, "new"))

        # An unknown key: refused with file:line.
        lines = good_text.splitlines()
        at = lines.index("[upstream]") + 1
        lines.insert(at, 'servres = ["typo:25"]')
        ev, _ = self.reload(stampd, "\n".join(lines) + "\n", expect="reload-failed")
        self.assertIn("%s:%d:" % (stampd.config_path, at + 1), ev["error"])
        self.assertIn("servres", ev["error"])
        self.assertEqual(ev["kept"], "previous config")

        # Broken TOML syntax.
        ev, _ = self.reload(stampd, good_text.replace("[dkim]", "[dkim"), expect="reload-failed")
        self.assertRegex(ev["error"], r"^%s:\d+:" % stampd.config_path)

        # A key the new config names cannot be used (group-readable): refused too.
        os.chmod(os.path.join(stampd.workdir, "new.private"), 0o644)
        ev, _ = self.reload(stampd, good_text, expect="reload-failed")
        self.assertIn("new.private", ev["error"])

        m = scrape(maddr)
        self.assertEqual(m.value("stampd_config_reloads_total", result="failed"), 3)
        self.assertEqual(m.value("stampd_config_reloads_total", result="ok"), 0)
        self.assertEqual([l["sha256"] for l, _ in m.series("stampd_config_info")], [good_hash])
        self.assertTrue(stampd.alive())
        self.assertEqual(self.send_one(stampd, "still-old").code, 250)
        up.wait_for_messages(1)
        self.assertEqual(self.selector_of(up, "still-old"), ["old"])
        self.assertEqual(http_get(maddr, "/readyz")[0], 200)

        # Fixed: the next reload succeeds.
        os.chmod(os.path.join(stampd.workdir, "new.private"), 0o600)
        ev, digest = self.reload(stampd, good_text)
        self.assertEqual(scrape(maddr).value("stampd_config_reloads_total", result="ok"), 1)
        self.assertEqual(self.send_one(stampd, "now-new").code, 250)
        up.wait_for_messages(2)
        self.assertEqual(self.selector_of(up, "now-new"), ["new"])

    def signed_and_verified(self, stampd, up, subject):
        """signed_and_verified relays one message and checks, with python3-dkim
        and the records published so far, that it carries one passing signature."""
        before = len(up.messages)
        self.assertEqual(self.send_one(stampd, subject).code, 250)
        content = up.wait_for_messages(before + 1)[-1].content
        self.assertEqual([r.status for r in verify_dkimpy(content, self.records)], ["pass"], subject)

    def check_key_file_loss(self, generate):
        """The key file of the running config goes away, then comes back
        group-readable, then right: the first two SIGHUPs are refused with the
        file and the reason, the key in memory keeps signing (verified against
        the published record), the third SIGHUP loads it again."""
        key = self.genkey("s1")
        up = self.start_upstream()
        extra = {"dkim": {"key": [{"name": "main", "domain": "example.com", "selector": "s1",
                                   "private_key": "s1.private", "generate": True}]}} if generate else None
        sections = self.sections(up, "s1", extra)
        stampd = self.start_with_keys(sections, {"s1.private": key})
        maddr = metrics_address(stampd)
        path = os.path.join(stampd.workdir, "s1.private")
        text = render_toml(sections)
        self.signed_and_verified(stampd, up, "before")

        os.unlink(path)
        self.signed_and_verified(stampd, up, "gone, no reload yet")  # read at load, not per message
        ev, _ = self.reload(stampd, text, expect="reload-failed")
        self.assertIn(path, ev["error"])
        self.assertRegex(ev["error"], r"(?i)no such file|does not exist|missing")
        self.assertEqual(ev["kept"], "previous config")
        print("\nkey file gone, SIGHUP (generate=%s): reload-failed error=%r" % (generate, ev["error"]))
        self.assertFalse(os.path.exists(path), "a reload must not replace a key in use by a new one")
        self.assertEqual(stampd.events("dkim-key-generated"), [])
        self.assertTrue(stampd.alive())
        self.signed_and_verified(stampd, up, "after the refused reload (file gone)")
        self.assertEqual(http_get(maddr, "/readyz")[0], 200)

        self.write_keys(stampd, {"s1.private": (key, 0o644)})
        ev, _ = self.reload(stampd, text, expect="reload-failed")
        self.assertIn(path, ev["error"])
        self.assertIn("0644", ev["error"])
        print("key file back with mode 0644, SIGHUP: reload-failed error=%r" % ev["error"])
        self.signed_and_verified(stampd, up, "after the refused reload (mode 0644)")

        os.chmod(path, 0o600)
        ev, digest = self.reload(stampd, text)
        self.assertEqual(ev["sha256"], digest)
        self.signed_and_verified(stampd, up, "after the reload that loaded it again")
        m = scrape(maddr)
        self.assertEqual(m.value("stampd_config_reloads_total", result="failed"), 2)
        self.assertEqual(m.value("stampd_config_reloads_total", result="ok"), 1)
        self.assertEqual(http_get(maddr, "/readyz")[0], 200)
        self.assertEqual(stampd.stop(), 0)

    def test_key_file_gone_or_group_readable_before_sighup_is_refused(self):
        self.check_key_file_loss(generate=False)

    def test_key_file_gone_with_generate_is_not_replaced_by_a_new_key(self):
        # generate = true makes a missing key at start; a key the running
        # process signs with is published: a new one there would sign mail
        # that no receiver can verify.
        self.check_key_file_loss(generate=True)


class DrainTest(LifecycleTestCase):
    def start_plain(self, up, drain_timeout="10s", **server):
        sections = merge_sections(default_sections([up.address]),
                                  {"server": dict(drain_timeout=drain_timeout, **server),
                                   "metrics": {"listen": "127.0.0.1:0"},
                                   "upstream": {"health_check_interval": "1s"}})
        return self.start_stampd(config_text=render_toml(sections), sections=sections)

    def assertRefusedWhileDraining(self, stampd):
        late = SmtpClient(*stampd.address)
        self.addCleanup(late.close)
        self.assertEqual((late.greeting.code, late.greeting.enhanced), (421, "4.3.2"), late.greeting)
        late.wait_closed(5)

    def message_at_upstream(self, stampd, up, subject):
        """message_at_upstream sends a message up to its final dot and waits
        until the upstream has that dot (and is holding its reply); returns
        the client, which waits for the final reply."""
        c = self.connect(stampd)
        c.ehlo()
        c.mail("sender@example.com")
        c.rcpt("rcpt@example.net")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message(subject=subject)))
        up.wait_for(lambda u: any(t.dot_time for t in u.transactions), what="final dot upstream")
        return c

    def test_message_in_flight_at_slow_upstream_finishes(self):
        up = self.start_upstream()
        up.on("dot", delay=2.0)
        stampd = self.start_plain(up)
        maddr = metrics_address(stampd)
        wait_until(lambda: http_get(maddr, "/readyz")[0] == 200, what="ready")
        c = self.message_at_upstream(stampd, up, "in flight")
        stampd.proc.send_signal(signal.SIGTERM)
        stampd.wait_for_event("draining")
        self.assertRefusedWhileDraining(stampd)
        status, body = http_get(maddr, "/readyz")
        self.assertEqual((status, body.strip()), (503, "not ready: draining"))
        self.assertEqual(http_get(maddr, "/healthz")[0], 200)
        self.assertGreaterEqual(scrape(maddr).value("stampd_connections_refused_total", reason="draining"), 1)
        final = c.reply(timeout=10)
        self.assertEqual(final.code, 250, final)
        c.quit()
        self.assertEqual(stampd.stop(timeout=15), 0)
        self.assertEqual(len(up.accepted_messages), 1)
        self.assertEqual(stampd.events("stopped")[0]["unfinished_sessions"], "0")

    def test_repeated_sigterm_neither_cuts_the_drain_nor_kills_the_exit(self):
        # Supervisors and people send SIGTERM again (a second kubectl delete,
        # a test harness's stop). Once the drain has started, another one
        # must change nothing: not the message in flight, not the exit code,
        # even when it lands while the process is tearing itself down.
        up = self.start_upstream()
        up.on("dot", delay=1.0)
        stampd = self.start_plain(up)
        c = self.message_at_upstream(stampd, up, "under repeated TERM")
        done = threading.Event()

        def keep_terminating():
            while not done.is_set() and stampd.proc.poll() is None:
                stampd.proc.send_signal(signal.SIGTERM)
                time.sleep(0.002)

        hammer = threading.Thread(target=keep_terminating)
        hammer.start()
        self.addCleanup(hammer.join)
        self.addCleanup(done.set)
        self.assertEqual(c.reply(timeout=10).code, 250)
        c.quit()
        self.assertEqual(stampd.proc.wait(15), 0)
        done.set()
        stampd.stop()
        self.assertEqual(len(stampd.events("draining")), 1)
        self.assertEqual(len(stampd.events("signal-ignored", signal="TERM", reason="already draining")), 1)
        self.assertEqual(stampd.events("stopped")[0]["unfinished_sessions"], "0")
        self.assertEqual(len(up.accepted_messages), 1)

    def test_slow_client_mid_data_finishes(self):
        up = self.start_upstream()
        stampd = self.start_plain(up)
        c = self.connect(stampd)
        c.ehlo()
        c.mail("sender@example.com")
        c.rcpt("rcpt@example.net")
        self.assertEqual(c.cmd("DATA").code, 354)
        msg = make_message(subject="slow client", body=b"first half\r\n" * 50 + b"second half\r\n" * 50)
        half = len(msg) // 2
        c.send(msg[:half])
        stampd.proc.send_signal(signal.SIGTERM)
        stampd.wait_for_event("draining")
        self.assertRefusedWhileDraining(stampd)
        time.sleep(0.5)
        c.send(msg[half:] + b".\r\n")
        self.assertEqual(c.reply(timeout=10).code, 250)
        c.quit()
        self.assertEqual(stampd.stop(timeout=15), 0)
        up.wait_for_messages(1)
        self.assertEqual(up.messages[0].content, msg)

    def test_drain_timeout_cuts_a_session_that_never_ends(self):
        # A transaction that is opened and never finished holds the drain
        # only for drain_timeout.
        up = self.start_upstream()
        stampd = self.start_plain(up, drain_timeout="1s")
        stuck = self.connect(stampd)
        stuck.ehlo()
        self.assertEqual(stuck.mail("sender@example.com").code, 250)
        start = time.monotonic()
        stampd.proc.send_signal(signal.SIGTERM)
        self.assertEqual(stampd.proc.wait(10), 0)
        self.assertLess(time.monotonic() - start, 5)
        stampd.stop()
        self.assertEqual(stampd.events("stopped")[0]["unfinished_sessions"], "1")

    def test_drain_ends_idle_sessions_at_once_and_waits_only_for_transactions(self):
        # 100 sessions idle between transactions (as pooled app clients and
        # Postfix's connection cache leave them) and 5 in the middle of DATA:
        # the idle ones get 421 4.3.2 at once, the 5 messages are relayed,
        # and the process exits then, not at drain_timeout (30 s here).
        up = self.start_upstream()
        stampd = self.start_plain(up, drain_timeout="30s", max_connections_per_ip=200)
        idle = []
        for _ in range(100):
            c = self.connect(stampd)
            c.ehlo()
            idle.append(c)
        busy = []
        for i in range(5):
            c = self.connect(stampd)
            c.ehlo()
            c.mail("sender@example.com")
            c.rcpt("rcpt@example.net")
            self.assertEqual(c.cmd("DATA").code, 354)
            msg = make_message(subject="in flight %d" % i)
            c.send(msg[:len(msg) // 2])
            busy.append((c, msg))
        start = time.monotonic()
        stampd.proc.send_signal(signal.SIGTERM)
        stampd.wait_for_event("draining")
        for c in idle:
            r = c.reply(timeout=5)
            self.assertEqual((r.code, r.enhanced), (421, "4.3.2"), r)
        time.sleep(0.3)
        for c, msg in busy:
            c.send(msg[len(msg) // 2:] + b".\r\n")
        for c, _ in busy:
            self.assertEqual(c.reply(timeout=10).code, 250)
        # Between transactions now: they get the 421 too.
        for c, _ in busy:
            self.assertEqual(c.reply(timeout=5).code, 421)
        self.assertEqual(stampd.proc.wait(10), 0)
        elapsed = time.monotonic() - start
        stampd.stop()
        self.assertLess(elapsed, 8, "the drain waited for idle sessions")
        self.assertEqual(len(up.accepted_messages), 5)
        self.assertEqual(stampd.events("stopped")[0]["unfinished_sessions"], "0")
        self.assertEqual(len(stampd.events("disconnect", reason="drain")), 105)
        print("drain with 100 idle and 5 mid-DATA sessions: exited %.2f s after SIGTERM" % elapsed)


class HealthTest(LifecycleTestCase):
    def test_ready_only_while_upstream_answers(self):
        port = free_port()
        sections = merge_sections(default_sections(["127.0.0.1:%d" % port]),
                                  {"metrics": {"listen": "127.0.0.1:0"},
                                   "upstream": {"health_check_interval": "1s", "connect_timeout": "1s"}})
        stampd = self.start_stampd(config_text=render_toml(sections), sections=sections)
        maddr = metrics_address(stampd)
        self.assertEqual(http_get(maddr, "/healthz"), (200, "ok\n"))
        status, body = wait_until(lambda: (lambda r: r if "unreachable" in r[1] else None)(
            http_get(maddr, "/readyz")), what="not ready")
        self.assertEqual((status, body), (503, "not ready: upstream unreachable at the last contact\n"))
        self.assertEqual(scrape(maddr).value("stampd_upstream_up"), 0)
        self.assertGreaterEqual(scrape(maddr).value("stampd_upstream_errors_total", kind="connect"), 1)

        up = FakeUpstream(port=port)
        self.addCleanup(up.stop)
        up.start()
        wait_until(lambda: http_get(maddr, "/readyz") == (200, "ready\n"), timeout=10, what="ready")
        self.assertEqual(scrape(maddr).value("stampd_upstream_up"), 1)
        # HEAD works for probes that send it; anything else is 404.
        self.assertEqual(http_get(maddr, "/healthz", method="HEAD"), (200, ""))
        self.assertEqual(http_get(maddr, "/nope")[0], 404)

        up.stop()
        wait_until(lambda: http_get(maddr, "/readyz")[0] == 503, timeout=10, what="not ready again")
        self.assertEqual(http_get(maddr, "/healthz")[0], 200)

    def test_group_readable_key_is_refused_unless_allowed(self):
        key = self.genkey("s1")
        up = self.start_upstream()
        stampd = self.start_with_keys(self.sections(up, "s1"), {"s1.private": (key, 0o644)})
        maddr = metrics_address(stampd)
        ev = stampd.wait_for_event("dkim-key-unusable")[0]
        self.assertIn("mode 0644", ev["detail"])
        status, body = http_get(maddr, "/readyz")
        self.assertEqual(status, 503)
        self.assertIn("signing key unusable", body)
        self.assertEqual(http_get(maddr, "/healthz")[0], 200)
        # The rule still matches and fails closed: no unsigned mail slips out.
        r = self.send_one(stampd, "unsignable")
        self.assertEqual((r.code, r.enhanced), (451, "4.7.5"))
        self.assertEqual(up.messages, [])
        self.assertEqual(stampd.wait_for_event("message")[0]["dkim"], "failed")
        self.assertEqual(scrape(maddr).value("stampd_dkim_failures_total", reason="key-unavailable"), 1)

        allowed = self.sections(up, "s1", {"dkim": {"allow_group_readable_keys": True}})
        stampd2 = self.start_with_keys(allowed, {"s1.private": (key, 0o644)})
        maddr2 = metrics_address(stampd2)
        wait_until(lambda: http_get(maddr2, "/readyz")[0] == 200, what="ready with allow_group_readable_keys")
        self.assertEqual(self.send_one(stampd2, "signed").code, 250)
        up.wait_for_messages(1)
        self.assertEqual(self.selector_of(up, "signed"), ["s1"])


def free_privileged_port():
    for port in range(1023, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    return None


@unittest.skipUnless(os.geteuid() == 0, "privilege drop needs root")
class PrivilegeDropTest(LifecycleTestCase):
    def test_runs_as_nobody_after_binding_a_privileged_port(self):
        nobody = pwd.getpwnam("nobody")
        key = self.genkey("s1")
        up = self.start_upstream()
        port = free_privileged_port()
        self.assertIsNotNone(port)
        sections = self.sections(up, "s1", {"server": {"user": "nobody", "listen": ["127.0.0.1:%d" % port]}})
        stampd = self.start_with_keys(sections, {"s1.private": key}, start=False)  # root's, 0600
        # nobody may read the config (as an admin would set it up), not the key.
        os.chmod(stampd.workdir, 0o755)
        os.chmod(stampd.config_path, 0o644)
        stampd.start()
        self.assertEqual(stampd.port, port)
        status = proc_status(stampd.pid)
        self.assertEqual(status["Uid"].split(), [str(nobody.pw_uid)] * 4)
        self.assertEqual(status["Gid"].split(), [str(nobody.pw_gid)] * 4)
        self.assertEqual(status["Groups"], "")
        self.assertEqual(int(status["CapEff"], 16), 0)
        self.assertEqual(int(status["CapPrm"], 16), 0)
        # It relays and signs (the key was read before the switch).
        self.assertEqual(self.send_one(stampd, "as nobody").code, 250)
        up.wait_for_messages(1)
        self.assertEqual(self.selector_of(up, "as nobody"), ["s1"])
        # A reload must read the key again, which nobody cannot: refused, kept.
        ev, _ = self.reload(stampd, render_toml(sections), expect="reload-failed")
        self.assertIn("s1.private", ev["error"])
        self.assertEqual(self.send_one(stampd, "still signing").code, 250)
        up.wait_for_messages(2)
        self.assertEqual(self.selector_of(up, "still signing"), ["s1"])
        self.assertEqual(stampd.stop(), 0)

    def test_unknown_user_is_a_clear_error(self):
        up = self.start_upstream()
        sections = merge_sections(default_sections([up.address]), {"server": {"user": "no-such-user-zq"}})
        s = self.start_stampd(config_text=render_toml(sections), sections=sections, start=False)
        with self.assertRaises(RuntimeError):
            s.start(timeout=10)
        s.proc.wait(10)
        self.assertEqual(s.proc.returncode, 1)
        self.assertIn("no user named 'no-such-user-zq'", s.log_text())


if __name__ == "__main__":
    test_main.main()
