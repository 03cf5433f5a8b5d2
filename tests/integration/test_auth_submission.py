"""AUTH in (issue 12): apps submit with a login and password, and may send
only as the addresses their [[auth.user]] names.

stampd runs on port 0 in front of the fake upstream with loopback NOT in
trusted_networks, so only AUTH lets a client relay. The users file is made
with `stampd passwd` (yescrypt) and Debian's mkpasswd (sha512-crypt).

* swaks --auth PLAIN and --auth LOGIN relay; the message is DKIM-signed and
  dkimpy verifies it; event=message carries login=; the log holds neither
  the password nor its base64.
* Wrong password, unknown user: 535 5.7.8 after the failure delay. A login
  with a foreign MAIL FROM or a foreign From: header: 550 5.7.1, and the
  upstream gets no message.
* On a listener not in plaintext_listen (no TLS yet): EHLO offers no AUTH,
  AUTH gets 538 5.7.11, MAIL gets 530 5.7.0.
* max_failures failures from one address: the last 535 closes the
  connection, and the next AUTH from there gets 454 4.7.0 and a close;
  stampd_auth_attempts_total counts each result.
* SIGHUP reloads the users file: a new login works without a restart.
* The sequence rules: AUTH twice 503, "*" cancels with 501, bad base64 501,
  AUTH inside a transaction 503.
* A slow hash (yescrypt at cost 7, hundreds of ms) does not stall the I/O
  thread: with one I/O thread, a NOOP on another session is answered while
  the AUTH is still being checked.
"""
import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import dkim_verifiers as V
from prometheus_tools import Exposition, http_get, metrics_address
from stampd_harness import StampdTestCase, make_key, run_cli
from tls_certs import make_certs
import test_main

SWAKS = shutil.which("swaks")
MKPASSWD = shutil.which("mkpasswd")

PASSWORDS = {"alice": "alice-Secret-1", "bob": "bob pass phrase", "carol": "carol-3"}
KEYDIR = None
KEY = None


def passwd_line(user, password, *extra):
    r = run_cli("passwd", user, *extra, input=(password + "\n").encode())
    if r.returncode != 0:
        raise AssertionError("stampd passwd failed: " + r.stderr.decode())
    return r.stdout.decode()


def setUpModule():
    global KEYDIR, KEY
    KEYDIR = tempfile.mkdtemp(prefix="stampd-auth-keys-")
    private, txt = make_key(KEYDIR, "example.com", "auth2026", "ed25519")
    with open(txt) as f:
        KEY = (private, V.records_for([f.read().strip()]))


def tearDownModule():
    shutil.rmtree(KEYDIR, ignore_errors=True)


def users_file():
    text = passwd_line("alice", PASSWORDS["alice"])
    if MKPASSWD:
        r = subprocess.run([MKPASSWD, "-m", "sha512crypt", "--stdin"], input=PASSWORDS["bob"] + "\n",
                           capture_output=True, text=True, check=True)
        text += "bob:" + r.stdout.strip() + "\n"
    else:  # pragma: no cover
        text += passwd_line("bob", PASSWORDS["bob"], "--method", "sha512-crypt")
    return text


def message(sender, subject="hello"):
    return ("From: App <%s>\r\nTo: <rcpt@example.net>\r\nSubject: %s\r\n"
            "Message-ID: <%s@test>\r\n\r\nbody line\r\n" % (sender, subject, time.time())).encode()


class AuthTest(StampdTestCase):
    def start(self, plaintext=True, max_failures=5, upstream=None, tls=False, extra_users="",
              threads=None):
        up = upstream or self.start_upstream()
        files = {"users": users_file() + extra_users}
        server = {"trusted_networks": []}
        if threads is not None:
            server["threads"] = threads
        if tls:
            certs = make_certs(("mail.example.com",))
            files["tls.pem"], files["tls.key"] = certs.read("server_cert"), certs.read("server_key")
            server["listen_tls"] = ["127.0.0.1:0"]
            server["certificate"] = [{"chain_file": "tls.pem", "key_file": "tls.key"}]
        sections = {
            "server": server,
            "auth": {
                "users_file": "users",
                "plaintext_listen": ["127.0.0.1:0"] if plaintext else [],
                "failure_delay": "200ms",
                "max_failures": max_failures,
                "failure_window": "10m",
                "user": [{"name": "alice", "senders": ["*@example.com"]},
                         {"name": "slow", "senders": ["*@example.com"]},
                         {"name": "bob", "senders": ["bob@example.org"]}],
            },
            "dkim": {"key": [{"name": "k", "domain": "example.com", "selector": "auth2026",
                              "private_key": KEY[0]}],
                     "sign": [{"from": "*@example.com", "keys": ["k"]}]},
            "metrics": {"listen": "127.0.0.1:0"},
        }
        s = self.start_stampd([up.address], sections=sections, files=files, start=False)
        os.chmod(os.path.join(s.workdir, "users"), 0o600)
        s.start()
        if tls:
            s.wait_for_event("listening", count=2)
        return s, up

    def swaks(self, stampd, user, password, mechanism="PLAIN", sender="alice@example.com",
              header_from=None, check=True, extra=()):
        if SWAKS is None:
            raise unittest.SkipTest("swaks is not installed")
        cmd = [SWAKS, "--server", "%s:%d" % stampd.address, "--helo", "app.test", "--from", sender,
               "--to", "rcpt@example.net", "--auth", mechanism, "--auth-user", user,
               "--auth-password", password, "--timeout", "30",
               "--header", "From: <%s>" % (header_from or sender), "--header", "Subject: via swaks"]
        cmd += list(extra)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def metric(self, stampd, result):
        body = http_get(metrics_address(stampd), "/metrics")[1]
        return Exposition(body).value("stampd_auth_attempts_total", result=result)

    def login(self, c, user, password):
        c.ehlo()
        token = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
        return c.cmd("AUTH PLAIN " + token)

    def test_plain_and_login_relay_signed_and_nothing_secret_logged(self):
        stampd, up = self.start()
        self.swaks(stampd, "alice", PASSWORDS["alice"], "PLAIN")
        self.swaks(stampd, "bob", PASSWORDS["bob"], "LOGIN", sender="bob@example.org")
        up.wait_for_messages(2)
        signed = [t for t in up.accepted_messages if t.mail_from == "alice@example.com"][0]
        content = signed.content
        results = V.verify("dkimpy", content, KEY[1])
        self.assertEqual([r.status for r in results], ["pass"], content[:600])
        self.assertIn(b"d=example.com", content)
        events = stampd.wait_for_event("message", count=2)
        self.assertEqual(sorted(e.get("login") for e in events), ["alice", "bob"])
        self.assertEqual([e["user"] for e in stampd.events("auth", result="ok")], ["alice", "bob"])
        log = stampd.log_text()
        for user in ("alice", "bob"):
            password = PASSWORDS[user]
            self.assertNotIn(password, log)
            self.assertNotIn(base64.b64encode(password.encode()).decode(), log)
            self.assertNotIn(base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode(), log)
        self.assertEqual(self.metric(stampd, "ok"), 2)

    def test_auth_over_starttls_and_implicit_tls(self):
        stampd, up = self.start(plaintext=False, tls=True)
        c = self.connect(stampd)
        ehlo = c.ehlo()
        self.assertIn("STARTTLS", ehlo.text)
        self.assertNotIn("AUTH", ehlo.text)  # no password in clear
        self.assertEqual(self.login(c, "alice", PASSWORDS["alice"]), (538, "5.7.11"))
        self.assertNotIn(PASSWORDS["alice"], stampd.log_text())
        r = self.swaks(stampd, "alice", PASSWORDS["alice"], "PLAIN", extra=["--tls"])
        self.assertRegex(r.stdout, r"TLS started with cipher TLSv1\.[23]")
        self.assertRegex(r.stdout, r"<~  250[- ]AUTH PLAIN LOGIN")  # offered once encrypted
        implicit = stampd.events("listening")[1]["address"]
        host, _, port = implicit.rpartition(":")
        r = subprocess.run([SWAKS, "--server", host, "--port", port, "--tlsc", "--helo", "app.test",
                            "--from", "bob@example.org", "--to", "rcpt@example.net",
                            "--header", "From: <bob@example.org>", "--auth", "LOGIN",
                            "--auth-user", "bob", "--auth-password", PASSWORDS["bob"]],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        up.wait_for_messages(2)
        events = stampd.wait_for_event("message", count=2)
        self.assertEqual(sorted(e["login"] for e in events), ["alice", "bob"])
        self.assertTrue(all(e["tls"].startswith("TLSv1.") for e in events), events)
        signed = [t for t in up.accepted_messages if t.mail_from == "alice@example.com"][0]
        self.assertEqual([x.status for x in V.verify("dkimpy", signed.content, KEY[1])], ["pass"])

    def test_wrong_password_and_unknown_user(self):
        stampd, up = self.start()
        started = time.monotonic()
        r = self.swaks(stampd, "alice", "wrong", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("535 5.7.8", r.stdout + r.stderr)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)  # the failure delay
        r = self.swaks(stampd, "mallory", PASSWORDS["alice"], "LOGIN", check=False)
        self.assertIn("535 5.7.8", r.stdout + r.stderr)
        self.assertEqual(up.accepted_messages, [])
        failed = stampd.events("auth", result="failed")
        self.assertEqual(len(failed), 2)
        self.assertEqual(failed[0]["user"], "alice")
        self.assertEqual(failed[1]["user"], "")  # an unknown name may be a mistyped password
        self.assertNotIn("mallory", stampd.log_text())
        self.assertEqual(self.metric(stampd, "failed"), 2)

    def test_foreign_sender_is_refused(self):
        stampd, up = self.start()
        # A foreign From: header behind an allowed MAIL FROM: refused at the dot, not signed.
        r = self.swaks(stampd, "alice", PASSWORDS["alice"], header_from="ceo@victim.example",
                       check=False)
        self.assertIn("550 5.7.1", r.stdout)
        # bob may send as bob@example.org only: not even as example.com, which we sign for.
        r = self.swaks(stampd, "bob", PASSWORDS["bob"], sender="bob@example.org",
                       header_from="alice@example.com", check=False)
        self.assertIn("550 5.7.1", r.stdout)
        # A foreign MAIL FROM: refused at MAIL.
        c = self.connect(stampd)
        self.assertEqual(self.login(c, "alice", PASSWORDS["alice"]).code, 235)
        self.assertEqual(c.mail("someone@example.org"), (550, "5.7.1"))
        self.assertEqual(c.mail("alice@example.com").code, 250)
        self.assertEqual(up.accepted_messages, [])
        refused = stampd.events("message")
        self.assertEqual(len(refused), 2)
        self.assertTrue(all(e.get("refused_by") == "sender-rights" for e in refused), refused)

    def test_auth_before_tls_is_refused(self):
        stampd, up = self.start(plaintext=False)
        c = self.connect(stampd)
        ehlo = c.ehlo()
        self.assertNotIn("AUTH", ehlo.text)
        token = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode()).decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + token), (538, "5.7.11"))
        self.assertEqual(c.mail("alice@example.com"), (554, "5.7.1"))
        if SWAKS:
            r = self.swaks(stampd, "alice", PASSWORDS["alice"], check=False)
            self.assertNotEqual(r.returncode, 0)
        self.assertEqual(up.accepted_messages, [])
        self.assertNotIn(PASSWORDS["alice"], stampd.log_text())

    def test_unauthenticated_client_outside_trusted_networks(self):
        stampd, up = self.start()
        c = self.connect(stampd)
        self.assertIn("AUTH PLAIN LOGIN", c.ehlo().text)
        self.assertEqual(c.mail("alice@example.com"), (530, "5.7.0"))

    def test_throttle_after_max_failures(self):
        stampd, up = self.start(max_failures=3)
        for attempt in range(3):
            c = self.connect(stampd.address, source_address=("127.0.0.7", 0))
            # Another name each time: the address's count, not a user's.
            self.assertEqual(self.login(c, "user%d" % attempt, "guess"), (535, "5.7.8"))
            if attempt < 2:
                c.quit()
            else:
                c.wait_closed(timeout=5)  # the third failure ends the connection
        c = self.connect(stampd.address, source_address=("127.0.0.7", 0))
        self.assertEqual(self.login(c, "bob", PASSWORDS["bob"]), (454, "4.7.0"))
        c.wait_closed(timeout=5)
        # The user's count too: three failures for bob from elsewhere lock bob, not carol.
        for attempt in range(3):
            c = self.connect(stampd.address, source_address=("127.0.0.%d" % (10 + attempt), 0))
            self.assertEqual(self.login(c, "bob", "nope"), (535, "5.7.8"))
        c = self.connect(stampd.address, source_address=("127.0.0.20", 0))
        self.assertEqual(self.login(c, "bob", PASSWORDS["bob"]), (454, "4.7.0"))
        c = self.connect(stampd.address, source_address=("127.0.0.21", 0))
        self.assertEqual(self.login(c, "alice", PASSWORDS["alice"]).code, 235)
        self.assertEqual(self.metric(stampd, "failed"), 6)
        self.assertEqual(self.metric(stampd, "throttled"), 2)
        self.assertEqual(self.metric(stampd, "ok"), 1)

    def test_sighup_reloads_the_users_file(self):
        stampd, up = self.start()
        c = self.connect(stampd)
        self.assertEqual(self.login(c, "carol", PASSWORDS["carol"]).code, 535)
        path = os.path.join(stampd.workdir, "users")
        with open(path, "a") as f:
            f.write(passwd_line("carol", PASSWORDS["carol"]))
        with open(stampd.config_path, "a") as f:
            f.write('\n[[auth.user]]\nname = "carol"\nsenders = ["carol@example.com"]\n')
        os.kill(stampd.pid, signal.SIGHUP)
        stampd.wait_for_event("reloaded")
        c = self.connect(stampd)
        self.assertEqual(self.login(c, "carol", PASSWORDS["carol"]), (235, "2.7.0"))
        self.assertEqual(c.mail("carol@example.com").code, 250)
        # A broken users file is refused; the running one stays.
        with open(path, "a") as f:
            f.write("broken line\n")
        os.kill(stampd.pid, signal.SIGHUP)
        ev = stampd.wait_for_event("reload-failed")[0]
        self.assertIn("users:4: expected user:hash", ev.get("error", "") + str(ev))
        c = self.connect(stampd)
        self.assertEqual(self.login(c, "carol", PASSWORDS["carol"]).code, 235)

    def test_sequence_rules(self):
        stampd, up = self.start()
        c = self.connect(stampd)
        c.ehlo()
        self.assertEqual(c.cmd("AUTH LOGIN"), (334,))
        self.assertEqual(c.cmd("*"), (501,))
        self.assertEqual(c.cmd("AUTH PLAIN"), (334,))
        self.assertEqual(c.cmd("not base64!"), (501,))
        self.assertEqual(c.cmd("AUTH CRAM-MD5"), (504,))
        self.assertEqual(c.cmd("AUTH LOGIN " + base64.b64encode(b"alice").decode()).code, 334)
        self.assertEqual(c.cmd(base64.b64encode(PASSWORDS["alice"].encode()).decode()),
                         (235, "2.7.0"))
        self.assertEqual(c.cmd("AUTH PLAIN"), (503,))
        c.mail("alice@example.com")
        c2 = self.connect(stampd)
        c2.ehlo()
        # Loopback is not trusted here, so a transaction needs a login first;
        # AUTH inside one is then refused.
        self.assertEqual(self.login(c2, "bob", PASSWORDS["bob"]).code, 235)
        self.assertEqual(c2.mail("bob@example.org").code, 250)
        self.assertEqual(c2.cmd("AUTH PLAIN"), (503,))
        self.assertEqual(self.metric(stampd, "aborted"), 3)

    @unittest.skipIf(MKPASSWD is None, "mkpasswd is not installed")
    def test_slow_hash_does_not_stall_other_sessions(self):
        # A hash slow enough to see on this machine: making one costs what
        # checking it costs, so raise yescrypt's cost until making it takes
        # half a second (cost 7 took 600 ms on one machine, 80 ms on
        # another).
        for cost in range(7, 13):
            made = time.monotonic()
            r = subprocess.run([MKPASSWD, "-m", "yescrypt", "-R", str(cost), "--stdin"], input="slow-pw\n",
                               capture_output=True, text=True, check=True)
            if time.monotonic() - made >= 0.5:
                break
        stampd, up = self.start(extra_users="slow:" + r.stdout.strip() + "\n", threads=1)
        a, b = self.connect(stampd), self.connect(stampd)
        a.ehlo()
        b.ehlo()
        token = base64.b64encode(b"\0slow\0slow-pw").decode()
        started = time.monotonic()
        a.send(("AUTH PLAIN %s\r\n" % token).encode())
        time.sleep(0.02)  # the AUTH line is read and its hash under way
        noop_started = time.monotonic()
        self.assertEqual(b.cmd("NOOP").code, 250)
        noop = time.monotonic() - noop_started
        self.assertEqual(a.reply().code, 235)
        auth = time.monotonic() - started
        print("slow AUTH %.0f ms, NOOP on another session meanwhile %.0f ms"
              % (auth * 1000, noop * 1000))
        # Both sessions live on the one I/O thread: a hash run there would
        # hold the NOOP's answer until the AUTH's.
        self.assertGreater(auth, 0.2)
        self.assertLess(noop, auth / 3)


if __name__ == "__main__":
    test_main.main()
