#!/usr/bin/env python3
"""
Scenarios: a proxy that forbids CONNECT, and an HTTP/1.0 proxy.

1. test_squid_no_connect
   proxy:       squid with `http_access deny CONNECT`
                (squid-noconnect.conf.in); gateway_url http://
   fault:       no tunnels (a probe CONNECT gets 403)
   expectation: the client posts plainly through squid (no CONNECT);
                everything arrives byte-identical, in order, once.

2. test_http10_proxy
   proxy:       a small HTTP/1.0 forward proxy of this test (proxies.Relay
                with http10): answers with HTTP/1.0 status lines and closes
                the connection after every answer, refuses chunked bodies
                and bodies without Content-Length (411), Expect:
                100-continue (417) and CONNECT (501) (probes check it does)
   fault:       none
   expectation: no request is refused (the client sends Content-Length, no
                chunked body, no Expect); one connection per request;
                everything arrives byte-identical, in order, once.

3. test_http10_forced
   as 2, with `http_version = 1.0` in the client: every request line says
   HTTP/1.0.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import Answer, fp  # noqa: E402


def test_squid_no_connect():
    squid = proxies.Squid.start(template="squid-noconnect.conf.in")
    be = proxies.Backend(("kit-noconnect",))
    probe = proxies.raw_request(squid.port, (
        "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
        % (be.port, be.port)).encode(), timeout=3)
    assert proxies.status_of(probe) == 403, probe[:200]

    cl = be.client("kit-noconnect", conf={"proxy": squid.url(),
                                          "batch_max_bytes": "16K"})
    sent = fp.v5_stream(200, seed=70)
    fp.Replayer(cl).send(sent)
    st = proxies.assert_delivered(be.sink, cl, sent)
    fp.log("client: %s" % fp.fmt_stats(st))
    mine = [e for e in squid.entries() if e["kit"] == "kit-noconnect"]
    assert mine and all(e["method"] == "POST" and e["status"] == 200
                        for e in mine), mine
    assert len(mine) == st["posts"], (mine, st)
    connects = [e for e in squid.entries(ports={be.port})
                if e["method"] == "CONNECT"]
    assert len(connects) == 1 and connects[0]["status"] == 403, connects
    assert cl.stop() == 0


def http10_precheck(ex):
    """What an old HTTP/1.0 proxy refuses, seen on the request head."""
    if ex.method == "CONNECT":
        return Answer(501, b"CONNECT not supported\n")
    if ex.version not in ("HTTP/1.0", "HTTP/1.1"):
        return Answer(505, b"HTTP/1.0 only\n")
    if ex.header("Transfer-Encoding") is not None:
        return Answer(411, b"chunked bodies are not understood here\n")
    if ex.header("Expect") is not None:
        return Answer(417, b"Expect is not understood here\n")
    if ex.method == "POST" and ex.header("Content-Length") is None:
        return Answer(411, b"Content-Length required\n")
    return None


def http10_proxy(be):
    return proxies.Relay(lambda ex: "forward", upstream=("127.0.0.1",
                                                         be.port),
                         precheck=http10_precheck, http10=True,
                         name="http10-proxy")


def probe_http10(relay, be):
    """The relay refuses what an HTTP/1.0 proxy cannot handle, and
    answers in HTTP/1.0."""
    url = "%s/healthz" % be.url
    cases = [
        (b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"1\r\nx\r\n0\r\n\r\n", 411),
        (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
         b"Expect: 100-continue\r\n\r\n", 417),
        (b"POST %s HTTP/1.0\r\nHost: x\r\n\r\n", 411),
        (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ]
    for raw, want in cases:
        if b"%s" in raw:
            raw = raw.replace(b"%s", url.encode())
        got = proxies.raw_request(relay.port, raw, timeout=5)
        assert got.startswith(b"HTTP/1.0 %d " % want), (raw, got[:200])
    assert len(relay.records()) >= len(cases), relay.records()


def run_http10(cid, conf):
    be = proxies.Backend((cid,))
    relay = http10_proxy(be)
    probe_http10(relay, be)
    cl = be.client(cid, conf=dict(conf, proxy=relay.url(prefix=""),
                                  batch_max_bytes="16K"))
    sent = fp.v5_stream(200, seed=71)
    fp.Replayer(cl).send(sent)
    st = proxies.assert_delivered(be.sink, cl, sent)
    fp.log("client: %s" % fp.fmt_stats(st))
    assert st["posts_failed"] == 0, st
    xs = relay.records(cid)
    assert len(xs) == st["posts"], (xs, st)
    want = "%s/v1/batch" % be.url
    assert all(x.method == "POST" and x.target == want and
               x.action == "forwarded" and x.status == 200 for x in xs), xs
    # HTTP/1.0 without keep-alive: one connection per request.
    assert len({x.conn for x in xs}) == len(xs), xs
    assert cl.stop() == 0
    return xs


def test_http10_proxy():
    xs = run_http10("kit-http10", {})
    fp.log("request lines: %s" % sorted({x.version for x in xs}))


def test_http10_forced():
    xs = run_http10("kit-http10-forced", {"http_version": "1.0"})
    assert all(x.version == "HTTP/1.0" for x in xs), \
        [x for x in xs if x.version != "HTTP/1.0"]


if __name__ == "__main__":
    fp.main(test_squid_no_connect, test_http10_proxy, test_http10_forced)
