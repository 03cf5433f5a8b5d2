"""XCLIENT out (Postfix XCLIENT_README): with [upstream] xclient = true and an
upstream that offers XCLIENT, stampd names the original client (ADDR, PORT,
NAME, HELO, PROTO; LOGIN once clients authenticate) before MAIL, reads the
new 220 greeting and says EHLO again; per transaction on pooled connections,
and only when the connection's last XCLIENT named another client.

* Against the fake upstream: what XCLIENT said, in which order, instead of
  XFORWARD; two clients from 127.0.0.2 and 127.0.0.3 over one kept
  connection; a refused XCLIENT is a 451 4.7.0 and no mail; xclient = false
  or an upstream without XCLIENT keeps XFORWARD; a client's XFORWARD (a
  Postfix content_filter in front) is what XCLIENT passes on.
* Against a real Postfix with smtpd_authorized_xclient_hosts = 127.0.0.0/8:
  Postfix's log and its Received header name the original client's address
  and HELO, not stampd's. Skips without Postfix or root.
"""
import socket

from fake_upstream import FakeUpstream
from postfix_instance import PostfixInstance, require_postfix
from smtp_client import make_message
import re
from stampd_harness import StampdTestCase
import test_main

XCLIENT_ON = {"upstream": {"xclient": True}, "server": {"threads": 1}}


class XclientFakeUpstreamTest(StampdTestCase):
    def send(self, stampd, source="127.0.0.1", helo="app.client.test", commands=()):
        c = self.connect(stampd, source_address=(source, 0))
        port = c.sock.getsockname()[1]
        c.ehlo(helo)
        for line in commands:
            self.assertEqual(c.cmd(line).code, 250, line)
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message())
        c.quit()
        return r, port

    def test_xclient_names_the_client_before_mail_instead_of_xforward(self):
        up = self.start_upstream(capabilities=FakeUpstream.BASIC + [FakeUpstream.XCLIENT,
                                                                    FakeUpstream.XFORWARD])
        stampd = self.start_stampd([up.address], XCLIENT_ON)
        r, port = self.send(stampd, "127.0.0.2")
        self.assertEqual(r.code, 250)
        tx = up.wait_for_messages(1)[0]
        self.assertEqual(tx.xclient, {"ADDR": "127.0.0.2", "PORT": str(port), "NAME": "[UNAVAILABLE]",
                                      "HELO": "app.client.test", "PROTO": "ESMTP"})
        self.assertEqual(tx.xforward, {})
        verbs = tx.connection.verbs()
        self.assertNotIn("XFORWARD", verbs)
        # The EHLO after XCLIENT carries the client's name, as Postfix logs it.
        self.assertEqual(tx.helo, "app.client.test")
        # XCLIENT, then EHLO again (a new session upstream), then MAIL.
        i = verbs.index("XCLIENT")
        self.assertEqual(verbs[i:i + 3], ["XCLIENT", "EHLO", "MAIL"])

    def test_each_client_on_a_kept_connection_gets_its_own_xclient(self):
        up = self.start_upstream(capabilities=FakeUpstream.BASIC + [FakeUpstream.XCLIENT])
        stampd = self.start_stampd([up.address], XCLIENT_ON)
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.3"):
            self.assertEqual(self.send(stampd, source, helo="host-" + source)[0].code, 250)
        messages = up.wait_for_messages(3)
        self.assertEqual([m.xclient["ADDR"] for m in messages], ["127.0.0.2", "127.0.0.3", "127.0.0.3"])
        self.assertEqual([m.xclient["HELO"] for m in messages],
                         ["host-127.0.0.2", "host-127.0.0.3", "host-127.0.0.3"])
        self.assertEqual(len({id(m.connection) for m in messages}), 1, "one kept connection")
        # The third came from another session of the same client, but on
        # another port: XCLIENT names the port too, so it is sent again.
        self.assertEqual(messages[0].connection.xclients, 3)

    def test_same_session_same_connection_needs_no_new_xclient(self):
        up = self.start_upstream(capabilities=FakeUpstream.BASIC + [FakeUpstream.XCLIENT])
        stampd = self.start_stampd([up.address], XCLIENT_ON)
        c = self.connect(stampd, source_address=("127.0.0.2", 0))
        c.ehlo("app.client.test")
        for _ in range(3):
            self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], make_message()).code, 250)
        c.quit()
        messages = up.wait_for_messages(3)
        self.assertTrue(all(m.xclient["ADDR"] == "127.0.0.2" for m in messages))
        self.assertEqual(messages[0].connection.xclients, 1)

    def test_a_refused_xclient_is_a_temporary_failure_and_no_mail(self):
        up = self.start_upstream(capabilities=FakeUpstream.BASIC + [FakeUpstream.XCLIENT])
        up.on("xclient", reply="550 5.7.0 Error: insufficient authorization")
        stampd = self.start_stampd([up.address], XCLIENT_ON)
        c = self.connect(stampd)
        c.ehlo()
        # MAIL (and XCLIENT before it) goes upstream with the first RCPT.
        self.assertEqual(c.mail("sender@example.com").code, 250)
        r = c.rcpt("rcpt@example.net")
        self.assertEqual((r.code, r.enhanced), (451, "4.7.0"), r)
        c.quit()
        self.assertEqual(up.messages, [])
        self.assertNotIn("MAIL", up.connections[-1].verbs())
        ev = stampd.wait_for_event("upstream-error")[0]
        self.assertIn("XCLIENT refused", ev.get("error", ""), ev)

    def test_without_xclient_xforward_is_used(self):
        for caps, sections in ((FakeUpstream.BASIC + [FakeUpstream.XCLIENT, FakeUpstream.XFORWARD], None),
                               (FakeUpstream.BASIC + [FakeUpstream.XFORWARD], XCLIENT_ON)):
            with self.subTest(caps=caps, sections=sections):
                up = self.start_upstream(capabilities=caps)
                stampd = self.start_stampd([up.address], sections)
                self.assertEqual(self.send(stampd, "127.0.0.2")[0].code, 250)
                tx = up.wait_for_messages(1)[0]
                self.assertNotIn("XCLIENT", tx.connection.verbs())
                self.assertEqual(tx.xforward["ADDR"], "127.0.0.2")

    def test_the_client_xforward_named_is_passed_on(self):
        up = self.start_upstream(capabilities=FakeUpstream.BASIC + [FakeUpstream.XCLIENT])
        stampd = self.start_stampd([up.address], XCLIENT_ON)
        r, _ = self.send(stampd, commands=[
            "XFORWARD NAME=spike.example.org ADDR=192.0.2.10 PORT=4711",
            "XFORWARD PROTO=ESMTP HELO=spike.example.org"])
        self.assertEqual(r.code, 250)
        self.assertEqual(up.wait_for_messages(1)[0].xclient,
                         {"ADDR": "192.0.2.10", "PORT": "4711", "NAME": "spike.example.org",
                          "HELO": "spike.example.org", "PROTO": "ESMTP"})


class XclientPostfixTest(StampdTestCase):
    def test_postfix_sees_the_original_client(self):
        require_postfix()
        pf = PostfixInstance(main_cf_extra="smtpd_authorized_xclient_hosts = 127.0.0.0/8\n")
        self.addCleanup(pf.cleanup)
        pf.start()
        stampd = self.start_stampd(["127.0.0.1:%d" % pf.port],
                                   {"upstream": {"xclient": True, "idle_timeout": "1s"},
                                    "server": {"threads": 1}})
        for n, (source, helo) in enumerate((("127.0.0.2", "app-one.client.example"),
                                            ("127.0.0.3", "app-two.client.example"))):
            c = self.connect(stampd, source_address=(source, 0))
            c.ehlo(helo)
            msg = make_message(subject="xclient %d" % n)
            self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], msg).code, 250)
            c.quit()
        delivered = pf.wait_for_delivery("rcpt", count=2)
        received = [re.search(rb"^Received: (.*?)\n(?=\S)", d, re.M | re.S).group(1) for d in delivered]
        for got, (source, helo) in zip(sorted(received),
                                        (("127.0.0.2", "app-one.client.example"),
                                         ("127.0.0.3", "app-two.client.example"))):
            # Postfix's own Received header: "from HELO (NAME [ADDR])".
            self.assertIn(("from %s (unknown [%s])" % (helo, source)).encode(), got)
            self.assertNotIn(b"stampd.test", got)
        log = pf.log()
        pf.wait_for_log(r"smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.2\]")
        pf.wait_for_log(r"smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.3\]")
        # Both went over one kept connection from stampd, two XCLIENTs on it.
        m = pf.wait_for_log(r"smtpd\[\d+\]: disconnect from \S+ (.*xclient=.*)$", timeout=30)
        # Postfix counts the XCLIENTs as ok/total, "0/2": the 220 that answers
        # one starts a new session and is not counted as a success.
        self.assertRegex(m.group(1), r"(^| )xclient=(\d+/)?2( |$)", pf.log())
        self.assertNotIn("warning", "\n".join(l for l in pf.log().splitlines() if "smtpd" in l))


if __name__ == "__main__":
    test_main.main()
