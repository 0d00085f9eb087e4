#!/usr/bin/env python3
"""
A repeat is recognised across a gateway restart.  A relay between client
and gateway loses the gateway's `new` answer for one batch (the gateway
forwarded and recorded it) and holds the client's retry; the gateway is
restarted with the same state_dir (after SIGTERM, and after SIGKILL), then
the retry goes on to the new process.  It must answer `dup` and forward
nothing: the new process's duplicates counter shows it, the client counts
it, and the collector sees every datagram once, in order.
"""

import os
import signal
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
    "request_timeout": "10s",
    "log_level": "debug",
}
DUP = "flowpost_gateway_duplicates_total"


def _restart_between_batch_and_retry(sig):
    st = fp.Stack(client_id="kit-restart", client_conf=CLIENT_CONF,
                  gateway_conf={"log_level": "debug"}, ipv6=False,
                  start_client=False)
    lost = []

    def drop(ex):
        # Lose the answer to the third batch's first POST, and keep every
        # later request waiting until the gateway has been restarted.
        if not lost and ex.ack == "new" and ex.index == 2:
            lost.append(ex)
            relay.hold()
            return True
        return False

    relay = fp.HttpRelay(st.gw.port, drop=drop)
    st.cl = fp.Client(relay.url(st.gw.prefix), st.key_file, st.client_id,
                      conf=CLIENT_CONF, ipv6=False)
    sent = fp.v5_stream(500, seed=707)
    rep = fp.Replayer(st.cl)
    fp.send_sealed_steps(rep, st.cl, sent[:250], BATCH)

    # The lost answer, and the client's retry waiting at the relay.
    relay.wait(lambda ex: lost and any(e.index > lost[0].index and
                                       e.fate == "open" for e in ex),
               20, "the client's retry after the lost answer")
    fp.wait_for(lambda: relay.held >= 1, 10, what="the retry held")
    seq = lost[0].seq
    old = st.gw
    assert fp.gateway_counter(old, DUP) == 0
    forwarded_before = fp.gateway_counter(old,
                                          "flowpost_gateway_datagrams_total")
    if sig == signal.SIGKILL:
        old.signal(signal.SIGKILL)
        old.kill()
        assert old.returncode() == -signal.SIGKILL
    else:
        assert old.stop() == 0, "gateway exit status"
    st.gw = fp.respawn(old)
    assert fp.gateway_counter(st.gw, DUP) == 0
    relay.release()

    # More traffic after the restart, then everything drains.
    fp.send_sealed_steps(rep, st.cl, sent[250:], BATCH)
    st.wait_delivered(sent, 40)
    final = st.cl.wait_stats(lambda s: s["spool_batches"] == 0 and
                             s["acked_dup"] >= 1, 20,
                             "an empty spool and the dup answer")
    fp.assert_no_more(st.sink, len(sent))
    diff = fp.compare_sequences(sent, st.sink.payloads())
    assert diff is None, diff

    ex = relay.records()
    retries = [e for e in ex if e.seq == seq and e.index > lost[0].index and
               e.fate == "passed"]
    assert retries and retries[0].ack == "dup", (lost, ex)
    assert all(e.ack != "new" for e in ex if e.seq == seq and
               e is not lost[0]), ex
    new_dup = fp.gateway_counter(st.gw, DUP)
    new_fwd = fp.gateway_counter(st.gw, "flowpost_gateway_datagrams_total")
    fp.log("batch %d: answer lost, retry after restart answered %s; new "
           "gateway: duplicates %d, datagrams %d (old one forwarded %d); "
           "client: %s" % (seq, retries[0].ack, new_dup, new_fwd,
                           forwarded_before, fp.fmt_stats(final)))
    assert new_dup == 1, new_dup
    assert final["acked_dup"] == 1, final
    assert forwarded_before + new_fwd == len(sent), (forwarded_before,
                                                     new_fwd)
    assert final["acked_datagrams"] == len(sent), final
    assert final["acked_batches"] == final["batches_sealed"], final


def test_restart_sigterm_between_batch_and_retry():
    _restart_between_batch_and_retry(signal.SIGTERM)


def test_restart_sigkill_between_batch_and_retry():
    _restart_between_batch_and_retry(signal.SIGKILL)


if __name__ == "__main__":
    fp.main(test_restart_sigterm_between_batch_and_retry,
            test_restart_sigkill_between_batch_and_retry)
