#!/usr/bin/env python3
"""
Interoperability with real peers: softflowd exports the flows of the
traffic captures (tests/data/traffic) as NetFlow v5, v9 and IPFIX.  The same
export datagrams go straight to one nfcapd and through client -> gateway to
a second nfcapd.  nfdump must decode the same records from both (every CSV
field but the exporter address, nfcapd's exporter id and the receive time):
nothing missing, nothing twice, no bad packet, and the same sequence
error count on both paths (softflowd restarts its counter for each capture,
so v5 and v9 show one gap per restart).  The same for pmacct's nfacctd
with IPFIX.  The client's own upstream accounting (seqtrack) must see no
loss on loopback.

Skips (77) when softflowd, nfcapd/nfdump or nfacctd is missing.
"""

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402
import nfpeers  # noqa: E402


def traffic():
    files = sorted(glob.glob(os.path.join(fp.DATA, "traffic", "*.pcap")))
    assert files, "no traffic captures in tests/data/traffic"
    return files


def _compare_nfcapd(version):
    nfpeers.require_tools("softflowd", "nfcapd", "nfdump")
    fp.require_binaries()
    export = nfpeers.softflowd_export(traffic(), version)
    assert export, "softflowd -v %d exported nothing" % version
    fp.log("softflowd -v %d: %d datagrams, %d bytes" % (
        version, len(export), sum(len(p) for p in export)))

    direct = nfpeers.Nfcapd(name="nfcapd-direct")
    tunnelled = nfpeers.Nfcapd(name="nfcapd-tunnel")
    t = nfpeers.Tunnel([tunnelled.address])

    nfpeers.send_paced(export, direct.port)
    t.send(export)
    t.wait_forwarded(len(export), 30)
    assert direct.finish() == 0, "nfcapd (direct) exit status"
    assert tunnelled.finish() == 0, "nfcapd (tunnel) exit status"

    a, b = direct.records(), tunnelled.records()
    assert a, "nfcapd decoded nothing from softflowd -v %d" % version
    diff = nfpeers.compare_records(a, b)
    assert diff is None, "v%d: %s" % (version, diff)
    assert len(set(a)) == len(a), "softflowd exported a record twice?"
    sa, sb = direct.summary(), tunnelled.summary()
    assert sa is not None and sb is not None, "nfcapd logged no summary"
    assert sa["bad_packets"] == 0 and sb["bad_packets"] == 0, (sa, sb)
    # Each softflowd run starts its sequence afresh, and all runs come from
    # one socket: one reported gap per restart, the same on both paths.
    assert sa == sb, "direct %s, tunnel %s" % (sa, sb)
    if version != 10:
        assert sb["sequence_errors"] == len(traffic()) - 1, sb
    fp.log("v%d: %d records decoded identically by both nfcapd (%s)"
           % (version, len(a), direct.summary()))
    m = t.gw.metrics()
    assert fp.metric_sum(m, "flowpost_gateway_collector_send_errors_total") \
        in (None, 0)
    # The client's own accounting of the hop before it (seqtrack.h):
    # nothing is lost on loopback; softflowd's restarts are no loss.
    st = t.cl.wait_stats(lambda s: s.get("received_datagrams", 0) >=
                         len(export), 10, "the client's stats")
    up = dict((k, v) for k, v in st.items() if k.startswith("upstream_"))
    fp.log("client upstream accounting: %s" % up)
    if version != 10:
        assert up.get("upstream_gaps") == 0, up
        assert up.get("upstream_lost_records") == 0, up
        assert up.get("upstream_lost_packets") == 0, up
    assert t.cl.stop() == 0 and t.gw.stop() == 0


def test_softflowd_v5_nfcapd():
    _compare_nfcapd(5)


def test_softflowd_v9_nfcapd():
    _compare_nfcapd(9)


def test_softflowd_ipfix_nfcapd():
    _compare_nfcapd(10)


def test_softflowd_ipfix_nfacctd():
    nfpeers.require_tools("softflowd", "nfacctd")
    fp.require_binaries()
    export = nfpeers.softflowd_export(traffic(), 10)
    direct = nfpeers.Nfacctd(name="nfacctd-direct")
    tunnelled = nfpeers.Nfacctd(name="nfacctd-tunnel")
    t = nfpeers.Tunnel([tunnelled.address])

    nfpeers.send_paced(export, direct.port)
    t.send(export)
    t.wait_forwarded(len(export), 30)
    assert direct.finish() == 0, "nfacctd (direct) exit status"
    assert tunnelled.finish() == 0, "nfacctd (tunnel) exit status"
    a, b = direct.rows(), tunnelled.rows()
    assert len(a) > 1, "nfacctd aggregated nothing: %r" % a
    assert a == b, "nfacctd: direct %d rows, tunnel %d; first difference: " \
        "%r" % (len(a), len(b), next(((x, y) for x, y in zip(a, b)
                                      if x != y), None))
    fp.log("nfacctd: %d aggregated rows identical" % (len(a) - 1))
    assert t.cl.stop() == 0 and t.gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_softflowd_v5_nfcapd, test_softflowd_v9_nfcapd,
            test_softflowd_ipfix_nfcapd, test_softflowd_ipfix_nfacctd)
