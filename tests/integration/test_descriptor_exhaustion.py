"""Descriptor exhaustion: stampd runs with a low RLIMIT_NOFILE (set on the
running process with prlimit(2)) and clients connect until accept(2) fails
with EMFILE. What is shown:

* no crash, and no busy loop: the accept loop pauses between failed
  accepts (the connection waits in the kernel's backlog, so the listener
  stays readable and an unpaused loop would spin); stampd's CPU time over
  two seconds of exhaustion is sampled from /proc/PID/stat;
* one event=accept-failed line says why (Too many open files) when it
  starts, not one per failed accept, and event=accept-resumed when it ends;
* a session already open keeps its answers: a transaction in it gets 250
  or a 4xx (no upstream descriptor left), never a 5xx;
* when the clients close, the connections that waited in the backlog are
  greeted and a new client's message is relayed.
"""
import os
import resource
import socket
import time

from smtp_client import make_message
from stampd_harness import StampdTestCase, cpu_seconds, sanitizer_build, wait_until
import test_main

HEADROOM = 8  # descriptors left above what stampd holds when idle
SAMPLE_SECONDS = 2.0


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class DescriptorExhaustionTest(StampdTestCase):
    def test_accept_failing_for_want_of_descriptors(self):
        if sanitizer_build():
            # UBSan checks a vptr it has not seen before by writing the object
            # to a pipe (IsAccessibleMemoryRange): at the descriptor limit
            # pipe() fails, and it reports a valid std::error_category as
            # "invalid vptr" and stops the process (its suppressions file is
            # read at the first report, which cannot open it either).
            raise test_main.not_applicable("the UBSan runtime needs descriptors of its own")
        up = self.start_upstream()
        stampd = self.start_stampd([up.address])
        pid = stampd.pid

        # A session opened before the limit, and one message through it, so
        # the upstream pool holds what it keeps.
        early = self.connect(stampd)
        early.ehlo()
        self.assertEqual(early.send_mail("sender@example.com", ["rcpt@example.net"],
                                         make_message(subject="before")).code, 250)
        up.wait_for_messages(1)

        idle = open_fds(pid)
        limit = idle + HEADROOM
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        self.assertEqual(resource.prlimit(pid, resource.RLIMIT_NOFILE)[0], limit)

        # More clients than descriptors left: the last ones wait in the backlog.
        clients = []
        for _ in range(HEADROOM + 12):
            s = socket.create_connection(stampd.address, timeout=5)
            self.addCleanup(s.close)
            clients.append(s)
        stampd.wait_for_event("accept-failed", timeout=5)
        wait_until(lambda: open_fds(pid) >= limit, timeout=5, what="stampd at its descriptor limit")

        # Exhausted: sample the CPU time and the log.
        cpu0, lines0 = cpu_seconds(pid), len(stampd.events("accept-failed"))
        time.sleep(SAMPLE_SECONDS)
        cpu = cpu_seconds(pid) - cpu0
        repeats = len(stampd.events("accept-failed")) - lines0
        print("\ndescriptor limit %d (idle %d): stampd used %.3f s CPU in %.1f s of EMFILE; "
              "accept-failed lines: %d in all"
              % (limit, idle, cpu, SAMPLE_SECONDS, len(stampd.events("accept-failed"))))
        self.assertTrue(stampd.alive())
        self.assertLess(cpu, 0.1 * SAMPLE_SECONDS, "busy loop while accept fails")
        self.assertEqual(repeats, 0, "an accept-failed line per failed accept floods the log")
        ev = stampd.events("accept-failed")[0]
        self.assertIn("Too many open files", ev.get("error", ""), ev)
        self.assertEqual(ev.get("listen"), "%s:%d" % stampd.address, ev)

        # The open session still gets answers; a message in it is relayed or
        # tempfailed (no descriptor for a new upstream connection), never refused.
        self.assertEqual(early.cmd("NOOP").code, 250)
        r = early.send_mail("sender@example.com", ["rcpt@example.net"], make_message(subject="during"))
        self.assertIn(r.code // 100, (2, 4), r)
        if r.code // 100 == 4:
            early.cmd("RSET")

        # Clients go away: the backlog is served, and a new client relays.
        for s in clients:
            s.close()
        stampd.wait_for_event("accept-resumed", timeout=5)
        late = self.connect(stampd)
        self.assertEqual(late.greeting.code, 220)
        late.ehlo()
        self.assertEqual(late.send_mail("sender@example.com", ["rcpt@example.net"],
                                        make_message(subject="after")).code, 250)
        up.wait_for(lambda u: any(b"Subject: after" in t.content for t in u.messages),
                    what="the message sent after the clients closed")
        late.quit()
        early.quit()
        self.assertTrue(stampd.alive())
        wait_until(lambda: open_fds(pid) < limit, timeout=5, what="descriptors given back")


if __name__ == "__main__":
    test_main.main()
