#!/usr/bin/env python3
"""
An orderly stop (SIGTERM) loses nothing.  With batch_max_age = 60s the
last batch of a stream is still open when the client is told to stop: it
must be sealed and written to the spool before the client exits (a .fpb
file holding exactly those datagrams), and delivered after the restart,
so that the collector gets the whole stream once, in order.

In the first case the gateway path is held (a relay keeps every request
waiting), so a POST is in flight at the stop: it must be aborted at once
and its batch stay spooled, beside the newly sealed last one.  In the
second the gateway answers normally; the last batch is then spooled, or
if the sender still got it out before it stopped, delivered once.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

BATCH = 16 << 10
CLIENT_CONF = {
    "batch_max_age": "60s",
    "batch_max_bytes": "16K",
    "retry_initial": "1s",
    "retry_factor": 2,
    "retry_max": "2s",
    "connect_timeout": "2s",
    "request_timeout": "10s",
    "log_level": "debug",
}
DUP = "flowpost_gateway_duplicates_total"
_DELIVERED_RE = re.compile(r"\[(\d+)\]: debug: sender: batch (\d+) "
                           r"delivered")


def _delivered(cl):
    return {int(m.group(2)) for m in _DELIVERED_RE.finditer(cl.log_text())
            if int(m.group(1)) == cl.pid}


def _stream_until_partial(st, sent, rep=None, sealed_before=0):
    """Sends `sent` (more of the stream when `rep` is given); waits until
    every batch closed by size is sealed.  Returns [(seq, count)] of the
    batches sealed by this call and the datagram count of the open one."""
    counts = fp.simulate_batches(sent, BATCH)
    assert len(counts) >= 3, counts
    rep = rep or fp.Replayer(st.cl)
    fp.send_sealed_steps(rep, st.cl, sent[len(rep.sent):], BATCH)
    want = len(counts) - 1 - sealed_before
    fp.wait_for(lambda: len(fp.sealed_batches(st.cl, st.cl.pid)) >=
                len(counts) - 1, 10, 0.01,
                what="%d batches closed by size sealed" % (len(counts) - 1))
    sealed = fp.sealed_batches(st.cl, st.cl.pid)
    assert [c for _, c in sealed] == counts[:-1], (sealed, counts)
    return sealed[len(sealed) - want:], counts[-1]


def _stop(cl):
    t = time.monotonic()
    rc = cl.stop(timeout=20)
    took = time.monotonic() - t
    fp.log("client stopped with status %s in %.2fs" % (rc, took))
    assert rc == 0, rc
    return took


def test_sigterm_partial_batch_with_post_in_flight():
    st = fp.Stack(client_id="kit-term-a", client_conf=CLIENT_CONF,
                  gateway_conf={"log_level": "debug"}, ipv6=False,
                  start_client=False)
    relay = fp.HttpRelay(st.gw.port)
    st.cl = fp.Client(relay.url(st.gw.prefix), st.key_file, st.client_id,
                      conf=CLIENT_CONF, ipv6=False)
    sent = fp.v5_stream(300, seed=404)
    rep = fp.Replayer(st.cl)
    first, _ = _stream_until_partial(st, sent[:200], rep)
    fp.wait_for(lambda: _delivered(st.cl) >= {s for s, _ in first}, 20,
                what="the first %d batches delivered" % len(first))

    # The gateway path holds every request; more traffic closes batches,
    # the first of them is posted and waits at the relay.
    relay.hold()
    more, n_open = _stream_until_partial(st, sent, rep, len(first))
    relay.wait(lambda ex: any(e.seq == more[0][0] for e in ex), 10,
               "the POST of batch %d" % more[0][0])
    fp.wait_for(lambda: relay.held == 1, 10, what="the POST held")
    assert st.sink.count() == sum(c for _, c in first)
    assert st.cl.spool_files("*.fpb") != []

    # Stop: the open batch is sealed into the spool, the POST is aborted.
    took = _stop(st.cl)
    assert took < 10, "the stop waited for the POST to time out"
    files = st.cl.spool_files("*.fpb")
    heads = [fp.read_batch_header(f) for f in files]
    fp.log("left in the spool: %s (open batch held %d)"
           % ([(h["seq"], h["count"]) for h in heads], n_open))
    for f, h in zip(files, heads):
        assert os.path.basename(f) == "%020d.fpb" % h["seq"], f
        assert h["client_id"] == st.client_id, h
    assert [(h["seq"], h["count"]) for h in heads[:-1]] == more, \
        (heads, more)
    assert heads[-1]["count"] == n_open, (heads, n_open)
    assert heads[-1]["seq"] > more[-1][0], heads
    text = st.cl.log_text()
    assert re.search(r"stopped: received %d datagrams.* %d batches \(\d+ "
                     r"bytes\) left in the spool" % (len(sent), len(heads)),
                     text), "no stop summary naming the spooled batches"
    # The held POST was given up by the client, never forwarded.
    ex = relay.wait(lambda ex: all(e.fate == "abandoned" for e in ex
                                   if e.fate not in ("passed",)), 10,
                    "the held POST abandoned")
    fp.log("held at the relay: %r" % [e for e in ex
                                      if e.fate == "abandoned"])
    relay.release()

    st.cl = fp.respawn(st.cl)
    assert st.sink.wait_count(len(sent), 20), \
        fp.compare_sequences(sent, st.sink.payloads())
    final = st.cl.wait_stats(
        lambda s: s["spool_batches"] == 0 and
        s["acked_batches"] == len(heads), 20, "the spooled batches delivered")
    fp.assert_no_more(st.sink, len(sent))
    diff = fp.compare_sequences(sent, st.sink.payloads())
    assert diff is None, diff
    assert st.cl.spool_files("*.fpb") == []
    assert final["acked_dup"] == 0, final
    assert final["acked_datagrams"] == sum(h["count"] for h in heads), final
    assert fp.gateway_counter(st.gw, DUP) == 0
    assert {h["seq"] for h in heads} <= _delivered(st.cl)


def test_sigterm_partial_batch_gateway_up():
    st = fp.Stack(client_id="kit-term-b", client_conf=CLIENT_CONF,
                  gateway_conf={"log_level": "debug"}, ipv6=False)
    sent = fp.v5_stream(300, seed=405)
    sealed, n_open = _stream_until_partial(st, sent)
    fp.wait_for(lambda: _delivered(st.cl) >= {s for s, _ in sealed}, 20,
                what="the %d sealed batches delivered" % len(sealed))
    _stop(st.cl)
    files = st.cl.spool_files("*.fpb")
    at_sink = st.sink.count()
    fp.log("after the stop: %d datagrams at the collector, spool %s"
           % (at_sink, [os.path.basename(f) for f in files]))
    # The last batch is sealed at the stop.  Either it is still spooled,
    # or the sender delivered it before it was stopped.
    if files:
        assert len(files) == 1, files
        assert fp.read_batch_header(files[0])["count"] == n_open
    else:
        assert at_sink == len(sent), at_sink

    st.cl = fp.respawn(st.cl)
    assert st.sink.wait_count(len(sent), 20), \
        fp.compare_sequences(sent, st.sink.payloads())
    final = st.cl.wait_stats(lambda s: s["spool_batches"] == 0, 20,
                             "an empty spool")
    fp.assert_no_more(st.sink, len(sent))
    diff = fp.compare_sequences(sent, st.sink.payloads())
    assert diff is None, diff
    # A POST cut by the stop after the gateway took it comes back `dup`.
    dup = fp.gateway_counter(st.gw, DUP)
    assert dup == final["acked_dup"] and dup <= 1, (dup, final)


if __name__ == "__main__":
    fp.main(test_sigterm_partial_batch_with_post_in_flight,
            test_sigterm_partial_batch_gateway_up)
