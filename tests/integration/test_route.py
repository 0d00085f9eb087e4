#!/usr/bin/env python3
"""
Finding a way out.  The client is told to use a proxy that does not exist
(connection refused) while the gateway is reachable directly: after two
failures of the configured way it takes the direct way, delivers
everything, and remembers the way in spool_dir/route.state.  Restarted, it
starts with the remembered way and never touches the dead proxy again.
Answers of the gateway itself (401 for a wrong key) never change the way,
and a pinned way (route = direct) is used from the start.

The stats file names the way in use on a line "route <name>"; the log says
"route: using way <name>" whenever it changes.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

CLIENT_CONF = {
    "batch_max_age": "1s",
    "retry_initial": "1s",
    "retry_factor": 1,
    "retry_max": "1s",
    "connect_timeout": "2s",
    "request_timeout": "5s",
}


def route_line(cl):
    """The way named on the stats file's "route" line, or None."""
    try:
        with open(cl.stats_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] == "route":
                    return parts[1]
    except FileNotFoundError:
        pass
    return None


def log_lines(cl, pid=None):
    """The client's log lines, of one process if `pid` is given."""
    lines = cl.log_text().splitlines()
    if pid is None:
        return lines
    tag = "[%d]:" % pid
    return [l for l in lines if tag in l]


def dead_proxy():
    """A proxy URL on a loopback port nobody listens on."""
    return "http://127.0.0.1:%d" % fp.free_port()


def test_dead_proxy_falls_back_to_direct():
    st = fp.Stack(client_id="kit-route", ipv6=False, start_client=False)
    proxy = dead_proxy()
    conf = dict(CLIENT_CONF, proxy=proxy)
    st.client_conf = conf
    cl = st.start_client()
    first = fp.v5_stream(100, seed=31)
    rep = fp.Replayer(cl)
    rep.send(first)
    st.wait_delivered(first, 40)
    s1 = cl.wait_stats(lambda s: s["route_index"] == 1, 10, "way direct")
    assert route_line(cl) == "direct", route_line(cl)
    assert s1["route_changes"] == 1, s1
    lines = log_lines(cl, cl.pid)
    changes = [l for l in lines if "route: way configured failed 2 times "
               "in a row" in l]
    assert len(changes) == 1, changes
    assert changes[0].rstrip().endswith("using way direct"), changes
    assert any("route: way direct delivers; remembered" in l
               for l in lines), lines[-20:]
    with open(os.path.join(cl.spool_dir, "route.state")) as f:
        state = f.read()
    assert re.search(r"^direct proxy=%s," % re.escape(proxy), state,
                     re.M), state

    # Restarted on the same network: the remembered way from the start.
    assert cl.stop() == 0
    cl = fp.respawn(cl)
    st.cl = cl
    lines = log_lines(cl, cl.pid)
    assert any("route: using way direct (remembered for this network"
               in l for l in lines), lines
    assert route_line(cl) == "direct", route_line(cl)
    second = fp.v5_stream(100, start_seq=500000, seed=32)
    rep = fp.Replayer(cl)
    rep.send(second)
    sent = first + second
    ok = st.sink.wait_count(len(sent), 40)
    s2 = cl.wait_stats(lambda s: s["acked_datagrams"] == len(second), 20,
                       "the second part acknowledged")
    assert ok, (st.sink.count(), fp.fmt_stats(s2))
    fp.assert_no_more(st.sink, len(sent))
    diff = fp.compare_sequences(sent, st.sink.payloads())
    assert diff is None, diff
    # not a single attempt through the dead proxy after the restart
    assert s2["posts_failed"] == 0, s2
    assert s2["route_changes"] == 0, s2
    assert not any("failed 2 times" in l for l in log_lines(cl, cl.pid))


def test_gateway_refusal_keeps_way():
    # no_proxy sends the configured way straight to the gateway, which
    # refuses the wrong key (401): the way works, so it stays.
    st = fp.Stack(client_id="kit-refused", ipv6=False, start_client=False)
    wrong = os.path.join(st.dir, "wrong.key")
    with open(wrong, "w") as f:
        f.write("%064x\n" % 12345)
    os.chmod(wrong, 0o600)
    old = os.environ.get("no_proxy")
    os.environ["no_proxy"] = "127.0.0.1"
    try:
        cl = fp.Client(st.gw.url, wrong, st.client_id, ipv6=False,
                       conf=dict(CLIENT_CONF, proxy=dead_proxy()))
    finally:
        if old is None:
            del os.environ["no_proxy"]
        else:
            os.environ["no_proxy"] = old
    fp.Replayer(cl).send(fp.v5_stream(20, seed=33))
    s = cl.wait_stats(lambda s: s["posts_failed"] >= 4, 30,
                      "four refused POSTs")
    assert s["acked_batches"] == 0, s
    assert s["route_changes"] == 0, s
    assert s["route_index"] == 0, s
    assert route_line(cl) == "configured", route_line(cl)
    assert "HTTP 401" in cl.log_text()
    assert not any("failed 2 times" in l for l in log_lines(cl))


def test_pinned_direct():
    st = fp.Stack(client_id="kit-pinned", ipv6=False, start_client=False)
    st.client_conf = dict(CLIENT_CONF, proxy=dead_proxy(), route="direct")
    cl = st.start_client()
    sent = fp.v5_stream(50, seed=34)
    fp.Replayer(cl).send(sent)
    s = st.wait_delivered(sent, 30)
    assert s["posts_failed"] == 0, s
    assert route_line(cl) == "direct"
    assert any("route: using way direct (route = direct)" in l
               for l in log_lines(cl)), log_lines(cl)


if __name__ == "__main__":
    fp.main(test_dead_proxy_falls_back_to_direct,
            test_gateway_refusal_keeps_way, test_pinned_direct)
