"""A fake upstream SMTP server for tests: listens on a loopback port 0,
records every connection, command, envelope and the exact DATA bytes it
received, and can be told to fail at any step.

Steps a rule can target: "connect" (the greeting), "ehlo", "helo",
"xforward", "xclient" (answered with a new 220 greeting, after which MAIL
needs EHLO again, as Postfix's XCLIENT does), "mail", "rcpt", "data" (the DATA command), "body" (while the
message streams in; `after_bytes` says when; DATA only), "chunk" (the reply
to a BDAT chunk that is not the LAST one, after its octets were read; the
argument is "N SIZE", N counting the transaction's chunks from 1), "dot"
(the end of data: the final dot, or the octets of BDAT n LAST), "rset",
"noop", "quit", "starttls", "auth" (the reply to the credentials; the
argument is the mechanism), "tls" (the TLS handshake, after the 220 to
STARTTLS or at once with implicit TLS: hang, drop, reset, slow (the
real ServerHello flight one byte a second), or garbage=b"..." written
instead of a ServerHello once the ClientHello came),
"unknown".

Offered "CHUNKING" (RFC 3030), BDAT is taken: each chunk's octets are read
whatever the verdict, kept as they are (tx.chunks lists (size, last) as
received, tx.raw the octets without any terminator, tx.content the same).
"BINARYMIME" makes BODY=BINARYMIME acceptable on MAIL; such a transaction
refuses DATA (503 5.5.1, RFC 3030 §3) and must use BDAT.

Actions: reply="550 5.1.1 No such user" (code, optional enhanced code, text;
"\\n" makes a multi-line reply), hang=True (never answer; the connection is
held until stop()), drop=True (close without a word; reset=True sends a RST),
close=True (close right after the reply: "421 then close"), slow=True (the
reply goes out one byte a second; at "body", the rest of the message is read
one byte a second), delay=seconds before acting. commit=True on "dot" with
hang, drop, reset or slow: the message counts as accepted (queued) before
the fault, the duplicate window of RFC 1047 (the server took the message,
its 250 never arrived). `match` limits a rule to commands whose argument
contains it (for example one recipient), `sender` to transactions whose
MAIL FROM contains it, `times` to its first N uses.

    up = FakeUpstream(capabilities=FakeUpstream.BASIC + ["8BITMIME"])
    up.on("rcpt", match="bad@", reply="550 5.1.1 <bad@example.com>: no such user")
    up.on("dot", delay=1.0)
    up.start(); ...; up.messages[0].content

FakeUpstream(port=P) listens on that port instead of a free one (to bring an
upstream back where stampd expects it after stop()).
"""
import base64
import itertools
import re
import socket
import ssl
import threading
import time


class Rule:
    def __init__(self, step, reply=None, hang=False, drop=False, reset=False, delay=0.0,
                 match=None, times=None, after_bytes=0, sender=None, close=False, slow=False,
                 commit=False, garbage=None):
        self.step = step
        self.garbage = garbage
        self.sender = sender
        self.close = close
        self.slow = slow
        self.commit = commit
        self.reply = reply
        self.hang = hang
        self.drop = drop or reset
        self.reset = reset
        self.delay = delay
        self.match = match
        self.times = times
        self.after_bytes = after_bytes
        self.used = 0

    def matches(self, step, argument, tx=None):
        if step != self.step:
            return False
        if self.times is not None and self.used >= self.times:
            return False
        if self.sender is not None and (tx is None or self.sender.lower() not in tx.mail_from.lower()):
            return False
        if self.match is None:
            return True
        if callable(self.match):
            return bool(self.match(argument))
        return self.match.lower() in argument.lower()


class Transaction:
    """Transaction is one MAIL FROM ... (DATA) exchange as the upstream saw it."""

    _started = itertools.count()

    def __init__(self, connection, mail_line, mail_from, mail_params):
        self.seq = next(Transaction._started)  # order over all connections
        self.connection = connection
        self.mail_line = mail_line
        self.mail_from = mail_from
        self.mail_params = mail_params
        self.rcpt_lines = []
        self.rcpts = []  # (address, params) of accepted recipients
        self.refused_rcpts = []
        self.xforward = dict(connection.xforward)
        self.xclient = dict(connection.xclient)
        self.helo = connection.helo
        self.tls = connection.tls
        self.auth_user = connection.auth_user
        self.data_started = False
        self.raw = bytearray()  # DATA bytes as received, terminator included once complete
        self.completed = False  # the final <CRLF>.<CRLF> arrived
        self.dot_reply = None
        self.dot_time = None  # when the final dot was received (time.monotonic())
        self.reply_time = None  # when we answered it
        self.size = 0
        self.store = True
        self.chunks = []  # BDAT: (size, last) of each chunk, as received
        self.chunk_refused = False  # a chunk got 4xx/5xx: the message is dead

    @property
    def body_type(self):
        m = re.search(r"(?i)(?:^|\s)BODY=(\S+)", self.mail_params)
        return m.group(1).upper() if m else None

    @property
    def content(self):
        """content is the message as the upstream understands it (unstuffed,
        without the terminating dot line)."""
        raw = bytes(self.raw)
        if self.chunks:
            return raw  # BDAT: exactly the octets, no terminator, no stuffing
        if self.completed:
            raw = raw[:-3]  # ".\r\n" (the CRLF before it belongs to the last line)
        lines = raw.split(b"\r\n")
        return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)

    @property
    def accepted(self):
        return self.completed and self.dot_reply is not None and self.dot_reply.startswith("2")

    def bare_line_endings(self):
        """bare_line_endings counts CRs not followed by LF and LFs not after a CR."""
        raw = bytes(self.raw)
        return len(re.findall(rb"\r(?!\n)", raw)) + len(re.findall(rb"(?<!\r)\n", raw))

    def __repr__(self):
        return "Transaction(from=%r rcpts=%r completed=%s size=%d)" % (
            self.mail_from, self.rcpts, self.completed, len(self.raw) or self.size)


class Connection:
    """Connection is one client connection to the fake upstream."""

    def __init__(self, peer):
        self.peer = peer
        self.commands = []  # every command line, in order (AUTH data masked)
        self.arrivals = []  # for each command, which read from the socket completed it
        self.reads = 0
        self.transactions = []
        self.helo = None
        self.xforward = {}
        self.xclient = {}  # what the XCLIENT in force said
        self.xclients = 0  # XCLIENT commands accepted
        self.tls = False
        self.sni = None
        self.auth_user = None
        self.closed_by = None  # "quit", "client" (EOF or reset), "us", "stop"
        self.hung_at = None
        self.open = True
        self.in_transaction = False  # between an accepted MAIL and the final dot, RSET or close

    def verbs(self):
        return [c.split(" ", 1)[0].upper() for c in self.commands]


def _split_reply(text, default_code):
    return text if text[:3].isdigit() else "%d %s" % (default_code, text)


class FakeUpstream:
    BASIC = ["PIPELINING", "SIZE 104857600", "ENHANCEDSTATUSCODES"]
    FULL = BASIC + ["8BITMIME", "SMTPUTF8", "DSN"]
    XFORWARD = "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"
    XCLIENT = "XCLIENT NAME ADDR PORT PROTO HELO LOGIN"

    def __init__(self, host="127.0.0.1", capabilities=None, hostname="fake.upstream",
                 tls_context=None, implicit_tls=False, auth=None, auth_mechanisms=("PLAIN", "LOGIN"),
                 auth_requires_tls=False, store_data=True, command_timeout=60.0, strict_params=True,
                 port=0):
        self.host = host
        self.requested_port = port  # 0: any free port (the usual); else listen exactly there
        self.capabilities = list(self.BASIC if capabilities is None else capabilities)
        self.hostname = hostname
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.auth = dict(auth or {})
        self.auth_mechanisms = list(auth_mechanisms)
        self.auth_requires_tls = auth_requires_tls
        self.store_data = store_data
        self.command_timeout = command_timeout
        # RFC 5321 §4.1.1.11 / §2.2.2: a client must not use a parameter of an
        # extension the server did not offer; strict_params refuses them (555).
        self.strict_params = strict_params
        self.rules = []
        self.connections = []
        self.port = None
        self._listener = None
        self._threads = []
        self._sockets = set()
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._queued = 0

    # configuration

    def on(self, step, **kwargs):
        """on adds a rule (see the module doc); rules are tried in the order added."""
        rule = Rule(step, **kwargs)
        with self._cond:
            self.rules.append(rule)
        return rule

    def clear_rules(self):
        with self._cond:
            self.rules = []

    # life cycle

    @property
    def address(self):
        return "[%s]:%d" % (self.host, self.port) if ":" in self.host else "%s:%d" % (self.host, self.port)

    def start(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, self.requested_port))
        self._listener.listen(128)
        self._listener.settimeout(0.5)
        self.port = self._listener.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True, name="fake-upstream-accept")
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except (OSError, AttributeError):
            pass
        try:
            self._listener.close()
        except (OSError, AttributeError):
            pass
        with self._cond:
            socks = list(self._sockets)
            self._cond.notify_all()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # what was seen

    @property
    def transactions(self):
        """transactions over every connection, in the order they started
        (stampd's pool spreads one client's mail over several connections)."""
        with self._cond:
            return sorted((t for c in self.connections for t in c.transactions), key=lambda t: t.seq)

    @property
    def messages(self):
        """messages are the transactions whose final dot arrived (whatever we
        answered), in the order the dots arrived."""
        return sorted((t for t in self.transactions if t.completed), key=lambda t: t.dot_time)

    @property
    def accepted_messages(self):
        return [t for t in self.transactions if t.accepted]

    def mark(self):
        """mark notes how far every connection has got, for commands_since and
        transactions_since: what one client caused, over kept connections."""
        with self._cond:
            return {id(c): len(c.commands) for c in self.connections}, len(self.transactions)

    def commands_since(self, mark):
        with self._cond:
            return [x for c in self.connections for x in c.commands[mark[0].get(id(c), 0):]]

    def transactions_since(self, mark):
        return self.transactions[mark[1]:]

    def all_commands(self):
        with self._cond:
            return [c for conn in self.connections for c in conn.commands]

    def wait_for(self, predicate, timeout=10.0, what="condition"):
        """wait_for waits until predicate(self) is true (checked on every change)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake upstream: timed out waiting for " + what +
                                         "; commands seen: %r" % self.all_commands()[-40:])
                self._cond.wait(min(left, 0.05))

    def wait_for_messages(self, n, timeout=10.0):
        return self.wait_for(lambda u: len(u.messages) >= n and u.messages, timeout,
                             "%d message(s)" % n)

    def wait_idle(self, timeout=10.0):
        """wait_idle waits until no connection is inside a transaction: each
        has closed, or is between transactions (stampd keeps connections
        open between transactions, in its pool)."""
        return self.wait_for(lambda u: all(not c.open or not c.in_transaction for c in u.connections),
                             timeout, "no transaction open")

    def wait_closed(self, timeout=10.0):
        """wait_closed waits until every connection so far has closed."""
        return self.wait_for(lambda u: all(not c.open for c in u.connections), timeout,
                             "all connections closed")

    # server

    def _changed(self):
        with self._cond:
            self._cond.notify_all()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = Connection(peer)
            with self._cond:
                self.connections.append(conn)
                self._sockets.add(sock)
                self._cond.notify_all()
            t = threading.Thread(target=self._serve, args=(sock, conn), daemon=True,
                                 name="fake-upstream-conn")
            t.start()
            self._threads.append(t)

    def _serve(self, sock, conn):
        session = _Session(self, sock, conn)
        try:
            session.run()
        except (OSError, ssl.SSLError, _Closed):
            if conn.closed_by is None:
                conn.closed_by = "stop" if self._stop.is_set() else "client"
        finally:
            conn.open = False
            with self._cond:
                self._sockets.discard(session.sock)
                self._sockets.discard(sock)
                self._cond.notify_all()
            try:
                session.sock.close()
            except OSError:
                pass

    def _rule(self, step, argument="", tx=None):
        with self._cond:
            for rule in self.rules:
                if rule.matches(step, argument, tx):
                    rule.used += 1
                    return rule
        return None


class _Closed(Exception):
    pass


class _Session:
    def __init__(self, server, sock, conn):
        self.server = server
        self.sock = sock
        self.conn = conn
        self.buffer = b""
        self.tx = None
        self.slow_read = False  # a "body" rule with slow=True fired

    # I/O

    def _recv(self):
        self.sock.settimeout(self.server.command_timeout)
        if self.slow_read and self.server._stop.wait(1.0):
            raise _Closed()
        try:
            chunk = self.sock.recv(1 if self.slow_read else 262144)
        except socket.timeout:
            raise _Closed()
        if not chunk:
            raise _Closed()
        self.conn.reads += 1
        return chunk

    def read_line(self):
        while b"\n" not in self.buffer:
            self.buffer += self._recv()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "surrogateescape")

    def send(self, text):
        self.sock.sendall(text.encode("utf-8", "surrogateescape"))

    @staticmethod
    def format_reply(text):
        lines = text.split("\n")
        code = lines[0][:3]
        out = []
        for i, line in enumerate(lines):
            body = line[4:] if line[:3] == code and len(line) >= 3 else line
            sep = " " if i == len(lines) - 1 else "-"
            out.append(code + sep + body + "\r\n")
        return "".join(out)

    def reply(self, text):
        self.send(self.format_reply(text))
        return text[:3]

    def send_slowly(self, text):
        for byte in text.encode("utf-8", "surrogateescape"):
            self.sock.sendall(bytes([byte]))
            if self.server._stop.wait(1.0):
                raise _Closed()

    def act(self, step, argument, default, record=None, tx=None):
        """act applies the first matching rule for step, else replies default.
        record(text) runs just before the reply is sent, so that a test that
        saw the reply also sees what it recorded. Returns the reply text.
        tx is the transaction a sender= rule looks at (default: the current one)."""
        rule = self.server._rule(step, argument, tx if tx is not None else self.tx)
        if rule is not None and rule.delay:
            if self.server._stop.wait(rule.delay):
                raise _Closed()
        if rule is not None and rule.commit and record is not None:
            with self.server._cond:
                record(default)  # taken: whatever happens to the reply now
                self.server._cond.notify_all()
            record = None
        if rule is not None and rule.hang:
            self.conn.hung_at = step
            self.server._changed()
            self.server._stop.wait()
            raise _Closed()
        if rule is not None and rule.drop:
            self.drop(rule.reset)
        text = rule.reply if rule is not None and rule.reply else default
        if record is not None:
            with self.server._cond:
                record(text)
                self.server._cond.notify_all()
        if rule is not None and rule.slow:
            self.send_slowly(self.format_reply(text))
        else:
            self.reply(text)
        if rule is not None and rule.close:
            self.drop()
        return text

    def drop(self, reset=False):
        self.conn.closed_by = "us"
        if reset:
            import struct
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        raise _Closed()

    def tls_fault(self, rule):
        """tls_fault plays a "tls" rule: the handshake never completes."""
        if rule.delay and self.server._stop.wait(rule.delay):
            raise _Closed()
        if rule.hang:
            self.conn.hung_at = "tls"
            self.server._changed()
            self.server._stop.wait()
            raise _Closed()
        if rule.drop:
            self.drop(rule.reset)
        if rule.garbage is not None:
            self._recv()  # the ClientHello (or its first part)
            self.sock.sendall(rule.garbage)
            while True:  # until the client gives up on us
                self._recv()
        if rule.slow:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = self.server.tls_context.wrap_bio(incoming, outgoing, server_side=True)
            flight = b""
            while not flight:  # until the whole ClientHello came
                incoming.write(self._recv())
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                flight = outgoing.read()
            for i in range(len(flight)):  # until the client gives up on us
                if self.server._stop.wait(1.0):
                    break
                try:
                    self.sock.sendall(flight[i:i + 1])
                except OSError:
                    break
            raise _Closed()

    # protocol

    def capabilities(self):
        caps = list(self.server.capabilities)
        if self.server.tls_context is not None and not self.conn.tls and not self.server.implicit_tls \
                and "STARTTLS" not in caps:
            caps.append("STARTTLS")
        if self.conn.tls:
            caps = [c for c in caps if c.upper() != "STARTTLS"]
        if self.server.auth and (self.conn.tls or not self.server.auth_requires_tls):
            caps.append("AUTH " + " ".join(self.server.auth_mechanisms))
        return caps

    def start_tls(self):
        ctx = self.server.tls_context
        rule = self.server._rule("tls")
        if rule is not None:
            self.tls_fault(rule)

        def sni(sslobj, name, _ctx):
            self.conn.sni = name
        ctx.sni_callback = sni
        self.sock.settimeout(self.server.command_timeout)
        tls = ctx.wrap_socket(self.sock, server_side=True)
        with self.server._cond:
            self.server._sockets.add(tls)
        self.sock = tls
        self.conn.tls = True
        self.buffer = b""  # RFC 3207: nothing sent before the handshake counts

    def run(self):
        if self.server.implicit_tls:
            self.start_tls()
        self.act("connect", "", "220 %s ESMTP fake" % self.server.hostname)
        while True:
            line = self.read_line()
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            logged = line
            if verb == "AUTH":
                logged = "AUTH " + arg.split(" ")[0]
            with self.server._cond:
                self.conn.commands.append(logged)
                self.conn.arrivals.append(self.conn.reads)
                self.server._cond.notify_all()
            handler = getattr(self, "cmd_" + verb.lower(), None)
            if handler is None:
                self.act("unknown", line, "502 5.5.2 Error: command not recognized")
                continue
            if handler(arg) == "quit":
                return

    def cmd_ehlo(self, arg):
        self.conn.helo = arg
        self.act("ehlo", arg, "\n".join(["250 " + self.server.hostname] + ["250 " + c for c in self.capabilities()]))

    def cmd_helo(self, arg):
        self.conn.helo = arg
        self.act("helo", arg, "250 " + self.server.hostname)

    def cmd_starttls(self, arg):
        if self.server.tls_context is None or self.conn.tls:
            self.act("starttls", arg, "502 5.5.1 STARTTLS not offered")
            return
        code = self.act("starttls", arg, "220 2.0.0 Ready to start TLS")
        if code.startswith("220"):
            self.start_tls()

    def cmd_auth(self, arg):
        parts = arg.split(" ")
        mech = parts[0].upper()
        if mech == "PLAIN":
            if len(parts) > 1:
                token = parts[1]
            else:
                self.send("334 \r\n")
                token = self.read_line()
            try:
                _, user, password = base64.b64decode(token).decode().split("\0")
            except (ValueError, UnicodeDecodeError):
                self.act("auth", arg, "501 5.5.2 Bad AUTH PLAIN token")
                return
        elif mech == "LOGIN":
            self.send("334 VXNlcm5hbWU6\r\n")
            user = base64.b64decode(self.read_line()).decode()
            self.send("334 UGFzc3dvcmQ6\r\n")
            password = base64.b64decode(self.read_line()).decode()
        else:
            self.act("auth", arg, "504 5.5.4 Unrecognized authentication type")
            return
        if self.server.auth.get(user) == password and user:
            def record(text):
                if text.startswith("235"):
                    self.conn.auth_user = user
            self.act("auth", mech, "235 2.7.0 Authentication successful", record)
        else:
            self.act("auth", mech, "535 5.7.8 Error: authentication failed")

    def cmd_xforward(self, arg):
        for token in arg.split():
            name, _, value = token.partition("=")
            self.conn.xforward[name.upper()] = value
        self.act("xforward", arg, "250 2.0.0 Ok")

    def cmd_xclient(self, arg):
        attributes = {}
        for token in arg.split():
            name, _, value = token.partition("=")
            attributes[name.upper()] = value

        def record(text):
            if text.startswith("220"):
                # XCLIENT_README: a new session as if the named client had
                # connected; the client must say EHLO again.
                self.conn.xclient = attributes
                self.conn.xclients += 1
                self.conn.helo = None
                self.tx = None
        self.act("xclient", arg, "220 %s ESMTP fake" % self.server.hostname, record)

    _PARAM_EXTENSION = {"SIZE": "SIZE", "BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8", "RET": "DSN",
                        "ENVID": "DSN", "NOTIFY": "DSN", "ORCPT": "DSN", "AUTH": "AUTH"}

    def unoffered_param(self, params):
        """unoffered_param returns the first parameter whose extension we did not offer."""
        if not self.server.strict_params:
            return None
        offered = self.offered()
        for token in params.split():
            keyword, _, value = token.partition("=")
            keyword = keyword.upper()
            if self._PARAM_EXTENSION.get(keyword) not in offered:
                return keyword
            if keyword == "BODY" and value.upper() == "BINARYMIME" and "BINARYMIME" not in offered:
                return "BODY=BINARYMIME"
        return None

    def offered(self):
        return {c.split()[0].upper() for c in self.capabilities()}

    def cmd_mail(self, arg):
        if self.conn.helo is None and self.conn.xclient:
            self.act("mail", arg, "503 5.5.1 Error: send HELO/EHLO first")
            return
        m = re.match(r"(?i)FROM:\s*<([^>]*)>\s*(.*)$", arg)
        if not m:
            self.act("mail", arg, "501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        bad = self.unoffered_param(m.group(2))
        if bad:
            self.act("mail", arg, "555 5.5.4 Unsupported option: " + bad)
            return
        tx = Transaction(self.conn, "MAIL " + arg, m.group(1), m.group(2))
        tx.store = self.server.store_data
        def record(text):
            if text.startswith("2"):
                self.tx = tx
                self.conn.in_transaction = True
                self.conn.transactions.append(tx)
                self.conn.xforward = {}  # Postfix: XFORWARD applies to one transaction
        self.act("mail", arg, "250 2.1.0 Ok", record, tx=tx)

    def cmd_rcpt(self, arg):
        m = re.match(r"(?i)TO:\s*<([^>]*)>\s*(.*)$", arg)
        if self.tx is None:
            self.act("rcpt", arg, "503 5.5.1 Error: need MAIL command")
            return
        if not m:
            self.act("rcpt", arg, "501 5.5.4 Syntax: RCPT TO:<address>")
            return
        self.tx.rcpt_lines.append("RCPT " + arg)
        bad = self.unoffered_param(m.group(2))
        if bad:
            self.tx.refused_rcpts.append((m.group(1), "555"))
            self.act("rcpt", arg, "555 5.5.4 Unsupported option: " + bad)
            return
        tx = self.tx

        def record(text):
            if text.startswith("2"):
                tx.rcpts.append((m.group(1), m.group(2)))
            else:
                tx.refused_rcpts.append((m.group(1), text))
        self.act("rcpt", arg, "250 2.1.5 Ok", record)

    def cmd_data(self, arg):
        if self.tx is None or not self.tx.rcpts:
            self.act("data", arg, "503 5.5.1 Error: need RCPT command")
            return
        if self.tx.body_type == "BINARYMIME" or self.tx.chunks:
            self.act("data", arg, "503 5.5.1 Error: BDAT transaction, DATA not allowed")
            return
        text = self.act("data", arg, "354 End data with <CR><LF>.<CR><LF>")
        if not text or not text.startswith("354"):
            return
        tx = self.tx
        tx.data_started = True
        self.server._changed()
        body_rule = self.server._rule("body", "", tx)
        received = 0
        # The terminator is <CRLF>.<CRLF>, or ".<CRLF>" as the very first line.
        window = b"\r\n"  # the CRLF that "ends the DATA line"
        data = self.buffer
        self.buffer = b""
        while True:
            if not data:
                data = self._recv()
            joined = window + data
            end = joined.find(b"\r\n.\r\n")
            if end >= 0:
                take = end + 5 - len(window)
                part, rest = data[:take], data[take:]
            else:
                part, rest = data, b""
            received += len(part)
            if tx.store:
                tx.raw += part
            else:
                tx.size += len(part)
            window = (window + part)[-4:]
            if body_rule is not None and received >= body_rule.after_bytes:
                rule, body_rule = body_rule, None
                if rule.hang:
                    self.conn.hung_at = "body"
                    self.server._changed()
                    self.server._stop.wait()
                    raise _Closed()
                if rule.drop:
                    self.drop(rule.reset)
                if rule.reply:
                    self.reply(rule.reply)  # an early reply; we keep reading
                if rule.close:
                    self.drop()
                self.slow_read = rule.slow
            if end >= 0:
                self.buffer = rest
                break
            data = b""
        if not tx.store:
            tx.size = received
        self.end_of_message(tx)

    def read_octets(self, n):
        while len(self.buffer) < n:
            self.buffer += self._recv()
        octets, self.buffer = self.buffer[:n], self.buffer[n:]
        return octets

    def cmd_bdat(self, arg):
        m = re.match(r"(?i)(\d+)( LAST)?$", arg)
        if not m:
            self.act("unknown", arg, "501 5.5.4 Syntax: BDAT size [LAST]")
            self.drop()  # where the chunk ends cannot be known
        size, last = int(m.group(1)), bool(m.group(2))
        octets = self.read_octets(size)  # RFC 3030 §2: read whatever the verdict
        tx = self.tx
        if "CHUNKING" not in self.offered():
            self.act("unknown", arg, "502 5.5.2 Error: command not recognized")
            return
        if tx is None or not tx.rcpts or tx.data_started or tx.chunk_refused:
            self.act("chunk", arg, "503 5.5.1 Error: no transaction for BDAT")
            return
        tx.chunks.append((size, last))
        if tx.store:
            tx.raw += octets
        tx.size += size
        if not last:
            def refused(text):
                tx.chunk_refused = not text.startswith("2")
            self.act("chunk", "%d %d" % (len(tx.chunks), size),
                     "250 2.0.0 %d octets received" % size, refused)
            return
        self.end_of_message(tx)

    def end_of_message(self, tx):
        """end_of_message answers the final dot or BDAT LAST: the message is complete."""
        tx.dot_time = time.monotonic()  # before completed: messages sorts by it
        tx.completed = True
        self.server._changed()

        def record(text):
            tx.dot_reply = text
            tx.reply_time = time.monotonic()
        self.act("dot", "", "250 2.0.0 Ok: queued as %d" % (len(self.server.messages)), record)
        self.tx = None
        self.conn.in_transaction = False
        self.server._changed()

    def cmd_rset(self, arg):
        self.tx = None
        self.act("rset", arg, "250 2.0.0 Ok")
        self.conn.in_transaction = False
        self.server._changed()

    def cmd_noop(self, arg):
        self.act("noop", arg, "250 2.0.0 Ok")

    def cmd_quit(self, arg):
        self.conn.closed_by = "quit"
        self.act("quit", arg, "221 2.0.0 Bye")
        return "quit"
