"""sluice-load and sluicectl over TLS against a server with a certificate
from a CA this test makes.

- sluice-load with an https:// target and --cacert, for h2 and h1, and with
  --tls --insecure for msgpack-RPC: every event delivered, exit 0; without
  a trusted CA it cannot connect (exit 3);
- sluicectl tls://HOST:PORT with --cacert publishes, reads stats and tails
  what it published; --insecure accepts the certificate; with neither the
  handshake fails (exit 3, a message that names --cacert).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import sluice_harness as H  # noqa: E402
import tls_lib as T  # noqa: E402

BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
LOAD = os.path.join(BUILD, "tools", "sluice-load")
CTL = os.path.join(BUILD, "tools", "sluicectl")


def load(args):
    r = H.run([LOAD, "--progress", "off", "--subscribers", "10", "--rate", "400",
               "--duration", "1", "--drain", "3", "--health=0"] + args, timeout=40)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def case_load(srv, pki, rpc):
    https = "https://localhost:%d" % srv.port
    for proto in ("h2", "h1"):
        code, out = load(["--target", https, "--cacert", pki.ca, "--proto", proto])
        H.check(code == 0 and "gaps 0, out-of-order 0" in out,
                "sluice-load %s over TLS: exit %d\n%s" % (proto, code, out[-1500:]))
    code, out = load(["--proto", "rpc", "--rpc-target", "localhost:%s" % rpc.rsplit(":", 1)[1],
                      "--tls", "--insecure", "--target", https])
    H.check(code == 0, "sluice-load rpc over TLS: exit %d\n%s" % (code, out[-1500:]))
    code, out = load(["--target", https, "--proto", "h2"])
    H.check_eq(code, 3, "sluice-load without a trusted CA cannot connect:\n%s" % out[-600:])


def ctl(args, timeout=20):
    r = H.run([CTL, "--timeout", "5"] + args, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def case_ctl(srv, pki, rpc):
    addr = "tls://localhost:%s" % rpc.rsplit(":", 1)[1]
    code, out, err = ctl(["--rpc", addr, "--cacert", pki.ca, "publish", "ctl.tls", "hello tls"])
    H.check_eq((code, out.strip()), (0, "1"), "sluicectl publish over TLS (%s)" % err)
    code, out, err = ctl(["--rpc", addr, "--insecure", "--json", "stat", "ctl.tls"])
    H.check(code == 0 and '"events":1' in out.replace(" ", ""), "stat --insecure: %r %r" % (out, err))
    code, out, err = ctl(["--rpc", addr, "--cacert", pki.ca, "tail", "ctl.tls", "--from", "1",
                          "--count", "1"])
    H.check(code == 0 and "hello tls" in out, "tail over TLS: %r %r" % (out, err))
    code, out, err = ctl(["--rpc", addr, "stat", "ctl.tls"])
    H.check(code == 3 and "--cacert" in err, "untrusted certificate refused: %d %r" % (code, err))
    code, out, err = ctl(["--rpc", rpc, "stat", "ctl.tls"])
    H.check_eq(code, 0, "cleartext RPC on the same port still works (%s)" % err)


def main():
    H.require_tools("openssl")
    for p in (LOAD, CTL):
        if not os.access(p, os.X_OK):
            print("SKIP: %s not built" % p)
            return 77
    pki = T.Pki()
    srv = T.tls_server(pki)
    srv.args = ["--rpc-listen", "127.0.0.1:0"] + srv.args
    with srv:
        rpc = srv.rpc_addrs()[0]
        case_load(srv, pki, rpc)
        print("ok   case_load")
        case_ctl(srv, pki, rpc)
        print("ok   case_ctl")
        srv.assert_healthy("tools over TLS")
    print("test_tls_tools: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
