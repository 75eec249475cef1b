"""msgpack-RPC over TLS (python ssl + python3-msgpack) on a --rpc-listen TCP
port that also serves cleartext RPC, told apart by the first byte.

A TLS client publishes str and bin events (one of 300 KB: many records),
subscribes from seq 1 and receives every event exactly; a cleartext client
on the same port sees the same events; ALPN offers (h2) are not taken on
an RPC port; the unix socket stays cleartext RPC.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import tls_lib as T  # noqa: E402


def tls_rpc(pki, addr, alpn=()):
    c = H.RpcClient(addr)
    c.sock = T.client_context(pki, alpn).wrap_socket(c.sock, server_hostname="localhost")
    c.sock.settimeout(c.timeout)
    return c


def main():
    H.require_rpc()
    H.require_tools("openssl")
    pki = T.Pki()
    srv = T.tls_server(pki)
    srv.args = ["--rpc-listen", "127.0.0.1:0", "--rpc-listen",
                "unix:" + os.path.join(srv.tmp, "rpc.sock")] + srv.args
    with srv:
        tcp, unix = srv.rpc_addrs()
        c = tls_rpc(pki, tcp, alpn=("h2",))
        H.check_eq(c.sock.selected_alpn_protocol(), None, "no ALPN protocol on an RPC port")
        H.check_eq(c.sock.version(), "TLSv1.3", "TLS version")
        big = b"\x00\xff" * 150000
        cases = [("message", "h\u00e9llo"), ("bin", b"\x00\x01\r\n"), ("big", big)]
        for i, (t, d) in enumerate(cases):
            err, res = c.wait_response(c.send("publish", "rs", t, d))
            H.check_eq(err, None, "publish over TLS")
            H.check_eq(res, i + 1, "seq of publish %d" % i)
        err, sub = c.wait_response(c.send("subscribe", "rs", 1))
        H.check_eq(err, None, "subscribe over TLS")
        want = [("rs", i + 1, t, d) for i, (t, d) in enumerate(cases)]
        H.check_eq(c.wait_events(sub, 3), want, "events over TLS")
        for addr in (tcp, unix):
            p = H.RpcClient(addr)
            err, sub2 = p.wait_response(p.send("subscribe", "rs", 1))
            H.check_eq(err, None, "cleartext subscribe on %s" % addr)
            H.check_eq(p.wait_events(sub2, 3), want, "cleartext events on %s" % addr)
            p.sock.close()
        err, res = c.wait_response(c.send("publish", "rs", "live", "after"))
        H.check_eq(c.wait_events(sub, 4)[3], ("rs", 4, "live", "after"), "a live event over TLS")
        c.sock.close()
        h = srv.health()
        H.check(h["tls"]["handshakes"] >= 1, "RPC handshakes counted: %r" % h["tls"])
    print("test_tls_rpc: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
