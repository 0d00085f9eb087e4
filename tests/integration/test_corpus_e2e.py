#!/usr/bin/env python3
"""
End to end over the whole capture corpus: every export datagram of every
capture goes exporter -> client -> gateway -> collector, and the collector
must receive exactly the bytes that were sent, in the same order, none
missing, none extra.  The deliberately malformed logstash captures are
carried too (drop_malformed = no is the default).

Uses the full corpus when it is on the machine, else tests/data/exports.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

def plan():
    """[(path, family, datagrams)] in replay order."""
    files = fp.corpus_exports()
    if files is not None:
        where = "the full corpus (%s)" % os.path.dirname(files[0])
    else:
        files = fp.project_exports()
        where = "tests/data/exports (full corpus not found)"
    assert files, "no captures found"
    ipv6 = fp.have_ipv6_loopback()
    out, v6 = [], 0
    for i, path in enumerate(files):
        st = {}
        dgs = fp.load_pcap(path, st)
        assert dgs, "%s: no UDP datagrams (%s)" % (path, st)
        # A few files go over the IPv6 listener: the ones whose exporter
        # used IPv6 transport, and every 10th file for the v4-only sets.
        family = 4
        if ipv6 and (":" in dgs[0].src_ip or i % 10 == 3):
            family = 6
            v6 += 1
        out.append((path, family, dgs))
    # The IPv6 files go as one block in the middle: every change of
    # listener costs a wait (see test_corpus_e2e).
    v4 = [c for c in out if c[1] == 4]
    out = v4[:len(v4) // 2] + [c for c in out if c[1] == 6] + \
        v4[len(v4) // 2:]
    total = sum(len(d) for _, _, d in out)
    fp.log("replaying %d captures, %d datagrams, from %s; %d files over "
           "the IPv6 listener" % (len(out), total, where, v6))
    return out


def test_corpus_e2e():
    fp.require_binaries()
    captures = plan()
    rcvbuf_before = fp.udp_rcvbuf_errors()
    s = fp.Stack(client_conf={"batch_max_age": "1s"})
    rep = fp.Replayer(s.cl)
    family = None
    for path, fam, dgs in captures:
        if family is not None and fam != family:
            # The client reads its two listeners independently: let it
            # take everything from one before sending to the other, so the
            # arrival order is the send order.
            assert rep.catch_up(20), \
                "client did not count %d datagrams before %s; stats: %s" % (
                    len(rep.sent), os.path.basename(path),
                    fp.fmt_stats(s.cl.stats()))
        family = fam
        rep.send(dgs, fam)
    sent = rep.sent
    rep.catch_up(20)
    try:
        st = s.wait_delivered(sent, 120)
    except AssertionError:
        fp.log("replayer stalls: %d; kernel UDP RcvbufErrors delta: %s" % (
            rep.stalls, _delta(rcvbuf_before)))
        raise
    got = s.sink.payloads()
    diff = fp.compare_sequences(sent, got)
    assert diff is None, diff
    fp.log("collector got all %d datagrams (%d bytes), byte-identical, in "
           "order" % (len(got), sum(len(p) for p in got)))

    # Nothing more arrives once everything is acknowledged.
    assert not s.sink.wait_count(len(sent) + 1, 1.5), \
        "collector got %d datagrams, %d sent" % (s.sink.count(), len(sent))

    st = s.cl.wait_stats(lambda x: x.get("spool_batches", -1) == 0, 15,
                         "an empty spool")
    fp.log("client stats: %s" % fp.fmt_stats(st))
    n = len(sent)
    assert st["received_datagrams"] == n, st
    assert st["received_bytes"] == sum(len(p) for p in sent), st
    assert st["dropped_invalid"] == 0, st
    assert st["dropped_malformed"] == 0, st
    assert st["dropped_truncated"] == 0, st
    assert st["dropped_backpressure"] == 0, st
    assert st["datagrams_sealed"] == n, st
    assert st["acked_datagrams"] == n, st
    assert st["acked_batches"] == st["batches_sealed"], st
    assert st["spool_dropped_datagrams"] == 0, st
    assert st["quarantined"] == 0, st
    # The corpus carries malformed datagrams on purpose (logstash
    # *invalid*): counted, yet forwarded above.
    assert st["malformed"] >= 2, st

    # The gateway's counters agree with the client's, where it has them.
    m = s.gw.metrics()
    expect = {
        "flowpost_gateway_datagrams_total": n,
        "flowpost_gateway_bytes_out_total": st["received_bytes"],
        "flowpost_gateway_batches_total":
            st["acked_batches"] - st["acked_dup"],
        "flowpost_gateway_duplicates_total": st["acked_dup"],
        "flowpost_gateway_malformed_datagrams_total": st["malformed"],
        "flowpost_gateway_client_datagrams_total": n,
        "flowpost_gateway_collector_datagrams_total": n,
        "flowpost_gateway_collector_send_errors_total": 0,
        "flowpost_gateway_auth_failures_total": 0,
        "flowpost_gateway_unknown_clients_total": 0,
    }
    checked = []
    for name, want in expect.items():
        v = fp.metric_sum(m, name)
        if v is not None:
            assert v == want, "gateway %s = %s, want %s" % (name, v, want)
            checked.append(name)
    fp.log("gateway metrics checked: %s" % (", ".join(checked) or "none "
           "of the known names present"))
    assert s.gw.stop() == 0, "gateway exit status"
    assert s.cl.stop() == 0, "client exit status"


def _delta(before):
    after = fp.udp_rcvbuf_errors()
    if before is None or after is None:
        return "unknown"
    return after - before


if __name__ == "__main__":
    fp.main(test_corpus_e2e)
