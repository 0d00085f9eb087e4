#!/usr/bin/env python3
"""
The client dies hard (SIGKILL) in the middle of a stream and is restarted
on the same spool.  What may be lost is only what was not on disk yet:
the open batch, and a batch closed just before the kill that was still
being sealed or written.  The kill comes once the client has read every
datagram sent so far.  The datagrams missing at the collector must be
exactly that unsealed tail: one contiguous run at the point of the kill,
received within the last batch_max_age.  Every datagram of every sealed
batch arrives once, in order, and sequence numbers are never reused:
batches sealed after the restart carry higher numbers, and the gateway
never answers `dup` for a new batch.

Two cases: the gateway is down at the kill (sealed batches wait in the
spool), and the gateway is up with POSTs in flight (then a batch the
gateway forwarded just before the kill may come again and be answered
`dup`, which must not reach the collector twice).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

BATCH = 16 << 10
MAX_AGE = 1.0
BATCHER_POOL = 4        # client/batcher.h: batch buffers in the pipeline
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


def _setup(cid):
    st = fp.Stack(client_id=cid, client_conf=CLIENT_CONF,
                  gateway_conf={"log_level": "debug"}, ipv6=False,
                  start_client=False)
    # A plain relay: it only records which batch numbers were posted.
    relay = fp.HttpRelay(st.gw.port)
    st.cl = fp.Client(relay.url(st.gw.prefix), st.key_file, st.client_id,
                      conf=CLIENT_CONF, ipv6=False)
    return st, relay


def _kill(cl):
    """SIGKILL; returns when it was sent (monotonic)."""
    t = time.monotonic()
    cl.signal(signal.SIGKILL)
    cl.kill()
    assert cl.returncode() == -signal.SIGKILL, cl.returncode()
    return t


def _drained(cl):
    """Waits until the client has read every datagram off its socket."""
    port = cl.listener(4)[1]
    fp.wait_for(lambda: fp.udp_rx_queue(port) == 0, 10, 0.002,
                what="the client's socket drained")


def _check_loss(sent, pre_kill, got, old_batches, snapshot, spooled,
                posted, steps, kill_time):
    """The collector holds `sent` minus exactly the tail of the first
    `pre_kill` datagrams that was not on disk at the kill: the open batch,
    and batches closed but not yet written.  That tail is one run and was
    received within batch_max_age (plus the time to write a batch) before
    the kill.  Returns the number lost."""
    missing = fp.assert_in_order_once(sent, got)
    # Batches the old process logged as sealed: on disk unless the kill
    # came while the last one was being written (then it is neither in
    # the spool nor was it ever posted).
    durable, half = 0, []
    for seq, count in old_batches:
        if seq in spooled or seq in posted:
            assert not half, "batch %d on disk after unwritten %s" % (
                seq, half)
            durable += count
        else:
            half.append((seq, count))
    assert len(half) <= 1, "batches lost although sealed: %s" % half
    if half:
        fp.log("NOTE: batch %d was being written at the kill; its %d "
               "datagrams were not yet on disk" % half[0])
    sealed = sum(c for _, c in old_batches)
    unsealed = list(range(durable, pre_kill))
    fp.log("kill after %d datagrams: %d sealed by the old process, %d on "
           "disk (%d sealed by its last stats file), %d missing at the "
           "collector %s" % (pre_kill, sealed, durable,
                             snapshot.get("datagrams_sealed", 0),
                             len(missing), fp.runs(missing)))
    assert missing == unsealed, \
        "missing %s, expected exactly the tail not on disk %s" % (
            fp.runs(missing), fp.runs(unsealed))
    assert len(fp.runs(missing)) <= 1, fp.runs(missing)
    assert len(missing) <= pre_kill - snapshot.get("datagrams_sealed", 0) \
        + (half[0][1] if half else 0), (len(missing), pre_kill, snapshot)
    # Not on disk: the open batch, and batches closed just before the kill
    # that the sealer had not written yet; no more than its buffer pool.
    size = sum(fp.entry_size(sent[i]) for i in missing)
    assert size <= BATCHER_POOL * BATCH, size
    if missing:
        # It was sent after the step before its own had been sent, so
        # received no earlier: traffic of the last batch_max_age (plus
        # the time to write a batch), not older.
        sent_after = max([t for n, t in steps if n <= missing[0]] or
                         [kill_time])
        age = kill_time - sent_after
        fp.log("lost: %d datagrams, %d bytes of batch entries, the first "
               "sent at most %.2fs before the kill" % (len(missing), size,
                                                       age))
        assert age <= MAX_AGE + 1.0, age
    return len(missing)


def _check_seqs(old_batches, new_batches, relay):
    old_seqs = [s for s, _ in old_batches]
    new_seqs = [s for s, _ in new_batches]
    assert old_seqs == sorted(set(old_seqs)), old_seqs
    assert new_seqs == sorted(set(new_seqs)), new_seqs
    assert new_seqs and min(new_seqs) > max(old_seqs), \
        "sequence numbers reused after the restart: old up to %d, new " \
        "from %d" % (max(old_seqs), min(new_seqs))
    news = [e.seq for e in relay.records() if e.ack == "new"]
    assert news == sorted(set(news)), "batches answered `new` out of " \
        "order or twice: %s" % news
    return max(old_seqs)


def test_client_kill9_with_backlog():
    st, relay = _setup("kit-ckill-a")
    sent = fp.v5_stream(1200, seed=303)
    first, backlog, after = sent[:300], sent[300:700], sent[700:]
    rep = fp.Replayer(st.cl)
    steps = []
    fp.send_sealed_steps(rep, st.cl, first, BATCH, steps=steps)
    st.wait_delivered(first, 20)

    # Gateway down: sealed batches pile up in the spool, then the kill,
    # as soon as the client has read the last datagram off its socket:
    # well within batch_max_age, so the open batch is not sealed.
    assert fp.gateway_counter(st.gw, DUP) == 0
    assert st.gw.stop() == 0
    fp.send_sealed_steps(rep, st.cl, backlog, BATCH, steps=steps)
    pre_kill = len(first) + len(backlog)
    _drained(st.cl)
    snap = st.cl.stats()
    old_pid = st.cl.pid
    kill_time = _kill(st.cl)
    old_batches = fp.sealed_batches(st.cl, old_pid)
    spooled = {fp.read_batch_header(f)["seq"]
               for f in st.cl.spool_files("*.fpb")}
    assert snap["dropped_backpressure"] == 0, snap
    assert len(spooled) >= 5, spooled

    st.gw = fp.respawn(st.gw)
    st.cl = fp.respawn(st.cl)
    rep = fp.Replayer(st.cl)
    fp.send_sealed_steps(rep, st.cl, after, BATCH)
    final = st.cl.wait_stats(
        lambda s: s["spool_batches"] == 0 and
        s["datagrams_sealed"] == len(after) and
        s["acked_datagrams"] >= len(after), 40,
        "the spool drained after the restart")
    fp.assert_no_more(st.sink, st.sink.count())
    got = st.sink.payloads()
    posted = {e.seq for e in relay.records()}
    lost = _check_loss(sent, pre_kill, got, old_batches, snap, spooled,
                       posted, steps, kill_time)
    assert lost < len(backlog), lost
    new_batches = fp.sealed_batches(st.cl, st.cl.pid)
    _check_seqs(old_batches, new_batches, relay)
    fp.log("after the restart: %s" % fp.fmt_stats(final))
    assert fp.gateway_counter(st.gw, DUP) == 0
    assert final["acked_dup"] == 0, final
    assert final["quarantined"] == 0, final
    # The restarted client delivered the old spool and its own batches.
    assert final["acked_datagrams"] == len(sent) - len(first) - lost, final


def test_client_kill9_while_posting():
    st, relay = _setup("kit-ckill-b")
    sent = fp.v5_stream(1500, seed=304)
    rep = fp.Replayer(st.cl)
    # Stream in steps; once the collector is receiving, kill as soon as
    # the client has read the last step: batches are being sealed,
    # spooled and posted around the kill.
    pre_kill, steps = None, []
    step = 60
    for k in range(0, 900, step):
        fp.send_sealed_steps(rep, st.cl, sent[k:k + step], BATCH,
                             steps=steps)
        if st.sink.count() >= 300:
            pre_kill = k + step
            break
    assert pre_kill is not None, "the collector got nothing"
    _drained(st.cl)
    snap = st.cl.stats()
    old_pid = st.cl.pid
    kill_time = _kill(st.cl)
    old_batches = fp.sealed_batches(st.cl, old_pid)
    spooled = {fp.read_batch_header(f)["seq"]
               for f in st.cl.spool_files("*.fpb")}
    old_dup = fp.gateway_counter(st.gw, DUP)
    assert old_dup == 0, old_dup
    assert snap.get("dropped_backpressure", 0) == 0, snap

    st.cl = fp.respawn(st.cl)
    rep = fp.Replayer(st.cl)
    after = sent[pre_kill:]
    fp.send_sealed_steps(rep, st.cl, after, BATCH)
    final = st.cl.wait_stats(
        lambda s: s["spool_batches"] == 0 and
        s["datagrams_sealed"] == len(after) and
        s["acked_datagrams"] >= len(after), 40,
        "the spool drained after the restart")
    fp.assert_no_more(st.sink, st.sink.count())
    got = st.sink.payloads()
    posted = {e.seq for e in relay.records()}
    _check_loss(sent, pre_kill, got, old_batches, snap, spooled, posted,
                steps, kill_time)
    new_batches = fp.sealed_batches(st.cl, st.cl.pid)
    top_old = _check_seqs(old_batches, new_batches, relay)

    # A `dup` answer is only allowed for the old batch the gateway took
    # just before the kill, sent again by the restarted client.
    dup = fp.gateway_counter(st.gw, DUP)
    dups = [e for e in relay.records() if e.ack == "dup"]
    fp.log("after the restart: %s; gateway duplicates %d %r"
           % (fp.fmt_stats(final), dup, dups))
    assert dup == final["acked_dup"] == len(dups), (dup, final, dups)
    assert dup <= 1, dups
    for e in dups:
        assert e.seq <= top_old and e.seq in spooled, (e, top_old, spooled)
        earlier = [x for x in relay.records() if x.seq == e.seq and
                   x.index < e.index]
        assert any(x.ack == "new" for x in earlier), (e, earlier)


if __name__ == "__main__":
    fp.main(test_client_kill9_with_backlog, test_client_kill9_while_posting)
