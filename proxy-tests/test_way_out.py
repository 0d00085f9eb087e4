#!/usr/bin/env python3
"""
Scenarios: the client finds a way out by itself (route = auto).

The kit names the gateway by a host name only the proxy resolves
(proxies.GW_NAME in the proxy's hosts file), so going direct fails with a
DNS error, as at a site whose firewall lets only the proxy out.

1. test_way_out_plain
   proxy:       squid that refuses CONNECT (squid-wayout.conf.in)
   setting:     gateway_url https://GW_NAME:PORT/flowpost (nothing listens
                there), allow_plain_http = yes, plain_http_url
                http://GW_NAME:PORT2/flowpost (the gateway, plain HTTP)
   fault:       configured (CONNECT) refused, direct has no DNS, so only a
                plain POST through the proxy works
   expectation: the client moves configured -> direct -> proxy-plain, says
                so in its log, the stats file shows `route proxy-plain`;
                everything arrives byte-identical, in order, once.  A
                restarted client starts with the remembered way at once.

2. test_way_out_http10
   proxy:       a Python proxy of this test through which only HTTP/1.0
                passes: an HTTP/1.1 request gets 411 and CONNECT gets 501
                (HTML pages, as proxies send)
   setting:     gateway_url http://GW_NAME:PORT/flowpost
   fault:       configured, direct and proxy-connect fail; only the last
                way, proxy-http10, works
   expectation: the client ends on proxy-http10 (log and `route` line),
                every request that got through was HTTP/1.0, and everything
                arrives byte-identical, in order, once.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import Answer, fp  # noqa: E402

HTML = [("Content-Type", "text/html")]


def way_changes(cl):
    """[(from, to)] of the client's "route: way X failed ...; using way Y"
    lines, in order."""
    return re.findall(r"route: way (\S+) failed .*; using way (\S+)",
                      cl.log_text())


def test_way_out_plain():
    squid = proxies.Squid.start(template="squid-wayout.conf.in")
    be = proxies.Backend(("kit-wayout",))
    tls_port = fp.free_port()       # nobody listens: never reached
    conf = {
        "proxy": squid.url(),
        "gateway_url": "https://%s:%d/flowpost" % (proxies.GW_NAME,
                                                   tls_port),
        "allow_plain_http": "yes",
        "plain_http_url": be.named_url("http"),
        "batch_max_bytes": "16K",
    }
    cl = be.client("kit-wayout", conf=conf)
    sent = fp.v5_stream(200, seed=130)
    fp.Replayer(cl).send(sent)
    st = proxies.assert_delivered(be.sink, cl, sent, timeout=50)
    fp.log("client: %s" % fp.fmt_stats(st))

    route = proxies.stats_word(cl, "route")
    assert route == "proxy-plain", "stats file route line: %r" % route
    changes = way_changes(cl)
    fp.log("way changes: %s" % changes)
    assert changes == [("configured", "direct"),
                       ("direct", "proxy-plain")], changes
    assert proxies.log_lines(cl, "way proxy-plain delivers"), \
        cl.log_text()[-3000:]
    assert st.get("route_changes") == 2, st
    entries = squid.entries(ports={tls_port, be.port})
    refused = [e for e in entries if e["method"] == "CONNECT"]
    assert refused and all(e["status"] == 403 for e in refused), entries
    posts = [e for e in entries if e["method"] == "POST"]
    assert posts and all(
        e["status"] == 200 and e["url"] == be.named_url("http") +
        "/v1/batch" for e in posts), posts
    assert len(posts) == st["acked_batches"], (posts, st)
    assert cl.stop() == 0

    # A new client process on the same spool remembers the way.
    cl2 = be.client("kit-wayout", conf=conf, name="kit-wayout-again",
                    spool_dir=cl.spool_dir)
    proxies.wait_running(cl2)
    more = fp.v5_stream(50, start_seq=900000, seed=131)
    fp.Replayer(cl2).send(more)
    proxies.assert_delivered(be.sink, cl2, more, before=sent, timeout=30)
    assert proxies.log_lines(cl2, "using way proxy-plain",
                             "remembered"), cl2.log_text()[-2000:]
    assert way_changes(cl2) == [], way_changes(cl2)
    assert proxies.stats_word(cl2, "route") == "proxy-plain"
    assert cl2.stop() == 0
    assert be.gw.stop() == 0


def http10_only(ex):
    """Refusals of a path that only HTTP/1.0 gets through.  The 411 to
    every HTTP/1.1 request stands for a chain in which an HTTP/1.1 hop
    re-frames the body as chunked and an HTTP/1.0 hop behind it refuses
    that; a request made in HTTP/1.0 keeps its Content-Length all the way.
    (A 505 would be the plainer answer, but the client does not take a
    505 page for a failure of the way.)"""
    if ex.method == "CONNECT":
        return Answer(501, b"<html><body>CONNECT is not supported"
                      b"</body></html>\n", HTML)
    if ex.version != "HTTP/1.0":
        return Answer(411, b"<html><body>Length Required</body></html>\n",
                      HTML)
    return None


def test_way_out_http10():
    be = proxies.Backend(("kit-http10-way",))
    relay = proxies.Relay(lambda ex: "forward",
                          upstream=("127.0.0.1", be.port),
                          precheck=http10_only, http10=True,
                          name="http10-only")
    cl = be.client("kit-http10-way", conf={
        "proxy": relay.url(prefix=""), "gateway_url": be.named_url("http"),
        "batch_max_bytes": "16K"})
    sent = fp.v5_stream(200, seed=140)
    fp.Replayer(cl).send(sent)
    st = proxies.assert_delivered(be.sink, cl, sent, timeout=50)
    fp.log("client: %s" % fp.fmt_stats(st))

    route = proxies.stats_word(cl, "route")
    assert route == "proxy-http10", "stats file route line: %r" % route
    changes = way_changes(cl)
    fp.log("way changes: %s" % changes)
    assert changes == [("configured", "direct"),
                       ("direct", "proxy-connect"),
                       ("proxy-connect", "proxy-http10")], changes
    assert proxies.log_lines(cl, "way proxy-http10 delivers"), \
        cl.log_text()[-3000:]
    xs = relay.records("kit-http10-way")
    passed = [x for x in xs if x.action == "forwarded"]
    assert passed and all(x.version == "HTTP/1.0" and x.status == 200
                          for x in passed), xs
    assert len(passed) == st["acked_batches"], (xs, st)
    # (CONNECT requests carry no X-Flowpost-Client: pick them by target.)
    refused = {x.status for x in relay.records() if x.action == "refused"
               and "%s:%d" % (proxies.GW_NAME, be.port) in x.target}
    assert refused == {411, 501}, xs
    assert cl.stop() == 0


if __name__ == "__main__":
    fp.main(test_way_out_plain, test_way_out_http10)
