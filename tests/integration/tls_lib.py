"""TLS fixtures for the test_tls_*.py tests: a throwaway CA and server
certificates made with the `openssl` CLI in a temp dir, python ssl client
contexts that trust that CA, and a Server started with --tls-cert/--tls-key.
"""

import os
import socket
import ssl
import subprocess
import tempfile

import sluice_harness as H


class Pki:
    """A CA and named server certificates (CN=localhost, SAN localhost and
    127.0.0.1), each PEM pair in its own files under one temp dir."""

    def __init__(self):
        H.require_tools("openssl")
        self.dir = tempfile.mkdtemp(prefix="sluice-tls-")
        self.ca_key = self.path("ca.key")
        self.ca = self.path("ca.pem")
        self._run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                   "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                   "-subj", "/CN=sluice test CA"])
        with open(self.path("ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, args):
        r = subprocess.run(["openssl"] + args, capture_output=True, timeout=30)
        if r.returncode != 0:
            raise H.TestFailure("openssl %s: %s" % (args[0], r.stderr.decode(errors="replace")))

    def server_cert(self, name, serial):
        """Makes <name>.pem (leaf + CA chain) and <name>.key; returns both
        paths. serial tells certificates apart (reload tests)."""
        key, csr, leaf = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".leaf")
        self._run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-keyout", key, "-out", csr, "-subj", "/CN=localhost"])
        self._run(["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                   "-set_serial", str(serial), "-out", leaf, "-days", "2",
                   "-extfile", self.path("ext")])
        chain = self.path(name + ".pem")
        with open(chain, "wb") as out:
            for p in (leaf, self.ca):
                with open(p, "rb") as f:
                    out.write(f.read())
        return chain, key


def tls_server(pki, args=(), cert="srv", serial=1, **kw):
    """A Server with TLS on its HTTP port (cert files copied to fixed names
    in the server's temp dir, so a test can swap them and send SIGHUP)."""
    chain, key = pki.server_cert(cert, serial)
    srv = H.Server(args=list(args), **kw)
    live_cert, live_key = os.path.join(srv.tmp, "tls.pem"), os.path.join(srv.tmp, "tls.key")
    for src, dst in ((chain, live_cert), (key, live_key)):
        with open(src, "rb") as f, open(dst, "wb") as o:
            o.write(f.read())
    srv.args = ["--tls-cert", live_cert, "--tls-key", live_key] + srv.args
    srv.tls_cert, srv.tls_key = live_cert, live_key
    return srv


def client_context(pki, alpn=("h2", "http/1.1")):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tls_connect(pki, host, port, alpn=("h2", "http/1.1"), timeout=10.0):
    """A verified TLS socket to host:port (server name localhost)."""
    raw = socket.create_connection((host, port), timeout=timeout)
    return client_context(pki, alpn).wrap_socket(raw, server_hostname="localhost")


def peer_serial(sock):
    """Serial number of the certificate the server presented."""
    return int(sock.getpeercert()["serialNumber"], 16)


def https_url(srv, path):
    return "https://localhost:%d%s" % (srv.port, path)
