"""TLS from clients (issue 12): STARTTLS (RFC 3207) on plain listeners and
implicit TLS (RFC 8314) on listen_tls, with certificates made at test time.

* Real clients: swaks --tls and --tlsc, openssl s_client -starttls smtp; the
  relayed message is DKIM-signed and verifies (dkimpy); the message log line
  names the protocol and cipher; the upstream gets XFORWARD PROTO=ESMTPS,
  and a real Postfix after stampd accepts it (smtplib's starttls() in front).
* A TLS QUIT ends the session at once (close_notify sent, not awaited).
* The CVE-2011-0411 class: a client that sends "STARTTLS\\r\\nRSET\\r\\n" (or an
  EHLO and MAIL) in one write gets no reply to what followed STARTTLS, and
  starts over after the handshake (EHLO again, no transaction).
* STARTTLS twice (503), without a certificate (502, not offered),
  require_tls (530 5.7.0 before STARTTLS), handshake garbage, a client that
  stalls or hangs up mid-handshake: each ends cleanly, logged and counted.
* SNI picks the certificate; SIGHUP swaps the certificate for new sessions
  while a TLS session that began before goes on (event=tls-certificate
  names the one loaded and its expiry).
* A PROXY header in front of implicit TLS, in the same write as the
  ClientHello.
* Config errors: unknown key, unreadable or broken files, a key that is not
  the certificate's, listen_tls or require_tls without a certificate.
"""
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest
import warnings

import dkim_verifiers as V
from fake_upstream import FakeUpstream
from prometheus_tools import scrape
from smtp_client import SmtpClient, make_message
from stampd_harness import StampdTestCase, check_config, make_key, render_toml, wait_until
from tls_certs import make_certs
import test_main

SWAKS = shutil.which("swaks")
MAIL = ("mail.example.com",)
SUBMIT = ("submit.example.org",)
RENEWED = ("mail.example.com", "renewed.example.com")


def client_context(certs=None):
    """client_context verifies against certs' CA when given, else trusts anything."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if certs is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(certs.ca)
    return ctx


def der(certs):
    with open(certs.server_cert) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def starttls(client, ctx=None, server_hostname="mail.example.com"):
    """starttls sends STARTTLS on an SmtpClient, and on 220 wraps its socket."""
    r = client.cmd("STARTTLS")
    if r.code == 220:
        assert client.buffer == b"", client.buffer
        client.sock = (ctx or client_context()).wrap_socket(client.sock, server_hostname=server_hostname)
    return r


def client_hello():
    """client_hello returns the first flight of a real TLS client."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context().wrap_bio(incoming, outgoing, server_hostname="mail.example.com")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class BioTls:
    """BioTls runs a client TLS session over a plain socket through memory
    BIOs, so that a test decides what goes into each write (a PROXY header
    and the ClientHello in one)."""

    def __init__(self, sock, prefix=b""):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_context().wrap_bio(self.incoming, self.outgoing,
                                             server_hostname="mail.example.com")
        self.buffer = b""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            self._flush(prefix)
            prefix = b""
            self._recv()
        self._flush()

    def _flush(self, prefix=b""):
        data = self.outgoing.read()
        if data or prefix:
            self.sock.sendall(prefix + data)

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.incoming.write(chunk)

    def send(self, data):
        self.obj.write(data)
        self._flush()

    def line(self):
        while b"\n" not in self.buffer:
            try:
                self.buffer += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._recv()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r").decode()

    def reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines


class InboundTlsTestCase(StampdTestCase):
    def setUp(self):
        self.certs = make_certs(MAIL)
        self.up = self.start_upstream(capabilities=FakeUpstream.BASIC + [FakeUpstream.XFORWARD])

    def tls_stampd(self, server=None, certificates=(MAIL,), extra=None, upstream=None, **kwargs):
        """tls_stampd runs stampd with the given certificate sets as
        [[server.certificate]] tables (files copied next to the config)."""
        files, tables = {}, []
        for i, names in enumerate(certificates):
            c = make_certs(names)
            files["tls/%d.pem" % i] = c.read("server_cert")
            files["tls/%d.key" % i] = c.read("server_key")
            tables.append({"chain_file": "tls/%d.pem" % i, "key_file": "tls/%d.key" % i})
        section = {"certificate": tables} if tables else {}
        section.update(server or {})
        sections = {"server": section}
        sections.update(extra or {})
        return self.start_stampd([upstream or self.up.address], sections, files=files, **kwargs)

    def relay_one(self, client, subject="over tls"):
        msg = make_message(subject=subject)
        r = client.send_mail("sender@example.com", ["rcpt@example.net"], msg)
        self.assertEqual(r.code, 250, r)
        return msg


class StarttlsTest(InboundTlsTestCase):
    def test_starttls_offered_and_the_session_starts_over(self):
        stampd = self.tls_stampd()
        self.assertEqual(stampd.events("listening")[0]["tls"], "starttls")
        c = self.connect(stampd)
        c.ehlo()
        self.assertIn("STARTTLS", c.capabilities)
        self.assertEqual(starttls(c).code, 220)
        self.assertTrue(c.sock.version().startswith("TLSv1."))
        # Nothing from before TLS survives: EHLO first, and it no longer offers STARTTLS.
        r = c.mail("sender@example.com")
        self.assertEqual((r.code, r.enhanced), (503, "5.5.1"))
        c.ehlo()
        self.assertNotIn("STARTTLS", c.capabilities)
        msg = self.relay_one(c)
        version, cipher = c.sock.version(), c.sock.cipher()[0]
        c.quit()
        self.up.wait_for_messages(1)
        tx = self.up.messages[0]
        self.assertEqual(tx.content, msg)
        self.assertEqual(tx.xforward.get("PROTO"), "ESMTPS")
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual((ev["tls"], ev["tls_cipher"]), (version, cipher))
        tls = stampd.events("tls")[0]
        self.assertEqual((tls["mode"], tls["sni"]), ("starttls", "mail.example.com"))

    def test_plain_session_says_esmtp_and_logs_no_tls(self):
        stampd = self.tls_stampd()
        c = self.connect(stampd)
        c.ehlo()
        self.relay_one(c)
        c.quit()
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].xforward.get("PROTO"), "ESMTP")
        self.assertNotIn("tls", stampd.wait_for_event("message")[0])

    def test_pipelined_commands_after_starttls_are_discarded(self):
        stampd = self.tls_stampd()
        c = self.connect(stampd)
        c.ehlo()
        # One write: STARTTLS and a command behind it, as an attacker on the
        # path would append it (CVE-2011-0411).
        c.send("STARTTLS\r\nRSET\r\n")
        self.assertEqual(c.reply().code, 220)
        self.assertEqual(c.buffer, b"")  # no reply to RSET came in clear
        c.sock = client_context().wrap_socket(c.sock, server_hostname="mail.example.com")
        # The first reply over TLS is HELP's: RSET was never answered.
        self.assertEqual(c.cmd("HELP").code, 214)
        r = c.mail("sender@example.com")
        self.assertEqual(r.code, 503)  # a fresh session: EHLO first
        ev = stampd.wait_for_event("starttls-input-discarded")[0]
        self.assertEqual(ev["bytes"], "6")

    def test_injected_transaction_does_not_survive(self):
        stampd = self.tls_stampd()
        c = self.connect(stampd)
        c.ehlo()
        c.send("STARTTLS\r\nEHLO evil\r\nMAIL FROM:<evil@example.com>\r\n")
        self.assertEqual(c.reply().code, 220)
        c.sock = client_context().wrap_socket(c.sock, server_hostname="mail.example.com")
        self.assertEqual(c.ehlo("good").code, 250)
        r = c.rcpt("victim@example.net")
        self.assertEqual((r.code, r.enhanced), (503, "5.5.1"))  # no MAIL was taken
        c.quit()
        self.assertFalse([x for x in self.up.all_commands() if "evil" in x])

    def test_starttls_twice(self):
        stampd = self.tls_stampd()
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(starttls(c).code, 220)
        c.ehlo()
        r = c.cmd("STARTTLS")
        self.assertEqual((r.code, r.enhanced, r.text), (503, "5.5.1", "TLS already active"))
        self.assertEqual(c.cmd("NOOP").code, 250)  # the session goes on over TLS
        self.relay_one(c)

    def test_quit_over_tls_ends_the_session_at_once(self):
        # The client keeps its socket open after 221 and never answers the
        # server's close_notify: stampd must not wait for it.
        stampd = self.tls_stampd()
        c = self.connect(stampd)
        c.ehlo()
        starttls(c)
        c.ehlo()
        started = time.monotonic()
        self.assertEqual(c.cmd("QUIT").code, 221)
        stampd.wait_for_event("disconnect", reason="quit")
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual(c.sock.recv(100), b"")  # the close_notify came

    def test_starttls_before_ehlo_and_in_a_transaction(self):
        stampd = self.tls_stampd()
        c = self.connect(stampd)
        self.assertEqual(c.cmd("STARTTLS").code, 503)
        c.ehlo()
        c.mail("sender@example.com")
        self.assertEqual(c.cmd("STARTTLS").code, 503)
        self.assertEqual(c.cmd("STARTTLS now").code, 501)

    def test_no_certificate_no_starttls(self):
        stampd = self.tls_stampd(certificates=())
        self.assertEqual(stampd.events("listening")[0]["tls"], "none")
        c = self.connect(stampd)
        c.ehlo()
        self.assertNotIn("STARTTLS", c.capabilities)
        r = c.cmd("STARTTLS")
        self.assertEqual((r.code, r.enhanced), (502, "5.5.1"))
        self.relay_one(c)

    def test_require_tls_refuses_mail_in_clear(self):
        stampd = self.tls_stampd({"require_tls": True})
        c = self.connect(stampd)
        c.ehlo()
        r = c.mail("sender@example.com")
        self.assertEqual((r.code, r.enhanced), (530, "5.7.0"))
        self.assertFalse([x for x in self.up.all_commands() if x.startswith("MAIL")])
        starttls(c)
        c.ehlo()
        self.relay_one(c)

    def test_openssl_s_client_starttls(self):
        stampd = self.tls_stampd()
        script = ("MAIL FROM:<sender@example.com>\nEHLO s-client.test\nMAIL FROM:<sender@example.com>\n"
                  "RCPT TO:<rcpt@example.net>\nDATA\nSubject: from s_client\n\nHello.\n.\nQUIT\n")
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-crlf", "-ign_eof",
                            "-servername", "mail.example.com", "-CAfile", self.certs.ca,
                            "-verify_return_error", "-connect", "%s:%d" % stampd.address],
                           input=script.encode(), capture_output=True, timeout=30)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        self.assertRegex(out, r"Verify return code: 0 \(ok\)")
        replies = re.findall(r"^(\d{3})[ -]", out, re.M)
        # s_client ran EHLO and STARTTLS itself; over TLS the first MAIL needs EHLO again.
        self.assertIn("503", replies)
        self.assertEqual(replies[-1], "221", out)
        self.up.wait_for_messages(1)
        self.assertIn(b"Subject: from s_client", self.up.messages[0].content)


class ImplicitTlsTest(InboundTlsTestCase):
    def test_greeting_comes_over_tls(self):
        stampd = self.tls_stampd({"listen_tls": ["127.0.0.1:0"]})
        self.assertEqual([e["tls"] for e in stampd.events("listening")], ["starttls", "implicit"])
        raw = socket.create_connection(stampd.addresses[1], timeout=10)
        c = SmtpClient.__new__(SmtpClient)
        c.timeout, c.buffer, c.closed, c.capabilities = 10, b"", False, {}
        c.sock = client_context().wrap_socket(raw, server_hostname="mail.example.com")
        self.addCleanup(c.close)
        self.assertEqual(c.reply().code, 220)
        c.ehlo()
        self.assertNotIn("STARTTLS", c.capabilities)
        self.assertEqual(c.cmd("STARTTLS").code, 503)
        self.relay_one(c)
        self.up.wait_for_messages(1)
        self.assertEqual(self.up.messages[0].xforward.get("PROTO"), "ESMTPS")
        self.assertEqual(stampd.events("tls")[0]["mode"], "implicit")

    def test_proxy_header_then_tls_in_one_write(self):
        stampd = self.tls_stampd({"listen_tls": ["127.0.0.1:0"], "proxy_protocol": True,
                                  "proxy_networks": ["127.0.0.0/8"]})
        v1 = b"PROXY TCP4 192.0.2.10 127.0.0.1 4242 465\r\n"
        block = socket.inet_aton("192.0.2.11") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 4243, 465)
        v2 = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(block)) + block
        for header, client in ((v1, "192.0.2.10:4242"), (v2, "192.0.2.11:4243")):
            sock = socket.create_connection(stampd.addresses[1], timeout=10)
            self.addCleanup(sock.close)
            tls = BioTls(sock, prefix=header)
            self.assertTrue(tls.reply()[0].startswith("220 "))
            tls.send(b"EHLO proxied.test\r\n")
            self.assertTrue(tls.reply()[0].startswith("250"))
            stampd.wait_for_event("connect", client=client)

    @unittest.skipIf(SWAKS is None, "swaks is not installed")
    def test_swaks_tls_on_connect(self):
        stampd = self.tls_stampd({"listen_tls": ["127.0.0.1:0"]})
        host, port = stampd.addresses[1]
        r = subprocess.run([SWAKS, "--server", host, "--port", str(port), "--tlsc",
                            "--from", "sender@example.com", "--to", "rcpt@example.net"],
                           capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("TLS started", out)
        self.up.wait_for_messages(1)
        ev = stampd.wait_for_event("message")[0]
        self.assertIn(ev["tls"], ("TLSv1.2", "TLSv1.3"))


@unittest.skipIf(SWAKS is None, "swaks is not installed")
class SwaksDkimTest(InboundTlsTestCase):
    def test_swaks_starttls_message_is_signed_and_verifies(self):
        ok, why = V.available("dkimpy")
        if not ok:
            self.skipTest(why)
        keydir = tempfile.mkdtemp(prefix="stampd-tls-key-")
        self.addCleanup(shutil.rmtree, keydir, True)
        private, txt = make_key(keydir, "example.com", "tls2026")
        with open(txt) as f:
            records = V.records_for([f.read().strip()])
        dkim = {"key": [{"name": "k", "domain": "example.com", "selector": "tls2026", "private_key": private}],
                "sign": [{"from": "*@example.com", "keys": ["k"]}]}
        stampd = self.tls_stampd({"require_tls": True}, extra={"dkim": dkim})
        r = subprocess.run([SWAKS, "--server", stampd.host, "--port", str(stampd.port), "--tls",
                            "--from", "sender@example.com", "--to", "rcpt@example.net",
                            "--header", "Subject: swaks over STARTTLS"],
                           capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertRegex(out, r"TLS started with cipher TLSv1\.[23]")
        self.up.wait_for_messages(1)
        signed = self.up.messages[0].content
        results = V.verify("dkimpy", signed, records)
        self.assertEqual([x.status for x in results], ["pass"], results)
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual(ev["dkim"], "signed")
        self.assertIn(ev["tls"], ("TLSv1.2", "TLSv1.3"))


class PostfixUpstreamTest(InboundTlsTestCase):
    """An app submits with smtplib's starttls(); a real Postfix after stampd
    takes the XFORWARD command that carries PROTO=ESMTPS (Postfix refuses
    the whole command, 501, for one bad attribute; it logs orig_client=
    only for an accepted one)."""

    def test_postfix_takes_xforward_with_esmtps(self):
        from postfix_instance import PostfixInstance, require_postfix
        require_postfix()
        pf = PostfixInstance(main_cf_extra="smtpd_authorized_xforward_hosts = 127.0.0.0/8")
        self.addCleanup(pf.cleanup)
        pf.start()
        stampd = self.tls_stampd({"require_tls": True}, upstream="127.0.0.1:%d" % pf.port)
        with smtplib.SMTP(stampd.host, stampd.port, timeout=30) as s:
            s.ehlo("app.example.org")
            s.starttls(context=client_context(self.certs))  # verifies 127.0.0.1 (in the SAN)
            s.ehlo("app.example.org")
            s.sendmail("sender@example.com", ["rcpt@example.net"], make_message(subject="from an app"))
        self.assertIn(b"Subject: from an app", pf.wait_for_delivery("rcpt")[0])
        pf.wait_for_log(r"smtpd\[\d+\]: \w+: client=localhost\[127\.0\.0\.1\], "
                        r"orig_client=unknown\[127\.0\.0\.1\]")
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual(ev["outcome"], "relayed")
        self.assertIn(ev["tls"], ("TLSv1.2", "TLSv1.3"))


class HandshakeFailureTest(InboundTlsTestCase):
    def stampd_with_metrics(self):
        return self.tls_stampd({"listen_tls": ["127.0.0.1:0"], "tls_handshake_timeout": "1s"},
                               extra={"metrics": {"listen": "127.0.0.1:0"}})

    def assertEndsCleanly(self, stampd, sock, within):
        started = time.monotonic()
        sock.settimeout(within + 5)
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        took = time.monotonic() - started
        self.assertLess(took, within + 2)
        return took

    def assertServing(self, stampd):
        c = self.connect(stampd)
        self.assertEqual(c.ehlo().code, 250)
        self.assertTrue(stampd.alive())

    def test_garbage_after_starttls(self):
        stampd = self.stampd_with_metrics()
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        c.send(b"GET / HTTP/1.0\r\n\r\n" + b"\x00" * 100)
        self.assertEndsCleanly(stampd, c.sock, 1)
        ev = stampd.wait_for_event("tls-failed")[0]
        self.assertEqual((ev["mode"], ev["reason"]), ("starttls", "error"))
        stampd.wait_for_event("disconnect", reason="tls-failed")
        self.assertServing(stampd)
        page = scrape(stampd)
        self.assertEqual(page.value("stampd_tls_handshake_failures_total", mode="starttls", reason="error"), 1)

    def test_garbage_on_the_tls_listener(self):
        stampd = self.stampd_with_metrics()
        sock = socket.create_connection(stampd.addresses[1], timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(b"EHLO plain.text.client\r\n")
        self.assertEndsCleanly(stampd, sock, 1)
        ev = stampd.wait_for_event("tls-failed")[0]
        self.assertEqual((ev["mode"], ev["reason"]), ("implicit", "error"))
        self.assertServing(stampd)

    def test_stalled_handshakes_end_at_the_deadline(self):
        stampd = self.stampd_with_metrics()
        # After STARTTLS, nothing at all.
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        # On the TLS listener, half a ClientHello.
        hello = client_hello()
        sock = socket.create_connection(stampd.addresses[1], timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(hello[:len(hello) // 2])
        took = self.assertEndsCleanly(stampd, sock, 1)
        self.assertGreater(took, 0.5)
        self.assertEndsCleanly(stampd, c.sock, 1)
        stampd.wait_for_event("tls-failed", count=2, reason="timeout")
        self.assertServing(stampd)
        page = scrape(stampd)
        self.assertEqual(page.value("stampd_tls_handshake_failures_total", reason="timeout"), 2)

    def test_client_hangs_up_mid_handshake(self):
        stampd = self.stampd_with_metrics()
        hello = client_hello()
        sock = socket.create_connection(stampd.addresses[1], timeout=10)
        sock.sendall(hello[:20])
        sock.close()
        ev = stampd.wait_for_event("tls-failed")[0]
        self.assertEqual(ev["reason"], "closed")
        self.assertServing(stampd)

    def test_sessions_counted_by_version(self):
        stampd = self.stampd_with_metrics()
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_context()
            ctx.minimum_version = ctx.maximum_version = version
            c = self.connect(stampd)
            c.ehlo()
            starttls(c, ctx)
            self.assertEqual(c.ehlo().code, 250)
        # TLS 1.1 is refused (RFC 8996).
        ctx = client_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        c = self.connect(stampd)
        c.ehlo()
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            starttls(c, ctx)
        stampd.wait_for_event("tls", count=2)
        stampd.wait_for_event("tls-failed")
        page = scrape(stampd)
        self.assertEqual(page.value("stampd_tls_sessions_total", mode="starttls", version="TLSv1.2"), 1)
        self.assertEqual(page.value("stampd_tls_sessions_total", mode="starttls", version="TLSv1.3"), 1)
        self.assertEqual(page.value("stampd_tls_sessions_total", mode="implicit"), 0)


class CertificateTest(InboundTlsTestCase):
    def served(self, stampd, server_hostname, verify_with):
        """served runs a handshake with SNI server_hostname (None: no SNI),
        verifying against verify_with's CA, and returns the DER certificate."""
        ctx = client_context(verify_with)
        if server_hostname is None:
            ctx = client_context()
        c = self.connect(stampd)
        c.ehlo()
        starttls(c, ctx, server_hostname=server_hostname)
        cert = c.sock.getpeercert(binary_form=True)
        c.quit()
        return cert

    def test_sni_picks_the_certificate(self):
        stampd = self.tls_stampd(certificates=(MAIL, SUBMIT))
        mail, submit = make_certs(MAIL), make_certs(SUBMIT)
        self.assertEqual(self.served(stampd, "submit.example.org", submit), der(submit))
        self.assertEqual(self.served(stampd, "mail.example.com", mail), der(mail))
        # No SNI, or a name no certificate has: the first one.
        self.assertEqual(self.served(stampd, None, None), der(mail))
        ctx = client_context()
        c = self.connect(stampd)
        c.ehlo()
        starttls(c, ctx, server_hostname="unknown.example.net")
        self.assertEqual(c.sock.getpeercert(binary_form=True), der(mail))
        self.assertEqual(stampd.events("tls")[0]["sni"], "submit.example.org")

    def test_sighup_swaps_the_certificate_and_sessions_go_on(self):
        stampd = self.tls_stampd()
        old, new = make_certs(MAIL), make_certs(RENEWED)
        before = self.connect(stampd)
        before.ehlo()
        starttls(before, client_context(old))
        before.ehlo()
        self.assertEqual(before.sock.getpeercert(binary_form=True), der(old))
        # Renew the files in place, then SIGHUP.
        for name, data in (("tls/0.pem", new.read("server_cert")), ("tls/0.key", new.read("server_key"))):
            with open(os.path.join(stampd.workdir, name), "wb") as f:
                f.write(data)
        stampd.proc.send_signal(signal.SIGHUP)
        stampd.wait_for_event("reloaded")
        self.assertEqual(self.served(stampd, "renewed.example.com", new), der(new))
        # The log says which certificate is in use, and until when.
        logged = stampd.events("tls-certificate")
        self.assertEqual([e["names"] for e in logged],
                         ["mail.example.com", "mail.example.com,renewed.example.com"])
        self.assertRegex(logged[1]["expires"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # The session that began on the old certificate goes on.
        self.relay_one(before, subject="after the reload")
        before.quit()
        self.up.wait_for_messages(1)

    def test_sighup_with_a_broken_certificate_keeps_the_old_one(self):
        stampd = self.tls_stampd()
        with open(os.path.join(stampd.workdir, "tls/0.key"), "w") as f:
            f.write("not a key\n")
        stampd.proc.send_signal(signal.SIGHUP)
        ev = stampd.wait_for_event("reload-failed")[0]
        self.assertIn("[server.certificate] key", ev["error"])
        self.assertEqual(self.served(stampd, "mail.example.com", make_certs(MAIL)), der(make_certs(MAIL)))


class ConfigTest(unittest.TestCase):
    def check(self, server, files=None, tables=None):
        certs = make_certs(MAIL)
        base = {"tls/c.pem": certs.read("server_cert"), "tls/c.key": certs.read("server_key"),
                "tls/other.key": make_certs(SUBMIT).read("server_key"), "tls/junk.pem": "junk\n"}
        base.update(files or {})
        text = render_toml({"server": dict({"listen": ["127.0.0.1:0"]}, **server)})
        for t in tables or ():
            text += "[[server.certificate]]\n" + "".join('%s = "%s"\n' % kv for kv in t.items())
        rc, out, err, _ = check_config(text, files=base)
        return rc, out, err

    def assertRefused(self, expected, **kwargs):
        rc, out, err = self.check(**kwargs)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"stampd\.toml:\d+: ")
        for text in expected:
            self.assertIn(text, err)
        return err

    def test_good_config_prints_the_certificates(self):
        rc, out, err = self.check({"listen_tls": ["127.0.0.1:0"], "require_tls": True},
                                  tables=[{"chain_file": "tls/c.pem", "key_file": "tls/c.key"}])
        self.assertEqual(rc, 0, err)
        self.assertIn("[[server.certificate]]", out)
        self.assertIn('require_tls = true', out)
        self.assertIn('tls_handshake_timeout = "30s"', out)

    def test_errors(self):
        good = {"chain_file": "tls/c.pem", "key_file": "tls/c.key"}
        self.assertRefused(["unknown key 'certificate_file'"], server={},
                           tables=[{"certificate_file": "tls/c.pem", "key_file": "tls/c.key"}])
        self.assertRefused(["missing 'key_file'"], server={}, tables=[{"chain_file": "tls/c.pem"}])
        self.assertRefused(["chain_file", "cannot read", "missing.pem"], server={},
                           tables=[{"chain_file": "tls/missing.pem", "key_file": "tls/c.key"}])
        self.assertRefused(["[server.certificate] certificate chain", "junk.pem"], server={},
                           tables=[{"chain_file": "tls/junk.pem", "key_file": "tls/c.key"}])
        self.assertRefused(["does not belong to the certificate"], server={},
                           tables=[{"chain_file": "tls/c.pem", "key_file": "tls/other.key"}])
        self.assertRefused(["listen_tls: needs a [[server.certificate]]"],
                           server={"listen_tls": ["127.0.0.1:0"]})
        self.assertRefused(["require_tls: needs a [[server.certificate]]"], server={"require_tls": True})
        self.assertRefused(["tls_handshake_timeout"], server={"tls_handshake_timeout": "0s"}, tables=[good])


if __name__ == "__main__":
    test_main.main()
