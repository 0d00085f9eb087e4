#!/usr/bin/env python3
"""
Several sealer threads keep the closing order.  With seal_threads = 4,
zlib level 9 always and small batches, batches are compressed side by
side and finish out of order; the client must still number and spool
them in the order they closed, so the collector gets every datagram once,
byte for byte and in order, sequence numbers follow the stream, and the
spool ends empty.  With zlib_level_busy equal to zlib_level no batch counts
as sealed at the busy level.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

N = 4000
BATCH = 8 << 10
CHUNK = 160           # v5_stream datagrams average ~800 bytes
OPEN_MAX = 25         # most datagrams an open 8 KiB batch holds


def run(client_id, conf, seed):
    st = fp.Stack(client_id=client_id, client_conf=conf, ipv6=False,
                  gateway_conf={"rate_limit_client": 0})
    sent = fp.v5_stream(N, seed=seed)
    rep = fp.Replayer(st.cl)
    # Chunks of about 16 batches: enough queued at once for every thread
    # to have one, never enough to empty the client's pool of 64 batch
    # buffers.  Before the next chunk, all but the open batch is sealed.
    for i in range(0, N, CHUNK):
        rep.send(sent[i:i + CHUNK])
        want = min(i + CHUNK, N)
        fp.wait_for(lambda: sum(c for _, c in fp.sealed_batches(
            st.cl, st.cl.pid)) >= want - OPEN_MAX, 30,
            what="the client to seal %d datagrams" % want)
    st.wait_delivered(sent, 60)
    fp.assert_no_more(st.sink, len(sent))
    diff = fp.compare_sequences(sent, st.sink.payloads())
    assert diff is None, diff
    final = st.cl.wait_stats(lambda s: s["spool_batches"] == 0, 20,
                             "an empty spool")
    fp.log("%s: %s" % (client_id, fp.fmt_stats(final)))
    assert final["datagrams_sealed"] == N, final
    assert final["acked_datagrams"] == N, final
    assert final["dropped_backpressure"] == 0, final
    assert final["spool_dropped_batches"] == 0, final

    # Numbers in log order follow the stream: each batch holds the next
    # run of datagrams, and numbers only grow.
    batches = fp.sealed_batches(st.cl, st.cl.pid)
    seqs = [s for s, _ in batches]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs[:20]
    assert sum(c for _, c in batches) == N
    assert final["batches_sealed"] == len(batches), (final, len(batches))
    return final, len(batches)


def test_four_threads_keep_order():
    final, nb = run("kit-seal4", {
        "seal_threads": 4,
        "zlib_level": 9,
        "zlib_level_busy": 9,
        "codec": "zlib",
        "batch_max_bytes": "8K",
        "batch_max_age": "1s",
        "log_level": "debug",
    }, 401)
    assert nb >= 50, nb
    assert final["batches_sealed_busy"] == 0, final


if __name__ == "__main__":
    fp.main(test_four_threads_keep_order)
