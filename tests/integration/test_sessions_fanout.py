"""Sessions: one session, 100 subscribers over five kinds of client, 10,000
events; every subscriber receives every event in order, byte-exact, with no
gap and no duplicate. Then DELETE ends every stream cleanly (clients exit
on their own), and resuming with Last-Event-ID starts exactly after K.

Clients: curl --http2-prior-knowledge -N, curl HTTP/1.1 -N, nghttp, raw
HTTP/2 (python3-h2, many streams on one connection) and httpx (HTTP/1.1).
"""

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

EVENTS = 10000
SESSION = "fan.out-1"


def parse_sse(raw):
    """WHATWG SSE parsing: returns [(id, event, data, comments)]."""
    events, ident, etype, data, comments = [], None, None, [], []
    text = raw.decode("utf-8")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line in lines:
        if line == "":
            if data or etype:
                events.append((ident, etype or "message", "\n".join(data), comments))
            ident, etype, data, comments = None, None, [], []
            continue
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "id":
            ident = value
        elif field == "event":
            etype = value
        elif field == "data":
            data.append(value)
    return events


def expected_event(seq):
    """(type, data) of event seq: mostly tokens; some multi-line, some CRLF,
    some binary (delivered base64)."""
    if seq % 997 == 0:
        return ("blob", bytes([0xff, 0xfe, seq % 256, 0, 0x80]))
    if seq % 101 == 0:
        return ("multi", ("line one %d\r\nline two\rline three\nend" % seq).encode())
    return ("tok", ("token-%d \u00e9\u20ac" % seq).encode())


def check_stream(name, raw, first=1, last=EVENTS):
    evs = [e for e in parse_sse(raw) if e[1] != "sluice.gap"]
    H.check(len(evs) == last - first + 1,
            "%s: got %d events, want %d" % (name, len(evs), last - first + 1))
    for i, (ident, etype, data, comments) in enumerate(evs):
        seq = first + i
        H.check_eq(ident, str(seq), "%s: id of event %d" % (name, i))
        want_type, want_data = expected_event(seq)
        H.check_eq(etype, want_type, "%s: type of %d" % (name, seq))
        if "sluice-encoding: base64" in comments:
            got = base64.b64decode(data)
        else:
            got = data.encode("utf-8")
            want_data = want_data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        H.check_eq(got, want_data, "%s: data of %d" % (name, seq))


def publish_all(srv):
    """Publishes EVENTS events over one keep-alive HTTP/1.1 connection, as
    NDJSON batches for text and single POSTs for binary."""
    sock = H.connect(srv.host, srv.port, timeout=30)
    reader = H.Http1Reader(sock)
    seq = 1
    while seq <= EVENTS:
        t, d = expected_event(seq)
        if t == "blob":
            req = H.build_http1("POST", "/v1/sessions/%s/events?type=blob" % SESSION, body=d)
            sock.sendall(req)
            r = reader.read_response()
            H.check_eq(r.status, 200, "binary publish")
            H.check_eq(r.json()["seq"], seq, "binary publish seq")
            seq += 1
            continue
        lines, first = [], seq
        while seq <= EVENTS and len(lines) < 50 and expected_event(seq)[0] != "blob":
            t, d = expected_event(seq)
            lines.append(json.dumps({"type": t, "data": d.decode("utf-8")}))
            seq += 1
        body = ("\n".join(lines) + "\n").encode()
        sock.sendall(H.build_http1("POST", "/v1/sessions/%s/events" % SESSION,
                                   headers=[("Content-Type", "application/x-ndjson")], body=body))
        r = reader.read_response()
        H.check_eq(r.status, 200, "batch publish")
        H.check_eq(r.json(), {"first_seq": first, "last_seq": seq - 1}, "batch seqs")
    sock.close()


def h2_subscriber(srv, nstreams, out, errors):
    """Raw HTTP/2 client: nstreams SSE streams on one connection; reads
    until every stream ended (END_STREAM)."""
    try:
        import h2.connection
        import h2.config
        import h2.events
        import h2.settings
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        sock = socket.create_connection((srv.host, srv.port), timeout=60)
        sids = []
        for _ in range(nstreams):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                    (":authority", srv.authority()),
                                    (":path", "/v1/sessions/%s/events" % SESSION)], end_stream=True)
            sids.append(sid)
            out[sid] = bytearray()
        sock.sendall(conn.data_to_send())
        open_streams = set(sids)
        while open_streams:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed with streams open")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    out[ev.stream_id] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    open_streams.discard(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    raise RuntimeError("stream %d reset" % ev.stream_id)
            sock.sendall(conn.data_to_send())
        sock.close()
    except Exception as e:  # reported by the main thread
        errors.append("h2 subscriber: %r" % e)


def httpx_subscriber(srv, idx, out, errors):
    try:
        import httpx
        with httpx.Client(timeout=httpx.Timeout(60.0)) as client:
            with client.stream("GET", srv.url("/v1/sessions/%s/events" % SESSION)) as r:
                if r.status_code != 200:
                    raise RuntimeError("status %d" % r.status_code)
                buf = bytearray()
                for chunk in r.iter_raw():
                    buf += chunk
                out[idx] = buf
    except Exception as e:
        errors.append("httpx subscriber %d: %r" % (idx, e))


def wait_subscribers(srv, n, errors, timeout=30):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline and not errors:
        r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + SESSION)
        got = r.json().get("subscribers") if r.status == 200 else r.status
        if got == n:
            return
        time.sleep(0.05)
    raise H.TestFailure("subscribers did not reach %d (last: %r; errors: %s)" % (n, got, errors))


def test_fanout_100_subscribers(srv):
    H.require_tools("curl", "nghttp")
    r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/" + SESSION)
    H.check_eq(r.status, 201, "PUT creates")
    url = srv.url("/v1/sessions/%s/events" % SESSION)
    procs = []
    tmp = srv.tmp
    for i in range(30):
        procs.append(("curl-h2-%d" % i, subprocess.Popen(
            ["curl", "-sS", "-N", "--http2-prior-knowledge", "-o", "%s/c2-%d" % (tmp, i), url])))
    for i in range(20):
        procs.append(("curl-h1-%d" % i, subprocess.Popen(
            ["curl", "-sS", "-N", "--http1.1", "-o", "%s/c1-%d" % (tmp, i), url])))
    for i in range(10):
        procs.append(("nghttp-%d" % i, subprocess.Popen(
            ["nghttp", url], stdout=open("%s/ng-%d" % (tmp, i), "wb"))))
    h2_out, hx_out, errors = {}, {}, []
    threads = [threading.Thread(target=h2_subscriber, args=(srv, 20, h2_out, errors))]
    threads += [threading.Thread(target=httpx_subscriber, args=(srv, i, hx_out, errors))
                for i in range(20)]
    for t in threads:
        t.start()
    wait_subscribers(srv, 100, errors)
    publish_all(srv)
    # Every subscriber has every event once delivered counts reach 100x.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if srv.health()["events"]["delivered"] >= 100 * EVENTS:
            break
        time.sleep(0.1)
    H.check(srv.health()["events"]["delivered"] >= 100 * EVENTS, "not all deliveries happened")
    # DELETE ends every stream cleanly: the clients exit by themselves.
    r = H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/" + SESSION)
    H.check_eq(r.status, 204, "DELETE")
    for name, p in procs:
        try:
            code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise H.TestFailure("%s did not end after DELETE" % name)
        H.check_eq(code, 0, "%s exit code (stream must end cleanly)" % name)
    for t in threads:
        t.join(timeout=60)
        H.check(not t.is_alive(), "a python subscriber did not finish")
    H.check(not errors, "; ".join(errors))
    for i in range(30):
        check_stream("curl-h2-%d" % i, open("%s/c2-%d" % (tmp, i), "rb").read())
    for i in range(20):
        check_stream("curl-h1-%d" % i, open("%s/c1-%d" % (tmp, i), "rb").read())
    for i in range(10):
        check_stream("nghttp-%d" % i, open("%s/ng-%d" % (tmp, i), "rb").read())
    H.check_eq(len(h2_out), 20, "h2 streams")
    for sid, raw in h2_out.items():
        check_stream("h2-stream-%d" % sid, bytes(raw))
    H.check_eq(len(hx_out), 20, "httpx subscribers")
    for i, raw in hx_out.items():
        check_stream("httpx-%d" % i, bytes(raw))
    r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + SESSION)
    H.check_eq(r.status, 404, "deleted session is gone")


def test_resume_last_event_id(srv):
    sid = "resume-1"
    for i in range(1, 201):
        t, d = expected_event(i)
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events?type=%s" % (sid, t),
                            body=d)
        H.check_eq(r.status, 200, "publish")
    for k in (0, 1, 57, 199):
        out = subprocess.run(["curl", "-sS", "-N", "--max-time", "1", "-H", "Last-Event-ID: %d" % k,
                              srv.url("/v1/sessions/%s/events" % sid)], capture_output=True, timeout=10)
        check_stream("resume after %d" % k, out.stdout, first=k + 1, last=200)
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "1",
                          srv.url("/v1/sessions/%s/events?from=150" % sid)], capture_output=True, timeout=10)
    check_stream("from=150", out.stdout, first=150, last=200)
    # Last-Event-ID wins over ?from=.
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "1", "-H", "Last-Event-ID: 190",
                          srv.url("/v1/sessions/%s/events?from=2" % sid)], capture_output=True, timeout=10)
    check_stream("Last-Event-ID over from", out.stdout, first=191, last=200)


def main():
    H.require_tools("curl", "nghttp")
    return H.run_cases_each_server("test_sessions_fanout",
                                   (test_fanout_100_subscribers, test_resume_last_event_id),
                                   ["--workers", "2"])


if __name__ == "__main__":
    sys.exit(main())
