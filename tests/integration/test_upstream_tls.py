"""TLS and AUTH towards the upstream, against the fake upstream with a
certificate made at test time: STARTTLS then AUTH PLAIN or LOGIN with the
password from a file; tls = "required" without STARTTLS on offer fails
cleanly with 4xx (no MAIL, no password in clear); certificate verification
with ca_file and the server name works and fails as it should; implicit TLS."""
import unittest

from smtp_client import make_message
from stampd_harness import StampdTestCase
from tls_certs import make_certs
import test_main

USER, PASSWORD = "relay@example.com", "correct horse battery staple"


class UpstreamTlsTest(StampdTestCase):
    def setUp(self):
        self.certs = make_certs()

    def upstream(self, tls=True, **kwargs):
        kwargs.setdefault("auth", {USER: PASSWORD})
        kwargs.setdefault("auth_requires_tls", True)
        return self.start_upstream(tls_context=self.certs.server_context() if tls else None, **kwargs)

    def stampd(self, up, upstream_section, password=PASSWORD):
        files = {"ca.pem": self.certs.read("ca"), "other-ca.pem": self.certs.read("other_ca"),
                 "upstream-password": password + "\n"}
        section = {"server_name": "localhost", "ca_file": "ca.pem"}
        section.update(upstream_section)
        return self.start_stampd([up.address], {"upstream": section}, files=files)

    def send(self, stampd):
        c = self.connect(stampd)
        self.assertEqual(c.ehlo().code, 250)
        msg = make_message(subject="over TLS")
        r = c.send_mail("sender@example.com", ["rcpt@example.net"], msg)
        c.quit()
        return r, msg

    def assertRelayed(self, up, stampd, tls=True, user=USER):
        r, msg = self.send(stampd)
        self.assertEqual(r.code, 250, r)
        up.wait_for_messages(1)
        tx = up.messages[0]
        self.assertEqual(tx.content, msg)
        self.assertEqual(tx.tls, tls)
        self.assertEqual(tx.auth_user, user)
        return tx

    def assertRefusedCleanly(self, up, stampd, kind, forbidden=("MAIL", "AUTH")):
        r, _ = self.send(stampd)
        # Our TLS or login failed: a security matter (RFC 3463 X.7.0), not
        # a server that does not answer (4.4.1).
        self.assertEqual((r.code, r.enhanced), (451, "4.7.0"), r)
        up.wait_idle()
        commands = up.all_commands()
        self.assertFalse([x for x in commands if x.startswith(forbidden)], commands)
        self.assertEqual(up.messages, [])
        stampd.wait_for_event("upstream-error", kind=kind)

    def test_starttls_and_auth_plain(self):
        up = self.upstream(auth_mechanisms=("PLAIN",))
        stampd = self.stampd(up, {"tls": "required", "auth_username": USER,
                                  "auth_password_file": "upstream-password"})
        self.assertRelayed(up, stampd)
        conn = up.connections[0]
        self.assertEqual(conn.sni, "localhost")
        verbs = conn.verbs()
        # EHLO, STARTTLS, EHLO again, then AUTH: nothing secret before TLS.
        self.assertEqual(verbs[:4], ["EHLO", "STARTTLS", "EHLO", "AUTH"])
        self.assertEqual(conn.commands[3], "AUTH PLAIN")

    def test_starttls_and_auth_login(self):
        up = self.upstream(auth_mechanisms=("LOGIN",))
        stampd = self.stampd(up, {"tls": "starttls", "auth_username": USER,
                                  "auth_password_file": "upstream-password"})
        self.assertRelayed(up, stampd)

    def test_wrong_password_is_a_4xx(self):
        up = self.upstream()
        stampd = self.stampd(up, {"tls": "required", "auth_username": USER,
                                  "auth_password_file": "upstream-password"}, password="wrong")
        self.assertRefusedCleanly(up, stampd, "auth", forbidden=("MAIL",))
        self.assertNotIn("wrong", stampd.log_text().replace("wrong.", ""))

    def test_required_without_starttls_fails_cleanly(self):
        up = self.upstream(tls=False, auth_requires_tls=False)
        stampd = self.stampd(up, {"tls": "required", "auth_username": USER,
                                  "auth_password_file": "upstream-password"})
        self.assertRefusedCleanly(up, stampd, "tls")

    def test_starttls_mode_goes_on_in_clear_when_not_offered(self):
        up = self.upstream(tls=False, auth=None)
        stampd = self.stampd(up, {"tls": "starttls"})
        self.assertRelayed(up, stampd, tls=False, user=None)

    def test_certificate_from_another_ca_is_refused(self):
        up = self.upstream(auth=None)
        stampd = self.stampd(up, {"tls": "required", "ca_file": "other-ca.pem"})
        self.assertRefusedCleanly(up, stampd, "tls")
        self.assertIn("verif", stampd.events("upstream-error", kind="tls")[0]["error"])

    def test_wrong_server_name_is_refused(self):
        up = self.upstream(auth=None)
        stampd = self.stampd(up, {"tls": "required", "server_name": "mail.example.org"})
        self.assertRefusedCleanly(up, stampd, "tls")

    def test_ip_address_in_certificate_matches_without_server_name(self):
        up = self.upstream(auth=None)
        stampd = self.stampd(up, {"tls": "required", "server_name": ""})
        self.assertRelayed(up, stampd, user=None)

    def test_verification_can_be_turned_off(self):
        up = self.upstream(auth=None)
        stampd = self.stampd(up, {"tls": "required", "ca_file": "other-ca.pem",
                                  "verify_certificate": False})
        self.assertRelayed(up, stampd, user=None)

    def test_implicit_tls(self):
        up = self.upstream(implicit_tls=True)
        stampd = self.stampd(up, {"tls": "implicit", "auth_username": USER,
                                  "auth_password_file": "upstream-password"})
        self.assertRelayed(up, stampd)
        self.assertNotIn("STARTTLS", up.connections[0].verbs())

    def test_implicit_tls_against_a_plain_server_fails_cleanly(self):
        up = self.upstream(tls=False, auth=None)
        stampd = self.stampd(up, {"tls": "implicit", "connect_timeout": "2s", "command_timeout": "2s"})
        r, _ = self.send(stampd)
        self.assertEqual(r.code // 100, 4, r)
        self.assertEqual(up.messages, [])

    def test_auth_in_clear_to_loopback(self):
        # Loopback never leaves the host, so AUTH without TLS is allowed there.
        up = self.upstream(tls=False, auth_requires_tls=False)
        stampd = self.stampd(up, {"tls": "none", "auth_username": USER,
                                  "auth_password_file": "upstream-password"})
        self.assertRelayed(up, stampd, tls=False)


if __name__ == "__main__":
    test_main.main()
