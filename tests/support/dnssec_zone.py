"""A DNSSEC-signed zone for the tests, made with Debian's ldnsutils
(ldns-keygen, ldns-signzone): a KSK and a ZSK (ECDSA P-256, algorithm 13),
NSEC3-signed, so that a validating resolver with the zone's DS as trust
anchor gets "secure" answers, and NXDOMAIN proofs too.

    zone = SignedZone("secure.example", [("secure.example", "TXT", "v=spf1 ... -all")])
    zone.sign(directory)     # raises unittest.SkipTest when ldnsutils is missing
    zone.signed_path         # the signed zone file, for an unbound auth-zone
    zone.ds                  # the DS record line, for a trust-anchor file

tamper= replaces one record's data in the signed file after signing (its
RRSIG stays), which is what an attacker forging an answer produces: a
validating resolver must call it bogus.
"""
import os
import shutil
import subprocess
import unittest

from unbound_server import txt_strings


def _rdata(rtype, value):
    """_rdata writes value in zone-file syntax: TXT text as quoted strings."""
    return txt_strings(value) if rtype.upper() == "TXT" else value


def find_ldns_tools():
    """find_ldns_tools returns (ldns-keygen, ldns-signzone) paths, or None."""
    keygen, signzone = shutil.which("ldns-keygen"), shutil.which("ldns-signzone")
    return (keygen, signzone) if keygen and signzone else None


class SignedZone:
    def __init__(self, name, records, tamper=None):
        """records: (owner, type, value) as for UnboundServer; tamper: an
        optional (owner, type, old value, new value) swapped after signing."""
        self.name = name.rstrip(".")
        self.records = list(records)
        self.tamper = tamper
        self.signed_path = None
        self.ds = None

    def _zone_text(self):
        origin = self.name + "."
        lines = ["$TTL 300",
                 "%s IN SOA ns.%s hostmaster.%s 1 3600 600 86400 300" % (origin, origin, origin),
                 "%s IN NS ns.%s" % (origin, origin),
                 "ns.%s IN A 127.0.0.1" % origin]
        for owner, rtype, value in self.records:
            lines.append("%s. IN %s %s" % (owner.rstrip("."), rtype.upper(), _rdata(rtype, value)))
        return "\n".join(lines) + "\n"

    def sign(self, directory):
        tools = find_ldns_tools()
        if tools is None:
            raise unittest.SkipTest("ldns-signzone is not installed (Debian package ldnsutils)")
        keygen, signzone = tools
        work = os.path.join(directory, self.name)
        os.makedirs(work, exist_ok=True)
        zone_file = os.path.join(work, "zone")
        with open(zone_file, "w") as f:
            f.write(self._zone_text())

        def run(*args):
            r = subprocess.run(list(args), cwd=work, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("%s failed: %s%s" % (args[0], r.stdout, r.stderr))
            return r.stdout.strip()

        ksk = run(keygen, "-a", "ECDSAP256SHA256", "-k", self.name)
        zsk = run(keygen, "-a", "ECDSAP256SHA256", self.name)
        # -n: NSEC3, so that denial of existence is proven too.
        run(signzone, "-n", "-f", zone_file + ".signed", zone_file,
            os.path.join(work, ksk), os.path.join(work, zsk))
        self.signed_path = zone_file + ".signed"
        with open(os.path.join(work, ksk + ".ds")) as f:
            self.ds = f.read().strip()
        if self.tamper:
            self._apply_tamper()
        return self

    def _apply_tamper(self):
        owner, rtype, old, new = self.tamper
        with open(self.signed_path) as f:
            text = f.read()
        needle = "\tIN\t%s\t%s" % (rtype.upper(), _rdata(rtype, old))
        replacement = "\tIN\t%s\t%s" % (rtype.upper(), _rdata(rtype, new))
        lines = text.split("\n")
        hits = [i for i, line in enumerate(lines)
                if line.startswith(owner.rstrip(".") + ".\t") and needle in line]
        if len(hits) != 1:
            raise RuntimeError("tamper target %r found %d times in the signed zone"
                               % (self.tamper, len(hits)))
        lines[hits[0]] = lines[hits[0]].replace(needle, replacement)
        with open(self.signed_path, "w") as f:
            f.write("\n".join(lines))
