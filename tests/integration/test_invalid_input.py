#!/usr/bin/env python3
"""
Input the client must not forward: datagrams that are not NetFlow/IPFIX at
all are dropped and counted (dropped_invalid); NetFlow datagrams whose
lengths disagree are forwarded and counted (malformed) by default, and
dropped and counted (dropped_malformed) with drop_malformed = yes.

Order makes the "never forwarded" checks exact: the bad datagrams are
interleaved with valid ones, and the client keeps arrival order, so once the
collector holds every valid datagram any forwarded bad one would be among
them.
"""

import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402


def not_netflow():
    """Datagrams that are no NetFlow/IPFIX version at all."""
    rnd = random.Random(7)
    noise = bytes([0xFF]) + bytes(rnd.randrange(256) for _ in range(299))
    sflow = struct.pack("!IIIIIII", 5, 1, 0x7F000001, 0, 42, 123456, 0)
    v7 = (struct.pack("!HHIIIIBBH", 7, 1, 1000, 1700000000, 0, 1, 0, 0, 0) +
          bytes(52))
    return [
        ("random bytes", noise),
        ("sFlow v5 header", sflow),
        ("3-byte datagram", b"\x00\x05\x00"),
        ("NetFlow v7", v7),
        ("HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]


def logstash_invalid_v5():
    out = []
    for f in ("logstash__netflow5_test_invalid01.pcap",
              "logstash__netflow5_test_invalid02.pcap"):
        dgs = fp.load_pcap(os.path.join(fp.DATA, "exports", f))
        assert len(dgs) == 1, f
        out.append(dgs[0].payload)
    return out


def interleave(valid, bad):
    """valid[0], bad[0], valid[1], bad[1], ..., rest of valid."""
    out = []
    for i, v in enumerate(valid):
        out.append(v)
        if i < len(bad):
            out.append(bad[i])
    assert len(out) == len(valid) + len(bad)
    return out


def test_not_netflow_dropped():
    """Non-NetFlow datagrams are counted and never forwarded; the malformed
    v5 captures are forwarded by default."""
    s = fp.Stack()
    valid = fp.v5_stream(12, seed=11)
    bad = [d for _, d in not_netflow()]
    malformed = logstash_invalid_v5()
    # Over both listeners: the bad ones on IPv4, a second run on IPv6.
    mixed = interleave(valid[:8], bad) + interleave(valid[8:], malformed)
    rep = fp.Replayer(s.cl)
    rep.send(mixed[:len(mixed) // 2], 4)
    if s.ipv6:
        assert rep.catch_up(20), fp.fmt_stats(s.cl.stats())
        rep.send(mixed[len(mixed) // 2:], 6)
    else:
        rep.send(mixed[len(mixed) // 2:], 4)
    forwarded = [d for d in mixed if d not in bad]
    s.wait_delivered(forwarded, 60)
    diff = fp.compare_sequences(forwarded, s.sink.payloads())
    assert diff is None, diff
    st = s.cl.wait_stats(
        lambda x: x.get("received_datagrams", 0) >= len(mixed), 10,
        "received_datagrams >= %d" % len(mixed))
    fp.log("client stats: %s" % fp.fmt_stats(st))
    assert st["received_datagrams"] == len(mixed), st
    assert st["dropped_invalid"] == len(bad), st
    assert st["malformed"] == len(malformed), st
    assert st["dropped_malformed"] == 0, st
    assert st["acked_datagrams"] == len(forwarded), st
    assert s.cl.alive() and s.gw.alive()


def test_drop_malformed():
    """With drop_malformed = yes the malformed v5 captures are dropped."""
    s = fp.Stack(client_conf={"drop_malformed": "yes"})
    valid = fp.v5_stream(6, seed=12)
    malformed = logstash_invalid_v5()
    bad = [d for _, d in not_netflow()][:2]
    mixed = interleave(valid, malformed + bad)
    rep = fp.Replayer(s.cl)
    rep.send(mixed, 4)
    s.wait_delivered(valid, 60)
    diff = fp.compare_sequences(valid, s.sink.payloads())
    assert diff is None, diff
    st = s.cl.wait_stats(
        lambda x: x.get("received_datagrams", 0) >= len(mixed), 10,
        "received_datagrams >= %d" % len(mixed))
    fp.log("client stats: %s" % fp.fmt_stats(st))
    assert st["dropped_malformed"] == len(malformed), st
    assert st["malformed"] == len(malformed), st
    assert st["dropped_invalid"] == len(bad), st
    assert st["acked_datagrams"] == len(valid), st


if __name__ == "__main__":
    fp.main(test_not_netflow_dropped, test_drop_malformed)
