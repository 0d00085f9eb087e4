#!/usr/bin/env python3
"""
bench/test_tools.py: checks that fp-gen and fp-sink, the instruments of
bench/run, measure what they claim.

  - fp-gen is reproducible from its seed, and its datagrams are well-formed
    NetFlow v5 / IPFIX with correct per-exporter sequence numbers, inside
    a valid pcap file;
  - fp-gen -> fp-sink on loopback: every datagram arrives, the digests
    agree, records are counted (IPFIX through the template);
  - fp-sink's sequence accounting tells gaps, late arrivals and duplicates
    apart, and it stops on its own when no traffic comes.

Usage: test_tools.py FP_GEN FP_SINK (or FP_GEN / FP_SINK in the
environment).  Loopback only; every process is bounded and reaped.
Prints "N passed, N failed".
"""

import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile

GEN = SINK = None
LOAD = GATEWAY = None  # fp-load; flowpost-gateway (FP_GATEWAY, optional)


def sink_start(*args):
    p = subprocess.Popen([SINK, "--listen", "127.0.0.1:0"] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r, _, _ = select.select([p.stdout], [], [], 10)
    assert r, "fp-sink printed nothing"
    ready = json.loads(p.stdout.readline())
    port = int(ready["listening"].rsplit(":", 1)[1])
    return p, port


def sink_result(p, timeout=30):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("fp-sink did not stop by itself")
    return p.returncode, json.loads(out.decode().strip().splitlines()[-1])


def gen(*args):
    r = subprocess.run([GEN] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def read_pcap(path):
    """[(src_port, payload)] of a big- or little-endian Ethernet pcap,
    checking the IPv4 and UDP headers on the way."""
    data = open(path, "rb").read()
    magic = data[:4]
    assert magic in (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1"), magic
    e = ">" if magic == b"\xa1\xb2\xc3\xd4" else "<"
    _, major, minor, _, _, snap, link = struct.unpack(e + "IHHiIII", data[:24])
    assert (major, minor, link) == (2, 4, 1)
    out, off = [], 24
    while off < len(data):
        _, _, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        assert incl == orig
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        assert pkt[12:14] == b"\x08\x00"
        ip = pkt[14:34]
        s = sum(struct.unpack(">10H", ip))
        while s >> 16:
            s = (s & 0xffff) + (s >> 16)
        assert s == 0xffff, "bad IPv4 checksum"
        assert ip[9] == 17 and struct.unpack(">H", ip[2:4])[0] == incl - 14
        sport, dport, ulen = struct.unpack(">HHH", pkt[34:40])
        assert ulen == incl - 34
        out.append((sport, pkt[42:]))
    return out


def test_reproducible_pcap_v5():
    with tempfile.TemporaryDirectory() as d:
        a, b, c = (os.path.join(d, n) for n in "abc")
        ga = gen("--out", a, "--records", "3000", "--seed", "7",
                 "--exporters", "3")
        gb = gen("--out", b, "--records", "3000", "--seed", "7",
                 "--exporters", "3")
        gen("--out", c, "--records", "3000", "--seed", "8",
            "--exporters", "3")
        assert open(a, "rb").read() == open(b, "rb").read()
        assert ga["hash"] == gb["hash"]
        assert open(a, "rb").read() != open(c, "rb").read()
        pkts = read_pcap(a)
        assert len(pkts) == ga["datagrams"] == 100
        seq = {}
        protos = set()
        for sport, p in pkts:
            ver, count, _, _, _, flow_seq, etype, eid = struct.unpack(
                ">HHIIIIBB", p[:22])
            assert ver == 5 and count == 30 and len(p) == 24 + 48 * 30
            assert flow_seq == seq.get(eid, 0), "v5 flow_sequence"
            seq[eid] = flow_seq + count
            for i in range(count):
                r = p[24 + 48 * i:24 + 48 * (i + 1)]
                pkts_, octets, first, last = struct.unpack(">IIII", r[16:32])
                assert pkts_ >= 1 and octets >= 40 * pkts_ and first <= last
                protos.add(r[38])
        assert sorted(seq) == [0, 1, 2] and sum(seq.values()) == 3000
        assert {1, 6, 17} <= protos, protos


def test_pcap_ipfix():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.pcap")
        g = gen("--out", path, "--records", "5000", "--version", "10",
                "--exporters", "2")
        seq, with_tmpl, total = {}, set(), 0
        for sport, p in read_pcap(path):
            ver, mlen, _, mseq, dom = struct.unpack(">HHIII", p[:16])
            assert ver == 10 and mlen == len(p) and mlen <= 1400
            assert mseq == seq.get(dom, 0), "IPFIX sequence"
            off, n = 16, 0
            while off < mlen:
                sid, slen = struct.unpack(">HH", p[off:off + 4])
                if sid == 2:
                    with_tmpl.add(dom)
                    tid, nf = struct.unpack(">HH", p[off + 4:off + 8])
                    assert tid == 256 and slen == 8 + 4 * nf
                else:
                    assert sid == 256 and dom in with_tmpl, \
                        "data before template"
                    assert (slen - 4) % 55 == 0
                    n += (slen - 4) // 55
                off += slen
            assert off == mlen
            seq[dom] = mseq + n
            total += n
        assert total == g["records"] == 5000 and sorted(seq) == [1, 2]


def loopback(version):
    sink, port = sink_start("--idle", "2", "--timeout", "60")
    g = gen("--dest", "127.0.0.1:%d" % port, "--records", "60000",
            "--rate", "300000", "--exporters", "3", "--version", version)
    rc, s = sink_result(sink)
    assert s["datagrams"] == g["datagrams"] and s["bytes"] == g["bytes"], s
    assert s["hash"] == g["hash"] and s["set_hash"] == g["set_hash"]
    assert s["records"] == 60000 and s["streams"] == 3
    assert s["seq_gaps"] == s["seq_duplicates"] == s["seq_uncounted"] == 0
    # --expect and --expect-hash: the verdict is the exit code.
    sink, port = sink_start("--expect", str(g["datagrams"]),
                            "--expect-hash", g["hash"], "--idle", "5")
    gen("--dest", "127.0.0.1:%d" % port, "--records", "60000",
        "--rate", "300000", "--exporters", "3", "--version", version)
    rc, s = sink_result(sink)
    assert rc == 0 and s["match"] is True and s["stop"] == "expect", s


def test_loopback_v5():
    loopback("5")


def test_loopback_ipfix():
    loopback("10")


def v5(seq, engine=1, count=30):
    hdr = struct.pack(">HHIIIIBBH", 5, count, 1000, 1700000000, 0, seq, 0,
                      engine, 0)
    return hdr + bytes(48 * count)


def test_sequence_accounting():
    sink, port = sink_start("--idle", "1", "--timeout", "20")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # 0, 30, then 90 (60..89 missing), 60 late, 60 again, 120.
        for seq in (0, 30, 90, 60, 60, 120):
            s.sendto(v5(seq), ("127.0.0.1", port))
        # A second exporter (other engine id) is a separate stream.
        s.sendto(v5(5000, engine=2), ("127.0.0.1", port))
        # IPFIX data for a template never seen: records cannot be told.
        msg = struct.pack(">HHIII", 10, 16 + 8, 0, 0, 9) + \
            struct.pack(">HH", 300, 8) + bytes(4)
        s.sendto(msg, ("127.0.0.1", port))
        s.sendto(b"not netflow", ("127.0.0.1", port))
    rc, r = sink_result(sink)
    assert r["datagrams"] == 9 and r["streams"] == 3, r
    assert r["seq_gaps"] == 1 and r["seq_missing_records"] == 0, r
    assert r["seq_reordered"] == 1 and r["seq_duplicates"] == 1, r
    assert r["seq_uncounted"] == 1 and r["invalid"] == 1, r
    assert r["records"] == 7 * 30, r


def test_sink_stops_without_traffic():
    sink, _ = sink_start("--idle", "0.3", "--timeout", "10")
    rc, r = sink_result(sink, timeout=10)
    assert r["stop"] == "no_traffic" and r["datagrams"] == 0, r
    sink, _ = sink_start("--idle", "30", "--timeout", "0.5")
    rc, r = sink_result(sink, timeout=10)
    assert r["stop"] == "timeout", r


def test_chunk_sync():
    """--chunk waits on a counter file: it goes on when the counter has
    settled short (counted as sync_short), and gives up (exit 1) when the
    file is not rewritten at all (a stalled writer)."""
    import threading
    import time
    with tempfile.TemporaryDirectory() as d, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        stats = os.path.join(d, "client.stats")
        stop = threading.Event()

        def writer():
            while not stop.is_set():
                tmp = stats + ".tmp"
                with open(tmp, "w") as f:
                    f.write("pid 1\nreceived_datagrams 3\nother 9\n")
                os.rename(tmp, stats)
                time.sleep(0.1)
        t = threading.Thread(target=writer)
        t.start()
        try:
            g = gen("--dest", "127.0.0.1:%d" % port, "--records", "600",
                    "--chunk", "5", "--sync-file", stats,
                    "--sync-timeout", "10")
        finally:
            stop.set()
            t.join()
        assert g["stop"] == "records" and g["datagrams"] == 20, g
        assert g["sync_short"] == 5, g
        r = subprocess.run([GEN, "--dest", "127.0.0.1:%d" % port,
                            "--records", "600", "--chunk", "5",
                            "--sync-file", stats, "--sync-timeout", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        assert r.returncode == 1, r
        assert json.loads(r.stdout)["stop"] == "sync_timeout"


def test_gen_refuses_unbounded():
    r = subprocess.run([GEN, "--dest", "127.0.0.1:9"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert r.returncode == 2 and b"bounded" in r.stderr


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepts(port, proc, timeout=10):
    """True once 127.0.0.1:port accepts, False if proc died or time ran
    out."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def load(*args, timeout=60):
    r = subprocess.run([LOAD] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    out = r.stdout.decode().strip().splitlines()
    return r.returncode, (json.loads(out[-1]) if out else None), r.stderr


def test_load_against_gateway():
    """fp-load: 20 clients, each its own key, address and keep-alive
    connection, 2 batches each, all acknowledged, every datagram at the
    collector; a gateway that refuses (unknown client ids: 403) makes
    it exit 1; a bad option exits 2."""
    rc, _, err = load("--clients", "0", "--write-keys", "/dev/null")
    assert rc == 2, err
    if not GATEWAY:
        print("     (no FP_GATEWAY: fp-load against a gateway skipped)")
        return
    n, k, d = 20, 2, 3
    with tempfile.TemporaryDirectory() as tmp:
        keys = os.path.join(tmp, "keys")
        others = os.path.join(tmp, "others")
        rc, j, err = load("--write-keys", keys, "--clients", str(n))
        assert rc == 0 and j["keys_written"] == n, err
        assert oct(os.stat(keys).st_mode & 0o777) == "0o600"
        rc, _, err = load("--write-keys", others, "--clients", "3",
                          "--id-prefix", "stranger")
        assert rc == 0, err
        sink, sport = sink_start("--expect", str(n * k * d), "--linger",
                                 "0.5", "--idle", "10", "--timeout", "60")
        gport = free_tcp_port()
        conf = os.path.join(tmp, "gw.conf")
        with open(conf, "w") as f:
            f.write("[gateway]\nlisten = 127.0.0.1:%d\n"
                    "collector = 127.0.0.1:%d\nstate_dir = %s\n"
                    "keys_file = %s\nmetrics_listen = none\n"
                    "stats_interval = 0\nlog_level = warn\n"
                    % (gport, sport, os.path.join(tmp, "state"), keys))
        gw = subprocess.Popen([GATEWAY, "-c", conf],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        try:
            assert wait_accepts(gport, gw), "gateway did not start"
            dest = "127.0.0.1:%d" % gport
            rc, j, err = load("--gateway", dest, "--keys", keys,
                              "--clients", str(n), "--batches", str(k),
                              "--datagrams", str(d), "--timeout", "30")
            assert rc == 0, (j, err)
            assert j["ok"] == n * k and j["failed"] == 0, j
            assert j["not_made"] == 0 and j["ack_new"] == n * k, j
            assert j["peak_open"] == n and j["open_at_end"] == n, j
            assert j["statuses"] == {"200": n * k}, j
            assert j["datagrams"] == n * k * d, j
            assert j["records"] == n * k * d * 30, j
            # Clients the gateway does not know: 403, exit 1.
            rc, bad, err = load("--gateway", dest, "--keys", others,
                                "--clients", "3", "--batches", "1",
                                "--timeout", "30")
            assert rc == 1, (bad, err)
            assert bad["ok"] == 0 and bad["failed"] == 3, bad
            assert bad["failed_status"] == 3, bad
            assert bad["statuses"] == {"403": 3}, bad
            assert b"403" in err, err
        finally:
            gw.terminate()
            gw.wait(15)
        rc, s = sink_result(sink)
        assert s["datagrams"] == n * k * d, s
        assert s["set_hash"] == j["set_hash"], (s, j)
        # One exporter per client, its flow sequence numbers unbroken.
        assert s["streams"] == n and s["seq_gaps"] == 0, s
        assert s["seq_duplicates"] == 0 and s["invalid"] == 0, s


def main(argv):
    global GEN, SINK, LOAD, GATEWAY
    GEN = argv[1] if len(argv) > 2 else os.environ.get("FP_GEN")
    SINK = argv[2] if len(argv) > 2 else os.environ.get("FP_SINK")
    if not GEN or not SINK:
        print("usage: test_tools.py FP_GEN FP_SINK", file=sys.stderr)
        return 2
    LOAD = os.environ.get("FP_LOAD") or os.path.join(
        os.path.dirname(os.path.abspath(GEN)), "fp-load")
    GATEWAY = os.environ.get("FP_GATEWAY")
    tests = [(n, f) for n, f in sorted(globals().items())
             if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, f in tests:
        try:
            f()
            passed += 1
            print("ok   %s" % name)
        except Exception as e:
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
