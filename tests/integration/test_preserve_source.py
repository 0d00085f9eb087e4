#!/usr/bin/env python3
"""
Exporter identity on the last hop (gateway/srcmap.h).

- test_source_port_map (loopback, no privileges): two exporters behind one
  client; with source_port_map = yes the collector sees each exporter's
  datagrams from one gateway port of its own, the two ports differ, and
  nothing changes in the payloads; without it both come from one port.
- test_preserve_source_netns (root only, else skipped): in two network
  namespaces joined by a veth pair created here, client and gateway run in
  one, the collector in the other.  With preserve_source = yes the
  collector receives each datagram from its exporter's own IPv4 or IPv6
  address and port, byte-identical, and a packet socket on the
  collector's side shows a correct, non-zero UDP checksum on every IPv4
  datagram (UDP over IPv4 accepts a zero checksum, so arrival alone would
  not prove it).
"""

import ctypes
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402
import nfpeers  # noqa: E402

N = 40


class SourceSink(fp.Sink):
    """fp.Sink that also keeps the source address of each datagram."""

    def sources(self):
        with self.cond:
            return [a for _, a in self.received]


def _replay_from(client, sources, n, family=4, dest=None, base=0):
    """n v5 datagrams from each (address, port) in turn (a few hundred
    small ones: the client's receive buffer holds them all); returns
    {payload: (address, port)}."""
    fam = socket.AF_INET6 if family == 6 else socket.AF_INET
    socks = []
    for addr in sources:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        # The gateway may bind the same address and port to send as
        # this exporter (IPv6 preserve_source).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, 0))
        socks.append(s)
    dest = dest or client.listener(family)
    origin = {}
    try:
        for i in range(n):
            for k, s in enumerate(socks):
                p = fp.v5_datagram(100 + 30 * i, 5 + k, base + i * 7 + k)
                s.sendto(p, dest)
                origin[p] = s.getsockname()[:2]
    finally:
        for s in socks:
            s.close()
    return origin


def test_source_port_map():
    fp.require_binaries()
    for mapped in (True, False):
        sink = SourceSink()
        t = nfpeers.Tunnel([sink.address],
                           gateway_conf={"source_port_map": mapped})
        origin = _replay_from(t.cl, ["127.0.0.2", "127.0.0.3"], N)
        assert sink.wait_count(len(origin), 30), "collector got %d of %d" % (
            sink.count(), len(origin))
        ports = {}
        for p, (addr, port) in zip(sink.payloads(), sink.sources()):
            assert p in origin, "payload changed on the way"
            assert addr == "127.0.0.1", addr
            ports.setdefault(origin[p][0], set()).add(port)
        if mapped:
            assert all(len(v) == 1 for v in ports.values()), ports
            a, b = (next(iter(v)) for v in ports.values())
            assert a != b, "both exporters from gateway port %d" % a
            m = fp.metric_sum(t.gw.metrics(),
                              "flowpost_gateway_srcmap_mapped_total")
            assert m == len(origin), m
        else:
            assert len(set().union(*ports.values())) == 1, ports
        fp.log("source_port_map=%s: exporter -> gateway source ports %s"
               % (mapped, dict((k, sorted(v)) for k, v in ports.items())))
        assert t.cl.stop() == 0 and t.gw.stop() == 0
        fp.cleanup()


# ---------------------------------------------------------------------------
# Network namespaces

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


class Netns:
    """Two namespaces `x` (client, gateway, exporters) and `y` (the
    collector) joined by veth x <-> y:
      x: veth 10.77.0.1/24 fd77::1/64, exporters 10.77.1.0/24 fd77:1::/64
         on lo
      y: veth 10.77.0.2/24 fd77::2/64, routes back to the exporters."""

    def __init__(self):
        tag = "%d" % os.getpid()
        self.x, self.y = "fpx" + tag, "fpy" + tag
        self.vx, self.vy = "fpvx" + tag[-8:], "fpvy" + tag[-8:]
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.inside = None
        fp._register(self)
        self._ip("netns", "add", self.x)
        self._ip("netns", "add", self.y)
        self._ip("link", "add", self.vx, "type", "veth", "peer", "name",
                 self.vy)
        self._ip("link", "set", self.vx, "netns", self.x)
        self._ip("link", "set", self.vy, "netns", self.y)
        for ns, dev, a4, a6 in ((self.x, self.vx, "10.77.0.1/24",
                                 "fd77::1/64"),
                                (self.y, self.vy, "10.77.0.2/24",
                                 "fd77::2/64")):
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "addr", "add", a4, "dev", dev)
            self._ip("-n", ns, "addr", "add", a6, "dev", dev, "nodad")
            self._ip("-n", ns, "link", "set", dev, "up")
        for a in ("10.77.1.5/32", "10.77.1.6/32"):
            self._ip("-n", self.x, "addr", "add", a, "dev", "lo")
        for a in ("fd77:1::5/128", "fd77:1::6/128"):
            self._ip("-n", self.x, "addr", "add", a, "dev", "lo", "nodad")
        self._ip("-n", self.y, "route", "add", "10.77.1.0/24", "via",
                 "10.77.0.1")
        self._ip("-n", self.y, "-6", "route", "add", "fd77:1::/64", "via",
                 "fd77::1")

    @staticmethod
    def _ip(*args):
        r = fp.run(["ip"] + list(args), timeout=15)
        if r.returncode != 0:
            raise AssertionError("ip %s: %s" % (" ".join(args),
                                                r.stderr.strip()))

    def enter(self, name):
        fd = os.open("/run/netns/%s" % name, os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)
        self.inside = name

    def leave(self):
        _setns(self.home)
        self.inside = None

    def close(self):
        if self.inside is not None:
            self.leave()
        for ns in (self.x, self.y):
            subprocess.run(["ip", "netns", "del", ns],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        os.close(self.home)


class Capture:
    """An AF_PACKET socket on a device: the raw IPv4/IPv6 frames that
    arrive, kept in a thread."""

    def __init__(self, dev):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                  socket.htons(0x0003))
        self.sock.bind((dev, 0))
        self.sock.settimeout(0.2)
        self.frames = []
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        fp._register(self)

    def _run(self):
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(70000)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            with self.lock:
                self.frames.append(data)

    def udp4(self, port):
        """(ip header, udp bytes) of the IPv4 UDP frames to `port`."""
        out = []
        with self.lock:
            frames = list(self.frames)
        for f in frames:
            if len(f) < 14 + 28 or struct.unpack_from("!H", f, 12)[0] != \
                    0x0800:
                continue
            ip = f[14:]
            ihl = (ip[0] & 15) * 4
            if ip[9] != 17:
                continue
            total = struct.unpack_from("!H", ip, 2)[0]
            udp = ip[ihl:total]
            if struct.unpack_from("!H", udp, 2)[0] == port:
                out.append((ip[:ihl], udp))
        return out

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.sock.close()


def _checksum4(src, dst, udp):
    data = src + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp[:6] + \
        b"\0\0" + udp[8:]
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    return s or 0xFFFF


def test_preserve_source_netns():
    if os.geteuid() != 0:
        raise fp.Skip("needs root (network namespaces, raw sockets)")
    if shutil.which("ip") is None:
        raise fp.Skip("iproute2 (ip) is not installed")
    fp.require_binaries()
    try:
        ns = Netns()
    except (OSError, AssertionError) as e:
        # `ip` failed, e.g. in a container without CAP_SYS_ADMIN; the
        # harness's cleanup removes what was made
        raise fp.Skip("cannot create network namespaces here: %s" % e)

    # The collector's sockets live in y; everything else runs in x.
    ns.enter(ns.y)
    sink4 = SourceSink("10.77.0.2")
    sink6 = SourceSink("fd77::2")
    cap = Capture(ns.vy)
    ns.enter(ns.x)

    port4, port6 = fp.free_udp_port(), fp.free_udp_port("::")
    t = nfpeers.Tunnel([sink4.address, sink6.address],
                       gateway_conf={"preserve_source": True},
                       client_conf={"listen": ["127.0.0.1:%d" % port4,
                                               "[::]:%d" % port6]})
    origin = _replay_from(t.cl, ["10.77.1.5", "10.77.1.6"], N, 4,
                          ("127.0.0.1", port4))
    origin.update(_replay_from(t.cl, ["fd77:1::5", "fd77:1::6"], N, 6,
                               ("fd77:1::5", port6), base=100000))
    for sink in (sink4, sink6):
        assert sink.wait_count(len(origin), 30), \
            "collector %s got %d of %d" % (sink.address, sink.count(),
                                           len(origin))
        got = list(zip(sink.payloads(), sink.sources()))
        for p, src in got:
            assert p in origin, "payload changed on the way"
            want = origin[p]
            if (":" in want[0]) == (":" in sink.host):
                # Same family: the exporter's own address and port.
                assert src[:2] == want, (src, want)
            else:
                # Across families the identity cannot be kept.
                assert src[0] in ("10.77.0.1", "fd77::1"), (src, want)
    frames = fp.wait_for(lambda: len(cap.udp4(sink4.port)) >= len(origin),
                         10)
    assert frames, "capture saw %d IPv4 frames" % len(cap.udp4(sink4.port))
    spoofed = 0
    for iph, udp in cap.udp4(sink4.port):
        src, dst = iph[12:16], iph[16:20]
        if not socket.inet_ntoa(src).startswith("10.77.1."):
            continue    # the kernel's own (checksum possibly offloaded)
        ck = struct.unpack_from("!H", udp, 6)[0]
        assert ck != 0, "UDP checksum 0 from %s" % socket.inet_ntoa(src)
        assert ck == _checksum4(src, dst, udp), \
            "bad UDP checksum from %s" % socket.inet_ntoa(src)
        spoofed += 1
    assert spoofed == len(origin) // 2, spoofed
    m = t.gw.metrics()
    fp.log("preserve_source: %d datagrams per collector; srcmap preserved "
           "%s, fallbacks %s; %d spoofed IPv4 checksums verified" % (
               len(origin),
               fp.metric_sum(m, "flowpost_gateway_srcmap_preserved_total"),
               fp.metric_sum(m, "flowpost_gateway_srcmap_fallbacks_total"),
               spoofed))
    assert fp.metric_sum(m, "flowpost_gateway_srcmap_preserved_total") == \
        len(origin)
    assert fp.metric_sum(m, "flowpost_gateway_srcmap_fallbacks_total") == \
        len(origin)
    assert t.cl.stop() == 0 and t.gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_source_port_map, test_preserve_source_netns)
