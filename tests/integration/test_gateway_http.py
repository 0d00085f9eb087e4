#!/usr/bin/env python3
"""
The gateway's HTTP surface against hostile or confused peers: every refusal
has the status of docs/PROTOCOL.md 2.3 and 3, a one-line text/plain reason,
limits are enforced before the body is read, and the gateway keeps running
and forwards nothing.
"""

import http.client
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

MAX_BODY = 64 * 1024
BATCH_PATH = "/flowpost/v1/batch"
CTYPE = "application/vnd.flowpost.batch"


def request(gw, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        h = {"Content-Type": CTYPE} if body is not None else {}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def assert_error(what, got, status):
    st, hdrs, body = got
    assert st == status, "%s: status %s, want %s (body %r)" % (
        what, st, status, body[:200])
    ctype = hdrs.get("content-type", "")
    assert ctype.split(";")[0].strip() == "text/plain", \
        "%s: Content-Type %r" % (what, ctype)
    text = body.decode("utf-8", "replace")
    assert text.endswith("\n") and text.count("\n") == 1 and \
        text.strip(), "%s: body is not one line: %r" % (what, text)
    fp.log("%-34s %d %s" % (what, st, text.strip()))


def start():
    fp.require_binaries("gateway")
    d = fp.tmpdir()
    keys = os.path.join(d, "keys")
    fp.genkey("kit-1", keys, os.path.join(d, "client.key"))
    sink = fp.Sink()
    gw = fp.Gateway(keys, [sink.address],
                    conf={"max_body_bytes": "64K", "max_raw_bytes": "256K"})
    return gw, sink


def test_http_errors():
    gw, sink = start()

    st, hdrs, body = request(gw, "GET", "/flowpost/healthz")
    assert st == 200, (st, body)
    fp.log("GET /flowpost/healthz               200 %r" % body.strip())

    batch = fp.fake_batch("kit-1")
    assert_error("POST to a wrong path",
                 request(gw, "POST", "/flowpost/v1/nothing", batch), 404)
    assert_error("POST outside path_prefix",
                 request(gw, "POST", "/v1/batch", batch), 404)
    assert_error("GET on the batch endpoint",
                 request(gw, "GET", BATCH_PATH), 405)

    req = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
           "Connection: close\r\n\r\n" % (BATCH_PATH, CTYPE)).encode()
    assert_error("POST without Content-Length",
                 fp.raw_http("127.0.0.1", gw.port, req), 411)

    # Only the headers go out: the answer must come without the body.
    req = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
           "Content-Length: %d\r\nConnection: close\r\n\r\n"
           % (BATCH_PATH, CTYPE, MAX_BODY + 1)).encode()
    assert_error("Content-Length over max_body_bytes",
                 fp.raw_http("127.0.0.1", gw.port, req,
                             body_after=b"x" * 1024), 413)

    assert_error("garbage body",
                 request(gw, "POST", BATCH_PATH, b"hello, gateway\n" * 20),
                 400)
    assert_error("truncated header",
                 request(gw, "POST", BATCH_PATH, batch[:40]), 400)
    assert_error("trailing bytes after the batch",
                 request(gw, "POST", BATCH_PATH, batch + b"\0"), 400)
    assert_error("unknown client id",
                 request(gw, "POST", BATCH_PATH, fp.fake_batch("kit-nobody")),
                 403)
    assert_error("known client, tag does not verify",
                 request(gw, "POST", BATCH_PATH, batch), 401)

    # Still up, and nothing of the above was forwarded.
    assert gw.alive(), "gateway exited: %s" % gw.returncode()
    st, _, _ = request(gw, "GET", "/flowpost/healthz")
    assert st == 200, st
    assert not sink.wait_count(1, 0.5), "collector got %d datagrams" \
        % sink.count()
    m = gw.metrics()
    for name, want in (("flowpost_gateway_datagrams_total", 0),
                       ("flowpost_gateway_batches_total", 0),
                       ("flowpost_gateway_unknown_clients_total", 1),
                       ("flowpost_gateway_auth_failures_total", 1)):
        v = fp.metric_sum(m, name)
        if v is not None:
            assert v == want, "%s = %s, want %s" % (name, v, want)
    assert gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_http_errors)
