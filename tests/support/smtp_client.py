"""A raw SMTP client for tests: sends exactly the bytes a test gives it (so a
test can pipeline, split writes, or send smuggling sequences) and parses
replies into (code, enhanced code, text). Not a general-purpose client."""
import re
import socket
import time

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?: |$)")


class Reply:
    """Reply is one SMTP reply: code, enhanced status code ("" if none), the
    text lines without code and enhanced code, and the raw lines."""

    def __init__(self, raw_lines):
        self.raw_lines = raw_lines
        self.code = int(raw_lines[0][:3])
        self.enhanced = ""
        self.lines = []
        for line in raw_lines:
            text = line[4:]
            m = _ENHANCED.match(text)
            if m:
                if not self.enhanced:
                    self.enhanced = m.group(1)
                text = text[len(m.group(0)):]
            self.lines.append(text)

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def wire(self):
        return "".join(l + "\r\n" for l in self.raw_lines)

    def __repr__(self):
        return "Reply(%r)" % " / ".join(self.raw_lines)

    def __eq__(self, other):
        if isinstance(other, tuple):
            return (self.code, self.enhanced, self.text)[:len(other)] == other
        return NotImplemented


class ConnectionClosed(Exception):
    pass


def dot_stuff(message):
    """dot_stuff returns message (bytes with CRLF lines) as DATA on the wire,
    with the terminating <CRLF>.<CRLF>."""
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


class SmtpClient:
    """SmtpClient talks to one SMTP server over TCP (IPv4 or IPv6)."""

    def __init__(self, host, port, timeout=15.0, source_address=None, read_greeting=True):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=source_address)
        self.buffer = b""
        self.closed = False
        self.greeting = self.reply() if read_greeting else None
        self.capabilities = {}

    # raw I/O

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise ConnectionClosed("server closed the connection")
        self.buffer += chunk

    def read_line(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no line within %.1fs" % timeout)
            self._fill(left)
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self, timeout=None):
        """reply reads one (possibly multi-line) reply."""
        lines = []
        while True:
            line = self.read_line(timeout)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(lines)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """cmd sends one command line and returns its reply."""
        self.send(line + "\r\n")
        return self.reply(timeout)

    def wait_closed(self, timeout=None):
        """wait_closed reads until the server closes; returns the bytes that came first."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        got = self.buffer
        self.buffer = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("server did not close within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return got
            got += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """abort resets the connection (RST) instead of closing it politely."""
        try:
            import struct
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # SMTP verbs

    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        self.capabilities = {}
        if r.code == 250:
            for line in r.raw_lines[1:]:
                words = line[4:].split()
                if words:
                    self.capabilities[words[0].upper()] = words[1:]
        return r

    def mail(self, sender, params=""):
        return self.cmd("MAIL FROM:<%s>%s" % (sender, (" " + params) if params else ""))

    def rcpt(self, recipient, params=""):
        return self.cmd("RCPT TO:<%s>%s" % (recipient, (" " + params) if params else ""))

    def data(self, message, timeout=None):
        """data sends DATA and, after 354, the dot-stuffed message; returns
        (reply to DATA, reply to the final dot or None)."""
        r = self.cmd("DATA")
        if r.code != 354:
            return r, None
        self.send(dot_stuff(message))
        return r, self.reply(timeout)

    def quit(self):
        try:
            return self.cmd("QUIT")
        finally:
            self.close()

    def send_mail(self, sender, recipients, message, mail_params="", timeout=None):
        """send_mail runs one whole transaction after EHLO and returns the
        final reply (or the first refusal)."""
        r = self.mail(sender, mail_params)
        if r.code != 250:
            return r
        accepted = 0
        for rcpt in recipients:
            if self.rcpt(rcpt).code in (250, 251):
                accepted += 1
        if not accepted:
            self.cmd("RSET")
            return None
        r, final = self.data(message, timeout)
        return final if final is not None else r


def make_message(subject="test", body=b"Hello.\r\n", sender="sender@example.com",
                 to="rcpt@example.net", extra_headers=()):
    """make_message builds a small RFC 5322 message with CRLF lines."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [
        "From: <%s>" % sender,
        "To: <%s>" % to,
        "Subject: %s" % subject,
        "Message-ID: <%s.%d@test.example>" % (subject.replace(" ", "-"), int(time.time() * 1e6)),
        "Date: Thu, 01 Jan 2026 00:00:00 +0000",
    ] + list(extra_headers)
    return ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + body
