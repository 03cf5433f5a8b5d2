"""Test certificates, generated at test time with the openssl command line:
a CA, a server certificate it signed (localhost, 127.0.0.1, ::1 and any extra
names), and an unrelated second CA for verification failures. Nothing is
checked in; each process makes its own set once."""
import atexit
import os
import shutil
import ssl
import subprocess
import tempfile
import unittest

_cache = {}


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Certs:
    """Certs holds the paths: ca, other_ca, server_cert, server_key (PEM)."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "ca.pem")
        self.ca_key = os.path.join(directory, "ca.key")
        self.other_ca = os.path.join(directory, "other-ca.pem")
        self.server_cert = os.path.join(directory, "server.pem")
        self.server_key = os.path.join(directory, "server.key")

    def server_context(self):
        """server_context is an ssl.SSLContext for a fake server with this certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx

    def read(self, name):
        with open(getattr(self, name), "rb") as f:
            return f.read()


def make_certs(names=("localhost", "upstream.test")):
    """make_certs returns a Certs set (cached per process and name list)."""
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("openssl is not installed")
    key = tuple(names)
    if key in _cache:
        return _cache[key]
    d = tempfile.mkdtemp(prefix="stampd-certs-")
    atexit.register(shutil.rmtree, d, True)
    c = Certs(d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca, ca_key, cn in ((c.ca, c.ca_key, "stampd test CA"),
                           (c.other_ca, os.path.join(d, "other-ca.key"), "some other CA")):
        _openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
                 "-subj", "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    san = ",".join(["DNS:" + n for n in names] + ["IP:127.0.0.1", "IP:::1"])
    _openssl("req", "-new", *ec, "-keyout", c.server_key, "-out", "server.csr",
             "-subj", "/CN=" + names[0], cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" % san)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", c.ca, "-CAkey", c.ca_key,
             "-CAcreateserial", "-out", c.server_cert, "-days", "2", "-extfile", "ext.cnf", cwd=d)
    _cache[key] = c
    return c
