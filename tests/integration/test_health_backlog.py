#!/usr/bin/env python3
"""
A kit's backlog as the gateway sees it.

The client starts with no gateway at its URL, so the path is stalled: every
batch stays in its spool, and a small spool_max_bytes with drop-oldest
makes it drop batches (counted in spool_dropped_batches and
spool_dropped_datagrams).  Then the gateway comes up on that address.
Every batch carries the health block sealed into it, so the gateway's
flowpost_gateway_kit_spool_batches first shows the depth the kit reported
(not zero), then, once the backlog drained and the kit sent a heartbeat,
zero.  The drop counters the gateway shows are the kit's own, the
forwarding lag of the old batches is visible, and the gateway logs that
the kit was behind and dropped datagrams (warn_lag, warn_drops).  A gap in
the exporter's sequence numbers, loss before the kit, shows up too.

Every datagram is the same size and zlib_level is 0, as in
test_sf_spool_limits.py, so that the spool holds a known number of
batches.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

CID = "kit-backlog"
BATCH = 4 << 10
SPOOL_MAX = 144 << 10       # the smallest spool 4K batches allow
CONF = {
    "batch_max_age": "1s",
    "batch_max_bytes": "4K",
    "zlib_level": 0,
    "spool_max_bytes": SPOOL_MAX,
    "spool_full": "drop-oldest",
    "retry_initial": "1s",
    "retry_factor": 2,
    "retry_max": "2s",
    "connect_timeout": "2s",
    "request_timeout": "5s",
    "heartbeat": "2s",
    "log_level": "debug",
}


def kit(m, family):
    return m.get('flowpost_gateway_kit_%s{client="%s"}' % (family, CID))


def test_backlog_reported_then_drained():
    fp.require_binaries()
    d = fp.tmpdir()
    keys = os.path.join(d, "keys")
    keyf = os.path.join(d, "client.key")
    fp.genkey(CID, keys, keyf)
    port = fp.free_port()       # nothing listens here for now
    cl = fp.Client("http://127.0.0.1:%d/flowpost" % port, keyf, CID,
                   conf=CONF, ipv6=False)

    # 200 datagrams of 1464 bytes: two per 4K batch, 100 batches, far
    # more than the spool holds.  One datagram of the exporter's sequence
    # is left out: a gap of 30 flows before the kit.
    sent = [fp.v5_datagram(1000 + 30 * i, 30, i) for i in range(201)
            if i != 5]
    rep = fp.Replayer(cl)
    fp.send_sealed_steps(rep, cl, sent, BATCH)
    before = cl.wait_stats(
        lambda s: s["datagrams_sealed"] == len(sent) and
        s["spool_dropped_batches"] > 0 and s["posts_failed"] >= 1, 20,
        "every datagram sealed, and drops")
    assert before["acked_batches"] == 0, before
    assert before["heartbeats"] == 0, before    # a backlog: no heartbeats
    depth = before["spool_batches"]
    assert depth >= 10, before

    # The path comes back.
    sink = fp.Sink()
    gw = fp.Gateway(keys, [sink.address], port=port,
                    conf={"warn_lag": "1s", "warn_drops": 1})

    seen = []

    def drained_and_reported():
        m = gw.metrics()
        v = kit(m, "spool_batches")
        if v is not None and (not seen or seen[-1] != v):
            seen.append(v)
        return v == 0 and any(x > 0 for x in seen)
    fp.wait_for(drained_and_reported, 40, interval=0.05,
                what="the reported spool depth to fall to 0 (seen %s)"
                % seen)
    assert seen[0] > 0, seen
    assert max(seen) <= depth, (seen, depth)

    # The report of 0 came from a heartbeat sealed after the drain.
    final = cl.wait_stats(lambda s: s["spool_batches"] == 0 and
                          s["heartbeats"] >= 1 and
                          s["acked_batches"] + s["spool_dropped_batches"] ==
                          s["batches_sealed"], 20, "an empty spool")
    assert final["spool_dropped_batches"] == \
        before["spool_dropped_batches"], (before, final)

    # The kit's drop counters, as it reported them, are its own.
    m = gw.metrics()
    assert kit(m, "spool_dropped_batches_total") == \
        final["spool_dropped_batches"], (m, final)
    assert kit(m, "spool_dropped_datagrams_total") == \
        final["spool_dropped_datagrams"], (m, final)
    assert kit(m, "dropped_invalid_total") == final["dropped_invalid"]
    assert final["upstream_gaps"] == 1, final
    assert final["upstream_lost_records"] == 30, final
    assert kit(m, "upstream_gaps_total") == 1, m
    assert kit(m, "upstream_lost_records_total") == 30, m
    assert kit(m, "spool_bytes") == 0 and \
        kit(m, "spool_oldest_age_seconds") == 0, m
    assert kit(m, "retries_since_success") == 0, m
    assert kit(m, "heartbeats_total") >= 1, m
    assert kit(m, "last_heard_seconds") < 10, m
    # The kept batches were datagrams_sealed - dropped datagrams.
    kept = final["datagrams_sealed"] - final["spool_dropped_datagrams"]
    assert sink.wait_count(kept, 20), (sink.count(), kept)
    fp.assert_no_more(sink, kept)

    st, body = fp.http_get("127.0.0.1", gw.metrics_port,
                           gw.prefix + "/status")
    assert st == 200, st
    h = json.loads(body)["clients"][0]["health"]
    assert h["spool_batches"] == 0, h
    assert h["spool_dropped_batches"] == final["spool_dropped_batches"], h

    # The gateway said so in its log, once per kind (rate-limited).
    log = gw.log_text()
    behind = [l for l in log.splitlines()
              if "kits: client %s is behind" % CID in l]
    dropped = [l for l in log.splitlines()
               if "kits: client %s dropped" % CID in l]
    assert len(behind) == 1, behind
    assert len(dropped) == 1, dropped


if __name__ == "__main__":
    fp.main(test_backlog_reported_then_drained)
