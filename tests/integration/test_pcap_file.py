#!/usr/bin/env python3
"""
pcap file jobs: `flowpost-client --pcap-file FILE...` reads captures, sends
every export datagram through a real gateway to a collector, waits for the
acknowledgements and exits 0.

- Every capture of the corpus (full corpus if present, else
  tests/data/exports) arrives byte-identical and in order, the same
  sequence fp.py's own pcap reader finds.
- With --spool-only the batches stay in the spool; fp-spooldump opens them
  with the key and every entry carries the exporter address and port, the
  destination port and the capture time of its packet.
- Captures this test writes itself: 802.1Q/QinQ Ethernet, Linux SLL and
  SLL2 (pcapng), raw IPv6 with extension headers, IPv4 and IPv6 fragments
  in and out of order, truncated packets, TCP.  Whole datagrams arrive;
  truncated, overlapping and incomplete ones are counted, never sent.
- Exit status: 1 when the gateway cannot be reached within --pcap-timeout,
  1 on SIGTERM (the spool keeps the batches), 2 for bad options, and a
  progress line on a terminal.
"""

import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402


# ---------------------------------------------------------------------------
# Writing captures

def ip_checksum(hdr):
    if len(hdr) % 2:
        hdr += b"\0"
    s = sum(struct.unpack("!%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src, dst, body, proto=17, ident=1, frag=0x4000):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident,
                      frag, 64, proto, 0, socket.inet_aton(src),
                      socket.inet_aton(dst))
    ck = ip_checksum(hdr)
    return hdr[:10] + struct.pack("!H", ck) + hdr[12:] + body


def ipv6(src, dst, nxt, body):
    return (struct.pack("!IHBB", 0x60000000, len(body), nxt, 64) +
            socket.inet_pton(socket.AF_INET6, src) +
            socket.inet_pton(socket.AF_INET6, dst) + body)


def ext8(nxt):
    """An 8-byte hop-by-hop, routing or destination options header."""
    return struct.pack("!BB6x", nxt, 0)


def frag6(nxt, offset, more, ident):
    return struct.pack("!BBHI", nxt, 0, offset | (1 if more else 0), ident)


def eth(etype, payload, tags=()):
    out = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02"
    for i, tpid in enumerate(tags):
        out += struct.pack("!HH", tpid, 10 + i)
    return out + struct.pack("!H", etype) + payload


def sll(etype, payload):
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0",
                       etype) + payload


def sll2(etype, payload):
    return struct.pack("!HHIHBB8s", etype, 0, 2, 1, 0, 6,
                       b"\x02\0\0\0\0\x01\0\0") + payload


def ipv4_fragments(src, dst, udp_bytes, ident, size=1480):
    """IPv4 fragments of one UDP datagram, in order."""
    out, off = [], 0
    while off < len(udp_bytes):
        part = udp_bytes[off:off + size]
        more = off + size < len(udp_bytes)
        out.append(ipv4(src, dst, part, ident=ident,
                        frag=(0x2000 if more else 0) | off // 8))
        off += size
    return out


def ipv6_fragments(src, dst, body, nxt, ident, size=1232):
    out, off = [], 0
    while off < len(body):
        part = body[off:off + size]
        more = off + size < len(body)
        out.append(ipv6(src, dst, 44, frag6(nxt, off, more, ident) + part))
        off += size
    return out


def write_pcap(path, linktype, records):
    """Classic little-endian microsecond pcap.  records: (ts, frame) or
    (ts, frame, orig_len) for truncated captures."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535,
                            linktype))
        for r in records:
            ts, frame = r[0], r[1]
            orig = r[2] if len(r) > 2 else len(frame)
            sec = int(ts)
            usec = int(round((ts - sec) * 1e6))
            f.write(struct.pack("<IIII", sec, usec, len(frame), orig))
            f.write(frame)
    return path


def _block(btype, body):
    pad = (-len(body)) % 4
    blen = 12 + len(body) + pad
    return (struct.pack("<II", btype, blen) + body + b"\0" * pad +
            struct.pack("<I", blen))


def write_pcapng(path, linktype, records):
    """pcapng: one section, one interface (microseconds), EPBs."""
    with open(path, "wb") as f:
        f.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0,
                                               -1)))
        f.write(_block(0x00000001, struct.pack("<HHI", linktype, 0, 0)))
        for ts, frame in records:
            t = int(round(ts * 1e6))
            f.write(_block(0x00000006, struct.pack(
                "<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame),
                len(frame)) + frame))
    return path


def ipfix_message(seq, size, domain=7):
    """A well-formed IPFIX message of `size` bytes: header and one data
    set of opaque records (set id 256)."""
    body = bytes((seq * 31 + i * 7) & 0xFF for i in range(size - 20))
    return (struct.pack("!HHIII", 10, size, 1700000000 + seq, seq, domain) +
            struct.pack("!HH", 256, size - 16) + body)


# ---------------------------------------------------------------------------
# Running jobs

class Job:
    """A sink, a gateway and the configuration of a file job client."""

    def __init__(self, gateway=True):
        fp.require_binaries()
        self.dir = fp.tmpdir("fp-pcap-")
        self.keys_file = os.path.join(self.dir, "keys")
        self.key_file = os.path.join(self.dir, "client.key")
        fp.genkey("kit-pcap", self.keys_file, self.key_file)
        self.spool = os.path.join(self.dir, "spool")
        self.sink = self.gw = None
        if gateway:
            self.sink = fp.Sink("127.0.0.1")
            self.gw = fp.Gateway(self.keys_file, [self.sink.address])
            url = self.gw.url
        else:
            # nothing listens there: every POST fails at once
            url = "http://127.0.0.1:%d/flowpost" % fp.free_port()
        self.conf = fp.write_ini(os.path.join(self.dir, "client.conf"),
                                 "client", {
                                     "gateway_url": url,
                                     "proxy": "none",
                                     "client_id": "kit-pcap",
                                     "key_file": self.key_file,
                                     "spool_dir": self.spool,
                                     "retry_initial": "1s",
                                     "retry_max": "2s",
                                 })
        self.n = 0

    def start(self, files, args=()):
        self.n += 1
        argv = [fp.client_bin(), "-c", self.conf] + list(args) + \
            ["--pcap-file"] + list(files)
        return fp.Proc("job%d" % self.n, argv, self.dir)

    def run(self, files, args=(), timeout=120):
        p = self.start(files, args)
        try:
            rc = p.p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("file job did not end within %ds" % timeout)
        return rc, p.log_text()

    def stats(self):
        out = {}
        try:
            with open(os.path.join(self.spool, "client.stats")) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if v.strip().isdigit():
                        out[k] = int(v)
        except FileNotFoundError:
            pass
        return out

    def spool_files(self):
        return sorted(f for f in os.listdir(self.spool)
                      if f.endswith(".fpb")) if os.path.isdir(self.spool) \
            else []

    def dump(self):
        """Entries of every spooled batch, in order, via fp-spooldump."""
        tool = os.path.join(fp.BIN, "tests", "fp-spooldump")
        if not os.access(tool, os.X_OK):
            raise fp.Skip("%s not built" % tool)
        files = [os.path.join(self.spool, f) for f in self.spool_files()]
        assert files, "the spool holds no batches"
        r = fp.run([tool, self.key_file] + files, timeout=60)
        assert r.returncode == 0, r.stderr
        out = []
        for line in r.stdout.splitlines():
            (seq, idx, recv_us, fam, addr, sport, dport, ln,
             hexp) = line.split("\t")
            out.append({"seq": int(seq), "recv_us": int(recv_us),
                        "family": int(fam), "addr": addr,
                        "src_port": int(sport), "dst_port": int(dport),
                        "payload": bytes.fromhex(hexp)})
        return out


def corpus_files():
    files = fp.corpus_exports()
    if files is None:
        files = fp.project_exports()
        fp.log("full corpus not found: using tests/data/exports")
    assert files, "no captures found"
    return files


def expected(files):
    dgs = []
    for path in files:
        dgs += fp.load_pcap(path)
    return dgs


# ---------------------------------------------------------------------------
# Tests

def test_corpus_delivered():
    files = corpus_files()
    want = expected(files)
    j = Job()
    start = time.monotonic()
    rc, text = j.run(files)
    assert rc == 0, "file job exited %s" % rc
    fp.log("%d captures, %d datagrams delivered in %.1fs" % (
        len(files), len(want), time.monotonic() - start))
    # the job exits only once everything is acknowledged, so the
    # collector has it all by now (the gateway sent before it acked)
    assert j.sink.wait_count(len(want), 10), \
        "collector got %d of %d" % (j.sink.count(), len(want))
    diff = fp.compare_sequences([d.payload for d in want],
                                j.sink.payloads())
    assert diff is None, diff
    assert not j.sink.wait_count(len(want) + 1, 1.0), \
        "collector got %d datagrams, %d sent" % (j.sink.count(), len(want))
    st = j.stats()
    assert st["pcap_received"] == len(want), st
    assert st["received_datagrams"] == len(want), st
    assert st["acked_datagrams"] == len(want), st
    assert st["spool_batches"] == 0, st
    assert st["pcap_truncated"] == 0 and st["pcap_non_udp"] == 0, st
    assert j.spool_files() == [], j.spool_files()
    assert "delivered and acknowledged" in text, text[-500:]


def test_corpus_spooled_addresses():
    files = corpus_files()
    want = expected(files)
    j = Job()
    rc, text = j.run(files, ["--spool-only"])
    assert rc == 0, "--spool-only job exited %s" % rc
    st = j.stats()
    assert st["posts"] == 0, "--spool-only contacted the gateway: %s" % st
    assert j.sink.count() == 0
    got = j.dump()
    assert len(got) == len(want), "spool holds %d entries, %d expected" % (
        len(got), len(want))
    for i, (e, d) in enumerate(zip(got, want)):
        where = "entry %d (%s:%d)" % (i, d.src_ip, d.src_port)
        assert e["payload"] == d.payload, where + ": payload differs"
        assert e["family"] == (6 if ":" in d.src_ip else 4), where
        assert socket.inet_pton(_fam(e["addr"]), e["addr"]) == \
            socket.inet_pton(_fam(d.src_ip), d.src_ip), \
            "%s: address %s, capture says %s" % (where, e["addr"], d.src_ip)
        assert e["src_port"] == d.src_port, where
        assert e["dst_port"] == d.dst_port, where
        assert abs(e["recv_us"] - d.ts * 1e6) < 2, \
            "%s: recv_us %d, capture time %.6f" % (where, e["recv_us"], d.ts)
    seqs = [e["seq"] for e in got]
    assert seqs == sorted(seqs), "batches out of order"
    fp.log("%d spooled entries carry the capture's addresses, ports and "
           "times" % len(got))

    # the next job on the same spool sends the waiting batches first
    one = fp.v5_datagram(1, 1, unix_secs=1700000000)
    tiny = write_pcap(os.path.join(j.dir, "tiny.pcap"), 1, [
        (1700000000.5, eth(0x0800, ipv4("192.0.2.7", "198.51.100.1",
                                         udp(5000, 2055, one))))])
    rc, text = j.run([tiny])
    assert rc == 0, "second job exited %s" % rc
    assert j.sink.wait_count(len(want) + 1, 10)
    diff = fp.compare_sequences([d.payload for d in want] +
                                [one], j.sink.payloads())
    assert diff is None, "spooled batches first, in order: %s" % diff
    assert j.spool_files() == []


def _fam(a):
    return socket.AF_INET6 if ":" in a else socket.AF_INET


def synthetic(dirpath):
    """Writes the test's own captures; returns (files, expected payloads in
    order, expected (addr, sport, dport) per payload, counts)."""
    src4, dst4 = "192.0.2.10", "198.51.100.20"
    src6, dst6 = "2001:db8::a", "2001:db8:1::14"
    v5 = fp.v5_stream(12, seed=5)
    big4 = ipfix_message(1, 3472)
    big4b = ipfix_message(2, 2000)
    big6 = ipfix_message(3, 3472)
    ov = ipfix_message(4, 3000)
    lost = ipfix_message(5, 3000)
    want, meta = [], []
    t = 1700000000.0

    def add(payload, a, sp, dp):
        want.append(payload)
        meta.append((a, sp, dp))

    files = []
    # 1: Ethernet with 802.1Q and QinQ tags, TCP in between, truncated
    recs = []
    for i, d in enumerate(v5[:6]):
        tags = ((0x8100,), (0x88A8, 0x8100), ())[i % 3]
        recs.append((t + i, eth(0x0800, ipv4(src4, dst4,
                                             udp(50000 + i, 2055, d)),
                                tags)))
        add(d, src4, 50000 + i, 2055)
    recs.append((t + 7, eth(0x0800, ipv4(src4, dst4, b"\0" * 40, proto=6))))
    cut = eth(0x0800, ipv4(src4, dst4, udp(50009, 2055, v5[6])))
    recs.append((t + 8, cut[:200], len(cut)))          # snaplen cut
    files.append(write_pcap(os.path.join(dirpath, "vlan.pcap"), 1, recs))

    # 2: Linux cooked (SLL) over IPv6 with extension headers
    recs = []
    for i, d in enumerate(v5[7:10]):
        body = ext8(43) + ext8(60) + ext8(17) + udp(51000 + i, 9995, d)
        recs.append((t + 10 + i, sll(0x86DD, ipv6(src6, dst6, 0, body))))
        add(d, src6, 51000 + i, 9995)
    files.append(write_pcap(os.path.join(dirpath, "sll.pcap"), 113, recs))

    # 3: pcapng, SLL2: IPv4 fragments out of order, interleaved with a
    # whole datagram, then a second fragmented message in order
    recs = []
    f4 = ipv4_fragments(src4, dst4, udp(52000, 4739, big4), ident=77)
    assert len(f4) == 3
    recs.append((t + 20, sll2(0x0800, f4[2])))
    recs.append((t + 20.1, sll2(0x0800, ipv4(src4, dst4,
                                              udp(52001, 2055, v5[10])))))
    add(v5[10], src4, 52001, 2055)
    recs.append((t + 20.2, sll2(0x0800, f4[0])))
    recs.append((t + 20.3, sll2(0x0800, f4[1])))
    add(big4, src4, 52000, 4739)
    for k, fr in enumerate(ipv4_fragments(src4, dst4,
                                          udp(52002, 4739, big4b), 78)):
        recs.append((t + 21 + k / 10, sll2(0x0800, fr)))
    add(big4b, src4, 52002, 4739)
    files.append(write_pcapng(os.path.join(dirpath, "sll2.pcapng"), 276,
                              recs))

    # 4: raw IPv6: fragments in reverse order, a destination options
    # header after the fragment header; an overlapping set; a set whose
    # last part never comes; a truncated fragment
    recs = []
    body = ext8(17) + udp(53000, 4739, big6)
    f6 = ipv6_fragments(src6, dst6, body, 60, ident=0x1234)
    for k, fr in enumerate(reversed(f6)):
        recs.append((t + 30 + k / 10, fr))
    add(big6, src6, 53000, 4739)
    fo = ipv6_fragments(src6, dst6, udp(53001, 4739, ov), 17, ident=0x99)
    bad = bytearray(fo[1])
    off = struct.unpack_from("!H", bad, 42)[0]
    struct.pack_into("!H", bad, 42, off - 8)        # overlaps part 0
    recs += [(t + 31, fo[0]), (t + 31.1, bytes(bad)), (t + 31.2, fo[2])]
    fl = ipv6_fragments(src6, dst6, udp(53002, 4739, lost), 17, ident=0x77)
    recs += [(t + 32, fl[0]), (t + 32.1, fl[1])]
    recs.append((t + 33, f6[0][:100], len(f6[0])))  # truncated fragment
    d = v5[11]
    recs.append((t + 34, ipv6(src6, dst6, 17, udp(53003, 2055, d))))
    add(d, src6, 53003, 2055)
    files.append(write_pcap(os.path.join(dirpath, "raw6.pcap"), 101, recs))
    # fragments: 3 + 2 (file 3), 3 + 3 + 2 (file 4); the truncated one
    # counts as truncated
    counts = {"truncated": 2, "non_udp": 1, "reassembled": 3,
              "reasm_dropped": 1, "reasm_timeouts": 2, "fragments": 13}
    return files, want, meta, counts


def test_synthetic_captures():
    j = Job()
    files, want, meta, counts = synthetic(j.dir)
    rc, text = j.run(files)
    assert rc == 0, "file job exited %s" % rc
    assert j.sink.wait_count(len(want), 10), \
        "collector got %d of %d" % (j.sink.count(), len(want))
    diff = fp.compare_sequences(want, j.sink.payloads())
    assert diff is None, diff
    assert not j.sink.wait_count(len(want) + 1, 1.0), \
        "collector got more than the whole datagrams"
    st = j.stats()
    fp.log("stats: %s" % fp.fmt_stats({k: v for k, v in st.items()
                                       if k.startswith("pcap_")}))
    assert st["pcap_truncated"] == counts["truncated"], st
    assert st["pcap_non_udp"] == counts["non_udp"], st
    assert st["pcap_reassembled"] == counts["reassembled"], st
    assert st["pcap_reasm_dropped"] == counts["reasm_dropped"], st
    # the overlapping set's third part and the lost message's two parts
    # are left over when the input ends
    assert st["pcap_reasm_timeouts"] == counts["reasm_timeouts"], st
    assert st["pcap_fragments"] == counts["fragments"], st
    assert st["acked_datagrams"] == len(want), st

    # the same captures spooled: exporter addresses and ports survive
    k = Job(gateway=False)
    files, want, meta, counts = synthetic(k.dir)
    rc, text = k.run(files, ["--spool-only"])
    assert rc == 0, "--spool-only job exited %s" % rc
    got = k.dump()
    assert [e["payload"] for e in got] == want
    for e, (a, sp, dp) in zip(got, meta):
        assert socket.inet_pton(_fam(a), a) == \
            socket.inet_pton(_fam(e["addr"]), e["addr"]), (e["addr"], a)
        assert (e["src_port"], e["dst_port"]) == (sp, dp), e


def test_file_filter_and_fragments():
    """A port filter cannot see the later fragments of a datagram: they
    pass it anyway, and the filter decides on the reassembled datagram."""
    j = Job()
    files, want, meta, counts = synthetic(j.dir)
    keep = [w for w, m in zip(want, meta) if m[2] == 4739]
    assert len(keep) == 3
    rc, text = j.run(files, ["--pcap-file-filter", "udp and dst port 4739"])
    assert rc == 0, "file job exited %s" % rc
    assert j.sink.wait_count(len(keep), 10)
    diff = fp.compare_sequences(keep, j.sink.payloads())
    assert diff is None, diff
    assert j.stats()["dropped_invalid"] == 0

    # a filter none of them matches: the IPv6 message (whose parts all
    # pass, see PCAP_FRAGMENTS) is reassembled, then filtered out
    k = Job()
    files, want, meta, counts = synthetic(k.dir)
    rc, text = k.run(files, ["--pcap-file-filter", "udp and dst port 9996"])
    assert rc == 0, "file job exited %s" % rc
    st = k.stats()
    assert st["pcap_reassembled"] >= 1, st
    assert st["received_datagrams"] == 0, st
    assert not k.sink.wait_count(1, 1.0), "a filtered datagram was sent"


def test_unreachable_gateway_times_out():
    j = Job(gateway=False)
    files = corpus_files()[:3]
    start = time.monotonic()
    rc, text = j.run(files, ["--pcap-timeout", "3s"], timeout=60)
    took = time.monotonic() - start
    assert rc == 1, "exit status %s, wanted 1" % rc
    assert took < 30, "took %.1fs to give up" % took
    assert "--pcap-timeout" in text and "stay spooled" in text, text[-800:]
    assert j.spool_files(), "the spool must keep the batches"
    st = j.stats()
    assert st["posts_failed"] >= 1 and st["acked_datagrams"] == 0, st


def test_sigterm_keeps_spool():
    j = Job(gateway=False)
    files = corpus_files()[:3]
    p = j.start(files, ["--pcap-timeout", "10m"])
    fp.wait_for(lambda: j.spool_files() and
                j.stats().get("posts_failed", 0) >= 1, 30,
                what="batches spooled and a failed POST")
    p.signal(signal.SIGTERM)
    try:
        rc = p.p.wait(15)
    except subprocess.TimeoutExpired:
        raise AssertionError("file job did not stop within 15s of SIGTERM")
    assert rc == 1, "exit status %s after SIGTERM, wanted 1" % rc
    text = p.log_text()
    assert "stay spooled" in text, text[-800:]
    assert j.spool_files()


def test_bad_invocations():
    j = Job(gateway=False)
    r = fp.run([fp.client_bin(), "-c", j.conf, "--spool-only"])
    assert r.returncode == 2 and "--pcap-file" in r.stderr, r
    r = fp.run([fp.client_bin(), "-c", j.conf, "--pcap-file"])
    assert r.returncode == 2 and "needs a file" in r.stderr, r
    r = fp.run([fp.client_bin(), "-c", j.conf, "--pcap-timeout", "0",
                "--pcap-file", "x.pcap"])
    assert r.returncode == 2, r
    notpcap = os.path.join(j.dir, "not.pcap")
    with open(notpcap, "wb") as f:
        f.write(b"this is not a capture file at all\n" * 4)
    good = corpus_files()[0]
    rc, text = j.run([good, notpcap])
    assert rc == 1, "exit status %s for an unreadable file" % rc
    assert "not.pcap" in text, text[-500:]
    assert j.spool_files() == [], "nothing may be spooled"
    r = fp.run([fp.client_bin(), "-c", j.conf, "--input", "pcap-file:",
                "--check-config"])
    assert r.returncode == 2 and "pcap-file" in r.stderr, r
    r = fp.run([fp.client_bin(), "-c", j.conf, "--pcap-file-filter",
                "udp and (", "--check-config"])
    assert r.returncode == 2 and "pcap_file_filter" in r.stderr, r


def test_damaged_file():
    """A file cut in the middle of a record (a capture killed hard): what
    comes before the damage is delivered, and the exit status says 1."""
    src = max(corpus_files(), key=os.path.getsize)
    full = [d.payload for d in fp.load_pcap(src)]
    j = Job()
    cut = os.path.join(j.dir, "cut.pcap")
    with open(src, "rb") as f:
        data = f.read()
    with open(cut, "wb") as f:
        f.write(data[:len(data) * 2 // 3])
    rc, text = j.run([cut])
    assert rc == 1, "exit status %s for a damaged file" % rc
    assert "could not be read to the end" in text, text[-800:]
    got = j.sink.payloads()
    assert 0 < len(got) < len(full) and got == full[:len(got)], \
        "got %d datagrams, not a prefix of the file's %d" % (len(got),
                                                             len(full))
    assert j.spool_files() == [], "the readable part must be delivered"


def test_spool_in_use_refused():
    s = fp.Stack(client_id="kit-busy", start_client=True)
    conf = fp.write_ini(os.path.join(s.dir, "job.conf"), "client", {
        "gateway_url": s.gw.url, "proxy": "none", "client_id": "kit-busy",
        "key_file": s.key_file, "spool_dir": s.cl.spool_dir})
    r = fp.run([fp.client_bin(), "-c", conf, "--pcap-file",
                corpus_files()[0]])
    assert r.returncode == 2, r
    assert "in use" in r.stderr and str(s.cl.pid) in r.stderr, r.stderr


def test_progress_on_terminal():
    j = Job()
    files = corpus_files()[:4]
    want = expected(files)
    master, slave = pty.openpty()
    argv = [fp.client_bin(), "-c", j.conf, "--pcap-file"] + files
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave,
                         preexec_fn=fp._child_setup)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if master in r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        rc = p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    text = out.decode("utf-8", "replace")
    assert rc == 0, "exit status %s: %s" % (rc, text[-500:])
    # the line is redrawn in place: carriage return, erase to end of line
    assert "\r" in text and "\x1b[K" in text, repr(text[-500:])
    line = "file %d/%d, %d datagrams" % (len(files), len(files), len(want))
    assert line in text and "100%" in text, repr(text[-500:])


if __name__ == "__main__":
    fp.main(test_corpus_delivered, test_corpus_spooled_addresses,
            test_synthetic_captures, test_file_filter_and_fragments,
            test_unreachable_gateway_times_out,
            test_sigterm_keeps_spool, test_bad_invocations,
            test_damaged_file,
            test_spool_in_use_refused, test_progress_on_terminal)
