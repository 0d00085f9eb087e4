#!/usr/bin/env python3
"""
Scenario: a middlebox that changes request bodies, as some mobile
operators' "optimising" proxies do when they recompress content.

proxy:       a relay of this test between client and gateway
             (proxies.Relay); gateway_url points at it
fault:       every third request has one byte of its sealed body flipped
             (same length, so the HTTP framing stays valid)
expectation: the gateway refuses each changed batch with 401 and forwards
             nothing of it: its auth_failures and 401 counters equal the
             number of changed requests; the client counts each as a failed
             POST, keeps the batch and sends it again; in the end every
             datagram arrives byte-identical, in order, once.  Every request
             carries Cache-Control: no-transform (the client asks
             middleboxes not to do this) and no Content-Encoding.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import fp  # noqa: E402


def flip(body):
    """The body with one byte of the ciphertext changed (the 40th byte
    from the end: inside the sealed body, before the 16-byte tag)."""
    i = len(body) - 40
    return body[:i] + bytes([body[i] ^ 0x20]) + body[i + 1:]


def test_body_rewrite():
    be = proxies.Backend(("kit-rewrite",), conf={
        # Every changed batch is answered 401, none 429, whatever the pace.
        "rate_limit_auth_failures": 0})
    changed = []

    def policy(ex):
        if ex.index % 3 == 0 and ex.seq is not None:
            changed.append(ex.index)
            return ("forward", flip(ex.body))
        return "forward"
    relay = proxies.Relay(policy, upstream=("127.0.0.1", be.port),
                          name="rewriter")
    cl = be.client("kit-rewrite", conf={"gateway_url": relay.url(),
                                        "batch_max_bytes": "8K"})
    sent = fp.v5_stream(150, seed=90)
    fp.Replayer(cl).send(sent)
    st = proxies.assert_delivered(be.sink, cl, sent)
    fp.log("client: %s" % fp.fmt_stats(st))

    xs = relay.records("kit-rewrite")
    bad = [x for x in xs if x.action == "body changed"]
    assert len(bad) == len(changed) and len(bad) >= 3, xs
    assert all(x.upstream_status == 401 and x.status == 401 for x in bad), \
        [x for x in bad if x.status != 401]
    assert all(x.upstream_status == 200 for x in xs if x not in bad), xs
    # Each changed batch was sent again, unchanged, and accepted.
    for x in bad:
        again = [y for y in xs if y.seq == x.seq and y.index > x.index]
        assert again and again[0].status == 200, (x, again)
    assert st["posts_failed"] == len(bad), (st, len(bad))
    assert st["posts"] == len(xs), (st, len(xs))
    assert st["acked_dup"] == 0, st

    assert be.counter("flowpost_gateway_auth_failures_total") == len(bad)
    m = be.gw.metrics()
    assert m.get('flowpost_gateway_http_responses_total{code="401"}') == \
        len(bad), m
    assert m.get('flowpost_gateway_rejected_batches_total{reason="auth"}') \
        == len(bad), m
    assert be.counter("flowpost_gateway_datagrams_total") == len(sent)
    assert be.counter("flowpost_gateway_duplicates_total") == 0

    lines = proxies.log_lines(cl, "HTTP 401")
    assert lines, cl.log_text()[-2000:]
    fp.log("client: %s" % lines[0].split(": ", 1)[-1])
    for x in xs:
        assert x.header("Cache-Control") == "no-transform", x.headers
        assert x.header("Content-Encoding") is None, x.headers
        assert x.header("Content-Type") == \
            "application/vnd.flowpost.batch", x.headers
    assert cl.stop() == 0
    assert be.gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_body_rewrite)
