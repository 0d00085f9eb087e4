#!/usr/bin/env python3
"""
Fan-out to several collectors, each with its own limits.  The gateway sends
every datagram to four collectors: a fast one (no limit), one where nobody
listens (as when a collector is down: its datagrams leave and are lost on
the way, as on a direct link), one the kernel refuses to send to at all
(the limited broadcast address without SO_BROADCAST: every send fails with
EACCES and nothing leaves the host), and a slow one with a small buffer,
paced with `pps=` after its address.  The fast and the slow collector must
get every datagram, byte for byte, in order and once; neither the down nor
the refused collector holds the others back or fails the batch; only the
paced one is paced.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402
import nfpeers  # noqa: E402

N = 300
PPS = 250


def series(m, name, collector):
    return m.get('flowpost_gateway_%s{collector="%s"}' % (name, collector))


def test_fanout_each_collector_its_limits():
    fp.require_binaries()
    fast = fp.Sink()
    slow = nfpeers.SlowSink()
    down = "127.0.0.1:%d" % fp.free_udp_port()
    refused = "255.255.255.255:9"
    paced = "%s pps=%d" % (slow.address, PPS)
    t = nfpeers.Tunnel([fast.address, down, refused, paced],
                       client_conf={"batch_max_bytes": "256K"})
    sent = [fp.v5_datagram(7 + 30 * i, 20 + i % 11, i) for i in range(N)]
    t.send(sent)
    t.wait_forwarded(N, 60)
    assert fast.wait_count(N, 10), "fast collector got %d of %d" % (
        fast.count(), N)
    diff = fp.compare_sequences(sent, fast.payloads())
    assert diff is None, "fast collector: %s" % diff
    assert slow.settle() == N, "paced collector got %d of %d" % (
        slow.count(), N)
    diff = fp.compare_sequences(sent, slow.payloads())
    assert diff is None, "paced collector: %s" % diff

    m = t.gw.metrics()
    for c in (fast.address, down, slow.address):
        assert series(m, "collector_datagrams_total", c) == N, (c, m)
        assert series(m, "collector_send_errors_total", c) == 0, (c, m)
    assert series(m, "collector_datagrams_total", refused) == 0, m
    assert series(m, "collector_send_errors_total", refused) == N, m
    assert series(m, "collector_pacing_delay_seconds_total",
                  fast.address) == 0
    assert series(m, "collector_pacing_delay_seconds_total", down) == 0
    assert series(m, "collector_pacing_delay_seconds_total",
                  slow.address) > 0
    st = t.cl.wait_stats(lambda s: s.get("acked_datagrams", 0) >= N, 30,
                         "every datagram acknowledged")
    assert st.get("posts_failed", 0) == 0, st
    fp.log("fast and paced collectors got all %d datagrams; the down and "
           "the refused one held nobody back; pacing %.2fs on the paced one "
           "only" % (
               N, series(m, "collector_pacing_delay_seconds_total",
                         slow.address)))
    assert t.cl.stop() == 0 and t.gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_fanout_each_collector_its_limits)
