"""The fault matrix with exact accounting (issue 15): every step of the
dialogue, upstream side and client side, under every fault, checked against
the one promise. For every message a client sent:

  - a 250 from stampd means exactly one upstream took it, whole, for exactly
    the recipients the client got 250 for;
  - no 250 means no upstream took it, except in the duplicate window: the
    upstream took the final dot (queued it) and its reply never reached
    stampd (dropped, reset, hung or trickled past the deadline). The client
    got a 4xx and will send it again; those are counted and reported.

Upstream faults (fake_upstream rules): 4xx, 5xx, 421 then close, drop,
hang past the deadline, a reply trickled one byte a second, reset; at the
greeting, EHLO, MAIL, each RCPT, DATA, the body, the final dot and QUIT, and
at MAIL to the final dot of a session's next transaction (which runs on a
pooled, kept upstream connection); and the same steps for a client that
pipelines MAIL, its recipients and DATA in one write, which stampd passes on
as one write too (DATA's reply comes back ahead of the message). The same faults at the BDAT steps of an
upstream that offers CHUNKING (a second shared pair; messages of 1.03 MiB,
so that they leave as BDAT 1048576 then BDAT n LAST): "bdat chunk" is the
reply to the first (middle) chunk, "bdat last" the reply to BDAT n LAST,
whose drop, reset, hang or trickle is the duplicate window as after a dot.
Client faults: drop mid-command, drop
mid-DATA, one byte short of the final dot (then gone, or then silent), idle
past the deadline at each step, pipelined garbage. Transaction cases run at
once against one stampd, each recognised upstream by its sender and
recipients; the greeting, EHLO and QUIT cases each get a stampd and an
upstream of their own (they hit whichever connection is opened or closed
next). So do the steps of opening a connection that stampd configures:
the reply to STARTTLS and the TLS handshake after it (drop, reset, hang,
the ServerHello one byte a second, garbage instead of a ServerHello) to an upstream offering STARTTLS (tls =
"starttls", the test CA trusted), and the reply to AUTH to an upstream
that wants it (auth_username); each at a session's first transaction and
at its next one (the kept connection has gone idle and was closed, so it
opens a new one). There a 5xx is stampd's own set-up failing too, never
the client's fault: the client must hear a 4xx. Client faults at the
client's own STARTTLS and AUTH, against a stampd of their own with a
certificate and a users file and no trusted network (so only a login
relays): after STARTTLS's 220 the client leaves, sends part of a real
ClientHello and leaves, sends nothing, sends its ClientHello one byte a
second, or sends garbage (stampd must hang up within the handshake
deadline, 2 s); commands pipelined behind STARTTLS are dropped, never run
(the message sent after the handshake is delivered once); over TLS the
client leaves mid-DATA or one byte short of the dot; at AUTH it leaves or
idles at the 334 challenge, answers garbage, or gives a wrong password and
then tries to send (530, nothing delivered); after a good login it leaves
mid-DATA; and a login over TLS that sends a whole message is delivered
once. Timeouts are short (1 s to 2 s) so that a hang costs seconds.
"""
import concurrent.futures
import base64
import os
import re
import socket
import ssl
import sys
import threading
import time
import unittest

from fake_upstream import FakeUpstream
from smtp_client import ConnectionClosed, SmtpClient, dot_stuff
from stampd_harness import (Stampd, StampdTestCase, closed_port, default_sections, merge_sections,
                            run_cli)
from tls_certs import make_certs
import test_main

FAULTS = {
    "4xx": {"reply": "451 4.3.0 Fault: try again later"},
    "5xx": {"reply": "554 5.3.0 Fault: refused"},
    "421+close": {"reply": "421 4.3.2 Fault: closing", "close": True},
    "drop": {"drop": True},
    "hang": {"hang": True},
    "slow": {"slow": True},
    "reset": {"reset": True},
}
# Where the upstream fails (the fake's step names; "rcpt1"/"rcpt2" pick a
# recipient) and whether it needs an upstream of its own.
TX_STEPS = ["mail", "rcpt1", "rcpt2", "data", "body", "dot"]
# On the CHUNKING upstream: the fake's step names for a middle chunk and LAST.
BDAT_STEPS = {"chunk": "bdat chunk", "dot": "bdat last"}
BDAT_BODY_LINES = 15000  # 1.03 MiB: one full 1 MiB chunk, then the LAST one
CONN_STEPS = ["greeting", "ehlo", "quit"]
# Steps of opening a connection that stampd's configuration adds, with the
# fake's step name and the faults that make sense there.
SETUP_STEPS = {
    "starttls": ("starttls", FAULTS),
    "tls handshake": ("tls", {"drop": {"drop": True}, "reset": {"reset": True},
                              "hang": {"hang": True}, "slow": {"slow": True},
                              "garbage": {"garbage": b"220 this is no ServerHello\r\n"}}),
    "auth": ("auth", FAULTS),
}
AUTH_USER, AUTH_PASSWORD = "relay@src.test", "fault matrix password"
CLIENT_FAULTS = [
    ("drop-mid-command", "ehlo"), ("drop-mid-command", "mail"), ("drop-mid-command", "rcpt"),
    ("drop-mid-command", "data"), ("drop-mid-command", "quit"),
    ("drop-mid-data", "body"), ("short-of-dot", "gone"), ("short-of-dot", "silent"),
    ("idle", "greeting"), ("idle", "ehlo"), ("idle", "mail"), ("idle", "rcpt"), ("idle", "body"),
    ("pipelined-garbage", "envelope"), ("pipelined-garbage", "after-dot"),
    ("pipelined-garbage", "overlong"),
]

# Faults of a client at its own STARTTLS and AUTH (row, column).
CLIENT_TLS_FAULTS = [
    ("client starttls", "gone after 220"), ("client starttls", "part of ClientHello"),
    ("client starttls", "silent"), ("client starttls", "1 byte/s"), ("client starttls", "garbage"),
    ("client starttls", "pipelined commands"), ("client tls", "drop-mid-data"),
    ("client tls", "short-of-dot"), ("client auth", "gone at 334"), ("client auth", "silent at 334"),
    ("client auth", "garbage answer"), ("client auth", "wrong password"),
    ("client auth", "drop-mid-data"), ("client auth", "control: delivered"),
]
CLIENT_USER, CLIENT_PASSWORD = "app", "client side password"

TIMEOUTS = {
    "server": {"command_timeout": "2s", "data_timeout": "2s", "max_connections_per_ip": 1000,
               "max_errors": 3},
    "upstream": {"connect_timeout": "1s", "command_timeout": "1s", "data_timeout": "2s",
                 "idle_timeout": "1s"},
    "log": {"level": "info"},
}
CLIENT_TIMEOUT = 20.0
BODY_LINE = b"x" * 70 + b"\r\n"


class Message:
    """Message is one message a client tried to send, and what it heard."""

    def __init__(self, case, tag):
        self.case = case
        self.tag = tag
        self.sender = "%s@src.test" % tag
        self.recipients = ["r1-%s@dst.test" % tag, "r2-%s@dst.test" % tag]
        self.accepted_rcpts = set()
        self.final = None  # the code stampd gave to the final dot, if any
        self.replies = []  # (command, code) of everything stampd said in the transaction
        self.content = ("From: <%s>\r\nTo: <%s>\r\nSubject: fault case %s\r\n"
                        "Message-ID: <%s@fault.test>\r\n\r\n" % (
                            self.sender, self.recipients[0], case.name, tag)).encode() + \
            BODY_LINE * case.body_lines  # about 11 KiB: several body chunks both ways

    @property
    def got_250(self):
        return self.final == 250


class Case:
    def __init__(self, name, row, column, window=False):
        self.name = name
        self.row = row
        self.column = column
        self.window = window  # a duplicate may follow (the upstream queued it, its reply got lost)
        self.messages = []
        self.error = None
        self.verdict = None
        self.rule = None  # the upstream fault: it must have fired
        self.transient = False  # the fault is temporary: the client must never hear a 5xx
        self.tries = 0  # tries that never reached the fault, run again
        self.faulted = None  # a message whose MAIL must get a 4xx once rule fired
        self.body_lines = 150

    def message(self):
        m = Message(self, "m%d-%s" % (len(self.messages), re.sub(r"[^a-z0-9]+", "-", self.name)))
        self.messages.append(m)
        return m


def send_message(c, m, chunk=4096, pause=0.0, pipelined=False):
    """send_message runs one transaction in lockstep, noting what stampd said;
    pipelined: MAIL, the recipients and DATA go in one write (RFC 2920)."""
    if pipelined:
        c.send("MAIL FROM:<%s>\r\n" % m.sender +
               "".join("RCPT TO:<%s>\r\n" % r for r in m.recipients) + "DATA\r\n")
        code = c.reply(CLIENT_TIMEOUT).code
    else:
        code = c.mail(m.sender).code
    m.replies.append(("mail", code))
    if code != 250 and not pipelined:
        return
    for i, rcpt in enumerate(m.recipients):
        code = c.reply(CLIENT_TIMEOUT).code if pipelined else c.rcpt(rcpt).code
        m.replies.append(("rcpt%d" % (i + 1), code))
        if code == 250:
            m.accepted_rcpts.add(rcpt)
    code = c.reply(CLIENT_TIMEOUT).code if pipelined else c.cmd("DATA").code
    m.replies.append(("data", code))
    if code != 354:
        m.accepted_rcpts.clear()
        return
    wire = dot_stuff(m.content)
    for i in range(0, len(wire), chunk):
        c.send(wire[i:i + chunk])
        if pause:
            time.sleep(pause)
    m.final = c.reply(CLIENT_TIMEOUT).code
    m.replies.append(("dot", m.final))


def send_partial(c, m, how):
    """send_partial starts a transaction and sends half the message
    (drop-mid-data) or all of it but the last byte (short-of-dot)."""
    c.mail(m.sender)
    c.rcpt(m.recipients[0])
    if c.cmd("DATA").code != 354:
        return
    wire = dot_stuff(m.content)
    c.send(wire[:len(wire) // 2] if how == "drop-mid-data" else wire[:-1])
    c.close()


def wait_pool_closed(c, up, timeout=6.0):
    """wait_pool_closed waits until stampd closed every connection to up
    (the pool's idle_timeout, 1 s, ends a kept one), keeping the client's
    session alive with NOOPs; False if that did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(not x.open for x in list(up.connections)):
            return True
        try:
            if c.cmd("NOOP").code != 250:
                return False
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError, socket.timeout):
            return False
        time.sleep(0.2)
    return False


def quietly(fn, *args):
    """quietly runs fn; a connection stampd (rightly) closed ends the case."""
    try:
        fn(*args)
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError, socket.timeout):
        pass


class FaultMatrixTest(StampdTestCase):
    def setUp(self):
        self.cases = []
        self.peers = []  # (stampd, upstream) of every case
        self.setup_ups = {}  # fake step name ("starttls", "tls", "auth") -> upstreams
        self.lock = threading.Lock()

    def start_pair(self, servers=None, upstream=None, extra=None, capabilities=FakeUpstream.BASIC,
                   files=None, **fake):
        up = upstream
        if up is None:
            up = FakeUpstream(capabilities=capabilities, command_timeout=10.0, **fake)
            up.start()
            self.addCleanup(up.stop)
        stampd = self.start_stampd(servers or [up.address], merge_sections(TIMEOUTS, extra or {}),
                                   files=files)
        with self.lock:
            self.peers.append((stampd, up))
        return stampd, up

    def client(self, stampd):
        c = SmtpClient(*stampd.address, timeout=CLIENT_TIMEOUT)
        self.addCleanup(c.close)
        return c

    # upstream faults in a transaction, on the shared pair

    def tx_case(self, stampd, up, step, fault, next_tx, bdat=False, pipelined=False):
        row = BDAT_STEPS[step] if bdat else step
        prefix = ("next " if next_tx else "") + ("pipelined " if pipelined else "")
        case = Case("%s/%s" % ((prefix + row).replace(" ", "-"), fault), prefix + row, fault,
                    window=step == "dot" and fault in ("drop", "hang", "slow", "reset"))
        if bdat:
            case.body_lines = BDAT_BODY_LINES
        # On a loaded machine a step before the fault can time out (the
        # upstream deadline is 1 s), and then the fault is never reached: the
        # case runs again, each try held to the promise, up to three tries.
        for _ in range(3):
            c = self.client(stampd)
            c.ehlo()
            if next_tx:
                send_message(c, case.message())  # takes and gives back a connection
            m = case.message()
            rule = dict(FAULTS[fault], times=1)
            if step in ("rcpt1", "rcpt2"):
                rule["match"] = m.recipients[int(step[-1]) - 1]
            else:
                rule["sender"] = m.sender
            if step == "body":
                rule["after_bytes"] = 2048
                if "reply" in rule:
                    rule["close"] = True  # a reply in the middle of DATA, then gone
            if step == "dot" and case.window:
                rule["commit"] = True
            case.transient = fault != "5xx"
            case.rule = up.on("rcpt" if step.startswith("rcpt") else step, **rule)
            quietly(send_message, c, m, 4096, 0.0, pipelined)
            quietly(c.quit)
            if case.rule.used:
                break
            case.tries += 1
        return case

    # upstream faults where connections open and close: a pair of their own

    def conn_case(self, step, fault):
        case = Case("%s/%s" % (step, fault), step, fault)
        stampd, up = self.start_pair()
        case.rule = up.on("connect" if step == "greeting" else step, times=1, **FAULTS[fault])
        for _ in range(2):
            c = self.client(stampd)
            quietly(c.ehlo)
            quietly(send_message, c, case.message())
            quietly(c.quit)
            if step == "quit":
                time.sleep(2.5)  # the pool's idle_timeout (1 s): it sends QUIT
        return case

    # upstream faults while stampd sets a connection up (STARTTLS, TLS, AUTH)

    def setup_pair(self, step):
        # One I/O thread: one pool, so that the connection a transaction
        # opens is the one the case waits for.
        extra = {"server": {"threads": 1}}
        if step == "auth":
            extra["upstream"] = {"auth_username": AUTH_USER, "auth_password_file": "password"}
            return self.start_pair(extra=extra, files={"password": AUTH_PASSWORD + "\n"},
                                   auth={AUTH_USER: AUTH_PASSWORD})
        extra["upstream"] = {"tls": "starttls", "server_name": "localhost", "ca_file": "ca.pem"}
        certs = make_certs()
        return self.start_pair(extra=extra, files={"ca.pem": certs.read("ca")},
                               tls_context=certs.server_context())

    def setup_case(self, step, fault, next_tx):
        row = ("next " if next_tx else "") + step
        case = Case("%s/%s" % (row.replace(" ", "-"), fault), row, fault)
        case.transient = True  # stampd's own set-up failing: never the client's fault
        stampd, up = self.setup_pair(step)
        name, faults = SETUP_STEPS[step]
        with self.lock:
            self.setup_ups.setdefault(name, []).append(up)
        for _ in range(3):
            c = self.client(stampd)
            quietly(c.ehlo)  # the first session ever opens a connection here
            if next_tx:
                quietly(send_message, c, case.message())
            # Armed once no connection is kept, the fault hits the one the
            # next transaction opens (not one opened for EHLO's sake).
            if not wait_pool_closed(c, up):
                case.tries += 1
                continue
            case.rule = up.on(name, times=1, **faults[fault])
            case.faulted = case.message()
            quietly(send_message, c, case.faulted)
            quietly(send_message, c, case.message())  # a new connection: delivered
            quietly(c.quit)
            if case.rule.used:
                break
            case.rule.times = 0  # disarmed: it must not hit the next try's EHLO
            case.tries += 1
        return case

    def refused_case(self):
        case = Case("connect/refused", "connect", "refused")
        stampd, _ = self.start_pair(servers=["127.0.0.1:%d" % closed_port()], upstream=FakeUpstream())
        c = self.client(stampd)
        c.ehlo()
        quietly(send_message, c, case.message())
        quietly(c.quit)
        return case

    # client faults, on the shared pair

    def client_case(self, stampd, fault, where):
        case = Case("client %s/%s" % (fault, where), "client " + fault, where)
        m = case.message()
        c = self.client(stampd)
        try:
            if fault == "idle" and where == "greeting":
                c.wait_closed(10)
                return case
            if fault == "drop-mid-command" and where == "ehlo":
                c.send("EHLO clie")
                c.close()
                return case
            c.ehlo()
            if fault == "idle" and where == "ehlo":
                c.wait_closed(10)
                return case
            if fault == "pipelined-garbage":
                return self.garbage_case(case, c, m, where)
            if fault == "drop-mid-command" and where == "mail":
                c.send("MAIL FROM:<%s" % m.sender)
                c.close()
                return case
            c.mail(m.sender)
            if fault == "idle" and where == "mail":
                c.wait_closed(10)
                return case
            if fault == "drop-mid-command" and where == "rcpt":
                c.send("RCPT TO:<%s" % m.recipients[0])
                c.close()
                return case
            c.rcpt(m.recipients[0])
            if fault == "idle" and where == "rcpt":
                c.wait_closed(10)
                return case
            if fault == "drop-mid-command" and where == "data":
                c.send("DAT")
                c.close()
                return case
            if fault == "drop-mid-command" and where == "quit":
                c.send("QUI")
                c.close()
                return case
            r = c.cmd("DATA")
            if r.code != 354:
                return case
            wire = dot_stuff(m.content)
            if fault == "drop-mid-data":
                c.send(wire[:len(wire) // 2])
                c.close()
            elif fault == "short-of-dot":
                c.send(wire[:-1])
                if where == "gone":
                    c.close()
                else:
                    c.wait_closed(10)
            elif fault == "idle":
                c.send(wire[:len(wire) // 2])
                c.wait_closed(10)
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
        return case

    # client faults at the client's own STARTTLS and AUTH, on a pair of their own

    def client_tls_pair(self):
        certs = make_certs(("mail.example.com",))
        line = run_cli("passwd", CLIENT_USER, input=(CLIENT_PASSWORD + "\n").encode())
        self.assertEqual(line.returncode, 0, line.stderr)
        files = {"tls.pem": certs.read("server_cert"), "tls.key": certs.read("server_key"),
                 "users": line.stdout.decode()}
        extra = {"server": {"trusted_networks": [], "tls_handshake_timeout": "2s",
                            "certificate": [{"chain_file": "tls.pem", "key_file": "tls.key"}]},
                 "auth": {"users_file": "users", "failure_delay": "100ms", "max_failures": 1000,
                          "user": [{"name": CLIENT_USER, "senders": ["*@src.test"]}]}}
        up = FakeUpstream(capabilities=FakeUpstream.BASIC, command_timeout=10.0)
        up.start()
        self.addCleanup(up.stop)
        stampd = self.start_stampd([up.address], merge_sections(TIMEOUTS, extra), files=files,
                                   start=False)
        os.chmod(os.path.join(stampd.workdir, "users"), 0o600)
        stampd.start()
        with self.lock:
            self.peers.append((stampd, up))
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_ctx.load_verify_locations(certs.ca)
        return stampd

    def client_hello(self):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.client_ctx.wrap_bio(incoming, outgoing, server_hostname="mail.example.com")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return outgoing.read()

    def starttls(self, c, pipelined=""):
        c.send("STARTTLS\r\n" + pipelined)
        if c.reply().code != 220:
            raise AssertionError("no 220 to STARTTLS")
        c.sock = self.client_ctx.wrap_socket(c.sock, server_hostname="mail.example.com")
        c.ehlo()

    def login(self, c):
        token = base64.b64encode(b"\0" + CLIENT_USER.encode() + b"\0" + CLIENT_PASSWORD.encode())
        if c.cmd("AUTH PLAIN " + token.decode()).code != 235:
            raise AssertionError("the login failed")

    @staticmethod
    def must_close(case, c, within=8.0):
        try:
            c.wait_closed(within)
        except socket.timeout:
            case.error = "stampd kept the connection open for %.0f s" % within

    def client_tls_case(self, stampd, row, column):
        case = Case("%s/%s" % (row, column), row, column)
        m = case.message()
        c = self.client(stampd)
        try:
            c.ehlo()
            if row == "client starttls":
                if column == "pipelined commands":
                    # RFC 3207 §4.2 (CVE-2011-0411): dropped, never run.
                    self.starttls(c, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (m.sender, m.recipients[0]))
                    self.login(c)
                    send_message(c, m)
                    c.quit()
                    if not m.got_250:
                        case.error = "the message after the handshake was not taken: %s" % m.replies
                    return case
                self.assertEqual(c.cmd("STARTTLS").code, 220)
                hello = self.client_hello()
                if column == "gone after 220":
                    c.close()
                elif column == "part of ClientHello":
                    c.send(hello[:len(hello) // 2])
                    c.close()
                elif column == "silent":
                    self.must_close(case, c)
                elif column == "1 byte/s":
                    started = time.monotonic()
                    for i in range(len(hello)):
                        c.send(hello[i:i + 1])
                        time.sleep(1.0)
                        if time.monotonic() - started > 8:
                            case.error = "stampd kept a 1 byte/s handshake for 8 s"
                            break
                elif column == "garbage":
                    c.send(b"MAIL FROM:<%s>\r\n" % m.sender.encode() + b"\x16\x03\x01 no hello\r\n")
                    self.must_close(case, c)
                return case
            if row == "client tls":
                self.starttls(c)
                self.login(c)
                send_partial(c, m, column)
                return case
            # client auth
            self.starttls(c)
            if column == "control: delivered":
                self.login(c)
                send_message(c, m)
                c.quit()
                if not m.got_250:
                    case.error = "a logged-in client's message was not taken: %s" % m.replies
            elif column == "drop-mid-data":
                self.login(c)
                send_partial(c, m, column)
            elif column in ("gone at 334", "silent at 334"):
                self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
                if column == "gone at 334":
                    c.close()
                else:
                    self.must_close(case, c)
            else:
                if column == "garbage answer":
                    self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
                    r = c.cmd("!!! not base64 !!!")
                else:
                    bad = base64.b64encode(b"\0" + CLIENT_USER.encode() + b"\0wrong").decode()
                    r = c.cmd("AUTH PLAIN " + bad)
                m.replies.append(("auth", r.code))
                send_message(c, m)  # not logged in: 530 at MAIL
                c.quit()
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError, socket.timeout,
                ssl.SSLError) as e:
            if column in ("control: delivered", "pipelined commands"):
                case.error = e
        return case

    def garbage_case(self, case, c, m, where):
        if where == "after-dot":
            # A whole transaction and garbage behind the dot, in one write.
            c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (m.sender, m.recipients[0]))
            codes = [r.code for r in c.replies(3, CLIENT_TIMEOUT)]
            if codes[0] == 250 and codes[1] == 250:
                m.accepted_rcpts.add(m.recipients[0])
            if codes[2] != 354:
                return case
            c.send(dot_stuff(m.content) + b"\x00\xffGARBAGE\r\n.\r\nQUIT\r\n")
            m.final = c.reply(CLIENT_TIMEOUT).code
            c.reply(CLIENT_TIMEOUT)  # the garbage line's refusal
            return case
        garbage = "GARBAGE \x01\x7f" if where == "envelope" else "X" * 70000
        commands = ["MAIL FROM:<%s>" % m.sender, "RCPT TO:<%s>" % m.recipients[0], garbage,
                    "RCPT TO:<%s>" % m.recipients[1], "DATA"]
        c.send("".join(x + "\r\n" for x in commands))
        codes = [c.reply(CLIENT_TIMEOUT).code for _ in commands]
        if codes[0] == 250:
            for rcpt, code in ((m.recipients[0], codes[1]), (m.recipients[1], codes[3])):
                if code == 250:
                    m.accepted_rcpts.add(rcpt)
        if codes[4] == 354:
            c.send(dot_stuff(m.content))
            m.final = c.reply(CLIENT_TIMEOUT).code
        return case

    # the accounting

    def check(self, case):
        """check holds each message of case to the promise; sets case.verdict."""
        problems = []
        window = 0
        for m in case.messages:
            up = [u for s, u in self.peers]
            taken = [t for u in set(up) for t in u.accepted_messages
                     if b"<%s@fault.test>" % m.tag.encode() in t.content]
            whole = [t for t in taken if t.content == m.content]
            if m.got_250:
                if len(taken) != 1 or len(whole) != 1:
                    problems.append("%s: 250 but taken %d time(s), %d whole" % (m.tag, len(taken), len(whole)))
                elif {a for a, _ in whole[0].rcpts} != m.accepted_rcpts:
                    problems.append("%s: delivered to %s, client told %s" % (
                        m.tag, sorted(a for a, _ in whole[0].rcpts), sorted(m.accepted_rcpts)))
            elif taken:
                if case.window and len(taken) == 1 and (m.final is None or m.final // 100 == 4):
                    window += 1
                else:
                    problems.append("%s: no 250 (got %s) but taken %d time(s)" % (m.tag, m.final, len(taken)))
            if case.transient:
                # An upstream's temporary trouble must not become a permanent
                # refusal: a 5xx makes the client bounce. DATA with no
                # recipient accepted is the one 5xx any server gives, and
                # so are recipients pipelined behind a MAIL that failed
                # (503: the client goes by MAIL's reply, RFC 2920 §3.1).
                mail_ok = ("mail", 250) in m.replies
                rcpt_ok = any(cmd.startswith("rcpt") and code == 250 for cmd, code in m.replies)
                permanent = [(cmd, code) for cmd, code in m.replies if code >= 500 and
                             not (cmd == "data" and not rcpt_ok) and
                             not (cmd.startswith("rcpt") and not mail_ok)]
                if permanent:
                    problems.append("%s: a temporary fault, yet stampd said %s" % (
                        m.tag, ", ".join("%d to %s" % (code, cmd) for cmd, code in permanent)))
        if case.error:
            problems.append("the case failed: %r" % case.error)
        fired = case.rule is not None and case.rule.used
        if fired and case.faulted is not None and case.faulted.replies[:1] not in (
                [("mail", 451)], [("mail", 454)]) and case.faulted.replies[:2] not in (
                [("mail", 250), ("rcpt1", 451)], [("mail", 250), ("rcpt1", 454)]):
            # The fault was meant for the connection this transaction opens:
            # at MAIL, or at the first RCPT when stampd answered MAIL itself
            # (a MAIL sent alone goes upstream with the first RCPT).
            problems.append("%s: the fault did not meet the command that opens the connection "
                            "(stampd said %s)" % (case.faulted.tag, case.faulted.replies))
        if case.rule is not None and case.rule.used == 0:
            problems.append("the fault never fired: the case tested nothing (stampd said %s)" % (
                "; ".join(m.tag + ": " + ", ".join("%d to %s" % (code, cmd) for cmd, code in m.replies)
                          for m in case.messages)))
        case.verdict = "MISS" if problems else ("dup" if window else "ok")
        return problems, window

    def test_fault_matrix(self):
        started = time.monotonic()
        stampd, up = self.start_pair()
        chunking = self.start_pair(capabilities=FakeUpstream.BASIC + ["CHUNKING"])
        jobs = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
            for next_tx in (False, True):
                for step in TX_STEPS:
                    for fault in FAULTS:
                        jobs.append(pool.submit(self.tx_case, stampd, up, step, fault, next_tx))
                for step in BDAT_STEPS:
                    for fault in FAULTS:
                        jobs.append(pool.submit(self.tx_case, *chunking, step, fault, next_tx, True))
            # A client that pipelines: stampd sends DATA upstream with MAIL
            # and the recipients, so the upstream's DATA reply comes ahead.
            for step in TX_STEPS:
                for fault in FAULTS:
                    jobs.append(pool.submit(self.tx_case, stampd, up, step, fault, False,
                                            pipelined=True))
            for fault, where in CLIENT_FAULTS:
                jobs.append(pool.submit(self.client_case, stampd, fault, where))
            for step in CONN_STEPS:
                for fault in FAULTS:
                    jobs.append(pool.submit(self.conn_case, step, fault))
            for next_tx in (False, True):
                for step, (_, faults) in SETUP_STEPS.items():
                    for fault in faults:
                        jobs.append(pool.submit(self.setup_case, step, fault, next_tx))
            jobs.append(pool.submit(self.refused_case))
            client_tls = self.client_tls_pair()
            for row, column in CLIENT_TLS_FAULTS:
                jobs.append(pool.submit(self.client_tls_case, client_tls, row, column))
            cases = [j.result() for j in jobs]
        # Let every relay still running end (a hung upstream is cut after
        # 2 s at most): count once nothing has changed upstream for 3 s.
        def taken():
            return sum(len(u.transactions) + len(u.accepted_messages) for _, u in self.peers)
        last, since, deadline = taken(), time.monotonic(), time.monotonic() + 20
        while time.monotonic() - since < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            now = taken()
            if now != last:
                last, since = now, time.monotonic()
        misses = []
        windows = 0
        for case in cases:
            problems, window = self.check(case)
            windows += window
            misses += ["%s: %s" % (case.name, p) for p in problems]
        self.report(cases, windows, time.monotonic() - started)
        # The BDAT rows tested BDAT: every message the CHUNKING upstream got
        # whole came as two chunks, none as DATA.
        bdat_up = chunking[1]
        self.assertTrue(bdat_up.messages)
        self.assertEqual([t.chunks for t in bdat_up.transactions if t.data_started], [])
        self.assertEqual({len(t.chunks) for t in bdat_up.messages}, {2})
        # The pipelined rows tested DATA sent ahead: MAIL, both recipients
        # and DATA reached the upstream in one read.
        def data_ahead(conn):
            v = conn.verbs()
            return any(v[i:i + 4] == ["MAIL", "RCPT", "RCPT", "DATA"] and
                       len(set(conn.arrivals[i:i + 4])) == 1 for i in range(len(v)))
        self.assertTrue(any(data_ahead(conn) for conn in up.connections))
        # The set-up rows tested TLS and AUTH: what those upstreams took
        # came over TLS, or after AUTH as the configured user.
        tls_taken = [t for u in self.setup_ups["starttls"] + self.setup_ups["tls"]
                     for t in u.accepted_messages]
        auth_taken = [t for u in self.setup_ups["auth"] for t in u.accepted_messages]
        self.assertTrue(tls_taken and auth_taken)
        self.assertEqual([t for t in tls_taken if not t.tls], [])
        self.assertEqual([t for t in auth_taken if t.auth_user != AUTH_USER], [])
        self.assertEqual(misses, [], "the promise was broken:\n" + "\n".join(misses))

    def report(self, cases, windows, seconds):
        rows = []
        for c in cases:
            if c.row not in rows:
                rows.append(c.row)
        columns = []
        for c in cases:
            if c.column not in columns:
                columns.append(c.column)
        out = ["fault matrix: ok = the promise held, dup = held, and the message was taken "
               "upstream in the duplicate window, MISS = broken"]
        cell = {(c.row, c.column): c.verdict for c in cases}
        upstream_cols = list(FAULTS) + ["garbage", "refused"]
        width = max(len(r) for r in rows) + 2
        out.append(" " * width + "".join("%-10s" % col for col in upstream_cols))
        for r in rows:
            if r.startswith("client"):
                continue
            out.append("%-*s" % (width, r) + "".join("%-10s" % cell.get((r, col), "-") for col in upstream_cols))
        out.append("client faults:")
        for c in cases:
            if c.row.startswith("client"):
                out.append("  %-40s %s" % (c.row[7:] + " / " + c.column, c.verdict))
        messages = [m for c in cases for m in c.messages]
        out.append("cases %d, invariant held in %d, missed in %d; messages %d, 250 %d, "
                   "duplicate window %d; tries run again (fault not reached) %d; %.1f s" % (
                       len(cases), sum(c.verdict != "MISS" for c in cases),
                       sum(c.verdict == "MISS" for c in cases), len(messages),
                       sum(m.got_250 for m in messages), windows, sum(c.tries for c in cases),
                       seconds))
        sys.stderr.write("\n" + "\n".join(out) + "\n")


if __name__ == "__main__":
    test_main.main()
