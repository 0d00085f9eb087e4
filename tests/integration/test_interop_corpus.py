#!/usr/bin/env python3
"""
The capture corpus through a real collector, directly and through the
tunnel.  First every capture (the full corpus when present, else
tests/data/exports) is replayed alone into a fresh nfcapd to learn which
ones nfcapd can decode (at least one record).  Then those captures, in
corpus order, are replayed once straight into one nfcapd and once through
client -> gateway into a second nfcapd, each time from one UDP socket so
that both collectors see one exporter and the same datagram sequence.
nfdump must decode the same records from both (all CSV fields but exporter
address, exporter id and receive time), in the same order, and both
nfcapd must count the same sequence errors and bad packets.

Skips (77) without nfcapd/nfdump.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402
import nfpeers  # noqa: E402

PARALLEL = 8


def captures():
    files = fp.corpus_exports()
    where = "full corpus"
    if files is None:
        files = fp.project_exports()
        where = "tests/data/exports"
    assert files, "no captures"
    return where, [(f, [d.payload for d in fp.load_pcap(f)]) for f in files]


def decodable(caps):
    """The captures that a fresh nfcapd decodes at least one record of,
    replayed alone; several collectors at once to keep this short."""
    out, counts = [], {}
    for i in range(0, len(caps), PARALLEL):
        group = caps[i:i + PARALLEL]
        cols = [nfpeers.Nfcapd(name="probe-%d" % (i + k))
                for k in range(len(group))]
        for c, (_, payloads) in zip(cols, group):
            nfpeers.send_paced(payloads, c.port)
        for c, (path, payloads) in zip(cols, group):
            assert c.finish() == 0, "%s exit status" % c.name
            n = len(c.records())
            counts[os.path.basename(path)] = n
            if n > 0:
                out.append((path, payloads))
            c.close()
            c.forget_log()
    return out, counts


def test_interop_corpus():
    nfpeers.require_tools("nfcapd", "nfdump")
    fp.require_binaries()
    where, caps = captures()
    t0 = time.monotonic()
    good, counts = decodable(caps)
    skipped = sorted(k for k, v in counts.items() if v == 0)
    fp.log("%s: nfcapd decodes %d of %d captures alone (%.1fs); not "
           "decodable alone: %s" % (where, len(good), len(caps),
                                   time.monotonic() - t0,
                                   ", ".join(skipped) or "none"))
    assert good, "nfcapd decodes none of the captures"

    stream = [p for _, payloads in good for p in payloads]
    direct = nfpeers.Nfcapd(name="nfcapd-direct")
    tunnelled = nfpeers.Nfcapd(name="nfcapd-tunnel")
    t = nfpeers.Tunnel([tunnelled.address])
    nfpeers.send_paced(stream, direct.port)
    t.send(stream)
    t.wait_forwarded(len(stream), 90)
    assert direct.finish() == 0, "nfcapd (direct) exit status"
    assert tunnelled.finish() == 0, "nfcapd (tunnel) exit status"

    a, b = direct.records(), tunnelled.records()
    assert len(a) >= sum(counts.values()) // 2, \
        "direct decode of the joined stream is far below the sum of the " \
        "captures alone (%d < %d / 2)" % (len(a), sum(counts.values()))
    diff = nfpeers.compare_records(a, b)
    assert diff is None, diff
    sa, sb = direct.summary(), tunnelled.summary()
    assert sa is not None and sa == sb, "direct %s, tunnel %s" % (sa, sb)
    fp.log("%d datagrams of %d captures: %d records decoded identically "
           "(nfcapd: %s)" % (len(stream), len(good), len(a), sa))
    assert t.cl.stop() == 0 and t.gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_interop_corpus)
