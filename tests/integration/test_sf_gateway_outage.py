#!/usr/bin/env python3
"""
Store and forward across a gateway outage.  The gateway stops while a
NetFlow v5 stream flows: the client keeps sealing batches into its spool
(spool_batches grows, POSTs fail and are retried with back-off).  The
gateway comes back with the same state and port: the backlog drains, and
traffic sent before, during and after the outage reaches the collector
byte for byte, in order, exactly once.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

BATCH = 16 << 10
CLIENT_CONF = {
    "batch_max_age": "1s",
    "batch_max_bytes": "16K",
    "retry_initial": "1s",
    "retry_factor": 2,
    "retry_max": "2s",
    "connect_timeout": "2s",
    "request_timeout": "5s",
    "log_level": "debug",
}
DUP = "flowpost_gateway_duplicates_total"


def test_gateway_outage():
    st = fp.Stack(client_id="kit-outage", client_conf=CLIENT_CONF,
                  gateway_conf={"log_level": "debug"}, ipv6=False)
    sent = fp.v5_stream(1000, seed=101)
    before, during, after = sent[:200], sent[200:700], sent[700:]
    rep = fp.Replayer(st.cl)

    # Before: a working chain.
    fp.send_sealed_steps(rep, st.cl, before, BATCH)
    st.wait_delivered(before, 20)
    assert fp.gateway_counter(st.gw, DUP) == 0

    # The gateway goes away.
    assert st.gw.stop() == 0, "gateway exit status"
    base = st.cl.stats()
    fp.send_sealed_steps(rep, st.cl, during[:250], BATCH)
    s1 = st.cl.wait_stats(
        lambda s: s["spool_batches"] >= 3 and
        s["posts_failed"] > base["posts_failed"], 20,
        "batches waiting in the spool and a failed POST")
    fp.send_sealed_steps(rep, st.cl, during[250:], BATCH)
    s2 = st.cl.wait_stats(
        lambda s: s["spool_batches"] > s1["spool_batches"] and
        s["posts_failed"] >= s1["posts_failed"] + 1 and
        s["received_datagrams"] == len(before) + len(during), 20,
        "the spool to grow while POSTs keep failing")
    fp.log("during the outage: %s" % fp.fmt_stats(s2))
    assert s2["acked_datagrams"] == len(before), s2
    assert s2["retries"] > base["retries"], s2
    assert s2["spool_dropped_batches"] == 0, s2
    assert s2["dropped_backpressure"] == 0, s2
    files = st.cl.spool_files("*.fpb")
    assert len(files) >= s2["spool_batches"] - 1, (files, s2)
    spooled = sum(fp.read_batch_header(f)["count"] for f in files)
    assert spooled <= len(during), (spooled, len(during))
    assert st.sink.count() == len(before), \
        "collector got datagrams while the gateway was down"

    # The gateway comes back on the same port with the same state; more
    # traffic arrives while the backlog drains.
    st.gw = fp.respawn(st.gw)
    fp.send_sealed_steps(rep, st.cl, after, BATCH)
    final = st.wait_delivered(sent, 40)
    fp.assert_no_more(st.sink, len(sent))
    diff = fp.compare_sequences(sent, st.sink.payloads())
    assert diff is None, diff

    final = st.cl.wait_stats(lambda s: s["spool_batches"] == 0, 20,
                             "an empty spool")
    fp.log("after recovery: %s" % fp.fmt_stats(final))
    assert final["acked_datagrams"] == len(sent), final
    assert final["acked_batches"] == final["batches_sealed"], final
    assert final["acked_dup"] == 0, final
    assert final["spool_dropped_datagrams"] == 0, final
    assert st.cl.spool_files("*.fpb") == []
    assert fp.gateway_counter(st.gw, DUP) == 0
    assert st.cl.alive() and st.gw.alive()


if __name__ == "__main__":
    fp.main(test_gateway_outage)
