"""ESMTP extensions through the proxy: 8BITMIME, SMTPUTF8 and DSN are offered
only when the upstream offers them, and their parameters (BODY, SMTPUTF8,
RET, ENVID, NOTIFY, ORCPT) reach the upstream unchanged; XFORWARD from a
trusted client is passed on when the upstream offers it, and without one
stampd sends its own client's attributes."""
import unittest

from fake_upstream import FakeUpstream
from smtp_client import make_message
from stampd_harness import StampdTestCase
import test_main

BASIC = ["PIPELINING", "SIZE 10485760", "ENHANCEDSTATUSCODES"]


class AdvertisementTest(StampdTestCase):
    def ehlo_with(self, upstream_caps):
        up = self.start_upstream(capabilities=upstream_caps)
        stampd = self.start_stampd([up.address])
        c = self.connect(stampd)
        self.assertEqual(c.ehlo().code, 250)
        return c, up

    def test_offered_only_when_the_upstream_offers_them(self):
        for extra in ([], ["8BITMIME"], ["SMTPUTF8"], ["DSN"], ["8BITMIME", "SMTPUTF8", "DSN"]):
            with self.subTest(upstream=extra):
                c, _ = self.ehlo_with(BASIC + extra)
                for ext in ("8BITMIME", "SMTPUTF8", "DSN"):
                    self.assertEqual(ext in c.capabilities, ext in extra, (ext, c.capabilities))
                for ext in ("PIPELINING", "SIZE", "ENHANCEDSTATUSCODES"):
                    self.assertIn(ext, c.capabilities)

    def test_parameters_refused_when_not_offered(self):
        c, up = self.ehlo_with(BASIC)
        for params in ("BODY=8BITMIME", "SMTPUTF8", "RET=HDRS", "ENVID=abc"):
            with self.subTest(params=params):
                r = c.mail("sender@example.com", params)
                self.assertEqual((r.code, r.enhanced), (555, "5.5.4"), r)
        self.assertEqual(c.mail("sender@example.com", "BODY=7BIT").code, 250)
        r = c.rcpt("rcpt@example.net", "NOTIFY=NEVER")
        self.assertEqual((r.code, r.enhanced), (555, "5.5.4"), r)
        # MAIL goes upstream with the first recipient taken.
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)
        self.assertEqual([x for x in up.all_commands() if x.startswith("MAIL")],
                         ["MAIL FROM:<sender@example.com>"])

    def test_size_not_passed_to_an_upstream_without_size(self):
        # RFC 5321: no parameter of an extension the server did not offer.
        c, up = self.ehlo_with(["PIPELINING", "ENHANCEDSTATUSCODES"])
        self.assertIn("SIZE", c.capabilities)  # stampd's own limit
        r = c.mail("sender@example.com", "SIZE=4096")
        self.assertEqual(r.code, 250, r)
        self.assertEqual(c.rcpt("rcpt@example.net").code, 250)  # MAIL goes with it
        self.assertEqual(up.transactions[0].mail_line, "MAIL FROM:<sender@example.com>")
        c.cmd("RSET")
        self.assertEqual(c.mail("other@example.com", "SIZE=99999999999").code, 552)

    def test_upstream_that_only_knows_helo(self):
        up = self.start_upstream(capabilities=FakeUpstream.FULL)
        up.on("ehlo", reply="502 5.5.2 Error: command not recognized")
        stampd = self.start_stampd([up.address])
        c = self.connect(stampd)
        c.ehlo()
        # Nothing the upstream cannot take is offered or passed on.
        for ext in ("8BITMIME", "SMTPUTF8", "DSN"):
            self.assertNotIn(ext, c.capabilities)
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message(), mail_params="SIZE=500")
        self.assertEqual(r.code, 250, r)
        up.wait_for_messages(1)
        self.assertEqual(up.connections[0].verbs()[:3], ["EHLO", "HELO", "MAIL"])
        self.assertEqual(up.messages[0].mail_line, "MAIL FROM:<sender@example.com>")

    def test_helo_client_gets_no_extensions(self):
        up = self.start_upstream(capabilities=FakeUpstream.FULL)
        stampd = self.start_stampd([up.address])
        c = self.connect(stampd)
        self.assertEqual(c.cmd("HELO old.client").code, 250)
        r = c.mail("sender@example.com", "BODY=8BITMIME")
        self.assertEqual(r.code // 100, 5, r)


class ParameterPassThroughTest(StampdTestCase):
    def setUp(self):
        self.up = self.start_upstream(capabilities=FakeUpstream.FULL)
        self.stampd = self.start_stampd([self.up.address])

    def test_dsn_and_body_parameters_arrive_unchanged(self):
        c = self.connect(self.stampd)
        c.ehlo()
        mail = "MAIL FROM:<sender@example.com> BODY=8BITMIME RET=HDRS ENVID=QQ314159 SIZE=4096"
        rcpt1 = "RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net"
        rcpt2 = "RCPT TO:<b@example.net> NOTIFY=NEVER"
        rcpt3 = "RCPT TO:<c@example.net> ORCPT=rfc822;C+2Bplus@example.net NOTIFY=DELAY"
        for line in (mail, rcpt1, rcpt2, rcpt3):
            self.assertEqual(c.cmd(line).code, 250, line)
        msg = make_message(body="8-bit body: café\r\n")
        _, final = c.data(msg)
        self.assertEqual(final.code, 250, final)
        self.up.wait_for_messages(1)
        tx = self.up.messages[0]
        self.assertEqual(tx.mail_line, mail)
        self.assertEqual(tx.rcpt_lines, [rcpt1, rcpt2, rcpt3])
        self.assertEqual(tx.content, msg)

    def test_smtputf8_addresses_arrive_unchanged(self):
        c = self.connect(self.stampd)
        c.ehlo()
        sender = "δοκιμή@παράδειγμα.δοκιμή"
        rcpt = "用户@例子.广告"
        mail = "MAIL FROM:<%s> SMTPUTF8 BODY=8BITMIME" % sender
        self.assertEqual(c.cmd(mail).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt).code, 250)
        msg = make_message(subject="utf8", body="Ünïcödé\r\n", sender=sender, to=rcpt)
        _, final = c.data(msg)
        self.assertEqual(final.code, 250)
        self.up.wait_for_messages(1)
        tx = self.up.messages[0]
        self.assertEqual(tx.mail_line, mail)
        self.assertEqual(tx.rcpts, [(rcpt, "")])
        self.assertEqual(tx.content, msg)

    def test_non_ascii_address_needs_smtputf8(self):
        c = self.connect(self.stampd)
        c.ehlo()
        r = c.cmd("MAIL FROM:<δοκιμή@example.com>")
        self.assertEqual((r.code, r.enhanced), (553, "5.6.7"), r)


class XforwardTest(StampdTestCase):
    def relay(self, up_caps, commands=(), stampd_sections=None, helo="client.test"):
        up = self.start_upstream(capabilities=up_caps)
        stampd = self.start_stampd([up.address], stampd_sections)
        c = self.connect(stampd)
        self.client_port = c.sock.getsockname()[1]
        c.ehlo(helo)
        for line in commands:
            r = c.cmd(line)
            self.assertEqual(r.code, 250, (line, r))
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], make_message()).code, 250)
        c.quit()
        up.wait_for_messages(1)
        return up, c

    def test_client_xforward_is_passed_on(self):
        up, c = self.relay(BASIC + [FakeUpstream.XFORWARD], [
            "XFORWARD NAME=spike.example.org ADDR=192.0.2.10 PORT=4711",
            "XFORWARD PROTO=ESMTP HELO=spike.example.org SOURCE=REMOTE IDENT=123.abc",
        ])
        self.assertIn("XFORWARD", c.capabilities)
        tx = up.messages[0]
        self.assertEqual(tx.xforward, {"NAME": "spike.example.org", "ADDR": "192.0.2.10", "PORT": "4711",
                                       "PROTO": "ESMTP", "HELO": "spike.example.org",
                                       "SOURCE": "REMOTE", "IDENT": "123.abc"})
        verbs = up.connections[0].verbs()
        self.assertLess(verbs.index("XFORWARD"), verbs.index("MAIL"))

    def test_own_client_attributes_without_client_xforward(self):
        up, c = self.relay(BASIC + [FakeUpstream.XFORWARD], helo="app.client.test")
        tx = up.messages[0]
        self.assertEqual(tx.xforward, {"ADDR": "127.0.0.1", "PORT": str(self.client_port),
                                       "HELO": "app.client.test", "PROTO": "ESMTP"})

    def test_only_offered_attributes_are_sent(self):
        up, _ = self.relay(BASIC + ["XFORWARD ADDR HELO"], [
            "XFORWARD NAME=spike.example.org ADDR=192.0.2.10 PORT=4711 HELO=spike.example.org",
        ])
        self.assertEqual(up.messages[0].xforward, {"ADDR": "192.0.2.10", "HELO": "spike.example.org"})

    def test_not_sent_when_upstream_does_not_offer_it(self):
        up, c = self.relay(BASIC, ["XFORWARD ADDR=192.0.2.10"])
        self.assertNotIn("XFORWARD", up.connections[0].verbs())

    def test_not_sent_when_disabled(self):
        up, _ = self.relay(BASIC + [FakeUpstream.XFORWARD], ["XFORWARD ADDR=192.0.2.10"],
                           {"upstream": {"xforward": False}})
        self.assertNotIn("XFORWARD", up.connections[0].verbs())

    def test_bad_xforward_is_refused(self):
        up = self.start_upstream(capabilities=BASIC + [FakeUpstream.XFORWARD])
        stampd = self.start_stampd([up.address])
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.cmd("XFORWARD").code, 501)
        self.assertEqual(c.cmd("XFORWARD COLOR=blue").code, 501)
        self.assertEqual(c.mail("sender@example.com").code, 250)
        self.assertEqual(c.cmd("XFORWARD ADDR=192.0.2.1").code, 503)


if __name__ == "__main__":
    test_main.main()
