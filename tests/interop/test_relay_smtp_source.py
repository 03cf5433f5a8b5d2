"""Load through stampd with Postfix's own tools: smtp-source sends 1,000
messages over 10 parallel sessions through stampd to smtp-sink, and every
one is counted at the sink (its final-dot counter) and in stampd's log."""
import unittest

from postfix_tools import SmtpSink, smtp_source
from stampd_harness import StampdTestCase
import test_main


class SmtpSourceThroughStampdTest(StampdTestCase):
    def setUp(self):
        self.sink = SmtpSink()
        self.addCleanup(self.sink.cleanup)
        self.sink.start()
        # info level: one line per message is plenty for 1,000 messages.
        self.stampd = self.start_stampd([self.sink.address], {"log": {"level": "info"}})

    def run_source(self, messages, sessions, **kwargs):
        address = "%s:%d" % self.stampd.address
        r, seconds = smtp_source(address, messages=messages, sessions=sessions, **kwargs)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr, b"", r.stderr)
        return seconds

    def test_1000_messages_over_10_sessions(self):
        seconds = self.run_source(1000, 10, size=4096)
        self.sink.wait_for_messages(1000, timeout=30)
        self.assertEqual(self.sink.messages(), 1000)
        self.stampd.wait_for_event("message", count=1000, timeout=30)
        outcomes = [e["outcome"] for e in self.stampd.messages()]
        self.assertEqual(outcomes.count("relayed"), 1000, set(outcomes))
        self.assertEqual(len(outcomes), 1000)
        print("\n1000 x 4 KiB over 10 sessions through stampd: %.2fs" % seconds)

    def test_several_messages_per_session_and_recipients(self):
        # -d keeps each session open for the next message; -r 5 recipients each.
        self.run_source(200, 4, size=1024, recipients=5, options=["-d"])
        self.sink.wait_for_messages(200, timeout=30)
        self.assertEqual(self.sink.messages(), 200)
        events = self.stampd.wait_for_event("message", count=200, timeout=30)
        self.assertTrue(all(e["rcpts"] == "5" and e["outcome"] == "relayed" for e in events))
        self.assertEqual(len(self.stampd.events("connect")), 4)


if __name__ == "__main__":
    test_main.main()
