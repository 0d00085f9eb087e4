#!/usr/bin/env python3
"""
The client's optional metrics endpoint (metrics_listen) and
`flowpost-client status`.

- /metrics serves every counter and gauge of the stats file, under the
  names docs/OPERATIONS.md gives, with the same values; after a delivery
  the figures match what was sent;
- /healthz answers ok, other paths 404, other methods 405;
- while the gateway is unreachable the failure counters, the back-off and
  the spool gauges move, and `status` says BACKLOG; after a delivery it
  says OK with `spool 0 batches`;
- `status` judges OK, BACKLOG, FAILING and STOPPED from the stats file
  (driven with hand-written stats files) and still shows counters it does
  not know;
- a bad metrics_listen is refused by --check-config (exit 2), and a port
  already in use stops the client at start (exit 1).
"""

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

PREFIX = "flowpost_client_"
NOT_METRICS = ("pid", "time_unix")


def metric_name(stat, mtype):
    """The series name for a stats file entry: counters get _total, gauges
    spell their unit out (OPERATIONS.md, "Client metrics")."""
    if mtype == "counter":
        return PREFIX + stat + "_total"
    if stat.endswith("_unix"):
        return PREFIX + stat[:-len("_unix")] + "_timestamp_seconds"
    if stat.endswith("_s"):
        return PREFIX + stat[:-len("_s")] + "_seconds"
    return PREFIX + stat


def fetch(port, path="/metrics", method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), \
            r.read()
    finally:
        c.close()


def scrape(port):
    """({series: value}, {name: type}) from /metrics."""
    st, hdrs, body = fetch(port)
    assert st == 200, (st, body[:200])
    assert hdrs.get("content-type", "").startswith("text/plain; "
                                                   "version=0.0.4"), hdrs
    text = body.decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
    assert set(types) == helps, "every series needs HELP and TYPE"
    return fp.parse_prometheus(text), types


def stats_types(types):
    """{stats name: metric name} for every series of ours."""
    out = {}
    for m, t in types.items():
        if not m.startswith(PREFIX) or m.endswith("info"):
            continue        # labels only: version, way out
        base = m[len(PREFIX):]
        if t == "counter":
            assert base.endswith("_total"), m
            out[base[:-len("_total")]] = m
        elif base.endswith("_timestamp_seconds"):
            out[base[:-len("_timestamp_seconds")] + "_unix"] = m
        elif base.endswith("_seconds"):
            out[base[:-len("_seconds")] + "_s"] = m
        else:
            out[base] = m
    return out


def status(client, *extra):
    r = fp.run([fp.client_bin(), "-c", client.conf_path] + list(extra) +
               ["status"], timeout=15)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def test_metrics_match_stats_file():
    port = fp.free_port()
    st = fp.Stack(client_conf={"metrics_listen": "127.0.0.1:%d" % port,
                               "stats_interval": "0"},
                  gateway_conf={"stats_interval": "1s"})
    cl = st.cl
    fp.wait_for(lambda: "metrics: serving http://127.0.0.1:%d/metrics"
                % port in cl.log_text(), 10, what="metrics start line")

    sent = list(fp.v5_stream(300))
    rep = fp.Replayer(cl)
    rep.send(sent)
    st.wait_delivered(sent, 30)
    t0 = time.time()

    # The stats file is rewritten once a second, /metrics is live: once
    # nothing moves, the two agree on every figure.
    def agree():
        stats = cl.stats()
        metrics, types = scrape(port)
        names = stats_types(types)
        missing = [s for s in stats if s not in NOT_METRICS and
                   s not in names]
        assert not missing, "stats without a metric: %s" % missing
        extra = [s for s in names if s not in stats]
        assert not extra, "metrics without a stats entry: %s" % extra
        for s, m in names.items():
            assert metric_name(s, types[m]) == m, (s, m)
        diff = {s: (stats[s], metrics[m]) for s, m in names.items()
                if stats[s] != metrics[m]}
        return (metrics, types) if not diff else None
    got = fp.wait_for(agree, 10)
    assert got, "stats file and /metrics never agreed"
    metrics, types = got

    m = lambda n: metrics[PREFIX + n]  # noqa: E731
    assert m("received_datagrams_total") == len(sent)
    assert m("received_bytes_total") == sum(len(p) for p in sent)
    assert m("acked_datagrams_total") == len(sent)
    assert m("datagrams_sealed_total") == len(sent)
    assert m("acked_batches_total") == m("batches_sealed_total") >= 1
    assert m("posts_failed_total") == 0 and m("retries_total") == 0
    assert m("spool_batches") == 0 and m("spool_bytes") == 0
    assert m("spool_oldest_age_seconds") == 0
    assert m("backoff_seconds") == 0
    assert abs(m("last_success_timestamp_seconds") - t0) < 30
    assert types[PREFIX + "spool_batches"] == "gauge"
    assert types[PREFIX + "posts_total"] == "counter"
    version = fp.run([fp.client_bin(), "--version"]).stdout.split()[-1]
    assert metrics.get(PREFIX + 'info{version="%s"}' % version) == 1, \
        [k for k in metrics if "info" in k]
    assert abs(metrics["process_start_time_seconds"] - t0) < 120
    assert [k for k in metrics if k.startswith(PREFIX + 'route_info{way="')
            and metrics[k] == 1], "no route_info series"

    # The gateway's periodic summary line catches up with the delivery.
    fp.wait_for(lambda: re.search(
        r"info: stats \(periodic\): batches %d datagrams %d " % (
            m("acked_batches_total"), len(sent)), st.gw.log_text()), 10,
        what="gateway periodic stats line")

    # The other paths of the endpoint.
    code, _, body = fetch(port, "/healthz")
    assert (code, body) == (200, b"ok\n"), (code, body)
    code, _, _ = fetch(port, "/nope")
    assert code == 404, code
    code, hdrs, _ = fetch(port, "/metrics", "POST")
    assert code == 405 and "GET" in hdrs.get("allow", ""), (code, hdrs)

    out = status(cl)
    first = out.splitlines()[0]
    assert first.startswith("flowpost-client OK: "), out
    assert "spool 0 batches" in out, out
    assert "delivered %d batches (%d datagrams" % (
        m("acked_batches_total"), len(sent)) in out, out

    # SIGHUP with a new address keeps the old one and says so.
    with open(cl.conf_path, "a") as f:
        f.write("metrics_listen = 127.0.0.1:%d\n" % fp.free_port())
    cl.signal(signal.SIGHUP)
    fp.wait_for(lambda: "metrics_listen changed; it takes effect after a "
                "restart" in cl.log_text(), 10, what="reload warning")
    assert fetch(port, "/healthz")[0] == 200
    assert cl.stop() == 0


def test_failing_gateway_moves_the_gauges():
    """No gateway at all: POSTs fail, the client backs off and keeps every
    batch; metrics and status show it."""
    fp.require_binaries()
    d = fp.tmpdir()
    keys, key = os.path.join(d, "keys"), os.path.join(d, "client.key")
    fp.genkey("kit-down", keys, key)
    port = fp.free_port()
    # A port bound but not listening refuses connections, and no other
    # test can take it meanwhile.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d/flowpost" % hole.getsockname()[1]
    cl = fp.Client(dead, key, "kit-down", ipv6=False, conf={
        "metrics_listen": "127.0.0.1:%d" % port, "stats_interval": "1s",
        "retry_initial": "1s", "retry_max": "2s", "connect_timeout": "2s",
        "request_timeout": "3s"})
    t0 = time.monotonic()
    sent = list(fp.v5_stream(50))
    fp.Replayer(cl).send(sent)

    def failing():
        metrics, _ = scrape(port)
        return (metrics[PREFIX + "posts_failed_total"] >= 2 and
                metrics[PREFIX + "retries_total"] >= 2 and
                metrics[PREFIX + "spool_batches"] >= 1 and
                metrics[PREFIX + "backoff_seconds"] > 0) and metrics
    metrics = fp.wait_for(failing, 30, what="failed POSTs in /metrics")
    assert metrics[PREFIX + "acked_batches_total"] == 0
    assert metrics[PREFIX + "last_success_timestamp_seconds"] == 0
    assert metrics[PREFIX + "spool_bytes"] > 0
    assert metrics[PREFIX + "received_datagrams_total"] == len(sent)

    # Logs: the periodic summary keeps coming; the same failure over and
    # over is logged once per 30 s, not once per attempt.
    fp.wait_for(lambda: len(re.findall(r"info: stats: received %d datagrams"
                                       % len(sent), cl.log_text())) >= 2,
                10, what="two periodic stats lines")
    fails = fp.wait_for(lambda: (lambda n: n if n >= 3 else 0)(
        scrape(port)[0][PREFIX + "posts_failed_total"]), 20,
        what="three failed POSTs")
    lines = re.findall(r"warn: sender: batch \d+ not delivered \(no HTTP "
                       r"answer: ", cl.log_text())
    allowed = 1 + int((time.monotonic() - t0) // 30)
    assert 1 <= len(lines) <= allowed, (len(lines), fails, cl.log_text())

    # Backing off with batches waiting: BACKLOG (FAILING needs a whole
    # retry cycle plus a minute without delivery, judged below).
    out = fp.wait_for(lambda: (lambda o: o if o.startswith(
        "flowpost-client BACKLOG: ") else None)(status(cl)), 20,
        what="status BACKLOG")
    assert "last delivery none since the start" in out, out
    assert re.search(r"^  spool [1-9]\d* batches, ", out, re.M), out
    assert re.search(r"failed, [1-9]\d* retries", out), out
    assert cl.stop() == 0
    hole.close()


STATS_BASE = {
    "received_datagrams": 100, "received_bytes": 9000, "dropped_invalid": 1,
    "malformed": 2, "dropped_malformed": 0, "dropped_truncated": 0,
    "dropped_backpressure": 0, "batches_sealed": 20, "datagrams_sealed": 99,
    "spool_dropped_batches": 0, "spool_dropped_datagrams": 0,
    "spool_write_errors": 0, "quarantined": 0, "posts": 30,
    "posts_failed": 12, "acked_batches": 8, "acked_datagrams": 40,
    "acked_dup": 1, "bad_ack": 0, "retries": 12, "spool_batches": 0,
    "spool_bytes": 0, "spool_oldest_age_s": 0, "backoff_s": 0,
    "last_success_unix": 0,
}


def judge(spool, pid=None, conf_args=(), **values):
    """Writes a stats file into `spool` and returns `status` output."""
    now = int(time.time())
    v = dict(STATS_BASE)
    v.update(values)
    lines = ["pid %d" % (pid if pid is not None else os.getpid()),
             "time_unix %d" % now]
    lines += ["%s %d" % (k, x) for k, x in v.items()]
    with open(os.path.join(spool, "client.stats"), "w") as f:
        f.write("\n".join(lines) + "\n")
    r = fp.run([fp.client_bin(), "--spool-dir", spool, "--retry-max", "60s",
                "--connect-timeout", "10s", "--request-timeout", "30s"] +
               list(conf_args) + ["status"], timeout=15)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def test_status_states():
    fp.require_binaries("client")
    spool = fp.tmpdir()
    now = int(time.time())
    # window = retry_max 60 + connect 10 + request 30 + 60 = 160 s
    # Ages are printed as of the moment `status` runs: "\d+s" below, so a
    # slow machine cannot make the test fail.
    out = judge(spool, last_success_unix=now - 5)
    assert re.match(r"flowpost-client OK: 0 batches waiting; last delivery "
                    r"\d+s ago\n", out), out
    assert "  spool 0 batches, 0 B (0% of spool_max_bytes 1.0 GiB), " \
        "oldest -\n" in out, out

    out = judge(spool, spool_batches=11, spool_bytes=3 << 20,
                spool_oldest_age_s=30, last_success_unix=now - 2)
    assert re.match(r"flowpost-client BACKLOG: 11 batches waiting, oldest "
                    r"30s; last delivery \d+s ago\n", out), out
    assert "spool 11 batches, 3.0 MiB" in out, out

    out = judge(spool, spool_batches=2, spool_oldest_age_s=20, backoff_s=7,
                last_success_unix=now - 40)
    assert out.startswith("flowpost-client BACKLOG: ") and \
        "backing off after a failed POST" in out, out
    assert "current back-off 7s" in out, out

    out = judge(spool, spool_batches=3, spool_oldest_age_s=3 * 3600,
                backoff_s=60, last_success_unix=now - 3 * 3600)
    assert out.startswith("flowpost-client FAILING: 3 batches waiting, "
                          "oldest 3h 0m; last delivery 3h 0m ago"), out

    out = judge(spool, spool_batches=3, spool_oldest_age_s=200)
    assert out.startswith("flowpost-client FAILING: ") and \
        "last delivery none since the start" in out, out

    # An idle kit that delivered long ago is fine.
    out = judge(spool, last_success_unix=now - 5 * 86400)
    assert out.startswith("flowpost-client OK: 0 batches waiting; last "
                          "delivery 5d 0h ago"), out

    # A dead pid: STOPPED, whatever the figures.
    p = subprocess.Popen(["true"])
    p.wait()
    out = judge(spool, pid=p.pid, spool_batches=4)
    assert out.startswith("flowpost-client STOPPED: pid %d is not running; "
                          "4 batches left in the spool" % p.pid), out

    # Counters added to the stats file later are still shown.
    out = judge(spool, upstream_gaps=17, upstream_exporters=2,
                some_future_counter=17, another_one=0)
    assert "  upstream 2 exporters: 17 gaps, " in out, out
    assert "  other some_future_counter 17\n" in out, out

    # No stats file: exit 1 and a hint.
    r = fp.run([fp.client_bin(), "--spool-dir", fp.tmpdir(), "status"])
    assert r.returncode == 1 and "client.stats" in r.stderr, r


def test_bad_metrics_listen():
    fp.require_binaries("client")
    d = fp.tmpdir()
    key = os.path.join(d, "client.key")
    with open(key, "w") as f:
        f.write("ab" * 32 + "\n")
    base = [fp.client_bin(), "--gateway-url", "http://127.0.0.1:1/x",
            "--client-id", "kit-1", "--key-file", key, "--spool-dir",
            os.path.join(d, "spool"), "--listen",
            "127.0.0.1:%d" % fp.free_udp_port()]
    r = fp.run(base + ["--metrics-listen", "nowhere", "--check-config"])
    assert r.returncode == 2 and "metrics_listen" in r.stderr, r

    # A port that is taken: the client refuses to start.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        r = fp.run(base + ["--metrics-listen",
                           "127.0.0.1:%d" % s.getsockname()[1]], timeout=20)
    finally:
        s.close()
    assert r.returncode == 1, r
    assert "metrics: cannot listen on 127.0.0.1:" in r.stderr, r.stderr


if __name__ == "__main__":
    fp.main(test_metrics_match_stats_file,
            test_failing_gateway_moves_the_gauges,
            test_status_states,
            test_bad_metrics_listen)
