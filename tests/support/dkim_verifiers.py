"""Independent DKIM verifiers, run offline with given key records, for the
interop tests: every signature stampd makes must pass all of them, and a
tampered copy must fail each.

    from dkim_verifiers import VERIFIERS, available, verify, records_for
    ok, why = available("opendkim")
    results = verify("opendkim", message_bytes, {"sel._domainkey.example.com": "v=DKIM1; k=rsa; p=..."})
    for r in results: print(r.status, r.domain, r.selector, r.algorithm, r.detail)

Verifiers (each returns one SigResult per DKIM-Signature it saw):
  dkimpy    python3-dkim; dnsfunc serves the records.
  mail-dkim Mail::DKIM (libmail-dkim-perl) through dkim_maildkim_verify.pl,
            which replaces Mail::DKIM::DNS::query. Debian 12's version has no
            Ed25519: those signatures come back as status "unsupported".
  opendkim  `opendkim -t` in test mode with TestPublicKeys (no DNS); results
            are read from the Authentication-Results field it would add.

SigResult.status is one of "pass", "fail" (any verifier verdict other than
pass: fail, neutral, permerror, invalid, ...), "unsupported" (the verifier
cannot check this algorithm) or "error" (the tool itself failed). The raw
verdict is kept in SigResult.raw, the verifier's reason in detail.

Needs Debian's interpreter (/usr/bin/python3) for the dkim module.
"""
import collections
import os
import re
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAIL_DKIM_SCRIPT = os.path.join(HERE, "dkim_maildkim_verify.pl")
VERIFIERS = ("dkimpy", "mail-dkim", "opendkim")
TIMEOUT = 300

SigResult = collections.namedtuple("SigResult", "verifier status raw domain selector algorithm b_prefix detail")


# ---------------------------------------------------------------- helpers

def _tags(value):
    out = {}
    for spec in value.split(";"):
        if "=" in spec:
            k, v = spec.split("=", 1)
            out[k.strip()] = re.sub(r"\s+", "", v) if k.strip() in ("b", "bh") else " ".join(v.split())
    return out


def header_fields(head):
    """header_fields splits a header block (bytes, CRLF lines) into whole
    fields, continuation lines included."""
    fields = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields


def signatures(message):
    """Tags of each DKIM-Signature field in message (bytes), top to bottom."""
    sigs = []
    for f in header_fields(message.split(b"\r\n\r\n", 1)[0]):
        name, _, value = f.partition(b":")
        if name.strip().lower() == b"dkim-signature":
            sigs.append(_tags(value.decode("utf-8", "replace")))
    return sigs


def records_for(zone_lines):
    """Records dict from zone-file lines ('name. IN TXT ( "..." "..." )')."""
    out = {}
    for line in zone_lines:
        m = re.match(r'\s*(\S+)\s+(?:\d+\s+)?IN\s+TXT\s+(.*)$', line)
        if m:
            strings = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
            out[m.group(1).rstrip(".").lower()] = "".join(re.sub(r"\\(.)", r"\1", s) for s in strings)
    return out


def _normalize(raw):
    raw = (raw or "").lower()
    if raw == "pass":
        return "pass"
    return "fail"


# ---------------------------------------------------------------- availability

def available(verifier):
    """(True, "") when the verifier can run here, else (False, reason)."""
    if verifier == "dkimpy":
        try:
            import dkim  # noqa: F401
        except ImportError:
            return False, "python3-dkim (dkimpy) is not installed"
        return True, ""
    if verifier == "mail-dkim":
        if shutil.which("perl") is None:
            return False, "perl is not installed"
        r = subprocess.run(["perl", "-MMail::DKIM::Verifier", "-MNet::DNS", "-e", "1"], capture_output=True)
        if r.returncode != 0:
            return False, "Mail::DKIM (libmail-dkim-perl) is not installed"
        return True, ""
    if verifier == "opendkim":
        if shutil.which("opendkim") is None:
            return False, "opendkim is not installed"
        return True, ""
    return False, "unknown verifier %r" % verifier


# ---------------------------------------------------------------- dkimpy

def verify_dkimpy(message, records, minkey=1024):
    import dkim

    def dnsfunc(name, timeout=5):
        key = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
        txt = records.get(key)
        return txt.encode() if txt is not None else None

    out = []
    for idx, tags in enumerate(signatures(message)):
        args = ("dkimpy", tags.get("d", ""), tags.get("s", ""), tags.get("a", ""), tags.get("b", "")[:8])
        if tags.get("a") == "ed25519-sha256":
            try:
                import nacl.signing  # noqa: F401  (dkimpy needs it for ed25519)
            except ImportError:
                out.append(SigResult(args[0], "unsupported", "unsupported", *args[1:], "python3-nacl missing"))
                continue
        try:
            d = dkim.DKIM(message, minkey=minkey)
            ok = d.verify(idx=idx, dnsfunc=dnsfunc)
            raw, detail = ("pass", "") if ok else ("fail", "signature did not verify")
        except dkim.DKIMException as e:
            raw, detail = "fail", str(e)
        except Exception as e:  # dkimpy raises plain errors on some malformed input
            raw, detail = "error", "%s: %s" % (type(e).__name__, e)
        status = "error" if raw == "error" else _normalize(raw)
        out.append(SigResult(args[0], status, raw, *args[1:], detail))
    return out


# ---------------------------------------------------------------- Mail::DKIM

def verify_mail_dkim(message, records):
    with tempfile.TemporaryDirectory(prefix="stampd-maildkim-") as tmp:
        msg_path = os.path.join(tmp, "message.eml")
        rec_path = os.path.join(tmp, "records.tsv")
        with open(msg_path, "wb") as f:
            f.write(message)
        with open(rec_path, "w") as f:
            for name, txt in records.items():
                f.write("%s\t%s\n" % (name, txt))
        r = subprocess.run(["perl", MAIL_DKIM_SCRIPT, msg_path, rec_path], capture_output=True, timeout=TIMEOUT)
    if r.returncode != 0:
        return [SigResult("mail-dkim", "error", "error", "", "", "", "", r.stderr.decode("utf-8", "replace").strip())]
    out = []
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        raw, domain, selector, algorithm, b_prefix, detail = (line.split("\t") + [""] * 6)[:6]
        if raw == "invalid" and "unsupported algorithm" in detail:
            status = "unsupported"
        else:
            status = _normalize(raw)
        out.append(SigResult("mail-dkim", status, raw, domain, selector, algorithm, b_prefix, detail))
    return out


# ---------------------------------------------------------------- OpenDKIM

_AR_FIELD = re.compile(r"### INSHEADER: idx=\d+ hname='Authentication-Results' hvalue='(.*?)'\s*$", re.S | re.M)


def verify_opendkim(message, records):
    with tempfile.TemporaryDirectory(prefix="stampd-opendkim-") as tmp:
        msg_path = os.path.join(tmp, "message.eml")
        keys_path = os.path.join(tmp, "TestPublicKeys")
        conf_path = os.path.join(tmp, "opendkim.conf")
        with open(msg_path, "wb") as f:
            f.write(message)
        with open(keys_path, "w") as f:
            for name, txt in records.items():
                f.write("%s %s\n" % (name, txt))
        with open(conf_path, "w") as f:
            f.write("Mode v\nSyslog no\nMinimumKeyBits 1024\nAlwaysAddARHeader yes\n"
                    "TestPublicKeys %s\n" % keys_path)
        r = subprocess.run(["opendkim", "-x", conf_path, "-t", msg_path, "-vvv"], capture_output=True,
                           timeout=TIMEOUT)
    text = (r.stdout + r.stderr).decode("utf-8", "replace")
    m = _AR_FIELD.search(text)
    if m is None:
        return [SigResult("opendkim", "error", "error", "", "", "", "", text.strip()[-500:])]
    out = []
    for clause in m.group(1).split(";"):
        clause = " ".join(clause.split())
        v = re.match(r"dkim=(\w+)", clause)
        if not v:
            continue
        props = dict(re.findall(r"header\.(\w)=(\S+)", clause))
        reason = re.search(r'reason="([^"]*)"', clause)
        raw = v.group(1)
        if raw == "none":
            continue  # no signature at all
        out.append(SigResult("opendkim", _normalize(raw), raw, props.get("d", ""), props.get("s", ""),
                             props.get("a", ""), props.get("b", ""), reason.group(1) if reason else ""))
    return out


# ---------------------------------------------------------------- dispatch

_FUNCS = {"dkimpy": verify_dkimpy, "mail-dkim": verify_mail_dkim, "opendkim": verify_opendkim}


def verify(verifier, message, records):
    """Verify message (bytes, CRLF) with one verifier; records maps
    'selector._domainkey.domain' to the TXT value. Returns [SigResult]."""
    return _FUNCS[verifier](message, records)


def verify_file(verifier, path, records):
    with open(path, "rb") as f:
        return verify(verifier, f.read(), records)
