#!/usr/bin/python3
"""Soak: many sessions send many messages through stampd while the upstream
fails at random (4xx at MAIL, a drop at RCPT, 421 then close at DATA, a
drop after taking the final dot), then the counts: sent, 250s, delivered,
in the duplicate window, lost; stampd's RSS and open descriptors sampled
every second. Fails (exit 1) when a message that got 250 was not delivered
exactly once, a message without 250 was delivered other than in the window
(more window copies than the upstream's drops after the dot), or RSS or
descriptors grew after the warm-up.

    tests/soak.py                              # 200 sessions x 50 messages
    tests/soak.py --sessions 2000 --messages 50 --fault-rate 0.02
    tests/soak.py --sessions 2000 --messages 50 --pause 10   # mostly idle sessions

Each message's outcome is counted by the first reply that was not a
success (e.g. "mail 451 4.4.5": every upstream connection stayed busy),
so a load past what stampd, the fake upstream and the clients (one Python
process) can carry shows as tempfails, which it must be, never as loss.
--pause makes each session wait a random 0 to 2*P seconds between
messages, as pooled app clients do.

tests/integration/test_soak.py runs it small in the suite. Needs STAMPD_BIN
(or build/stampd) and tests/support on the path (it puts it there).
"""
import argparse
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from fake_upstream import FakeUpstream  # noqa: E402
from smtp_client import ConnectionClosed, SmtpClient, dot_stuff  # noqa: E402
from stampd_harness import Stampd, default_sections, merge_sections  # noqa: E402


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, sessions, messages, fault_rate, seed, memory_check=True, pause=0.0):
        self.memory_check = memory_check
        self.pause = pause
        self.sessions = sessions
        self.messages = messages
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.fault_rate = fault_rate
        self.results = {}  # tag -> final code (None: no reply)
        self.lock = threading.Lock()
        self.samples = []  # (seconds, rss KiB, fds)

    def chance(self, _argument=""):
        with self.rng_lock:
            return self.rng.random() < self.fault_rate

    def start(self):
        self.up = FakeUpstream(capabilities=FakeUpstream.BASIC, command_timeout=30.0)
        self.up.on("mail", match=self.chance, reply="451 4.3.0 soak: try again")
        self.up.on("rcpt", match=self.chance, drop=True)
        self.up.on("data", match=self.chance, reply="421 4.3.2 soak: closing", close=True)
        self.window_rule = self.up.on("dot", match=self.chance, drop=True, commit=True)
        self.up.start()
        sections = merge_sections(default_sections([self.up.address]), {
            "server": {"max_connections": 100000, "max_connections_per_ip": 100000,
                       # A session may wait up to 2 * pause between messages:
                       # not an idle client to cut.
                       "command_timeout": "%ds" % (10 + 2 * self.pause),
                       "data_timeout": "10s"},
            "upstream": {"connect_timeout": "5s", "command_timeout": "10s", "data_timeout": "10s",
                         "max_connections": 64, "idle_timeout": "1s"},
            "log": {"level": "info"},
        })
        self.stampd = Stampd(sections=sections)
        self.stampd.start()

    def stop(self):
        self.stampd.stop()
        self.stampd.cleanup()
        self.up.stop()

    def sample(self, stop):
        start = time.monotonic()
        while not stop.is_set():
            try:
                self.samples.append((time.monotonic() - start, rss_kib(self.stampd.pid),
                                     fd_count(self.stampd.pid)))
            except OSError:
                return
            stop.wait(1.0)

    def session(self, n):
        c = None
        pauses = random.Random(n)
        for i in range(self.messages):
            if self.pause:
                time.sleep(pauses.uniform(0, 2 * self.pause))
            tag = "s%d-m%d" % (n, i)
            msg = ("From: <a@soak.test>\r\nTo: <b@soak.test>\r\nSubject: soak\r\n"
                   "Message-ID: <%s@soak.test>\r\n\r\n" % tag).encode() + b"line of the body\r\n" * 40
            final = None
            why = "no reply"
            try:
                if c is None:
                    c = SmtpClient(*self.stampd.address, timeout=30)
                    c.ehlo()
                for step, line in (("mail", "MAIL FROM:<%s@soak.test>" % tag),
                                   ("rcpt", "RCPT TO:<b-%s@soak.test>" % tag), ("data", "DATA")):
                    r = c.cmd(line)
                    if r.code not in (250, 354):
                        why = "%s %d %s" % (step, r.code, r.enhanced)
                        c.cmd("RSET")
                        break
                else:
                    c.send(dot_stuff(msg))
                    r = c.reply()
                    final = r.code
                    why = "dot %d %s" % (r.code, r.enhanced)
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError, socket.timeout, OSError):
                c = None
            with self.lock:
                self.results[tag] = (final, msg, why)
        if c is not None:
            try:
                c.quit()
            except (ConnectionClosed, OSError, socket.timeout):
                pass

    def run(self):
        self.start()
        stop = threading.Event()
        sampler = threading.Thread(target=self.sample, args=(stop,), daemon=True)
        sampler.start()
        started = time.monotonic()
        threads = [threading.Thread(target=self.session, args=(n,)) for n in range(self.sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        # Every client waited for its reply (30 s, longer than any upstream
        # timeout); the pool closes its idle upstream connections (idle_timeout 1 s).
        time.sleep(4)
        self.samples.append((time.monotonic() - started, rss_kib(self.stampd.pid), fd_count(self.stampd.pid)))
        stop.set()
        report, ok = self.account(elapsed)
        self.stop()
        return report, ok

    def account(self, elapsed):
        delivered = {}
        whole = {}
        for t in self.up.accepted_messages:
            tag = t.mail_from.split("@")[0]
            delivered[tag] = delivered.get(tag, 0) + 1
            if tag in self.results and t.content == self.results[tag][1]:
                whole[tag] = whole.get(tag, 0) + 1
        sent = len(self.results)
        ok250 = [tag for tag, (final, _, _) in self.results.items() if final == 250]
        outcomes = {}
        for _, _, why in self.results.values():
            outcomes[why] = outcomes.get(why, 0) + 1
        lost = [tag for tag in ok250 if delivered.get(tag, 0) == 0]
        twice = [tag for tag in ok250 if delivered.get(tag, 0) > 1 or whole.get(tag, 0) != delivered.get(tag, 0)]
        window = [tag for tag, (final, _, _) in self.results.items()
                  if final != 250 and delivered.get(tag, 0)]
        bad_window = [tag for tag in window if delivered[tag] > 1]
        # stampd logs each message that may be in the window (the dot went
        # out, no reply came): every delivery without 250 must be one.
        logged = {ev.get("from", "").strip("<>").split("@")[0]
                  for ev in self.stampd.events("message") if ev.get("maybe_delivered") == "yes"}
        unlogged = [tag for tag in window if tag not in logged]
        # RSS and descriptors: after the first third (warm-up), no growth
        # beyond a margin; descriptors back near where they started.
        warm = [s for s in self.samples if s[0] >= self.samples[-1][0] / 3] or self.samples
        rss_warm, rss_peak, rss_end = warm[0][1], max(s[1] for s in warm), self.samples[-1][1]
        fd_start, fd_peak, fd_end = self.samples[0][2], max(s[2] for s in self.samples), self.samples[-1][2]
        report = [
            "soak: %d sessions x %d messages in %.1f s (%.0f msg/s), fault rate %.3f per step, "
            "pause %.1f s" % (self.sessions, self.messages, elapsed, sent / elapsed, self.fault_rate,
                              self.pause),
            "  sent %d, 250 %d, delivered %d, duplicate window %d (logged by stampd as "
            "maybe_delivered: %d; upstream drops after the dot: %d), lost %d, "
            "250 but not exactly once %d" % (
                sent, len(ok250), sum(1 for t in self.results if delivered.get(t)), len(window),
                len(logged), self.window_rule.used, len(lost), len(twice)),
            "  RSS KiB: after warm-up %d, peak %d, end %d; fds: start %d, peak %d, end %d" % (
                rss_warm, rss_peak, rss_end, fd_start, fd_peak, fd_end),
            "  outcomes (first reply that was not a success): " + ", ".join(
                "%s: %d" % (k, v) for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])),
        ]
        problems = []
        if lost:
            problems.append("lost (250, not delivered): %s" % lost[:10])
        if twice:
            problems.append("250 but delivered other than once, whole: %s" % twice[:10])
        if bad_window or unlogged:
            problems.append("deliveries without 250 beyond the logged window: %s" % (
                (bad_window + unlogged)[:10]))
        if self.memory_check and rss_end > rss_warm + 32 * 1024:
            problems.append("RSS grew after warm-up: %d -> %d KiB" % (rss_warm, rss_end))
        if fd_end > fd_start + 16:
            problems.append("descriptors left open: %d -> %d" % (fd_start, fd_end))
        report += ["  PROBLEM: " + p for p in problems]
        return "\n".join(report), not problems


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--messages", type=int, default=50)
    p.add_argument("--fault-rate", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--pause", type=float, default=0.0,
                   help="each session waits a random 0 to 2*PAUSE seconds before each message")
    p.add_argument("--no-memory-check", action="store_true",
                   help="report RSS but do not bound it (a sanitizer build's quarantine grows)")
    args = p.parse_args()
    report, ok = Soak(args.sessions, args.messages, args.fault_rate, args.seed,
                      not args.no_memory_check, args.pause).run()
    print(report)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
