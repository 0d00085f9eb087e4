#!/usr/bin/env python3
"""
Checks the harness itself, without flowpost binaries: the pcap/pcapng
reader against the data manifests and against synthetic captures of every
supported link type, the NetFlow v5 generator and the UDP sink.
"""

import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402


def _ipv4_udp(src, dst, sport, dport, payload, frag=0, proto=17):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, frag, 64, proto,
                       0, socket.inet_aton(src), socket.inet_aton(dst)) + udp


def _ipv6_udp(src, dst, sport, dport, payload, ext=False, frag=False):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    body, nxt = udp, 17
    if frag:
        body, nxt = struct.pack("!BBHI", 17, 0, 1, 99) + body, 44
    if ext:     # one hop-by-hop header with padding
        body, nxt = bytes([nxt, 0, 1, 4, 0, 0, 0, 0]) + body, 0
    return (struct.pack("!IHBB", 6 << 28, len(body), nxt, 64) +
            socket.inet_pton(socket.AF_INET6, src) +
            socket.inet_pton(socket.AF_INET6, dst) + body)


def _eth(ip, etype, tags=()):
    hdr = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    for tpid, vid in tags:
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", etype) + ip


def _classic(linktype, frames, endian="<", nano=False):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        out += struct.pack(endian + "IIII", 1000 + i, 500, len(f), len(f)) + f
    return out


def _block(btype, body):
    pad = (-len(body)) % 4
    blen = 12 + len(body) + pad
    return (struct.pack("<II", btype, blen) + body + b"\0" * pad +
            struct.pack("<I", blen))


def _pcapng(linktype, frames):
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    # if_tsresol = 9 (nanoseconds)
    idb = _block(1, struct.pack("<HHI", linktype, 0, 0) +
                 struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0))
    out = shb + idb
    for i, f in enumerate(frames):
        if i % 2:
            out += _block(3, struct.pack("<I", len(f)) + f)
        else:
            ts = (2000 + i) * 10**9
            out += _block(6, struct.pack("<IIIII", 0, ts >> 32,
                                         ts & 0xFFFFFFFF, len(f), len(f)) + f)
    return out


def _check(data, expect, expect_stats=None, name="capture"):
    d = fp.tmpdir()
    path = os.path.join(d, "x.pcap")
    with open(path, "wb") as f:
        f.write(data)
    st = {}
    got = fp.load_pcap(path, st)
    assert [(g.src_ip, g.src_port, g.dst_ip, g.dst_port, g.payload)
            for g in got] == expect, "%s: got %r" % (name, got)
    for k, v in (expect_stats or {}).items():
        assert st[k] == v, "%s: stats %s=%s, want %s" % (name, k, st[k], v)
    return got


def test_manifest_counts():
    """Every capture of tests/data (and of the corpus when present) yields
    exactly the manifest's udp_packets datagrams."""
    manifests = [os.path.join(fp.DATA, "MANIFEST.tsv")]
    cd = fp.corpus_dir()
    if cd:
        manifests.append(os.path.join(cd, "MANIFEST.tsv"))
    for m in manifests:
        base = os.path.dirname(m)
        rows = fp.read_manifest(m)
        assert rows, m
        for r in rows:
            st = {}
            n = len(fp.load_pcap(os.path.join(base, r["file"]), st))
            assert n == int(r["udp_packets"]), \
                "%s: %d UDP datagrams, manifest says %s (%s)" % (
                    r["file"], n, r["udp_packets"], st)
            if r["file"].startswith("exports/"):
                assert st["non_udp"] == 0 and st["fragments"] == 0, (r, st)
        fp.log("%s: %d files match" % (m, len(rows)))
    # Files of tests/data are exactly those of its manifest.
    listed = {r["file"] for r in fp.read_manifest(manifests[0])}
    present = {os.path.relpath(p, fp.DATA) for p in
               fp.project_exports() +
               [os.path.join(fp.DATA, "traffic", f) for f in
                os.listdir(os.path.join(fp.DATA, "traffic"))]}
    assert listed == present, listed ^ present


def test_link_types():
    p1, p2, p3 = b"\x00\x05first", b"\x00\x09second", b"\x00\x0athird"
    v4 = _ipv4_udp("10.1.2.3", "127.0.0.1", 4000, 2055, p1)
    v6 = _ipv6_udp("2001:db8::1", "::1", 4001, 9991, p2)
    v6e = _ipv6_udp("2001:db8::2", "::1", 4002, 4739, p3, ext=True)
    frag4 = _ipv4_udp("10.1.2.3", "127.0.0.1", 1, 2, b"zz", frag=0x2000)
    frag6 = _ipv6_udp("2001:db8::1", "::1", 1, 2, b"zz", frag=True)
    tcp = _ipv4_udp("10.1.2.3", "127.0.0.1", 1, 2, b"tcp", proto=6)
    want = [("10.1.2.3", 4000, "127.0.0.1", 2055, p1),
            ("2001:db8::1", 4001, "::1", 9991, p2),
            ("2001:db8::2", 4002, "::1", 4739, p3)]
    skipped = {"fragments": 2, "non_udp": 1}

    eth = [_eth(v4 + b"\0" * 6, 0x0800),        # with Ethernet padding
           _eth(v6, 0x86DD, [(0x8100, 10)]),    # 802.1Q
           _eth(v6e, 0x86DD, [(0x88A8, 1), (0x8100, 2)]),  # QinQ
           _eth(frag4, 0x0800), _eth(frag6, 0x86DD), _eth(tcp, 0x0800),
           _eth(b"\0" * 28, 0x0806)]            # ARP
    for endian in "<>":
        for nano in (False, True):
            got = _check(_classic(1, eth, endian, nano), want,
                         {"fragments": 2, "non_udp": 2},
                         "ethernet %s nano=%s" % (endian, nano))
            assert abs(got[0].ts - 1000.0005) < 1e-6 if not nano else \
                abs(got[0].ts - 1000.0000005) < 1e-9, got[0].ts

    def sll(ip, proto):
        return struct.pack("!HHH8sH", 0, 1, 6, b"\0" * 8, proto) + ip

    def sll2(ip, proto):
        return struct.pack("!HHIHBB8s", proto, 0, 1, 1, 0, 6, b"\0" * 8) + ip

    plain = [v4, v6, v6e, frag4, frag6, tcp]
    _check(_classic(113, [sll(x, 0x86DD if x[0] >> 4 == 6 else 0x0800)
                          for x in plain]), want, skipped, "SLL")
    _check(_classic(276, [sll2(x, 0x86DD if x[0] >> 4 == 6 else 0x0800)
                          for x in plain]), want, skipped, "SLL2")
    for lt in (101, 12):
        _check(_classic(lt, plain), want, skipped, "raw %d" % lt)
    _check(_classic(228, [v4, frag4, tcp]), want[:1], None, "ipv4")
    _check(_classic(229, [v6, v6e, frag6]), want[1:], None, "ipv6")
    got = _check(_pcapng(1, eth), want, {"fragments": 2, "non_udp": 2},
                 "pcapng")
    assert abs(got[0].ts - 2000) < 1e-6, got[0].ts

    # A snapped datagram is incomplete and must not be replayed.
    cut = _eth(v4, 0x0800)
    rec = _classic(1, [])
    rec += struct.pack("<IIII", 1, 0, len(cut) - 3, len(cut)) + cut[:-3]
    _check(rec, [], {"truncated": 1}, "truncated")


def test_v5_stream():
    s = fp.v5_stream(300, start_seq=4294967000, seed=3)
    assert len(set(s)) == len(s)
    seq = 4294967000
    counts = set()
    for d in s:
        count, dseq = fp.v5_info(d)
        assert len(d) == 24 + 48 * count, (len(d), count)
        assert dseq == seq & 0xFFFFFFFF, (dseq, seq)
        counts.add(count)
        seq += count
    assert min(counts) == 1 and max(counts) == 30, counts


def test_sink():
    for host in ("127.0.0.1", "::1"):
        if host == "::1" and not fp.have_ipv6_loopback():
            continue
        sink = fp.Sink(host)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            msgs = [bytes([i % 256]) * (1 + i % 1400) for i in range(2000)]
            for m in msgs:
                s.sendto(m, (host, sink.port))
            assert sink.wait_count(len(msgs), 10), sink.count()
            assert sink.payloads() == msgs
            assert not sink.wait_count(len(msgs) + 1, 0.2)
        finally:
            s.close()
            sink.close()


if __name__ == "__main__":
    fp.main(test_manifest_counts, test_link_types, test_v5_stream, test_sink)
