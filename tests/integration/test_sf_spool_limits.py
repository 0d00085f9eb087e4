#!/usr/bin/env python3
"""
The spool's limits and its defence against damaged files.

spool_full: with the gateway unreachable and a tiny spool_max_bytes, the
spool fills up.  drop-oldest keeps the newest batches, drop-newest the
oldest; either way every drop is counted (spool_dropped_batches,
spool_dropped_datagrams) and logged, and once a gateway appears exactly
the kept batches arrive, byte for byte and in order.

Damaged files: with the client stopped, one spooled batch is truncated and
another has one byte flipped.  On restart both move to
spool_dir/quarantine/ unchanged, are counted (quarantined == 2) and
logged, and every other batch is delivered.

All datagrams have the same size and zlib_level is 0, so that every batch
holds two datagrams and has the same size: which batches the spool keeps
is then exact, not approximate.
"""

import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

BATCH = 4 << 10
# The smallest spool the client accepts with 4K batches is twice its
# largest possible sealed batch (about 2 x 69 KiB).
SPOOL_MAX = 144 << 10
BASE_CONF = {
    "batch_max_age": "1s",
    "batch_max_bytes": "4K",
    "zlib_level": 0,
    "retry_initial": "1s",
    "retry_factor": 2,
    "retry_max": "2s",
    "connect_timeout": "2s",
    "request_timeout": "5s",
    "log_level": "debug",
}
_DROP_RE = re.compile(r"\[(\d+)\]: warn: spool: .*dropped (?:new )?batch "
                      r"(\d+) with (\d+) datagrams")
_QUAR_RE = re.compile(r"warn: spool: moved (\d{20}\.fpb) to (\S+): (.*)")


def _stream(n):
    """n different v5 datagrams of 30 records (1464 bytes) each: two fit
    a 4K batch."""
    return [fp.v5_datagram(1000 + 30 * i, 30, i) for i in range(n)]


def _spooled(cl):
    """Batch files waiting in the spool (not those in quarantine/)."""
    return sorted(glob.glob(os.path.join(cl.spool_dir, "*.fpb")))


def _client_without_gateway(cid, conf):
    fp.require_binaries()
    d = fp.tmpdir()
    keys = os.path.join(d, "keys")
    keyf = os.path.join(d, "client.key")
    fp.genkey(cid, keys, keyf)
    port = fp.free_port()   # nothing listens here until the gateway comes
    cl = fp.Client("http://127.0.0.1:%d/flowpost" % port, keyf, cid,
                   conf=dict(BASE_CONF, **conf), ipv6=False)
    return cl, keys, port


def _send_all_sealed(cl, sent):
    rep = fp.Replayer(cl)
    fp.send_sealed_steps(rep, cl, sent, BATCH)
    fp.wait_for(lambda: sum(c for _, c in fp.sealed_batches(cl, cl.pid)) ==
                len(sent), 10, what="every datagram sealed")
    batches = fp.sealed_batches(cl, cl.pid)
    assert all(c == 2 for _, c in batches), batches
    return batches


def _expected(sent, batches, kept):
    ranges = fp.batch_ranges(batches)
    out = []
    for seq, _ in batches:
        if seq in kept:
            lo, hi = ranges[seq]
            out += sent[lo:hi]
    return out


def _deliver_and_check(cl, keys, port, expected):
    sink = fp.Sink()
    gw = fp.Gateway(keys, [sink.address], port=port)
    assert sink.wait_count(len(expected), 40), \
        "collector got %d of %d; client stats: %s" % (
            sink.count(), len(expected), fp.fmt_stats(cl.stats()))
    final = cl.wait_stats(lambda s: s["spool_batches"] == 0, 20,
                          "an empty spool")
    fp.assert_no_more(sink, len(expected))
    diff = fp.compare_sequences(expected, sink.payloads())
    assert diff is None, diff
    assert _spooled(cl) == []
    m = gw.metrics()
    assert (fp.metric_sum(m, "flowpost_gateway_duplicates_total") or 0) == 0
    assert (fp.metric_sum(m, "flowpost_gateway_auth_failures_total") or
            0) == 0
    return final


def _spool_full(policy):
    cl, keys, port = _client_without_gateway(
        "kit-full-" + policy.split("-")[1],
        {"spool_max_bytes": SPOOL_MAX, "spool_full": policy})
    sent = _stream(300)
    batches = _send_all_sealed(cl, sent)
    order = [s for s, _ in batches]
    st = cl.wait_stats(lambda s: s["datagrams_sealed"] == len(sent) and
                       s["posts_failed"] >= 1, 20, "every batch sealed")

    heads = [fp.read_batch_header(f) for f in _spooled(cl)]
    kept = [h["seq"] for h in heads]
    size = sum(h["size"] for h in heads)
    drops = [(int(m.group(2)), int(m.group(3)))
             for m in _DROP_RE.finditer(cl.log_text())]
    dropped = [s for s, _ in drops]
    fp.log("%s: %d batches sealed, %d kept (%d bytes of %d), %d dropped; "
           "stats: %s" % (policy, len(order), len(kept), size, SPOOL_MAX,
                          len(dropped), fp.fmt_stats(st)))
    assert size <= SPOOL_MAX, size
    # The same datagrams in every batch: sizes differ only by what the
    # codec makes of the health block and the exporter's clocks.
    sizes = [h["size"] for h in heads]
    assert max(sizes) - min(sizes) <= max(sizes) // 20, sizes
    assert sorted(kept + dropped) == sorted(order), "kept and dropped " \
        "batches are not the sealed ones, each once"
    assert st["spool_dropped_batches"] == len(dropped) > 0, st
    assert st["spool_dropped_datagrams"] == sum(c for _, c in drops) > 0, st
    assert st["spool_batches"] == len(kept), st
    assert st["datagrams_sealed"] - st["spool_dropped_datagrams"] == \
        sum(h["count"] for h in heads), st
    # Full means full: not even one more batch would have fit.
    assert size + max(sizes) > SPOOL_MAX, size

    pos = sorted(order.index(s) for s in kept)
    if policy == "drop-oldest":
        # The newest batches, and at most the oldest one besides: it is
        # spared while it is being posted.
        tail = fp.runs(pos)[-1]
        assert tail[1] == len(order), pos
        assert len(fp.runs(pos)) <= 2 and len(pos) - (tail[1] - tail[0]) \
            <= 1, fp.runs(pos)
    else:
        # The oldest batches; every newer one was refused.
        assert pos == list(range(len(pos))), fp.runs(pos)
        assert all(order.index(s) >= len(pos) for s in dropped)

    expected = _expected(sent, batches, set(kept))
    final = _deliver_and_check(cl, keys, port, expected)
    fp.log("delivered %d datagrams: %s" % (len(expected),
                                           fp.fmt_stats(final)))
    assert final["acked_datagrams"] == len(expected), final
    assert final["acked_datagrams"] == \
        final["datagrams_sealed"] - final["spool_dropped_datagrams"], final
    assert final["spool_dropped_batches"] == len(dropped), final


def test_spool_full_drop_oldest():
    _spool_full("drop-oldest")


def test_spool_full_drop_newest():
    _spool_full("drop-newest")


def test_damaged_spool_files_quarantined():
    cl, keys, port = _client_without_gateway("kit-damaged", {})
    sent = _stream(40)
    batches = _send_all_sealed(cl, sent)
    assert cl.stop() == 0
    files = _spooled(cl)
    assert len(files) == len(batches) == 20, (files, batches)

    # Damage two batch files while the client is stopped.
    trunc, flip = files[3], files[11]
    with open(trunc, "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[:len(data) // 2])
    with open(flip, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x01
    with open(flip, "wb") as f:
        f.write(data)
    damaged = {os.path.basename(p): open(p, "rb").read()
               for p in (trunc, flip)}

    cl = fp.respawn(cl)
    st = cl.wait_stats(lambda s: s["quarantined"] >= 2, 10,
                       "two quarantined batches")
    qdir = os.path.join(cl.spool_dir, "quarantine")
    assert sorted(os.listdir(qdir)) == sorted(damaged), os.listdir(qdir)
    for name, content in damaged.items():
        with open(os.path.join(qdir, name), "rb") as f:
            assert f.read() == content, "%s changed in quarantine" % name
    logged = {m.group(1): m.group(3) for m in _QUAR_RE.finditer(
        cl.log_text())}
    fp.log("quarantined: %s" % logged)
    assert set(logged) == set(damaged), logged
    assert all(m.startswith("damaged batch") for m in logged.values()), \
        logged

    bad = {int(n[:20]) for n in damaged}
    kept = {s for s, _ in batches} - bad
    expected = _expected(sent, batches, kept)
    final = _deliver_and_check(cl, keys, port, expected)
    assert final["quarantined"] == 2, final
    assert final["acked_batches"] == len(kept), final
    assert final["acked_datagrams"] == len(sent) - 4, final
    assert sorted(os.listdir(qdir)) == sorted(damaged)
    assert st["spool_batches"] == len(kept), st


if __name__ == "__main__":
    fp.main(test_spool_full_drop_oldest, test_spool_full_drop_newest,
            test_damaged_spool_files_quarantined)
