"""A port another server already serves is an error, with several reactors.

Each reactor listens on its own SO_REUSEPORT socket, and SO_REUSEPORT lets
any process of the same user join a served port: a second sluiced (maybe on
the same data dir) would silently take half of the first one's connections.
With --reactors 2 on both, a second server on the first one's HTTP port or
RPC port must exit 1 saying it cannot listen, and the first keeps serving.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402


def second_server(listen, rpc=None):
    """Runs a second sluiced; returns (exit code, stderr)."""
    tmp = tempfile.mkdtemp(prefix="sluice-excl-")
    cmd = [H.sluiced_path(), "--reactors", "2", "--listen", listen,
           "--data-dir", os.path.join(tmp, "data"), "--ready-file", os.path.join(tmp, "ready")]
    if rpc:
        cmd += ["--rpc-listen", rpc]
    env = H.default_sanitizer_env(dict(os.environ))
    env = {k: v for k, v in env.items() if not k.startswith("SLUICE_") or k in H.PASS_ENV}
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=20,
                           env=env, cwd=tmp)
        code = p.returncode
        if os.path.exists(os.path.join(tmp, "ready")):
            code = -999  # it served
        return code, p.stderr.decode(errors="replace")
    finally:
        H.shutil.rmtree(tmp, ignore_errors=True)


def main():
    suite = H.Suite("test_listen_exclusive")

    @suite.case
    def test_second_server_on_a_served_port_fails():
        with H.rpc_server(args=["--reactors", "2"], unix=False) as srv:
            rpc = srv.rpc_addrs()[0]
            code, err = second_server("%s:%d" % (srv.host, srv.port))
            H.check_eq(code, 1, "second server on the HTTP port: exit code")
            H.check("cannot listen" in err, "no 'cannot listen' in: %s" % err[-2000:])
            code, err = second_server("127.0.0.1:0", rpc)
            H.check_eq(code, 1, "second server on the RPC port: exit code")
            H.check("cannot listen" in err, "no 'cannot listen' in: %s" % err[-2000:])
            H.check_eq(srv.health()["connections"], 1, "the first server still serves")
            srv.assert_healthy("second servers")

    suite.run()


if __name__ == "__main__":
    main()
