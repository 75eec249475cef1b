"""msgpack-RPC with Node's @msgpack/msgpack (npm) over net.Socket.

tests/integration/node/rpc_client.mjs publishes (str and bin), publishes a
batch, subscribes from seq 1, waits for every event plus one live event,
provokes two errors, unsubscribes and reads stats, and prints JSON; this
test asserts every value exactly, over TCP and the unix socket, then reads
the same session back with a python3-msgpack subscriber to check that what
Node encoded as str or bin is stored and delivered as such.

Skips (77) when node or the npm modules are missing, except under CI=true
where that is a failure (tools/install-deps.sh test installs them).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
SCRIPT = os.path.join(NODE_DIR, "rpc_client.mjs")

# What rpc_client.mjs publishes, in seq order: (type, kind, bytes).
PUBLISHED = [
    ("message", "str", "h\u00e9llo \u2713".encode()),
    ("bin", "bin", bytes([0, 255, 13, 10, 0x80])),
    ("a", "str", b"x\r\ny"),
    ("b", "bin", bytes([1, 2, 3])),
    ("live", "str", b"tail\x00"),
]


def run_node(addr, session):
    p = H.run(["node", SCRIPT, addr, session], timeout=30 * H.slow_factor(), cwd=NODE_DIR)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    H.check_eq(p.returncode, 0, "node client exit code (stderr: %s)" % err[-2000:])
    lines = [l for l in out.splitlines() if l.startswith("{")]
    H.check(len(lines) == 1, "one JSON line from the node client: %r" % out[-2000:])
    return json.loads(lines[0])


def check_node_output(got, session):
    H.check_eq(got["publish"], [1, 2], "publish seqs")
    H.check_eq(got["batch"], [3, 4], "publish_batch result")
    sub = got["sub_id"]
    H.check(isinstance(sub, int) and sub >= 0, "subscription id %r" % sub)
    H.check_eq(got["first_after_subscribe"]["kind"], "response", "subscribe response precedes its events")
    H.check_eq(got["live_seq"], 5, "live publish seq")
    want = [{"sub": sub, "session": session, "seq": i + 1, "type": t, "kind": k, "data_hex": d.hex()}
            for i, (t, k, d) in enumerate(PUBLISHED)]
    H.check_eq(got["events"], want, "events seen by the node subscriber")
    H.check_eq(got["notifications"], 5, "no other notifications")
    H.check(isinstance(got["error"], list) and len(got["error"]) == 2, "error shape %r" % got["error"])
    H.check_eq(got["error"][0], "invalid_session_id", "error code")
    H.check_eq(got["unknown"][0], "unknown_method", "unknown method")
    H.check_eq(got["unsubscribe"], True, "unsubscribe")
    H.check_eq(got["stats"], {"id": session, "events": 5, "bytes": sum(len(d) for _, _, d in PUBLISHED),
                              "last_seq": 5, "subscribers": 0}, "stats")


def check_python_view(addr, session):
    with H.RpcClient(addr) as c:
        sub = c.ok("subscribe", session, 1)
        got = c.wait_events(sub, len(PUBLISHED))
        want = [(session, i + 1, t, d.decode() if k == "str" else d) for i, (t, k, d) in enumerate(PUBLISHED)]
        H.check_eq(got, want, "python3-msgpack subscriber reads what node published")


def node_case(srv, index, session):
    addr = srv.rpc_addrs()[index]
    got = run_node(addr, session)
    check_node_output(got, session)
    check_python_view(srv.rpc_addrs()[1 - index], session)


def test_node_tcp(srv):
    node_case(srv, 0, "node.tcp")


def test_node_unix(srv):
    node_case(srv, 1, "node.unix")


def main():
    H.require_rpc()
    H.require_node_modules(NODE_DIR, "@msgpack/msgpack")
    return H.run_cases_each_server("test_rpc_node", [test_node_tcp, test_node_unix], factory=H.rpc_server)


if __name__ == "__main__":
    sys.exit(main())
