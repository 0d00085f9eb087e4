#!/usr/bin/env python3
"""
Heartbeats keep an idle field kit visible at the gateway.

With heartbeat = 1s and no NetFlow at all, the client seals a heartbeat (a
batch with no datagrams, only the health block) about every second or
two; each is spooled, posted and acknowledged like any batch.  The gateway
counts them per client (flowpost_gateway_kit_heartbeats_total), its
flowpost_gateway_kit_last_heard_seconds stays small, and its status page
(<prefix>/status on metrics_listen only) shows the kit's report, with a
clock offset near 0 (both run on this machine).  Nothing reaches the
collector.  Once the client is stopped, last_heard grows.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

CID = "kit-hb"


def kit(gw, family):
    """flowpost_gateway_kit_<family>{client="kit-hb"}, or None."""
    return gw.metrics().get('flowpost_gateway_kit_%s{client="%s"}'
                            % (family, CID))


def status(gw):
    st, body = fp.http_get("127.0.0.1", gw.metrics_port,
                           gw.prefix + "/status")
    assert st == 200, (st, body[:200])
    return json.loads(body.decode("utf-8"))


def test_idle_kit_stays_visible():
    stack = fp.Stack(client_id=CID, client_conf={"heartbeat": "1s"})
    gw, cl = stack.gw, stack.cl

    fp.wait_for(lambda: (kit(gw, "heartbeats_total") or 0) >= 2, 20,
                what="two heartbeats counted at the gateway")

    # Over a few seconds of idling, the gateway keeps hearing the kit.
    first = kit(gw, "heartbeats_total")
    heard = []

    def sample():
        heard.append(kit(gw, "last_heard_seconds"))
        return len(heard) >= 40     # 40 samples, 0.1 s apart: 4 s
    fp.wait_for(sample, 10, interval=0.1)
    assert None not in heard, heard
    assert max(heard) < 3.5, "last_heard reached %.3fs: %s" % (
        max(heard), heard)
    assert kit(gw, "heartbeats_total") >= first + 2, \
        (first, kit(gw, "heartbeats_total"))

    # The client's side of it: heartbeats sealed, each delivered.
    st = cl.wait_stats(lambda s: s["heartbeats"] >= first + 2 and
                       s["acked_batches"] == s["batches_sealed"], 10,
                       "heartbeats acknowledged")
    assert st["received_datagrams"] == 0 and st["datagrams_sealed"] == 0, st
    assert stack.sink.count() == 0, "a heartbeat put datagrams on the wire"

    # The report itself, on the status page and in the metrics.
    doc = status(gw)
    ids = [c["id"] for c in doc["clients"]]
    assert ids == [CID], doc
    c = doc["clients"][0]
    h = c["health"]
    assert h is not None, c
    assert h["version"] == 1, h
    assert h["client_version"], h
    assert h["route"] == "configured", h
    assert h["spool_batches"] == 0 and h["spool_bytes"] == 0, h
    assert h["spool_dropped_batches"] == 0, h
    assert h["retries_since_success"] == 0, h
    assert h["uptime_s"] >= 2, h
    assert h["upstream_gaps"] == 0, h       # counted, and no traffic
    assert h["upstream_lost_packets"] == 0, h
    assert h["kernel_drops"] == 0, h        # read from /proc/net/udp
    # Same machine, same clock: the estimate from the gateway's Date
    # header (whole seconds) is within about half a second of 0.
    assert h["clock_offset_ms"] is not None, h
    assert abs(h["clock_offset_ms"]) <= 1500, h
    assert c["heartbeats"] >= 2 and c["last_heard_s"] < 3.5, c
    assert c["batch_lag_s"] is not None and c["batch_lag_s"] < 3, c
    m = gw.metrics()
    assert m.get('flowpost_gateway_kit_spool_batches{client="%s"}'
                 % CID) == 0, m
    assert abs(m['flowpost_gateway_kit_clock_offset_seconds{client="%s"}'
                 % CID]) <= 1.5, m
    assert any(k.startswith('flowpost_gateway_kit_info{client="%s",' % CID)
               and 'route="configured"' in k for k in m), m

    # The status page is on metrics_listen only.
    st_code, _ = fp.http_get("127.0.0.1", gw.port, gw.prefix + "/status")
    assert st_code == 404, st_code

    # Stopped, the kit falls silent: last_heard grows, no more heartbeats.
    assert cl.stop() == 0
    stopped = kit(gw, "heartbeats_total")
    fp.wait_for(lambda: kit(gw, "last_heard_seconds") >= 4.0, 15,
                what="last_heard_seconds to grow past 4 s")
    assert kit(gw, "heartbeats_total") == stopped
    c = status(gw)["clients"][0]
    assert c["last_heard_s"] >= 4.0, c


def test_heartbeat_off():
    """heartbeat = 0: an idle kit sends nothing at all."""
    stack = fp.Stack(client_id=CID, client_conf={"heartbeat": 0})
    start = time.monotonic()
    # The client's own clock of idleness: three seconds of it, polled.
    fp.wait_for(lambda: time.monotonic() - start >= 3, 5, interval=0.2)
    assert stack.cl.stat("heartbeats") == 0
    assert stack.cl.stat("posts") == 0
    assert status(stack.gw)["clients"] == []


if __name__ == "__main__":
    fp.main(test_idle_kit_stays_visible, test_heartbeat_off)
