"""Runs end without a trace: cancel (with a cgroup, and with only the process
group and the subreaper), a client that goes away (orphan timeout), the
wall-time limit, SIGTERM of the server with runs active, and kill -9 of the
server followed by a restart. After each, no process of the run's tree is
alive (the runner leaves a grandchild that ignores SIGTERM and leaves the
process group), sluiced has no zombie child, and the session's run.exit
says why the run ended."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runs_lib as R  # noqa: E402
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_run_lifecycle")
H.require_tools("curl")


def start_df(srv, session):
    marker = R.unique("MLIFE")
    run = R.start_run(srv, session, "df", [marker])
    # Its grandchildren exist once it said ready.
    R.wait_for(lambda: len(R.tree_pids(marker, run["run"])) >= 3, "the run's tree")
    return marker, run


def cancel_case(args):
    with R.server(args=args) as srv:
        s = R.unique("cancel")
        marker, run = start_df(srv, s)
        r = H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/%s/run" % s, timeout=10)
        H.check_eq(r.status, 202, "DELETE run")
        ex = R.wait_exited(srv, s)
        H.check_eq(ex["reason"], "cancelled", "reason")
        H.check(ex["signal"] in (signal.SIGTERM, signal.SIGKILL), "ended by a signal: %r" % ex)
        R.assert_tree_gone(marker, run["run"], srv.pid, what="after cancel")
        H.check_eq(R.exit_event(R.sse_events(srv, s))["reason"], "cancelled", "run.exit in session")
        h = R.wait_for(lambda: (lambda x: x if x["runs"]["active"] == 0 else None)(srv.health()),
                       "no active run")
        H.check_eq(h["zombies"], 0, "zombies in /health")


@suite.case
def test_run_cancel_cgroup():
    cancel_case([])


@suite.case
def test_run_cancel_process_group_only():
    cancel_case(["--run-cgroup", "off"])


@suite.case
def test_run_session_deleted_under_it():
    """Deleting the session ends its run: nothing more can be recorded."""
    with R.server() as srv:
        s = R.unique("deleted")
        marker = R.unique("MDEL")
        run = R.start_run(srv, s, "lines", [marker, "100000", "0.01"])
        R.wait_for(lambda: R.tree_pids(marker, run["run"]), "the run's process")
        r = H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/%s" % s, timeout=10)
        H.check_eq(r.status, 204, "DELETE session")
        ex = R.wait_exited(srv, s)
        H.check_eq(ex["reason"], "cancelled", "reason")
        R.assert_tree_gone(marker, run["run"], srv.pid, what="after the session was deleted")


@suite.case
def test_run_orphaned_after_disconnect():
    with R.server(args=["--run-orphan-timeout", "1"]) as srv:
        s = R.unique("orphan")
        r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/%s" % s, timeout=10)
        H.check(r.status in (200, 201), "PUT session")
        curl = R.curl_sse(srv, s, h2=True, from_seq=1, timeout=30)
        R.wait_for(lambda: srv.health()["subscribers"] >= 1, "the subscriber counted")
        marker, run = start_df(srv, s)
        time.sleep(1.5)  # subscribed: the orphan clock does not run
        st, state = R.run_state(srv, s)
        H.check_eq(state["state"], "running", "still running while followed")
        curl.kill()  # the client goes away
        curl.wait()
        ex = R.wait_exited(srv, s)
        H.check_eq(ex["reason"], "orphaned", "reason")
        R.assert_tree_gone(marker, run["run"], srv.pid, what="after orphaning")


@suite.case
def test_run_wall_timeout():
    extra = ["--runner", "slow=%s/lines.sh | wall=0.5 orphan-timeout=never" % R.RUNNERS]
    with R.server(args=extra) as srv:
        s = R.unique("wall")
        marker = R.unique("MWALL")
        run = R.start_run(srv, s, "slow", [marker, "1000", "0.05"])
        ex = R.wait_exited(srv, s)
        H.check_eq(ex["reason"], "timeout", "reason")
        H.check(400 <= ex["wall_ms"] < 3000, "wall_ms=%r" % ex["wall_ms"])
        R.assert_tree_gone(marker, run["run"], srv.pid, what="after the timeout")


@suite.case
def test_run_server_sigterm():
    with R.server() as srv:
        runs = [(s,) + start_df(srv, s) for s in (R.unique("term1"), R.unique("term2"))]
        code, took = srv.stop(signal.SIGTERM)
        H.check_eq(code, 0, "sluiced exit code after SIGTERM")
        for s, marker, run in runs:
            R.assert_tree_gone(marker, run["run"], None, what="after SIGTERM")
        # A restart on the same data shows why they ended.
        srv2 = R.server()
        srv2.data_dir = srv.data_dir
        with srv2:
            for s, marker, run in runs:
                evs = R.sse_events(srv2, s)
                H.check_eq(R.exit_event(evs)["reason"], "server_shutdown", "run.exit after SIGTERM")
                H.check_eq(evs[-1][1], "sluice.closed", "the session stayed closed")
            H.check_eq(os.listdir(os.path.join(srv.data_dir, ".runs")), [], "no run records left")


@suite.case
def test_run_server_kill9_restart():
    srv = R.server(expect_clean_exit=False)
    with srv:
        runs = [(s,) + start_df(srv, s) for s in (R.unique("crash1"), R.unique("crash2"))]
        srv.proc.kill()
        srv.proc.wait(10)
        # PDEATHSIG took the direct children; the rest waits for the restart.
        srv2 = R.server()
        srv2.data_dir = srv.data_dir
        with srv2:
            for s, marker, run in runs:
                R.assert_tree_gone(marker, run["run"], srv2.pid, what="after kill -9 and restart")
                ex = R.exit_event(R.sse_events(srv2, s))
                H.check_eq(ex["reason"], "server_crash", "run.exit after the crash")
            R.wait_for(lambda: os.listdir(os.path.join(srv.data_dir, ".runs")) == [],
                       "run records removed")
            h = R.wait_for(lambda: (lambda x: x if x["runs"]["by_reason"]["server_crash"] == 2
                                    else None)(srv2.health()), "crash count in /health")
            H.check_eq(h["zombies"], 0, "zombies")


def written(pid):
    """Bytes pid has written so far (/proc/PID/io wchar)."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def blocked(pid):
    """True when pid wrote nothing for 0.3 s (its pipe is full)."""
    a = written(pid)
    time.sleep(0.3)
    return written(pid) == a


@suite.case
def test_run_backpressure_blocks_the_child():
    """A session that takes no output (fault point run_output_busy) stops
    the pipe being read: the flooding child blocks in write() and sluiced
    buffers nothing; cancel still ends the run and records why."""
    if not H.sanitizer_build():
        print("     (fault points are compiled into Debug builds only)")
        return
    extra = ["--runner", "bigflood=%s/flood.sh | mode=chunk max-output=1g" % R.RUNNERS]
    with R.server(args=extra, env={"SLUICE_FAULTS": "run_output_busy"}) as srv:
        s = R.unique("bp")
        run = R.start_run(srv, s, "bigflood", ["MBP"])
        pid = run["pid"]
        R.wait_for(lambda: blocked(pid), "the flood blocked on its full pipe")
        rss0 = srv.proc_status("VmRSS")
        time.sleep(0.7)
        H.check(blocked(pid) and written(pid) < 1 << 20, "still blocked, %d bytes written"
                % written(pid))
        H.check(srv.proc_status("VmRSS") < rss0 + 4096, "sluiced buffered the flood")
        r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/%s" % s, timeout=10)
        H.check_eq(r.json()["events"], 1, "only run.start is in the session")
        r = H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/%s/run" % s, timeout=10)
        H.check_eq(r.status, 202, "cancel")
        ex = R.wait_exited(srv, s)
        H.check_eq(ex["reason"], "cancelled", "reason")
        evs = R.sse_events(srv, s)
        H.check_eq([e[1] for e in evs], ["run.start", "run.exit", "sluice.closed"],
                   "the held output was dropped after the kill grace, the exit recorded")
        R.assert_tree_gone(None, run["run"], srv.pid, what="after cancel under backpressure")


suite.run()
