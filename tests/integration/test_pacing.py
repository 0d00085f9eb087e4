#!/usr/bin/env python3
"""
Pacing (gateway/pacer.h).  A backlog of full-size NetFlow v5 datagrams goes
through client -> gateway to a collector with a small receive buffer that
reads about 1000 datagrams a second.  The client puts the whole backlog
(about 570 KiB) into one batch, which the gateway sends at once:

- unpaced, a batch overflows the collector's buffer and datagrams are lost
  (asserted: loss > 0);
- with collector_max_pps well under the collector's reading rate, nothing
  is lost, the gateway reports the time its senders waited, and the client
  gets its acknowledgement only after the batch was paced out (the request
  ends later after the last datagram was sent than the client's
  batch_max_age, when the batch is sealed at the latest, could explain).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402
import nfpeers  # noqa: E402

N = 400
PPS = 200
CLIENT = {"batch_max_bytes": "1M", "batch_max_age": "1s"}


def backlog():
    """N different v5 datagrams of 29 or 30 records (1416/1464 bytes)."""
    return [fp.v5_datagram(1000 + 30 * i, 29 + i % 2, i) for i in range(N)]


def _run(label, gateway_conf, collector=None):
    fp.require_binaries()
    sink = nfpeers.SlowSink()
    t = nfpeers.Tunnel([collector(sink) if collector else sink.address],
                       gateway_conf=gateway_conf, client_conf=CLIENT)
    sent = backlog()
    errs = fp.udp_rcvbuf_errors()
    t.send(sent)
    start = time.monotonic()
    # The gateway counts a batch as forwarded once the output returned,
    # just before it answers.
    t.wait_forwarded(N, 60)
    took = time.monotonic() - start
    t.cl.wait_stats(lambda s: s.get("acked_datagrams", 0) >= N, 30,
                    "every datagram acknowledged")
    got = sink.settle()
    after = fp.udp_rcvbuf_errors()
    m = t.gw.metrics()
    paced = fp.metric_sum(m, "flowpost_gateway_collector_pacing_delay_"
                             "seconds_total") or 0
    fp.log("%s: collector got %d of %d (rcvbuf %d bytes), kernel "
           "RcvbufErrors +%s, pacing delay %.2fs, forwarded %.2fs after "
           "the last datagram was sent"
           % (label, got, N, sink.rcvbuf,
              "?" if errs is None or after is None else after - errs, paced,
              took))
    # Whatever arrived came once and in order.
    missing = fp.assert_in_order_once(sent, sink.payloads())
    assert len(missing) == N - got
    assert t.cl.stop() == 0 and t.gw.stop() == 0
    return got, paced, took


def test_unpaced_loses():
    got, paced, _ = _run("unpaced", {})
    assert got < N, "the slow collector lost nothing without pacing; the " \
        "burst did not overflow its %d-datagram buffer" % N
    assert paced == 0


def test_paced_loses_nothing():
    got, paced, took = _run("collector_max_pps %d" % PPS,
                            {"collector_max_pps": PPS})
    assert got == N, "lost %d of %d datagrams at %d/s" % (N - got, N, PPS)
    # The senders waited, and the request was answered only once the
    # batch was out: sealing takes at most batch_max_age (1 s), the paced
    # sending almost 2 s more.
    floor = (N - PPS // 100 - 1) / PPS
    assert paced > 0.5 * floor, paced
    assert took >= floor, "forwarded %.2fs after the send, pacing needs " \
        "%.2fs" % (took, floor)


def test_paced_per_collector_option():
    got, paced, _ = _run("pps=%d" % PPS, {},
                         lambda s: "%s pps=%d" % (s.address, PPS))
    assert got == N, "lost %d of %d datagrams with pps=%d" % (N - got, N,
                                                             PPS)
    assert paced > 0


if __name__ == "__main__":
    fp.main(test_unpaced_loses, test_paced_loses_nothing,
            test_paced_per_collector_option)
