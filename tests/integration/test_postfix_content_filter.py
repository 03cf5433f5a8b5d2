"""stampd behind a real Postfix, wired with the files in deploy/postfix/
exactly as an admin copies them (only the ports are changed to free ones).

Content filter: a mail injected into Postfix's smtpd (from 127.0.0.2) goes
through the "stampd" transport to stampd, which signs it and relays it to the
re-injection smtpd with XFORWARD; Postfix then delivers it into a Maildir. The
delivered file carries a DKIM signature that dkimpy and `stampd verify` accept,
stampd logged the original client from XFORWARD, and Postfix logged each hop.
When stampd is down, Postfix keeps the mail and delivers it once stampd is back.
Postfix's smtpd offers CHUNKING, so stampd relays with BDAT (Postfix's
disconnect line counts bdat=N and no data): a message of 2.6 MiB arrives in
three chunks, whole, and its signature verifies.

Relayhost: Postfix's relayhost is stampd, stampd relays to a smarthost (the fake
upstream with STARTTLS and AUTH); the smarthost receives a message whose
signature verifies.

Postfix runs as a private instance in a temporary directory (postfix -c DIR,
loopback only; tests/support/postfix_instance.py). Skips when Postfix is not
installed or the tests do not run as root.
"""
import os
import re
import shutil
import smtplib
import tempfile
import tomllib
import unittest

from dkim_verifiers import records_for, signatures, verify_dkimpy
from postfix_instance import PostfixInstance, require_postfix
from stampd_harness import StampdTestCase, free_port, make_key, render_toml, run_cli, stampd_bin
from tls_certs import make_certs
import test_main

SOURCE_DIR = os.environ.get("STAMPD_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(SOURCE_DIR, "deploy", "postfix")
SELECTOR = "s2026"

MESSAGE = (
    "From: Author <author@example.com>\r\n"
    "To: Recipient <rcpt@example.net>\r\n"
    "Subject: through Postfix and stampd\r\n"
    "Message-ID: <postfix-content-filter.%d@example.com>\r\n"
    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Grüße aus der Röstmühle: 8-bit text must reach the mailbox unchanged.\r\n"
    ".A line that starts with a dot.\r\n"
    "\r\n"
    "Last line.\r\n"
)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def substitute(text, old, new):
    """substitute replaces old with new and insists that old was there, so a
    change in the deploy files cannot silently bypass the test."""
    if old not in text:
        raise AssertionError("%r not found in the deploy file any more" % old)
    return text.replace(old, new)


def to_crlf(data):
    return re.sub(rb"\r?\n", b"\r\n", data)


class PostfixTestCase(StampdTestCase):
    def setUp(self):
        require_postfix()
        stampd_bin()
        self.tmp = tempfile.mkdtemp(prefix="stampd-postfix-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        keys = os.path.join(self.tmp, "keys")
        self.key_path, self.record_path = make_key(keys, "example.com", SELECTOR)
        self.records = records_for(read(self.record_path).splitlines())
        self.assertIn(SELECTOR + "._domainkey.example.com", self.records)

    def deploy_stampd_sections(self, mode, upstream_servers, listen="127.0.0.1:0"):
        """deploy_stampd_sections reads deploy/postfix/MODE/stampd.toml and points
        it at this test's ports, key and upstream; nothing else changes."""
        with open(os.path.join(DEPLOY, mode, "stampd.toml"), "rb") as f:
            sections = tomllib.load(f)
        self.assertEqual(sections["server"]["listen"], ["127.0.0.1:10027"])
        sections["server"]["listen"] = [listen]
        sections["server"].pop("user", None)  # the test's stampd stays root
        sections["server"]["drain_timeout"] = "1s"
        sections["upstream"]["servers"] = list(upstream_servers)
        sections["upstream"]["health_check_interval"] = "0s"
        sections["upstream"]["connect_timeout"] = "5s"
        # Kept connections close soon, so Postfix logs their disconnect lines.
        sections["upstream"]["idle_timeout"] = "1s"
        for key in sections["dkim"]["key"]:
            key["private_key"] = self.key_path
            key["selector"] = SELECTOR
        sections["metrics"]["listen"] = ""
        sections["log"]["level"] = "debug"
        return sections

    def start_postfix(self, main_cf_extra, master_cf_extra):
        pf = PostfixInstance(main_cf_extra=main_cf_extra, master_cf_extra=master_cf_extra)
        self.addCleanup(self._postfix_cleanup, pf)
        pf.start()
        # Loopback only, whatever the snippets say.
        addresses = pf.listening_addresses()
        if addresses is not None:
            self.assertTrue(addresses)
            self.assertEqual([a for a in addresses if not a.startswith("127.0.0.1:")], [])
        # Every parameter in the deploy snippets is one Postfix knows.
        for args in (["-n"], ["-M"], ["-P"]):
            out = pf.postconf(*args)
            self.assertNotIn("warning", out, out)
        return pf

    def _postfix_cleanup(self, pf):
        if self._failed():
            print("\n--- Postfix log ---\n%s--- end ---" % pf.log()[-6000:])
        pf.cleanup()

    def inject(self, pf, message, source="127.0.0.2"):
        """inject sends message into Postfix's smtpd from source (a loopback address)."""
        with smtplib.SMTP("127.0.0.1", pf.port, source_address=(source, 0), timeout=30) as s:
            s.ehlo("client.example.org")
            refused = s.sendmail("author@example.com", ["rcpt@example.net"], message.encode("utf-8"),
                                 mail_options=["BODY=8BITMIME"])
            self.assertEqual(refused, {})

    def assertSignedAndVerified(self, delivered):
        sigs = signatures(delivered)
        self.assertEqual(len(sigs), 1, delivered[:2000])
        self.assertEqual((sigs[0]["d"], sigs[0]["s"]), ("example.com", SELECTOR))
        results = verify_dkimpy(delivered, self.records)
        self.assertEqual([r.status for r in results], ["pass"], results)
        r = run_cli("verify", "--key-file", self.record_path, input=delivered)
        out = r.stdout.decode() + r.stderr.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("pass", out)


class ContentFilterTest(PostfixTestCase):
    def start_chain(self, stampd_port=None, main_cf_extra=""):
        reinject_port = free_port()
        listen = "127.0.0.1:%d" % stampd_port if stampd_port else "127.0.0.1:0"
        sections = self.deploy_stampd_sections("content_filter", ["127.0.0.1:%d" % reinject_port], listen)
        self.sections = sections
        stampd = self.start_stampd(config_text=render_toml(sections), sections=sections)
        main_cf = substitute(read(os.path.join(DEPLOY, "content_filter", "main.cf")),
                             "[127.0.0.1]:10027", "[127.0.0.1]:%d" % stampd.port) + main_cf_extra
        master_cf = substitute(read(os.path.join(DEPLOY, "content_filter", "master.cf")),
                               "127.0.0.1:10026", "127.0.0.1:%d" % reinject_port)
        pf = self.start_postfix(main_cf, master_cf)
        return stampd, pf, reinject_port

    def test_signed_delivered_and_verified(self):
        stampd, pf, reinject_port = self.start_chain()
        message = MESSAGE % 1
        self.inject(pf, message)
        delivered = to_crlf(pf.wait_for_delivery("rcpt")[0])
        self.assertSignedAndVerified(delivered)
        # Nothing rewrote the body: the 8-bit text arrived as it was sent.
        self.assertIn(message.split("\r\n\r\n", 1)[1].encode("utf-8"), delivered)

        # stampd saw Postfix (127.0.0.1) as its client and the original client
        # (127.0.0.2) through XFORWARD, and signed.
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual(ev["outcome"], "relayed", ev)
        self.assertEqual(ev["dkim"], "signed", ev)
        self.assertTrue(ev["client"].startswith("127.0.0.1:"), ev)
        self.assertEqual(ev["xforward_addr"], "127.0.0.2", ev)
        self.assertEqual(ev["xforward_helo"], "client.example.org", ev)
        self.assertEqual(ev["upstream"], "127.0.0.1:%d" % reinject_port, ev)

        # Postfix: queued from 127.0.0.2, sent to stampd, re-injected by stampd
        # (127.0.0.1) naming the original client and queue id (XFORWARD: Postfix
        # logs them as orig_client, orig_queue_id), delivered to the Maildir.
        log = pf.log()
        m = pf.wait_for_log(r"smtpd\[\d+\]: (\w+): client=[^\s\[]*\[127\.0\.0\.2\]$")
        first = m.group(1)
        pf.wait_for_log(r"smtp\[\d+\]: %s: to=<rcpt@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                        r".*status=sent \(250 " % (first, stampd.port))
        m = pf.wait_for_log(r"smtpd\[\d+\]: (\w+): client=[^\s\[]*\[127\.0\.0\.1\], orig_queue_id=%s, "
                            r"orig_client=[^\s\[]*\[127\.0\.0\.2\]$" % first)
        second = m.group(1)
        # The re-injection listener accepted XFORWARD (a refusal logs xforward=0/1).
        line = pf.wait_for_log(r"smtpd\[\d+\]: disconnect from [^\s\[]*\[127\.0\.0\.1\] ehlo=1 xforward=1 .*")
        # Postfix offers CHUNKING: stampd sent the message as one BDAT LAST.
        self.assertIn(" bdat=1 ", line.group(0))
        self.assertNotIn(" data=", line.group(0))
        pf.wait_for_log(r"virtual\[\d+\]: %s: to=<rcpt@example\.net>, relay=virtual, .*status=sent "
                        r"\(delivered to maildir\)" % second)
        # The signed message was not sent to stampd a second time.
        self.assertEqual(len(stampd.messages()), 1, log)
        self.assertNotIn("warning", "\n".join(l for l in pf.log().splitlines() if "smtpd" in l))

    def test_large_message_goes_to_postfix_in_bdat_chunks(self):
        stampd, pf, reinject_port = self.start_chain()
        head = (MESSAGE % 3).split("\r\n\r\n", 1)[0]
        body = "".join(".Line %06d: a long message crosses the 1 MiB chunk size twice.\r\n" % i
                       for i in range(40000))
        message = head + "\r\n\r\n" + body
        self.assertGreater(len(message), 2 * 1024 * 1024)
        self.inject(pf, message)
        delivered = to_crlf(pf.wait_for_delivery("rcpt", timeout=60)[0])
        self.assertSignedAndVerified(delivered)
        self.assertIn(body.encode("utf-8"), delivered)  # dots and all, unchanged
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual((ev["outcome"], ev["dkim"]), ("relayed", "signed"), ev)
        # Postfix counted the commands of stampd's session: three BDAT, no DATA.
        line = pf.wait_for_log(r"smtpd\[\d+\]: disconnect from [^\s\[]*\[127\.0\.0\.1\] ehlo=1 .*")
        self.assertIn(" bdat=3 ", line.group(0))
        self.assertNotIn(" data=", line.group(0))

    def test_without_chunking_the_message_goes_as_data_pipelined_with_the_envelope(self):
        # A re-injection smtpd without CHUNKING: Postfix's smtp client
        # pipelines MAIL, RCPT and DATA to stampd, and stampd sends DATA
        # upstream with MAIL and RCPT (RFC 2920). Postfix's own check of
        # pipelining (smtpd_forbid_unauth_pipelining: it disconnects a client
        # that sends anything behind DATA before the 354) passes us.
        stampd, pf, reinject_port = self.start_chain(main_cf_extra=(
            "\nsmtpd_discard_ehlo_keywords = chunking\nsmtpd_forbid_unauth_pipelining = yes\n"))
        message = MESSAGE % 4
        self.inject(pf, message)
        delivered = to_crlf(pf.wait_for_delivery("rcpt")[0])
        self.assertSignedAndVerified(delivered)
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual((ev["outcome"], ev["dkim"]), ("relayed", "signed"), ev)
        self.assertNotIn("upstream_abandoned", ev)
        line = pf.wait_for_log(r"smtpd\[\d+\]: disconnect from [^\s\[]*\[127\.0\.0\.1\] ehlo=1 xforward=1 .*")
        self.assertIn(" data=1 ", line.group(0))
        self.assertNotIn(" bdat=", line.group(0))
        self.assertNotIn("improper command pipelining", pf.log())
        self.assertNotIn("warning", "\n".join(l for l in pf.log().splitlines() if "smtpd" in l))

    def test_postfix_keeps_mail_while_stampd_is_down(self):
        port = free_port()
        stampd, pf, _ = self.start_chain(stampd_port=port)
        stampd.stop()
        self.inject(pf, MESSAGE % 2)
        # Postfix cannot reach stampd: the mail stays queued (deferred), not bounced.
        pf.wait_for_log(r"smtp\[\d+\]: \w+: to=<rcpt@example\.net>, relay=none, .*status=deferred")
        self.assertEqual(pf.delivered("rcpt"), [])
        again = self.start_stampd(config_text=render_toml(self.sections), sections=self.sections)
        self.assertEqual(again.port, port)
        # As an admin would once the next hop is back: retry the deferred
        # mail now. Postfix's own retry (backoff 1 to 2 s here) once stalled
        # for a whole minute in a loaded run after qmgr logged "skipped,
        # still being delivered"; when Postfix retries is not stampd's to test.
        pf.postfix("flush")
        delivered = to_crlf(pf.wait_for_delivery("rcpt", timeout=60)[0])
        self.assertSignedAndVerified(delivered)
        self.assertNotIn("status=bounced", pf.log())


class RelayhostTest(PostfixTestCase):
    USER, PASSWORD = "relay@example.com", "relay secret"

    def test_relayhost_to_smarthost_with_starttls_and_auth(self):
        certs = make_certs()
        smarthost = self.start_upstream(tls_context=certs.server_context(), auth={self.USER: self.PASSWORD},
                                        auth_requires_tls=True,
                                        capabilities=["PIPELINING", "SIZE 104857600", "ENHANCEDSTATUSCODES",
                                                      "8BITMIME"])
        sections = self.deploy_stampd_sections("relayhost", [smarthost.address])
        self.assertEqual(sections["upstream"]["tls"], "required")
        sections["upstream"]["server_name"] = "localhost"
        sections["upstream"]["ca_file"] = "ca.pem"
        files = {"ca.pem": certs.read("ca"), "upstream-password": self.PASSWORD + "\n"}
        self.assertEqual(sections["upstream"]["auth_password_file"], "upstream-password")
        stampd = self.start_stampd(config_text=render_toml(sections), sections=sections, files=files)
        main_cf = substitute(read(os.path.join(DEPLOY, "relayhost", "main.cf")),
                             "relayhost = [127.0.0.1]:10027", "relayhost = [127.0.0.1]:%d" % stampd.port)
        # example.org is not delivered locally: it goes to the relayhost.
        pf = self.start_postfix(main_cf, "")
        with smtplib.SMTP("127.0.0.1", pf.port, source_address=("127.0.0.2", 0), timeout=30) as s:
            s.ehlo("client.example.org")
            message = (MESSAGE % 3).replace("rcpt@example.net", "someone@example.org")
            s.sendmail("author@example.com", ["someone@example.org"], message.encode("utf-8"),
                       mail_options=["BODY=8BITMIME"])
        smarthost.wait_for_messages(1, timeout=30)
        tx = smarthost.messages[0]
        self.assertTrue(tx.tls)
        self.assertEqual(tx.auth_user, self.USER)
        self.assertEqual(tx.rcpts[0][0], "someone@example.org")
        self.assertSignedAndVerified(tx.content)
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual((ev["outcome"], ev["dkim"]), ("relayed", "signed"), ev)
        self.assertEqual(ev["xforward_addr"], "127.0.0.2", ev)
        pf.wait_for_log(r"smtp\[\d+\]: \w+: to=<someone@example\.org>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                        r".*status=sent \(250 " % stampd.port)


if __name__ == "__main__":
    test_main.main()
