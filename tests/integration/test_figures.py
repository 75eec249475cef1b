"""/health and /metrics come from one table of figures (actors/monitor.c):
every number /health reports has its Prometheus twin in /metrics, with the
same value in the same snapshot, and /metrics is valid exposition text
(checked line by line here, and read by prometheus_client's parser as a
scraper would). The table itself is read from the real binary at
/debug/figures.

Deliberate exceptions (the only /health numbers without a twin of their
own): ARRAYS below. Strings are not figures (there are none today)."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_figures")

# /health members that are arrays: one object per reactor. Their figures
# appear in /metrics as the per-reactor families below (lag and
# io_uring_enter), the rest only in /health.
ARRAYS = {"reactors": ("sluice_reactor_loop_lag_seconds", "sluice_reactor_io_uring_enter_total")}

NAME_RE = re.compile(r"^sluice_[a-z][a-z0-9_]*$")
SAMPLE_RE = re.compile(r'^([a-z_][a-z0-9_]*)(\{([a-z_]+="[^"\\]*"(,[a-z_]+="[^"\\]*")*)\})? (\S+)$')


def get(srv, path):
    r = H.http1_request(srv.host, srv.port, "GET", path)
    H.check_eq(r.status, 200, "GET %s status" % path)
    return r


def leaves(obj, prefix=""):
    """(path, value) of every non-object member, arrays as one leaf."""
    for k, v in obj.items():
        p = prefix + "." + k if prefix else k
        if isinstance(v, dict):
            yield from leaves(v, p)
        else:
            yield p, v


def parse_exposition(text):
    """Checks the Prometheus text format and returns ({(name, labels):
    value}, {family: type}). Fails on anything a scraper would refuse or
    that breaks the naming rules."""
    samples, types, helps = {}, {}, set()
    for n, line in enumerate(text.splitlines(), 1):
        where = "/metrics line %d %r" % (n, line)
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            H.check(NAME_RE.match(name), "%s: family name" % where)
            H.check(name not in helps, "%s: a second HELP" % where)
            H.check(help_.strip() != "", "%s: empty HELP" % where)
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            H.check(name in helps, "%s: TYPE before HELP" % where)
            H.check(name not in types, "%s: a second TYPE" % where)
            H.check(typ in ("counter", "gauge"), "%s: type %r" % (where, typ))
            H.check(name.endswith("_total") == (typ == "counter"),
                    "%s: a counter's name (and only a counter's) ends in _total" % where)
            types[name] = typ
            continue
        H.check(not line.startswith("#") and line.strip() != "", "%s: stray line" % where)
        m = SAMPLE_RE.match(line)
        H.check(m is not None, "%s: not a sample" % where)
        name, labels, value = m.group(1), m.group(3) or "", m.group(5)
        H.check(name in types, "%s: sample before its HELP/TYPE" % where)
        H.check((name, labels) not in samples, "%s: duplicate sample" % where)
        samples[(name, labels)] = float(value)  # raises on a bad number
    H.check(helps == set(types), "families with HELP but no TYPE: %s" % (helps - set(types)))
    return samples, types


def scrape(text, samples, types):
    """The Prometheus project's own parser (prometheus_client) reads the
    text as a scraper would, and finds what parse_exposition found."""
    from prometheus_client.parser import text_string_to_metric_families
    seen = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join('%s="%s"' % kv for kv in s.labels.items())
            seen[(s.name, labels)] = (fam.type, s.value)
    H.check_eq(set(seen), set(samples), "samples prometheus_client read")
    for (name, labels), (typ, value) in seen.items():
        H.check_eq(typ, types[name], "%s type as scraped" % name)
        H.check_eq(value, samples[(name, labels)], "%s{%s} as scraped" % (name, labels))


def health_in_metric_units(path, v):
    """A /health value as /metrics writes it: bools 1/0, milliseconds and
    seconds as seconds."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    key = path.rsplit(".", 1)[-1]
    if re.search(r"_ms(_|$)", key):
        return v / 1000.0
    return float(v)


def fetch_all(srv):
    cat = json.loads(get(srv, "/debug/figures").body)["figures"]
    health = json.loads(get(srv, "/health").body)
    text = get(srv, "/metrics").body.decode()
    samples, types = parse_exposition(text)
    scrape(text, samples, types)
    return cat, health, samples, types


@suite.case
def test_every_health_figure_has_its_metric_twin():
    # A long monitor interval: /health and /metrics below come from one
    # snapshot, so every snapshot figure must agree to the digit.
    with H.Server(args=["--rpc-listen", "127.0.0.1:0", "--monitor-interval", "60"]) as srv:
        cat, health, samples, types = fetch_all(srv)
        by_path = {}
        for f in cat:
            H.check(f["health"] not in by_path, "/debug/figures lists %s twice" % f["health"])
            by_path[f["health"]] = f
        checked = 0
        for path, v in leaves(health):
            if isinstance(v, list):
                H.check(path in ARRAYS and by_path.get(path, {}).get("array"),
                        "/health %s is an array outside the documented exceptions" % path)
                for fam in ARRAYS[path]:
                    H.check(fam in types, "/metrics lacks %s (from /health %s)" % (fam, path))
                continue
            H.check(isinstance(v, (bool, int, float)),
                    "/health %s=%r is not a number (strings are not figures)" % (path, v))
            f = by_path.get(path)
            H.check(f is not None, "/health %s has no row in the table of figures" % path)
            key = (f["metric"], f.get("labels", ""))
            H.check(key in samples, "/health %s: its twin %s{%s} is not in /metrics" % ((path,) + key))
            H.check_eq(types[f["metric"]], f["type"], "%s type" % f["metric"])
            if not f["live"]:  # the live head is read per request
                want = health_in_metric_units(path, v)
                H.check(abs(samples[key] - want) <= 1e-6 + 1e-9 * abs(want),
                        "/health %s=%r but /metrics %s{%s}=%r" % ((path, v) + key + (samples[key],)))
            checked += 1
        # The table's rows all reach /health: nothing is /metrics-only.
        paths = set(p for p, _ in leaves(health))
        for f in cat:
            H.check(f["health"] in paths, "table row %s is missing from /health" % f["health"])
        # Every /metrics family comes from the table or a documented array.
        known = set(f["metric"] for f in cat if not f.get("array"))
        known.update(fam for fams in ARRAYS.values() for fam in fams)
        H.check(not (set(types) - known), "/metrics families outside the table: %s"
                % sorted(set(types) - known))
        H.check(checked >= 100, "only %d figures checked" % checked)
        # The figures that had drifted apart, and the lifecycle counters.
        for name in ("sluice_events_caught_up_total", "sluice_storage_fsyncs_total",
                     "sluice_storage_bytes_written_total", "sluice_storage_open_files",
                     "sluice_sessions_expired_total", "sluice_sessions_closed_total",
                     "sluice_producer_duplicates_total", "sluice_producer_fenced_total"):
            H.check(name in types, "/metrics lacks %s" % name)


@suite.case
def test_metric_names_kept():
    """Dashboards rely on these names: the table only adds."""
    old = """uptime_seconds rss_bytes open_fds fd_limit connections streams busy
        connections_accepted_total connections_rejected_total http_requests_total
        protocol_errors_total rpc_connections rpc_requests_total tls_handshakes_total
        tls_resumed_total tls_handshake_failures_total tls_reloads_total rpc_subscriptions
        rpc_protocol_errors_total bytes_in_total bytes_out_total sends_total fanout_held_total
        sessions_live subscribers events_published_total events_delivered_total
        events_gapped_total publish_refused_total storage_damaged_segments
        storage_quarantined_bytes storage_damage_resyncs_total storage_gaps_served_total
        watchdog_enabled watchdog_tracked watchdog_paused watchdog_stalled
        watchdog_tick_seconds_max watchdog_reaped_total connections_closed_ping_timeout_total
        connections_closed_idle_total connections_closed_header_timeout_total h2_abuse_total
        memory_limit_bytes memory_used_bytes memory_held_bytes budget_refused_total
        connections_closed_body_timeout_total connections_rejected_per_ip_total
        auth_refused_total reactor_loop_lag_seconds reactor_io_uring_enter_total
        scheduler_lag_seconds scheduler_messages_total mailbox_depth_max
        mailbox_refused_total""".split()
    with H.Server() as srv:
        _, types = parse_exposition(get(srv, "/metrics").body.decode())
        missing = [n for n in old if "sluice_" + n not in types]
        H.check(not missing, "metric names gone: %s" % missing)


@suite.case
def test_figures_move_together():
    """Publishes, a producer's duplicate and fencing, and a close show the
    same counts at both ends once a snapshot has them."""
    with H.Server(args=["--monitor-interval", "0.05"]) as srv:
        def post(path, headers=(), body=b""):
            return H.http1_request(srv.host, srv.port, "POST", path, headers=headers, body=body)

        def producer(epoch, seq):
            return [("Producer-Id", "p1"), ("Producer-Epoch", str(epoch)),
                    ("Producer-Seq", str(seq))]

        for i in range(3):
            H.check_eq(post("/v1/sessions/figs/events?type=t", body=b"x%d" % i).status, 200,
                       "publish %d" % i)
        H.check_eq(post("/v1/sessions/figs/events?type=t", producer(1, 0), b"p").status, 200,
                   "producer publish")
        r = post("/v1/sessions/figs/events?type=t", producer(1, 0), b"p")
        H.check(r.status == 200 and r.json().get("duplicate") is True, "duplicate: %r" % r)
        H.check_eq(post("/v1/sessions/figs/events?type=t", producer(0, 0), b"p").status, 403,
                   "stale epoch")
        H.check_eq(post("/v1/sessions/figs/close").status, 200, "close")
        want = {("events", "published"): ("sluice_events_published_total", 4),
                ("producers", "duplicates"): ("sluice_producer_duplicates_total", 1),
                ("producers", "fenced"): ("sluice_producer_fenced_total", 1),
                ("sessions", "closed"): ("sluice_sessions_closed_total", 1),
                ("sessions", "total"): ("sluice_sessions", 1)}
        deadline = time.time() + 10 * H.slow_factor()
        while True:
            h = json.loads(get(srv, "/health").body)
            samples, _ = parse_exposition(get(srv, "/metrics").body.decode())
            got = {k: (h[k[0]][k[1]], samples[(m, "")]) for k, (m, _) in want.items()}
            if all(got[k] == (n, float(n)) for k, (_, n) in want.items()):
                break
            H.check(time.time() < deadline, "after 10 s /health, /metrics: %r, want %r"
                    % (got, want))
            time.sleep(0.05)


suite.run()
