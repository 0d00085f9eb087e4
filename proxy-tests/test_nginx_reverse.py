#!/usr/bin/env python3
"""
Scenario: nginx as a reverse proxy in front of the gateway, terminating
TLS, under a path prefix, with a body limit smaller than a batch.

proxy:       nginx running docs/nginx-flowpost.conf (the shipped example)
             with the test's port, a certificate of a test CA, the
             gateway's port, and client_max_body_size 8k; the gateway
             listens in plain HTTP on loopback with path_prefix /flowpost
             and per_ip_connection_limit = 0; the kit posts to
             https://localhost:PORT/flowpost with ca_file
fault:       batches of up to 32 KiB (stored, zlib_level 0) are over
             nginx's limit: nginx answers 413 before the gateway sees them
expectation: the client adapts (splits batches, lowers its batch size) and
             every datagram arrives byte-identical, in order, once; nginx
             logged the 413s and then only 200s; the gateway itself never
             answered 413 and forwarded nothing twice.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import fp  # noqa: E402

LIMIT = "8k"


def start_nginx(ca, gateway_port):
    with open(os.path.join(proxies.SRC, "docs", "nginx-flowpost.conf")) as f:
        source = f.read()
    for attempt in range(3):
        port = fp.free_port()
        ng = proxies.Nginx(source, [
            ("listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % port),
            ("listen [::]:443 ssl;", ""),
            ("server_name flows.example.org;", "server_name localhost;"),
            ("/etc/ssl/flowpost/fullchain.pem", ca.cert),
            ("/etc/ssl/flowpost/privkey.pem", ca.key),
            ("server 127.0.0.1:8750;", "server 127.0.0.1:%d;"
             % gateway_port),
            ("client_max_body_size 16m;", "client_max_body_size %s;"
             % LIMIT),
            ("/var/log/nginx/flowpost.access.log combined;",
             "{DIR}/logs/access.log flowpost;"),
        ], port)
        try:
            ng.ready()
            return ng
        except AssertionError:
            if ng.alive() or attempt == 2:
                raise


def test_nginx_reverse():
    ca = proxies.TestCA()
    be = proxies.Backend(("kit-nginx",), conf={
        "per_ip_connection_limit": 0, "max_body_bytes": "16M"})
    ng = start_nginx(ca, be.port)
    st_get = proxies.https_get(ng.port, "/flowpost/healthz", ca.ca)
    assert st_get == 200, st_get
    # Another path of the same host is not the gateway's.
    assert proxies.https_get(ng.port, "/other/healthz", ca.ca) == 404

    cl = be.client("kit-nginx", conf={
        "gateway_url": "https://localhost:%d/flowpost" % ng.port,
        "ca_file": ca.ca, "batch_max_bytes": "32K", "zlib_level": 0,
        "log_level": "debug"})
    sent = fp.v5_stream(300, seed=120)
    fp.Replayer(cl).send(sent)
    st = proxies.assert_delivered(be.sink, cl, sent, timeout=50,
                                  same_batches=False)
    fp.log("client: %s" % fp.fmt_stats(st))
    # It adapted: split refused batches and lowered its own batch size
    # below what nginx takes.
    assert st.get("splits", 0) >= 1, st
    assert st.get("batch_size_reduced", 0) >= 1, st
    assert 0 < st.get("batch_max_bytes", 0) <= 8192, st

    log = ng.access("kit-nginx")
    posts = [e for e in log if e[0] == "POST"]
    assert all(e[1] == "/flowpost/v1/batch" for e in posts), posts
    too_big = [e for e in posts if e[2] == 413]
    ok = [e for e in posts if e[2] == 200]
    assert too_big, "nginx never answered 413: %s" % log
    assert len(ok) == st["acked_batches"], (len(ok), st)
    assert len(posts) == len(ok) + len(too_big), posts
    fp.log("nginx: %d POSTs refused with 413, %d passed" % (len(too_big),
                                                           len(ok)))
    lines = proxies.log_lines(cl, "413")
    assert lines, cl.log_text()[-3000:]
    fp.log("client: %s" % lines[0].split(": ", 1)[-1])
    m = be.gw.metrics()
    assert not m.get('flowpost_gateway_http_responses_total{code="413"}'), m
    assert be.counter("flowpost_gateway_duplicates_total") == 0
    assert be.counter("flowpost_gateway_datagrams_total") == len(sent)
    assert cl.stop() == 0
    assert be.gw.stop() == 0
    assert ng.stop() == 0


if __name__ == "__main__":
    fp.main(test_nginx_reverse)
