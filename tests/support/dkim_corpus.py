"""DKIM test corpus: the committed messages in tests/data/dkim-corpus plus the
generated 20 MiB one, which is too big to commit.

The large message is deterministic: its attachment is SHA-256 in counter mode
(block i = SHA-256(SEED + i as 8 bytes big-endian)), base64 in 76-column CRLF
lines. tests/support/dkim_corpus.cc builds the same bytes; both are pinned to
LARGE_MESSAGE_SHA256 so they cannot drift apart.

Run as a script to write the large message to a directory:
    /usr/bin/python3 tests/support/dkim_corpus.py --write DIR
"""
import base64
import hashlib
import os
import sys

SEED = b"stampd-dkim-corpus-large-attachment"
RAW_ATTACHMENT_BYTES = 15 * 1024 * 1024  # base64: 20 MiB of attachment text
LARGE_MESSAGE_NAME = "45-attachment-20mib.eml"
LARGE_MESSAGE_SHA256 = "9ef14db9c5644ff78efdec815ab467e2980fc2481cd72cbfa719030081f558b6"

BOUNDARY = "=_stampd_large_boundary"
HEADER = (
    "From: Large Sender <large@example.com>\r\n"
    "To: Bob Receiver <bob@example.net>\r\n"
    "Subject: A 20 MiB attachment\r\n"
    "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    "Message-ID: <large-attachment@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="' + BOUNDARY + '"\r\n'
    "\r\n"
    "This is a multi-part message in MIME format.\r\n"
    "\r\n"
    "--" + BOUNDARY + "\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "The attachment holds 15 MiB of pseudo-random bytes.\r\n"
    "\r\n"
    "--" + BOUNDARY + "\r\n"
    'Content-Type: application/octet-stream; name="random.bin"\r\n'
    'Content-Disposition: attachment; filename="random.bin"\r\n'
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
).encode("ascii")
TRAILER = ("--" + BOUNDARY + "--\r\n").encode("ascii")


def corpus_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "data", "dkim-corpus")


def attachment_bytes():
    out = bytearray()
    counter = 0
    while len(out) < RAW_ATTACHMENT_BYTES:
        out += hashlib.sha256(SEED + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:RAW_ATTACHMENT_BYTES])


def large_message():
    """The generated 20 MiB message (CRLF bytes)."""
    encoded = base64.b64encode(attachment_bytes())
    lines = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    return HEADER + b"\r\n".join(lines) + b"\r\n" + TRAILER


def committed_messages():
    """[(name, bytes)] of the committed corpus files, sorted by name."""
    d = corpus_dir()
    out = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".eml"):
            with open(os.path.join(d, name), "rb") as f:
                out.append((name, f.read()))
    return out


def all_messages(include_large=True):
    """Committed messages plus, unless include_large is false, the large one."""
    msgs = committed_messages()
    if include_large:
        msgs.append((LARGE_MESSAGE_NAME, large_message()))
    return msgs


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        data = large_message()
        path = os.path.join(sys.argv[2], LARGE_MESSAGE_NAME)
        with open(path, "wb") as f:
            f.write(data)
        print("%s %d bytes sha256 %s" % (path, len(data), hashlib.sha256(data).hexdigest()))
    elif len(sys.argv) == 2 and sys.argv[1] == "--sha256":
        print(hashlib.sha256(large_message()).hexdigest())
    else:
        sys.exit("usage: dkim_corpus.py --write DIR | --sha256")
