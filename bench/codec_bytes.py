#!/usr/bin/env python3
"""Bytes per flow record of the batch codecs.

    bench/codec_bytes.py [--fp-codec PATH] [--repeat N] [PCAP...]

Two kinds of input, each cut into batches the way the client cuts them
(256 KiB of entries, PROTOCOL.md 1.2):

- softflowd v5: every pcap of tests/data/traffic and
  /work/shared/corpus/traffic, each distinct file once (or the PCAPs
  given), is turned into NetFlow v5 by `softflowd -d -r FILE -c none -v 5 -n
  127.0.0.1:PORT`, whose datagrams a UDP socket here receives;
- exports: the UDP datagrams of tests/data/exports (and of
  /work/shared/corpus/exports when it exists), as captured.

For each it prints raw bytes, gzip -6 of the same batch contents (Python's
gzip), and the sealed size with codec 1 (zlib), codec 2 (nfpack + zlib)
and codec 3 (nfpack3 + zlib) at levels 1, 3, 6 and 9, per v5 flow record
(v5 sets) or per datagram, and the sealing and opening time per batch.
The sealed sizes and times come from bench/fp-codec (built with the
tree), which also checks that every batch opens to the original bytes.
Sealed sizes include the batch header and tag (86 bytes a batch here).
"""
import argparse
import glob
import gzip
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_MAX = 256 * 1024
CORPUS = "/work/shared/corpus/exports"
CORPUS_TRAFFIC = "/work/shared/corpus/traffic"


def entry(recv_us, family, addr, sport, dport, payload):
    """One datagram entry, PROTOCOL.md 1.2."""
    a = addr + bytes(16 - len(addr))
    return struct.pack(">QBBH16sHH", recv_us, family, 0, sport, a, dport,
                       len(payload)) + payload


def pcap_datagrams(path):
    """(recv_us, family, addr, sport, dport, payload) of every UDP packet."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        end = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        end = ">"
    else:
        return
    link = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if link == 1:
            p = 12
        elif link == 113:
            p = 14
        else:
            return
        if len(pkt) < p + 2:
            continue
        etype = struct.unpack(">H", pkt[p:p + 2])[0]
        p += 2
        if etype == 0x0800 and len(pkt) >= p + 20:
            ihl = (pkt[p] & 0x0F) * 4
            proto = pkt[p + 9]
            fam, addr = 4, pkt[p + 12:p + 16]
            p += ihl
        elif etype == 0x86DD and len(pkt) >= p + 40:
            proto = pkt[p + 6]
            fam, addr = 6, pkt[p + 8:p + 24]
            p += 40
        else:
            continue
        if proto != 17 or len(pkt) < p + 8:
            continue
        sport, dport, ulen = struct.unpack(">HHH", pkt[p:p + 6])
        payload = pkt[p + 8:p + ulen]
        if ulen <= 8 or len(payload) != ulen - 8:
            continue
        yield sec * 1000000 + usec, fam, addr, sport, dport, payload


def softflowd_datagrams(pcaps):
    """NetFlow v5 datagrams softflowd exports for the pcaps."""
    if shutil.which("softflowd") is None:
        return None
    out = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    for f in pcaps:
        subprocess.run(["softflowd", "-d", "-r", f, "-c", "none", "-v", "5",
                        "-n", "127.0.0.1:%d" % port],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120, check=False)
        # softflowd has exited: what it sent is in the socket's queue.
        s.setblocking(False)
        while True:
            try:
                payload, (host, sport) = s.recvfrom(65535)
            except BlockingIOError:
                break
            out.append((int(time.time() * 1e6), 4, socket.inet_aton(host),
                        sport, port, payload))
    s.close()
    return out


def v5_records(payload):
    """Flow records of a well-formed v5 datagram, else 0."""
    if len(payload) < 72 or payload[:2] != b"\x00\x05" or \
            (len(payload) - 24) % 48:
        return 0
    n = (len(payload) - 24) // 48
    return n if struct.unpack(">H", payload[2:4])[0] == n else 0


def batches(entries):
    """Contents (health word 0 + entries) cut as the client cuts them."""
    cur, size = [], 0
    for e in entries:
        if size + len(e) > BATCH_MAX and cur:
            yield b"\0\0\0\0" + b"".join(cur)
            cur, size = [], 0
        cur.append(e)
        size += len(e)
    if cur:
        yield b"\0\0\0\0" + b"".join(cur)


def distinct(paths):
    """The paths, each distinct file content once, in order."""
    seen, out = set(), []
    for p in paths:
        with open(p, "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
        if h not in seen:
            seen.add(h)
            out.append(p)
    return out


def measure(name, dgrams, fp_codec, repeat, target=False):
    """One table; with target, which codecs and levels meet target 2."""
    if not dgrams:
        print("%s: no datagrams" % name)
        return
    ents = [entry(*d) for d in dgrams]
    payload = sum(len(d[5]) for d in dgrams)
    recs = sum(v5_records(d[5]) for d in dgrams)
    all_v5 = recs > 0 and all(v5_records(d[5]) for d in dgrams)
    unit, n = ("v5 record", recs) if all_v5 else ("datagram", len(dgrams))
    contents = list(batches(ents))
    gz = sum(len(gzip.compress(c, compresslevel=6, mtime=0))
             for c in contents)
    res = subprocess.run([fp_codec, "-r", str(repeat)],
                         input=b"".join(ents), capture_output=True,
                         check=True).stdout.decode()
    print("%s: %d datagrams, %d v5 records, %d batches; bytes per %s"
          % (name, len(dgrams), recs, len(contents), unit))
    print("  %-16s %9s %7s" % ("", "bytes", "/" + unit.split()[-1]))
    print("  %-16s %9d %7.2f" % ("payload (raw)", payload, payload / n))
    print("  %-16s %9d %7.2f" % ("gzip -6", gz, gz / n))
    met = []
    for line in res.splitlines():
        kv = dict(f.split("=", 1) for f in line.split())
        sealed = int(kv["sealed"])
        label = "%s -%s" % (kv["codec"], kv["level"])
        print("  %-16s %9d %7.2f  %5.1f%% of raw, %+6.1f%% vs gzip -6, "
              "seal %s us/batch, open %s us/batch"
              % (label, sealed, sealed / n,
                 100.0 * sealed / payload, 100.0 * (sealed - gz) / gz,
                 kv["us_per_batch"], kv["us_per_open"]))
        if 4 * sealed <= payload and 4 * sealed <= 3 * gz:
            met.append(label)
    if target:
        print("  target 2 (at most 25%% of raw, at least 25%% below "
              "gzip -6): %s" % (", ".join(met) if met else "not met"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fp-codec", default=None,
                    help="path of the fp-codec binary")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("pcaps", nargs="*",
                    help="traffic pcaps for softflowd (default "
                    "tests/data/traffic/*.pcap and %s/*.pcap, each "
                    "distinct file once)" % CORPUS_TRAFFIC)
    a = ap.parse_args()
    fp = a.fp_codec
    if fp is None:
        # The most recently built one: older build trees may lack codecs.
        found = glob.glob(os.path.join(ROOT, "build*", "bench", "fp-codec"))
        if found:
            fp = max(found, key=os.path.getmtime)
    if fp is None or not os.access(fp, os.X_OK):
        sys.exit("codec_bytes: fp-codec not found; build the tree or pass "
                 "--fp-codec")
    traffic = a.pcaps or distinct(sorted(glob.glob(os.path.join(
        ROOT, "tests", "data", "traffic", "*.pcap"))) +
        sorted(glob.glob(os.path.join(CORPUS_TRAFFIC, "*.pcap"))))
    sf = softflowd_datagrams(traffic)
    if sf is None:
        print("softflowd v5: softflowd not installed, skipped")
    else:
        measure("softflowd v5", sf, fp, a.repeat, target=True)
    for d in [os.path.join(ROOT, "tests", "data", "exports"), CORPUS]:
        pcaps = sorted(glob.glob(os.path.join(d, "*.pcap")))
        if not pcaps:
            continue
        dg = [x for p in pcaps for x in pcap_datagrams(p)]
        measure("exports " + d, dg, fp, a.repeat)
        v5 = [x for x in dg if v5_records(x[5])]
        measure("exports v5 only " + d, v5, fp, a.repeat)


if __name__ == "__main__":
    main()
