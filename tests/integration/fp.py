"""
fp.py: harness for flowpost's integration tests.

Everything here runs real processes on loopback (127.0.0.1 and ::1 only) and
waits on conditions with bounded timeouts.  Every process, socket, thread and
temporary directory a test creates is registered and torn down by cleanup(),
which main() calls after each test and atexit calls as a last resort.

Python 3 standard library only.
"""

import atexit
import collections
import copy
import ctypes
import glob
import http.client
import ipaddress
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("FLOWPOST_SRC") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("FLOWPOST_BIN") or ""
DATA = os.path.join(SRC, "tests", "data")

SKIP = 77


class Skip(Exception):
    """Raised by a test that cannot run here (exit code 77)."""


def log(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------------------
# Waiting

def wait_for(pred, timeout, interval=0.05, what=None):
    """Polls pred() every `interval` seconds until it is true or `timeout`
    seconds have passed.  Returns the last value of pred() (true on success).
    With `what`, a timeout raises AssertionError naming it."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            if what is not None:
                raise AssertionError("timed out after %.1fs waiting for %s"
                                     % (timeout, what))
            return v
        # Polling interval between checks of the predicate, not a
        # synchronisation point in itself.
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Resource registry and teardown

_resources = []         # objects with .close(), closed in reverse order
_tmpdirs = []
_failed_logs = []       # processes whose logs are shown when a test fails


def _register(obj):
    _resources.append(obj)
    return obj


def tmpdir(prefix="flowpost-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def cleanup():
    """Stops every registered process, sink and server; removes temp dirs."""
    while _resources:
        obj = _resources.pop()
        try:
            obj.close()
        except Exception:
            traceback.print_exc()
    while _tmpdirs:
        shutil.rmtree(_tmpdirs.pop(), ignore_errors=True)


atexit.register(cleanup)


def _on_term(signum, frame):
    # ctest's time-out and an operator's ^C both end up here: unwind
    # through the tests' finally blocks so every child gets killed.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


def dump_logs():
    for p in list(_failed_logs):
        p.print_log()


def main(*tests):
    """Runs the given test functions in order and exits: 0 when all passed,
    77 when every test skipped, 1 when any failed.  Selects tests by name
    from argv when names are given."""
    names = sys.argv[1:]
    chosen = [t for t in tests if not names or t.__name__ in names]
    failed, skipped = [], []
    for t in chosen:
        log("=== %s" % t.__name__)
        _failed_logs.clear()
        start = time.monotonic()
        try:
            t()
            log("--- ok %s (%.1fs)" % (t.__name__, time.monotonic() - start))
        except Skip as e:
            log("--- skip %s: %s" % (t.__name__, e))
            skipped.append(t.__name__)
        except BaseException as e:
            traceback.print_exc()
            dump_logs()
            log("--- FAIL %s (%.1fs)" % (t.__name__, time.monotonic() - start))
            failed.append(t.__name__)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                cleanup()
                raise
        finally:
            cleanup()
    if failed:
        log("FAILED: %s" % " ".join(failed))
        sys.exit(1)
    if chosen and len(skipped) == len(chosen):
        sys.exit(SKIP)
    sys.exit(0)


# ---------------------------------------------------------------------------
# Binaries

def client_bin():
    return os.path.join(BIN, "client", "flowpost-client")


def gateway_bin():
    return os.path.join(BIN, "gateway", "flowpost-gateway")


def require_binaries(*which):
    """Skips the test unless FLOWPOST_BIN holds the named binaries
    ("client", "gateway"; both by default)."""
    which = which or ("client", "gateway")
    if not BIN:
        raise Skip("FLOWPOST_BIN is not set")
    for w in which:
        path = client_bin() if w == "client" else gateway_bin()
        if not os.access(path, os.X_OK):
            raise Skip("%s not built" % path)


def run(argv, timeout=30, **kw):
    """Runs a short command; returns CompletedProcess with text output."""
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True, errors="replace", **kw)


# ---------------------------------------------------------------------------
# Ports

def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    """A port that was free a moment ago: bind port 0, read it, close."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, kind)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_udp_port(host="127.0.0.1"):
    return free_port(socket.SOCK_DGRAM, host)


def fmt_hostport(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def udp_rcvbuf_errors():
    """Sum of the kernel's UDP RcvbufErrors (IPv4 + IPv6), or None.  A
    diagnostic only: other processes on the machine add to it too."""
    total, seen = 0, False
    try:
        with open("/proc/net/snmp") as f:
            lines = [l.split() for l in f if l.startswith("Udp:")]
        if len(lines) >= 2 and "RcvbufErrors" in lines[0]:
            total += int(lines[1][lines[0].index("RcvbufErrors")])
            seen = True
    except OSError:
        pass
    try:
        with open("/proc/net/snmp6") as f:
            for l in f:
                k, _, v = l.partition(" ")
                if k == "Udp6RcvbufErrors":
                    total += int(v)
                    seen = True
    except OSError:
        pass
    return total if seen else None


# ---------------------------------------------------------------------------
# pcap / pcapng reader

Datagram = collections.namedtuple(
    "Datagram", "ts src_ip src_port dst_ip dst_port payload")

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_OLD = 12
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100, 0x9200)


class PcapError(Exception):
    pass


def _new_stats():
    return {"records": 0, "udp": 0, "non_udp": 0, "fragments": 0,
            "truncated": 0, "unknown_link": 0, "linktypes": set()}


def _ip_payload(linktype, frame):
    """Strips the link layer; returns (ethertype-ish family, ip bytes) or
    (None, None) when the frame is not IP."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None, None
        off = 12
        etype = struct.unpack_from("!H", frame, off)[0]
        off += 2
        while etype in ETH_VLAN_TAGS:
            if len(frame) < off + 4:
                return None, None
            etype = struct.unpack_from("!H", frame, off + 2)[0]
            off += 4
        return etype, frame[off:]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None, None
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None, None
        return struct.unpack_from("!H", frame, 0)[0], frame[20:]
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_OLD):
        if not frame:
            return None, None
        v = frame[0] >> 4
        return {4: ETH_IPV4, 6: ETH_IPV6}.get(v), frame
    if linktype == LINKTYPE_IPV4:
        return ETH_IPV4, frame
    if linktype == LINKTYPE_IPV6:
        return ETH_IPV6, frame
    if linktype == LINKTYPE_NULL:
        if len(frame) < 4:
            return None, None
        # Host byte order of the capturing machine: try both.
        fam = struct.unpack_from("<I", frame)[0]
        if fam > 0xFFFF:
            fam = struct.unpack_from(">I", frame)[0]
        if fam == 2:
            return ETH_IPV4, frame[4:]
        if fam in (10, 24, 28, 30):
            return ETH_IPV6, frame[4:]
        return None, None
    raise PcapError("unsupported link type %d" % linktype)


_IPV6_EXT = (0, 43, 60, 51)     # hop-by-hop, routing, dest opts, AH


def _udp(ts, etype, ip, stats, truncated):
    """Decodes IP/UDP; returns a Datagram or None (and counts why)."""
    if etype == ETH_IPV4:
        if len(ip) < 20 or ip[0] >> 4 != 4:
            stats["non_udp"] += 1
            return None
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        frag = struct.unpack_from("!H", ip, 6)[0]
        proto = ip[9]
        if proto != 17:
            stats["non_udp"] += 1
            return None
        if frag & 0x3FFF:       # MF set or non-zero offset
            stats["fragments"] += 1
            return None
        if total >= ihl and total <= len(ip):
            ip = ip[:total]     # drop Ethernet padding
        src = socket.inet_ntop(socket.AF_INET, ip[12:16])
        dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
        udp = ip[ihl:]
    elif etype == ETH_IPV6:
        if len(ip) < 40 or ip[0] >> 4 != 6:
            stats["non_udp"] += 1
            return None
        plen = struct.unpack_from("!H", ip, 4)[0]
        nxt = ip[6]
        src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
        body = ip[40:40 + plen] if plen else ip[40:]
        while nxt in _IPV6_EXT:
            if len(body) < 8:
                stats["non_udp"] += 1
                return None
            hl = (body[1] + 2) * 4 if nxt == 51 else (body[1] + 1) * 8
            nxt, body = body[0], body[hl:]
        if nxt == 44:
            stats["fragments"] += 1
            return None
        if nxt != 17:
            stats["non_udp"] += 1
            return None
        udp = body
    else:
        stats["non_udp"] += 1
        return None
    if len(udp) < 8:
        stats["truncated"] += 1
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", udp, 0)
    if ulen < 8 or ulen > len(udp) or truncated:
        # The capture cut the datagram short: its payload is incomplete.
        stats["truncated"] += 1
        return None
    stats["udp"] += 1
    return Datagram(ts, src, sport, dst, dport, bytes(udp[8:ulen]))


def _read_classic(data, stats):
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise PcapError("not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    if len(data) < 24:
        raise PcapError("short pcap header")
    linktype = struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF
    stats["linktypes"].add(linktype)
    div = 1e9 if nano else 1e6
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack_from(e + "IIII", data, off)
        off += 16
        if off + incl > len(data):
            raise PcapError("record at %d runs past the end" % (off - 16))
        frame = data[off:off + incl]
        off += incl
        stats["records"] += 1
        etype, ip = _ip_payload(linktype, frame)
        if etype is None:
            stats["non_udp"] += 1
            continue
        d = _udp(sec + frac / div, etype, ip, stats, incl < orig)
        if d is not None:
            yield d


def _pcapng_options(body, e):
    """Yields (code, value) of a pcapng option list."""
    off = 0
    while off + 4 <= len(body):
        code, length = struct.unpack_from(e + "HH", body, off)
        off += 4
        if code == 0:
            return
        yield code, body[off:off + length]
        off += (length + 3) & ~3


def _read_pcapng(data, stats):
    off = 0
    e = "<"
    ifaces = []         # (linktype, snaplen, units per second, offset s)
    while off + 12 <= len(data):
        btype = struct.unpack_from(e + "I", data, off)[0]
        if btype == 0x0A0D0D0A:
            bom = data[off + 8:off + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                e = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                e = ">"
            else:
                raise PcapError("bad pcapng byte-order magic")
            ifaces = []     # interface ids are per section
        blen = struct.unpack_from(e + "I", data, off + 4)[0]
        if blen < 12 or blen % 4 or off + blen > len(data):
            raise PcapError("bad pcapng block length at %d" % off)
        body = data[off + 8:off + blen - 4]
        off += blen
        if btype == 0x00000001:                 # IDB
            linktype, _, snaplen = struct.unpack_from(e + "HHI", body, 0)
            units, tsoff = 1e6, 0
            for code, val in _pcapng_options(body[8:], e):
                if code == 9 and val:           # if_tsresol
                    r = val[0]
                    units = 2.0 ** (r & 0x7F) if r & 0x80 else 10.0 ** r
                elif code == 14 and len(val) == 8:  # if_tsoffset
                    tsoff = struct.unpack(e + "q", val)[0]
            ifaces.append((linktype, snaplen, units, tsoff))
            stats["linktypes"].add(linktype)
            continue
        if btype == 0x00000006:                 # EPB
            ifid, hi, lo, cap, orig = struct.unpack_from(e + "IIIII", body, 0)
            frame = body[20:20 + cap]
        elif btype == 0x00000002:               # obsolete Packet Block
            ifid, _, hi, lo, cap, orig = struct.unpack_from(
                e + "HHIIII", body, 0)
            frame = body[20:20 + cap]
        elif btype == 0x00000003:               # SPB: interface 0
            ifid, hi, lo = 0, 0, 0
            orig = struct.unpack_from(e + "I", body, 0)[0]
            if not ifaces:
                raise PcapError("SPB before any IDB")
            snap = ifaces[0][1] or orig
            cap = min(orig, snap, len(body) - 4)
            frame = body[4:4 + cap]
        else:
            continue
        if ifid >= len(ifaces):
            raise PcapError("packet for unknown interface %d" % ifid)
        linktype, _, units, tsoff = ifaces[ifid]
        stats["records"] += 1
        ts = tsoff + ((hi << 32) | lo) / units
        etype, ip = _ip_payload(linktype, frame)
        if etype is None:
            stats["non_udp"] += 1
            continue
        d = _udp(ts, etype, ip, stats, len(frame) < orig)
        if d is not None:
            yield d


def read_pcap(path, stats=None):
    """Yields Datagram(ts, src_ip, src_port, dst_ip, dst_port, payload) for
    every complete, unfragmented UDP datagram of a pcap or pcapng file.
    `stats` (a dict, optional) receives counts of records, udp, non_udp,
    fragments, truncated and the set of link types."""
    if stats is None:
        stats = {}
    for k, v in _new_stats().items():
        stats.setdefault(k, v)
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return _read_pcapng(data, stats)
    return _read_classic(data, stats)


def load_pcap(path, stats=None):
    return list(read_pcap(path, stats))


# ---------------------------------------------------------------------------
# Test data

def _corpus_dirs():
    dirs = [os.path.normpath(os.path.join(SRC, "..", "shared", "corpus")),
            "/work/shared/corpus"]
    out = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def corpus_dir():
    for d in _corpus_dirs():
        if os.path.isdir(os.path.join(d, "exports")):
            return d
    return None


def corpus_exports():
    """Sorted pcap paths of the full corpus, or None when it is absent."""
    d = corpus_dir()
    if d is None:
        return None
    files = sorted(glob.glob(os.path.join(d, "exports", "*.pcap")) +
                   glob.glob(os.path.join(d, "exports", "*.pcapng")))
    return files or None


def project_exports():
    return sorted(glob.glob(os.path.join(DATA, "exports", "*.pcap")))


def read_manifest(path):
    """Rows of a MANIFEST.tsv as dicts keyed by column name."""
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    cols = lines[0].split("\t")
    return [dict(zip(cols, l.split("\t"))) for l in lines[1:]]


# ---------------------------------------------------------------------------
# NetFlow v5 generator

V5_HEADER = struct.Struct("!HHIIIIBBH")
V5_RECORD = struct.Struct("!IIIHHIIIIHHBBBBHHBBH")


def v5_datagram(seq, count, index=0, unix_secs=None, engine=(1, 7)):
    """One valid NetFlow v5 datagram: header with flow_sequence `seq` and
    `count` records whose content derives from `index`."""
    if not 1 <= count <= 30:
        raise ValueError("v5 count must be 1..30")
    if unix_secs is None:
        unix_secs = int(time.time())
    uptime = (index * 1000 + 12345) & 0xFFFFFFFF
    hdr = V5_HEADER.pack(5, count, uptime, unix_secs, (index * 7919) % 10**9,
                         seq & 0xFFFFFFFF, engine[0], engine[1], 0)
    recs = []
    for r in range(count):
        n = index * 31 + r
        recs.append(V5_RECORD.pack(
            0x0A000000 | (n & 0xFFFFFF),            # srcaddr 10.x.y.z
            0xC0A80000 | ((n * 13) & 0xFFFF),       # dstaddr 192.168.x.y
            0,                                       # nexthop
            1 + r % 4, 2 + r % 3,                    # input, output
            1 + n % 1000,                            # dPkts
            64 + (n * 97) % 1000000,                 # dOctets
            max(0, uptime - 5000 + r), uptime,       # first, last
            1024 + n % 60000, (53, 80, 443, 123)[r % 4],
            0, 0x1B if r % 2 else 0,                 # pad1, tcp_flags
            (6, 17)[r % 2], r % 8,                   # prot, tos
            64512 + r, 64600 + r,                    # src_as, dst_as
            24, 16, 0))
    return hdr + b"".join(recs)


def v5_stream(n, start_seq=1000, seed=1, engine=(1, 7)):
    """n sequence-numbered v5 datagrams: flow_sequence of each is the
    previous one's plus its record count, counts vary 1..30 (seeded), so
    every datagram differs from every other."""
    rnd = random.Random(seed)
    out, seq = [], start_seq
    base = int(time.time())
    for i in range(n):
        count = rnd.randint(1, 30)
        out.append(v5_datagram(seq, count, i, base + i // 50, engine))
        seq += count
    return out


def v5_info(payload):
    """(count, flow_sequence) of a v5 datagram."""
    version, count = struct.unpack_from("!HH", payload, 0)
    if version != 5:
        raise ValueError("not v5")
    return count, struct.unpack_from("!I", payload, 16)[0]


# ---------------------------------------------------------------------------
# UDP sink (a collector)

class Sink:
    """Collects datagrams on 127.0.0.1:0 (or [::1]:0) in a thread; records
    (payload, source address) in arrival order."""

    def __init__(self, host="127.0.0.1", rcvbuf=32 << 20):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        # The gateway sends a whole batch at once with sendmmsg: the sink
        # must be able to queue all of it while this thread catches up.
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None),
                    socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
                break
            except OSError:
                continue
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET,
                                           socket.SO_RCVBUF)
        self.sock.bind((host, 0))
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.cond = threading.Condition()
        self._stop = False
        self._rd, self._wr = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="sink-%d" % self.port)
        self.thread.start()
        _register(self)

    @property
    def address(self):
        return fmt_hostport(self.host, self.port)

    def _run(self):
        while not self._stop:
            r, _, _ = select.select([self.sock, self._rd], [], [], 1.0)
            if self._rd in r:
                break
            if self.sock not in r:
                continue
            batch = []
            while True:
                try:
                    data, addr = self.sock.recvfrom(65536,
                                                    socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    return
                batch.append((data, addr))
            with self.cond:
                self.received.extend(batch)
                self.cond.notify_all()

    def count(self):
        with self.cond:
            return len(self.received)

    def payloads(self):
        with self.cond:
            return [d for d, _ in self.received]

    def wait_count(self, n, timeout):
        """True once at least n datagrams arrived, False after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.05))
            return True

    def close(self):
        if self._stop:
            return
        self._stop = True
        os.write(self._wr, b"x")
        self.thread.join(5)
        self.sock.close()
        os.close(self._rd)
        os.close(self._wr)


# ---------------------------------------------------------------------------
# Processes

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                       ctypes.c_ulong, ctypes.c_ulong]
except (OSError, AttributeError):
    _prctl = None

_PR_SET_PDEATHSIG = 1


def _child_setup():
    # Linux: the child gets SIGKILL if the test process dies, even by
    # SIGKILL, so no daemon outlives a crashed test.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Proc:
    """A child process whose stdout and stderr go to a log file."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.argv = argv
        self.logpath = os.path.join(logdir, "%s.log" % name)
        self.logf = open(self.logpath, "ab")
        self.logf.write(("+ %s\n" % " ".join(argv)).encode())
        self.logf.flush()
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=self.logf, stderr=subprocess.STDOUT,
                                  env=e, preexec_fn=_child_setup)
        self.pid = self.p.pid
        _register(self)
        _failed_logs.append(self)

    def alive(self):
        return self.p.poll() is None

    def returncode(self):
        return self.p.poll()

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=15):
        """SIGTERM, then wait up to `timeout` s; returns the exit status
        (negative for a signal).  Kills and raises if it does not exit."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s (pid %d) did not exit within %ss of "
                                 "SIGTERM" % (self.name, self.pid, timeout))

    def kill(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def close(self):
        self.kill()
        if not self.logf.closed:
            self.logf.close()

    def log_text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def print_log(self, tail=200):
        lines = self.log_text().splitlines()
        log("----- %s log (%s, last %d of %d lines) -----"
            % (self.name, self.logpath, min(tail, len(lines)), len(lines)))
        for l in lines[-tail:]:
            log("  " + l)
        log("----- end of %s log -----" % self.name)


def _fmt_value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def write_ini(path, section, values):
    """Writes `key = value` lines, under [section] unless section is None."""
    lines = ["# written by tests/integration/fp.py"]
    if section:
        lines.append("[%s]" % section)
    for k, v in values.items():
        if v is None:
            continue
        lines.append("%s = %s" % (k, _fmt_value(v)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _cli_args(opts):
    out = []
    for k, v in (opts or {}).items():
        out += ["--" + k, _fmt_value(v)]
    return out


def http_get(host, port, path, timeout=5):
    """(status, body bytes) of a GET, or (None, error text)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Keys

_KEY_RE = re.compile(r"^\s*(\S+)\s+([0-9a-fA-F]{64})\s*$")


def genkey(client_id, keys_file, key_file):
    """Creates a key for client_id with `flowpost-gateway --genkey`; appends
    the keys-file line to keys_file and writes key_file (64 hex digits).
    Falls back to os.urandom when the output cannot be parsed.  Returns the
    64-hex key."""
    key = None
    try:
        r = run([gateway_bin(), "--genkey", client_id], timeout=15)
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                m = _KEY_RE.match(line)
                if m and m.group(1) == client_id:
                    key = m.group(2).lower()
                    break
    except (OSError, subprocess.TimeoutExpired):
        pass
    if key is None:
        log("note: could not parse `flowpost-gateway --genkey %s` output; "
            "using a random key" % client_id)
        key = os.urandom(32).hex()
    with open(keys_file, "a") as f:
        f.write("%s %s\n" % (client_id, key))
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(keys_file, 0o600)
    return key


# ---------------------------------------------------------------------------
# Gateway

def parse_prometheus(text):
    """{series: value} from Prometheus text format; series is the metric
    name with its label set as written (`name{a="b"}`)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            series, _, rest = line.rpartition("}")
            series += "}"
        else:
            series, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            continue
        try:
            out[series.strip()] = float(fields[0])
        except ValueError:
            continue
    return out


def metric_sum(metrics, name):
    """Sum of every series of `name` (any labels), or None if absent."""
    vals = [v for k, v in metrics.items()
            if k == name or k.startswith(name + "{")]
    return sum(vals) if vals else None


class Gateway(Proc):
    """flowpost-gateway on 127.0.0.1 with its own config file and temp dir.

    keys_file: path of the keys file; collectors: list of "host:port";
    conf: extra config keys; args: extra `--key value` options (dict)."""

    def __init__(self, keys_file, collectors, prefix="/flowpost", port=None,
                 conf=None, args=None, workdir=None, name="gateway",
                 section="gateway", ready_timeout=15, wait_ready=True):
        require_binaries("gateway")
        self.dir = workdir or tmpdir("fp-gw-")
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.prefix = prefix
        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(self.state_dir, exist_ok=True)
        values = {
            "listen": "127.0.0.1:%d" % self.port,
            "path_prefix": prefix,
            "collector": list(collectors),
            "state_dir": self.state_dir,
            "keys_file": keys_file,
            "metrics_listen": "127.0.0.1:%d" % self.metrics_port,
        }
        values.update(conf or {})
        self.conf_path = write_ini(os.path.join(self.dir, "%s.conf" % name),
                                   section, values)
        argv = [gateway_bin(), "-c", self.conf_path] + _cli_args(args)
        super().__init__(name, argv, self.dir)
        if wait_ready:
            self.wait_ready(ready_timeout)

    @property
    def url(self):
        return "http://127.0.0.1:%d%s" % (self.port, self.prefix)

    def healthy(self):
        st, _ = http_get("127.0.0.1", self.port, self.prefix + "/healthz",
                         timeout=2)
        return st == 200

    def wait_ready(self, timeout=15):
        def ready():
            if not self.alive():
                raise AssertionError("%s exited with %s before it was ready"
                                     % (self.name, self.returncode()))
            return self.healthy()
        wait_for(ready, timeout, what="%s healthz" % self.name)

    def metrics(self):
        """Prometheus metrics as {series: value}."""
        st, body = http_get("127.0.0.1", self.metrics_port,
                            self.prefix + "/metrics")
        if st != 200:
            raise AssertionError("GET %s/metrics on metrics port: %s %r"
                                 % (self.prefix, st, body[:200]))
        return parse_prometheus(body.decode("utf-8", "replace"))


# ---------------------------------------------------------------------------
# Client

STATS_NAMES = (
    "received_datagrams", "received_bytes", "dropped_invalid", "malformed",
    "dropped_malformed", "dropped_truncated", "dropped_backpressure",
    "batches_sealed", "datagrams_sealed", "spool_dropped_batches",
    "spool_dropped_datagrams", "spool_write_errors", "quarantined", "posts",
    "posts_failed", "acked_batches", "acked_datagrams", "acked_dup",
    "bad_ack", "retries", "spool_batches", "spool_bytes",
    "spool_oldest_age_s", "backoff_s", "last_success_unix")


class Client(Proc):
    """flowpost-client listening on 127.0.0.1 (and [::1] when ipv6) on free
    UDP ports, posting to gateway_url directly (proxy = none)."""

    def __init__(self, gateway_url, key_file, client_id, spool_dir=None,
                 conf=None, args=None, ipv6=True, workdir=None,
                 name="client", section="client", ready_timeout=15,
                 wait_ready=True, listen_ports=None):
        require_binaries("client")
        self.dir = workdir or tmpdir("fp-cl-")
        self.spool_dir = spool_dir or os.path.join(self.dir, "spool")
        os.makedirs(self.spool_dir, exist_ok=True)
        self.client_id = client_id
        if listen_ports:
            self.port4, self.port6 = listen_ports
        else:
            self.port4 = free_udp_port("127.0.0.1")
            self.port6 = free_udp_port("::1") if ipv6 else None
        listen = ["127.0.0.1:%d" % self.port4]
        if self.port6:
            listen.append("[::1]:%d" % self.port6)
        values = {
            "listen": listen,
            "gateway_url": gateway_url,
            "proxy": "none",
            "client_id": client_id,
            "key_file": key_file,
            "spool_dir": self.spool_dir,
            "batch_max_age": "1s",
        }
        values.update(conf or {})
        self.conf_path = write_ini(os.path.join(self.dir, "%s.conf" % name),
                                   section, values)
        argv = [client_bin(), "-c", self.conf_path] + _cli_args(args)
        self.stats_path = os.path.join(self.spool_dir, "client.stats")
        super().__init__(name, argv, self.dir)
        if wait_ready:
            self.wait_ready(ready_timeout)

    def wait_ready(self, timeout=15):
        def ready():
            if not self.alive():
                raise AssertionError("%s exited with %s before it was ready"
                                     % (self.name, self.returncode()))
            return os.path.exists(self.stats_path)
        wait_for(ready, timeout, what="%s stats file" % self.name)

    def wait_running(self, timeout=15):
        """Waits until the stats file was written by this very process
        (after a restart on the same spool, the old one is still there)."""
        def ready():
            if not self.alive():
                raise AssertionError("%s exited with %s before it was ready"
                                     % (self.name, self.returncode()))
            return self.stats().get("pid") == self.pid
        wait_for(ready, timeout, what="%s stats file of pid %d"
                 % (self.name, self.pid))

    def listener(self, family=4):
        if family == 6:
            return ("::1", self.port6)
        return ("127.0.0.1", self.port4)

    def stats(self):
        """The stats file as {name: int}; {} if it is not there (yet)."""
        try:
            with open(self.stats_path) as f:
                text = f.read()
        except FileNotFoundError:
            return {}
        out = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                try:
                    out[parts[0]] = float(parts[1])
                except ValueError:
                    pass
        return out

    def stat(self, name):
        return self.stats().get(name, 0)

    def wait_stats(self, pred, timeout, what):
        """Waits until pred(stats dict) is true; returns the stats."""
        last = {}

        def check():
            last.clear()
            last.update(self.stats())
            return bool(last) and pred(last)
        if not wait_for(check, timeout):
            raise AssertionError("timed out after %.0fs waiting for %s; "
                                 "client stats: %s" % (timeout, what,
                                                       fmt_stats(last)))
        return dict(last)

    def spool_files(self, pattern="*.fpb"):
        return sorted(glob.glob(os.path.join(self.spool_dir, "**", pattern),
                                recursive=True))


def fmt_stats(st):
    return " ".join("%s=%s" % (k, st[k]) for k in sorted(st))


# ---------------------------------------------------------------------------
# Replayer

def _stable_loopback(addr):
    """A fixed 127.0.0.x (x in 2..254) for a non-loopback exporter address."""
    return "127.0.0.%d" % (2 + zlib.crc32(addr.encode()) % 253)


def source_for(src_ip, family):
    """The loopback address a replayed datagram is sent from."""
    if family == 6:
        return "::1"
    try:
        a = ipaddress.ip_address(src_ip)
        if a.version == 4 and a in ipaddress.ip_network("127.0.0.0/8"):
            return src_ip
    except ValueError:
        pass
    return _stable_loopback(src_ip)


def udp_rx_queue(port, family=4):
    """Bytes waiting in the receive queue of the local UDP socket bound to
    `port` (from /proc/net/udp or udp6), or None if none is found."""
    path = "/proc/net/udp6" if family == 6 else "/proc/net/udp"
    want = ":%04X" % port
    try:
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) > 4 and parts[1].endswith(want):
                    return int(parts[4].split(":")[1], 16)
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return None


class Replayer:
    """Sends datagrams to a client's listener, each from a UDP socket bound
    to a loopback address standing in for its exporter.

    Pacing stays gentle so that loopback never overflows the client's
    socket buffer: every `check` datagrams it looks at the listener's
    receive queue in /proc and, when more than `high` bytes wait, waits
    (bounded) until the client drained it below `low`.  Where /proc does
    not show the queue, it waits every `pace` datagrams until the client's
    received_datagrams counter has caught up."""

    def __init__(self, client, pace=200, catchup_timeout=10, check=16,
                 high=256 << 10, low=32 << 10):
        self.client = client
        self.pace = pace
        self.check = check
        self.high, self.low = high, low
        self.catchup_timeout = catchup_timeout
        self.socks = {}
        self.sent = []          # payloads in send order
        self.base = client.stat("received_datagrams") if client else 0
        self.stalls = 0
        _register(self)

    def _pace(self, dest, family):
        n = len(self.sent)
        if self.client is None or not self.pace:
            return
        if n % self.check == 0:
            q = udp_rx_queue(dest[1], family)
            if q is not None:
                if q > self.high and not wait_for(
                        lambda: (udp_rx_queue(dest[1], family) or 0)
                        <= self.low, self.catchup_timeout, 0.002):
                    self.stalls += 1
                return
        if n % self.pace == 0 and udp_rx_queue(dest[1], family) is None:
            self.catch_up()

    def _sock(self, src, family):
        s = self.socks.get(src)
        if s is None:
            fam = socket.AF_INET6 if family == 6 else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            s.bind((src, 0))
            self.socks[src] = s
        return s

    def catch_up(self, timeout=None):
        """Waits until the client counted everything sent so far.  Returns
        False (and counts a stall) if it did not within the bound."""
        if self.client is None:
            return True
        want = self.base + len(self.sent)
        ok = wait_for(lambda: self.client.stat("received_datagrams") >= want,
                      timeout or self.catchup_timeout)
        if not ok:
            self.stalls += 1
        return bool(ok)

    def send(self, datagrams, family=4, dest=None):
        """Sends payloads (bytes or Datagram) to the family's listener."""
        if dest is None:
            dest = self.client.listener(family)
        for d in datagrams:
            if isinstance(d, Datagram):
                payload, src = d.payload, source_for(d.src_ip, family)
            else:
                payload, src = d, ("::1" if family == 6 else "127.0.0.1")
            self._sock(src, family).sendto(payload, dest)
            self.sent.append(payload)
            self._pace(dest, family)

    def close(self):
        for s in self.socks.values():
            s.close()
        self.socks.clear()


# ---------------------------------------------------------------------------
# Comparisons

def compare_sequences(sent, got, limit=5):
    """None when equal, else a description of the first differences."""
    if sent == got:
        return None
    msgs = ["sent %d datagrams, collector got %d" % (len(sent), len(got))]
    sent_set = collections.Counter(sent)
    got_set = collections.Counter(got)
    missing = sent_set - got_set
    extra = got_set - sent_set
    if missing:
        msgs.append("%d missing (first at sent index %d)" % (
            sum(missing.values()),
            next(i for i, p in enumerate(sent) if p in missing)))
    if extra:
        msgs.append("%d extra/duplicated (first at received index %d)" % (
            sum(extra.values()),
            next(i for i, p in enumerate(got) if p in extra)))
    shown = 0
    for i in range(max(len(sent), len(got))):
        a = sent[i] if i < len(sent) else None
        b = got[i] if i < len(got) else None
        if a != b:
            msgs.append("index %d: sent %s, got %s" % (
                i, _short(a), _short(b)))
            shown += 1
            if shown >= limit:
                break
    return "; ".join(msgs)


def _short(p):
    if p is None:
        return "nothing"
    return "%dB %s..." % (len(p), p[:8].hex())


# ---------------------------------------------------------------------------
# A whole chain: sink <- gateway <- client

class Stack:
    """A sink (collector), a gateway forwarding to it and a client posting
    to the gateway, each in its own temp dir, all ready when this returns."""

    def __init__(self, client_id="kit-1", client_conf=None,
                 gateway_conf=None, ipv6=None, start_client=True):
        require_binaries()
        if ipv6 is None:
            ipv6 = have_ipv6_loopback()
        self.dir = tmpdir("fp-stack-")
        self.client_id = client_id
        self.keys_file = os.path.join(self.dir, "keys")
        self.key_file = os.path.join(self.dir, "client.key")
        self.key = genkey(client_id, self.keys_file, self.key_file)
        self.sink = Sink("127.0.0.1")
        self.gw = Gateway(self.keys_file, [self.sink.address],
                          conf=gateway_conf)
        self.client_conf = client_conf
        self.ipv6 = ipv6
        self.cl = None
        if start_client:
            self.start_client()

    def start_client(self, **kw):
        self.cl = Client(self.gw.url, self.key_file, self.client_id,
                         conf=self.client_conf, ipv6=self.ipv6, **kw)
        return self.cl

    def wait_delivered(self, sent, timeout):
        """Waits until the sink holds len(sent) datagrams and the client
        acknowledged them all; returns the client stats.  A shortfall is
        reported with the comparison and the client's counters."""
        ok = self.sink.wait_count(len(sent), timeout)
        st = self.cl.stats() if self.cl else {}
        if not ok:
            raise AssertionError(
                "collector got %d of %d datagrams within %ss: %s; client "
                "stats: %s" % (self.sink.count(), len(sent), timeout,
                               compare_sequences(sent, self.sink.payloads()),
                               fmt_stats(st)))
        return self.cl.wait_stats(
            lambda s: s.get("acked_datagrams", 0) >= len(sent), 30,
            "acked_datagrams >= %d" % len(sent))


# ---------------------------------------------------------------------------
# HTTP helpers for poking the gateway directly

def raw_http(host, port, data, timeout=5, body_after=None):
    """Sends raw request bytes and reads the response until the server
    closes or a complete response (by Content-Length) arrived.  Returns
    (status, {header: value} lowercased, body).  `body_after`, if given, is
    sent only after the response (to show the server did not wait)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            if b"\r\n\r\n" in buf:
                head, _, body = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {}
                for l in lines[1:]:
                    k, _, v = l.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                clen = hdrs.get("content-length")
                if clen is not None and len(body) >= int(clen):
                    status = int(lines[0].split()[1])
                    if body_after:
                        try:
                            s.sendall(body_after)
                        except OSError:
                            pass
                    return status, hdrs, body[:int(clen)]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no complete response within %ss; got "
                                     "%r" % (timeout, buf[:300]))
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                if b"\r\n\r\n" not in buf:
                    raise AssertionError("connection closed; got %r"
                                         % buf[:300])
                head, _, body = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {}
                for l in lines[1:]:
                    k, _, v = l.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                return int(lines[0].split()[1]), hdrs, body
            buf += chunk
    finally:
        s.close()


BATCH_MAGIC = b"FPB1"


def batch_header(client_id, seq=1, created_us=None, count=1, raw_len=64,
                 crc=0, sealed_len=80, nonce=None, version=1, codec=1,
                 aead=1, flags=0):
    """The clear header of a batch (docs/PROTOCOL.md section 1)."""
    if created_us is None:
        created_us = int(time.time() * 1e6)
    if nonce is None:
        nonce = os.urandom(24)
    cid = client_id.encode("ascii")
    return (BATCH_MAGIC + struct.pack("!BBBBQQIIII", version, codec, aead,
                                      flags, seq, created_us, count,
                                      raw_len, crc, sealed_len) +
            nonce + bytes([len(cid)]) + cid)


def fake_batch(client_id, sealed_len=80, **kw):
    """A batch whose header parses but whose sealed body is random."""
    return batch_header(client_id, sealed_len=sealed_len, **kw) + \
        os.urandom(sealed_len)


# ---------------------------------------------------------------------------
# Restarts, batches in logs and spool files, delivery checks

def respawn(proc, ready_timeout=15):
    """Starts the program of an exited `proc` again with the same argv, so
    the same config file, ports and directories, logging to the same file.
    Returns a new object of the same class and attributes, ready: a gateway
    answers healthz, a client wrote its stats file with its new pid (the
    old process's file is still there)."""
    if proc.alive():
        raise AssertionError("%s (pid %d) is still running" % (proc.name,
                                                             proc.pid))
    new = copy.copy(proc)
    Proc.__init__(new, proc.name, proc.argv, proc.dir)
    if proc in _failed_logs:
        _failed_logs.remove(proc)   # same log file: print it once
    if isinstance(new, Client):
        new.wait_running(ready_timeout)
    else:
        new.wait_ready(ready_timeout)
    return new


_SEALED_RE = re.compile(r"\[(\d+)\]: debug: sealer: batch (\d+): (\d+) "
                        r"datagrams")


def sealed_batches(client, pid=None):
    """[(seq, count)] of the batches the client's log says it sealed, in
    log order, across restarts that share the log (or of one `pid`).
    Needs log_level = debug."""
    out = []
    for m in _SEALED_RE.finditer(client.log_text()):
        if pid is None or int(m.group(1)) == pid:
            out.append((int(m.group(2)), int(m.group(3))))
    return out


def batch_ranges(batches, start=0):
    """{seq: (lo, hi)}: the slice of the received stream each batch holds,
    from [(seq, count)] in seal order (batches are consecutive runs)."""
    out, lo = {}, start
    for seq, count in batches:
        out[seq] = (lo, lo + count)
        lo += count
    return out


BATCH_HEADER = struct.Struct("!4sBBBBQQIIII24sB")


def read_batch_header(path_or_bytes):
    """The clear header of a batch (a spool file path or bytes) as a dict:
    seq, count, created_us, raw_len, sealed_len, client_id, size."""
    data = path_or_bytes
    if isinstance(path_or_bytes, str):
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    if len(data) < BATCH_HEADER.size or data[:4] != BATCH_MAGIC:
        raise ValueError("not a batch")
    (_, version, codec, aead, flags, seq, created, count, raw_len, crc,
     sealed_len, _, idlen) = BATCH_HEADER.unpack_from(data, 0)
    cid = data[BATCH_HEADER.size:BATCH_HEADER.size + idlen]
    return {"seq": seq, "count": count, "created_us": created,
            "raw_len": raw_len, "sealed_len": sealed_len, "flags": flags,
            "client_id": cid.decode("ascii", "replace"), "size": len(data)}


def entry_size(payload):
    """Bytes a datagram takes in a batch (docs/PROTOCOL.md 1.2)."""
    return 32 + len(payload)


def simulate_batches(payloads, batch_max_bytes):
    """Datagram counts of the batches the client makes of `payloads` when
    only size closes them (no batch_max_age expiry in between): a batch
    closes when the next entry would take it over batch_max_bytes.  The
    last count is the batch still open."""
    counts, size = [], 0
    for p in payloads:
        if counts and counts[-1] > 0 and size + entry_size(p) > \
                batch_max_bytes:
            counts.append(0)
            size = 0
        if not counts:
            counts.append(0)
        counts[-1] += 1
        size += entry_size(p)
    return counts


def send_sealed_steps(rep, client, datagrams, batch_max_bytes, timeout=20,
                      family=4, steps=None):
    """Sends `datagrams` in steps of at most one batch of entries; before
    each step waits until this client process sealed everything sent so
    far but its open batch (read from its debug log).  The sealer then
    never falls BATCHER_POOL buffers behind, which would drop datagrams
    as back-pressure.  `rep` must be a Replayer made for this process.
    With a list `steps`, appends (len(rep.sent), time.monotonic()) after
    each step: when the datagrams up to that count had all been sent."""
    def open_max():
        n, size = 0, 0
        for p in reversed(rep.sent):
            size += entry_size(p)
            if size > batch_max_bytes:
                break
            n += 1
        return n

    def sealed():
        return sum(c for _, c in sealed_batches(client, client.pid))

    step, size = [], 0
    for d in list(datagrams) + [None]:
        if d is not None and size + entry_size(d) <= batch_max_bytes:
            step.append(d)
            size += entry_size(d)
            continue
        if step:
            want = len(rep.sent) - open_max()
            if not wait_for(lambda: sealed() >= want, timeout, 0.005):
                raise AssertionError(
                    "client sealed %d of the first %d datagrams within %ss;"
                    " stats: %s" % (sealed(), want, timeout,
                                    fmt_stats(client.stats())))
            rep.send(step, family)
            if steps is not None:
                steps.append((len(rep.sent), time.monotonic()))
        step, size = ([d], entry_size(d)) if d is not None else ([], 0)


def positions(sent, got):
    """Index in `sent` of each payload in `got`; payloads of `sent` must
    be distinct.  Raises AssertionError naming the first payload of `got`
    that was never sent."""
    where = {p: i for i, p in enumerate(sent)}
    if len(where) != len(sent):
        raise ValueError("sent payloads are not distinct")
    out = []
    for k, p in enumerate(got):
        if p not in where:
            raise AssertionError("collector datagram %d (%s) was never sent"
                                 % (k, _short(p)))
        out.append(where[p])
    return out


def runs(indices):
    """[(lo, hi)] half-open runs of consecutive integers in a sorted list."""
    out = []
    for i in indices:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def assert_in_order_once(sent, got):
    """`got` is `sent` with some datagrams left out: nothing foreign, no
    repeat, no reordering.  Returns the sorted missing indices of sent."""
    pos = positions(sent, got)
    seen = set()
    for k, i in enumerate(pos):
        if i in seen:
            raise AssertionError("collector datagram %d repeats sent index "
                                 "%d" % (k, i))
        if k > 0 and i < pos[k - 1]:
            raise AssertionError("collector datagram %d (sent index %d) "
                                 "arrived after sent index %d"
                                 % (k, i, pos[k - 1]))
        seen.add(i)
    have = seen
    return [i for i in range(len(sent)) if i not in have]


def assert_no_more(sink, n, settle=1.5):
    """Nothing beyond the n expected datagrams reaches the sink within
    `settle` seconds (a bounded wait for an absence)."""
    if sink.wait_count(n + 1, settle):
        raise AssertionError("collector got %d datagrams, expected %d"
                             % (sink.count(), n))


def gateway_counter(gw, name):
    """A gateway counter summed over its labels (0 when absent), e.g.
    "flowpost_gateway_duplicates_total"."""
    return metric_sum(gw.metrics(), name) or 0


# ---------------------------------------------------------------------------
# An HTTP relay that can lose answers or hold requests

class Exchange:
    """One request through HttpRelay and what became of it."""

    def __init__(self, index, conn_id):
        self.index = index
        self.conn_id = conn_id
        self.seq = None         # batch header, when the body is a batch
        self.count = None
        self.status = None      # upstream's HTTP status, None if none
        self.ack = None         # "new" / "dup" from an FPACK1 line
        self.body = b""
        self.fate = "open"      # passed, dropped, abandoned, no_upstream

    def __repr__(self):
        return ("Exchange(#%d conn %d seq %s count %s status %s ack %s %s)"
                % (self.index, self.conn_id, self.seq, self.count,
                   self.status, self.ack, self.fate))


def _read_http_message(sock, buf, deadline=None):
    """(head bytes, body bytes, rest) of one HTTP message sized by
    Content-Length (0 if absent) from `sock`, after the bytes in `buf`;
    None on end of stream before a whole message."""
    while b"\r\n\r\n" not in buf:
        chunk = _recv(sock, deadline)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    clen = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v.strip())
    while len(rest) < clen:
        chunk = _recv(sock, deadline)
        if not chunk:
            return None
        rest += chunk
    return head + b"\r\n\r\n", rest[:clen], rest[clen:]


def _recv(sock, deadline):
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("upstream too slow")
        sock.settimeout(left)
    try:
        return sock.recv(65536)
    except (ConnectionError, OSError) as e:
        if isinstance(e, socket.timeout):
            raise
        return b""


class HttpRelay:
    """Listens on 127.0.0.1 and relays HTTP requests with Content-Length to
    an upstream server, one upstream connection per request.  Each request
    is read whole, sent upstream and the whole answer read; then
    `drop(exchange)` (optional) decides whether the answer is lost: the
    relay closes the client's connection without a byte of it, as when a
    connection dies after the server acted.  While held (hold()), requests
    wait before going upstream until release(); a held request whose client
    went away is abandoned.  If upstream cannot be reached or dies, the
    client's connection is closed without an answer.  Every request is
    recorded as an Exchange."""

    def __init__(self, upstream_port, upstream_host="127.0.0.1", drop=None,
                 upstream_timeout=30):
        self.upstream = (upstream_host, upstream_port)
        self.drop = drop
        self.upstream_timeout = upstream_timeout
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.cond = threading.Condition()
        self.exchanges = []
        self.held = 0           # requests waiting at the gate now
        self._gate = threading.Event()
        self._gate.set()
        self._conns = set()
        self._nconn = 0
        self._stop = False
        self._rd, self._wr = os.pipe()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True,
                                       name="relay-%d" % self.port)
        self.thread.start()
        _register(self)

    def url(self, prefix="/flowpost"):
        return "http://127.0.0.1:%d%s" % (self.port, prefix)

    def hold(self):
        self._gate.clear()

    def release(self):
        self._gate.set()

    def records(self):
        with self.cond:
            return list(self.exchanges)

    def wait(self, pred, timeout, what):
        """Waits until pred(list of exchanges) is true; returns the list."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(list(self.exchanges)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("relay: timed out after %.0fs "
                                         "waiting for %s; exchanges: %r"
                                         % (timeout, what, self.exchanges))
                self.cond.wait(min(left, 0.05))
            return list(self.exchanges)

    def _accept_loop(self):
        while not self._stop:
            r, _, _ = select.select([self.lsock, self._rd], [], [], 1.0)
            if self._rd in r:
                return
            if self.lsock not in r:
                continue
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            with self.cond:
                self._nconn += 1
                cid = self._nconn
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn, cid),
                             daemon=True).start()

    def _record(self, ex, fate):
        with self.cond:
            ex.fate = fate
            self.cond.notify_all()

    def _client_gone(self, conn):
        r, _, _ = select.select([conn], [], [], 0)
        if not r:
            return False
        try:
            return conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _serve(self, conn, cid):
        buf = b""
        try:
            while not self._stop:
                msg = _read_http_message(conn, buf)
                if msg is None:
                    return
                head, body, buf = msg
                with self.cond:
                    ex = Exchange(len(self.exchanges), cid)
                    self.exchanges.append(ex)
                    self.cond.notify_all()
                try:
                    h = read_batch_header(body)
                    ex.seq, ex.count = h["seq"], h["count"]
                except ValueError:
                    pass
                if not self._wait_gate(conn):
                    self._record(ex, "abandoned")
                    return
                resp = self._forward(head + body)
                if resp is None:
                    self._record(ex, "no_upstream")
                    return
                rhead, rbody = resp
                ex.status = int(rhead.split(b" ", 2)[1])
                ex.body = rbody
                words = rbody.split()
                if len(words) == 5 and words[0] == b"FPACK1":
                    ex.ack = words[3].decode("ascii", "replace")
                if self.drop is not None and self.drop(ex):
                    self._record(ex, "dropped")
                    return
                conn.sendall(rhead + rbody)
                self._record(ex, "passed")
                if b"connection: close" in rhead.lower():
                    return
        except OSError:
            return
        finally:
            with self.cond:
                self._conns.discard(conn)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _wait_gate(self, conn):
        if self._gate.is_set():
            return True
        with self.cond:
            self.held += 1
            self.cond.notify_all()
        try:
            while not self._gate.wait(0.05):
                if self._stop or self._client_gone(conn):
                    return False
            return not self._stop
        finally:
            with self.cond:
                self.held -= 1
                self.cond.notify_all()

    def _forward(self, request):
        """(head, body) of upstream's answer, or None."""
        try:
            up = socket.create_connection(self.upstream,
                                          timeout=self.upstream_timeout)
        except OSError:
            return None
        try:
            up.sendall(request)
            msg = _read_http_message(
                up, b"", time.monotonic() + self.upstream_timeout)
            if msg is None:
                return None
            return msg[0], msg[1]
        except OSError:
            return None
        finally:
            up.close()

    def close(self):
        if self._stop:
            return
        self._stop = True
        self._gate.set()
        os.write(self._wr, b"x")
        self.thread.join(5)
        self.lsock.close()
        with self.cond:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        os.close(self._rd)
        os.close(self._wr)
