"""
nfpeers.py: real NetFlow/IPFIX peers for the interoperability tests.

Wraps Debian's softflowd (a flow probe that turns a traffic capture into
export datagrams), nfdump's nfcapd/nfdump (a collector and its reader) and
pmacct's nfacctd (a second collector), and builds the flowpost tunnel in
front of a collector.  Every process is an fp.Proc, so fp.cleanup() ends it
and its log is printed when a test fails.  A missing tool raises fp.Skip
(exit 77).

The comparison idea: the same export datagrams go once straight to one
collector and once through client -> gateway to a second, identical
collector, both times from a single UDP socket (so each collector sees one
exporter and the same datagram sequence).  The decoded records must then be
identical except for what legitimately differs between the two paths: the
exporter address the collector saw, its internal exporter id and the time of
reception.
"""

import os
import re
import shutil
import signal
import socket
import subprocess

import fp

# nfdump CSV columns that differ between the direct and the tunnelled path.
NFDUMP_VOLATILE = ("ra", "exid", "tr")

NFCAPD_BUF = 8 << 20


def require_tools(*names):
    for n in names:
        if shutil.which(n) is None:
            raise fp.Skip("%s is not installed" % n)


def udp_bound(port, family=4):
    """True once some local UDP socket is bound to `port`."""
    return fp.udp_rx_queue(port, family) is not None


def wait_drained(port, timeout=20):
    """Waits until the receive queue of the UDP socket on `port` is empty:
    the process behind it has read every datagram that arrived."""
    fp.wait_for(lambda: fp.udp_rx_queue(port) == 0, timeout, 0.005,
                what="UDP port %d's receive queue to drain" % port)


def send_paced(payloads, port, host="127.0.0.1", high=1 << 20):
    """Sends payloads to host:port from one socket, waiting whenever the
    receiver's queue holds more than `high` bytes, so loopback never
    overflows a collector that is merely slower than this loop."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.bind((host, 0))
        for i, p in enumerate(payloads):
            s.sendto(p, (host, port))
            if i % 8 == 7:
                fp.wait_for(lambda: (fp.udp_rx_queue(port) or 0) <= high,
                            20, 0.001, what="collector on %d to read" % port)
    finally:
        s.close()


# ---------------------------------------------------------------------------
# softflowd

def softflowd_export(pcaps, version, timeout=60):
    """The export datagrams softflowd makes of the traffic captures, one
    run per capture, in order.  `version` is 5, 9 or 10 (IPFIX)."""
    require_tools("softflowd")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    out = []
    try:
        for path in pcaps:
            # -c none: with a control socket, softflowd 1.1.0 may wait in
            # accept() before it reads the capture.
            r = fp.run(["softflowd", "-d", "-r", path, "-c", "none", "-v",
                        str(version), "-n", "127.0.0.1:%d" % port],
                       timeout=timeout)
            if r.returncode != 0:
                raise AssertionError("softflowd -v %s -r %s: exit %d: %s"
                                     % (version, path, r.returncode,
                                        r.stderr[-500:]))
            # softflowd has exited: everything it sent is queued here.
            sock.setblocking(False)
            while True:
                try:
                    out.append(sock.recv(65536))
                except BlockingIOError:
                    break
    finally:
        sock.close()
    return out


# ---------------------------------------------------------------------------
# nfcapd / nfdump

class Nfcapd(fp.Proc):
    """nfcapd on 127.0.0.1:port writing into its own directory, with a
    large receive buffer (a burst would lose datagrams otherwise).  stop()
    ends it with SIGTERM, which closes and renames the current file."""

    _n = 0

    def __init__(self, port=None, workdir=None, name=None, wait_ready=True):
        require_tools("nfcapd", "nfdump")
        Nfcapd._n += 1
        self.dir = workdir or fp.tmpdir("fp-nfcapd-")
        self.port = port or fp.free_udp_port()
        self.flowdir = os.path.join(self.dir, "flows")
        os.makedirs(self.flowdir, exist_ok=True)
        argv = ["nfcapd", "-w", self.flowdir, "-p", str(self.port), "-b",
                "127.0.0.1", "-B", str(NFCAPD_BUF), "-t", "3600", "-P",
                os.path.join(self.dir, "nfcapd.pid")]
        super().__init__(name or "nfcapd%d" % Nfcapd._n, argv, self.dir)
        if wait_ready:
            self.wait_ready()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def wait_ready(self, timeout=10):
        def ready():
            if not self.alive():
                raise AssertionError("%s exited with %s at start"
                                     % (self.name, self.returncode()))
            return udp_bound(self.port)
        fp.wait_for(ready, timeout, 0.01, what="%s to bind" % self.name)

    def forget_log(self):
        """Leaves this process's log out of a failure report (for helpers
        that have done their job)."""
        if self in fp._failed_logs:
            fp._failed_logs.remove(self)

    def finish(self, timeout=20):
        """Waits until every queued datagram was read, then stops.  Returns
        the exit status."""
        if self.alive():
            wait_drained(self.port, timeout)
        return self.stop()

    def files(self):
        return sorted(f for f in os.listdir(self.flowdir)
                      if f.startswith("nfcapd.") and ".current." not in f)

    def csv(self):
        """[(header, [row, ...])] of every closed file: nfdump -o csv."""
        rows = []
        header = None
        for f in self.files():
            path = os.path.join(self.flowdir, f)
            r = fp.run(["nfdump", "-N", "-r", path, "-o", "csv"], timeout=60)
            if r.returncode != 0:
                raise AssertionError("nfdump -r %s: exit %d: %s"
                                     % (path, r.returncode, r.stderr[-300:]))
            lines = r.stdout.splitlines()
            if not lines:
                continue
            header = lines[0].split(",")
            for line in lines[1:]:
                # The body ends at the first empty line (summary follows).
                if not line.strip() or line.startswith("Summary"):
                    break
                if line.startswith("No matching flows"):
                    continue
                rows.append(line.split(","))
        return header, rows

    def records(self, drop=NFDUMP_VOLATILE):
        """Decoded records as tuples of CSV fields without `drop` columns,
        in file order."""
        header, rows = self.csv()
        if header is None:
            return []
        keep = [i for i, h in enumerate(header) if h.strip() not in drop]
        for r in rows:
            if len(r) != len(header):
                raise AssertionError("%s: nfdump row with %d fields, header "
                                     "has %d: %r" % (self.name, len(r),
                                                     len(header), r))
        return [tuple(r[i].strip() for i in keep) for r in rows]

    def summary(self):
        """{flows, sequence_errors, bad_packets} from the line nfcapd logs
        when it stops, or None before that."""
        m = None
        for m in re.finditer(r"Flows: (\d+),.*Sequence Errors: (\d+), "
                             r"Bad Packets: (\d+)", self.log_text()):
            pass
        if m is None:
            return None
        return {"flows": int(m.group(1)), "sequence_errors": int(m.group(2)),
                "bad_packets": int(m.group(3))}


def compare_records(direct, tunnel, limit=5):
    """None when the two record lists are equal, else what differs."""
    if direct == tunnel:
        return None
    import collections
    a, b = collections.Counter(direct), collections.Counter(tunnel)
    msgs = ["direct %d records, tunnel %d" % (len(direct), len(tunnel))]
    missing = list((a - b).elements())
    extra = list((b - a).elements())
    if missing:
        msgs.append("%d missing through the tunnel, e.g. %s"
                    % (len(missing), ",".join(missing[0])))
    if extra:
        msgs.append("%d extra/repeated through the tunnel, e.g. %s"
                    % (len(extra), ",".join(extra[0])))
    if not missing and not extra:
        for i, (x, y) in enumerate(zip(direct, tunnel)):
            if x != y:
                msgs.append("same records, order differs from record %d" % i)
                break
    return "; ".join(msgs[:limit])


# ---------------------------------------------------------------------------
# nfacctd (pmacct)

class Nfacctd(fp.Proc):
    """nfacctd with one print plugin writing CSV when it stops (SIGINT
    purges the cache; pmacct does not stop on SIGTERM)."""

    AGGREGATE = ("src_host, dst_host, src_port, dst_port, proto, tos, "
                 "tcpflags, in_iface, out_iface, timestamp_start, "
                 "timestamp_end")

    def __init__(self, port=None, workdir=None, name="nfacctd"):
        require_tools("nfacctd")
        self.dir = workdir or fp.tmpdir("fp-nfacctd-")
        self.port = port or fp.free_udp_port()
        self.out = os.path.join(self.dir, "out.csv")
        conf = os.path.join(self.dir, "nfacctd.conf")
        with open(conf, "w") as f:
            f.write("daemonize: false\n"
                    "nfacctd_ip: 127.0.0.1\n"
                    "nfacctd_port: %d\n"
                    "nfacctd_pipe_size: %d\n"
                    "pidfile: %s\n"
                    "plugins: print[out]\n"
                    "aggregate[out]: %s\n"
                    "print_output[out]: csv\n"
                    "print_output_file[out]: %s\n"
                    "print_refresh_time[out]: 3600\n"
                    "timestamps_secs: false\n"
                    % (self.port, NFCAPD_BUF,
                       os.path.join(self.dir, "nfacctd.pid"), self.AGGREGATE,
                       self.out))
        super().__init__(name, ["nfacctd", "-f", conf], self.dir)

        def ready():
            if not self.alive():
                raise AssertionError("nfacctd exited with %s at start"
                                     % self.returncode())
            return udp_bound(self.port)
        fp.wait_for(ready, 15, 0.01, what="nfacctd to bind")

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def finish(self, timeout=20):
        if self.alive():
            wait_drained(self.port, timeout)
            os.kill(self.pid, signal.SIGINT)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("nfacctd did not exit after SIGINT")
        return rc

    def rows(self):
        """The aggregated CSV rows, header first then sorted (pmacct
        writes its cache in hash order)."""
        with open(self.out) as f:
            lines = [l.rstrip("\n") for l in f if l.strip()]
        return lines[:1] + sorted(lines[1:])


# ---------------------------------------------------------------------------
# The tunnel in front of a collector

class Tunnel:
    """A gateway forwarding to `collectors` and a client posting to it,
    IPv4 only.  send(payloads) replays datagrams into the client from one
    socket; wait_forwarded(n) waits until the gateway handed n datagrams
    to every collector."""

    def __init__(self, collectors, client_id="kit-interop", gateway_conf=None,
                 client_conf=None):
        fp.require_binaries()
        self.dir = fp.tmpdir("fp-tunnel-")
        self.keys_file = os.path.join(self.dir, "keys")
        self.key_file = os.path.join(self.dir, "client.key")
        fp.genkey(client_id, self.keys_file, self.key_file)
        gconf = {"rate_limit_client": 0}
        gconf.update(gateway_conf or {})
        self.gw = fp.Gateway(self.keys_file, collectors, conf=gconf)
        cconf = {"batch_max_age": "1s"}
        cconf.update(client_conf or {})
        self.cl = fp.Client(self.gw.url, self.key_file, client_id,
                            conf=cconf, ipv6=False)
        self.rep = fp.Replayer(self.cl)

    def send(self, payloads):
        self.rep.send(list(payloads), 4)

    def forwarded(self):
        return fp.metric_sum(self.gw.metrics(),
                             "flowpost_gateway_datagrams_total") or 0

    def wait_forwarded(self, n, timeout=60):
        fp.wait_for(lambda: self.forwarded() >= n, timeout, 0.05,
                    what="the gateway to forward %d datagrams (client: %s)"
                    % (n, fp.fmt_stats(self.cl.stats())))


# ---------------------------------------------------------------------------
# A slow collector

class SlowSink:
    """A UDP collector on 127.0.0.1 with a small receive buffer that reads
    at most about `rate` datagrams per second, like a busy collector.  A
    burst larger than its buffer loses datagrams in the kernel."""

    def __init__(self, rcvbuf=128 << 10, rate=1000):
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET,
                                           socket.SO_RCVBUF)
        self.interval = 1.0 / rate
        self.received = []
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        fp._register(self)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _run(self):
        import time
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.received.append(data)
            # The reading rate of a collector that has other work to do.
            time.sleep(self.interval)

    def count(self):
        with self.lock:
            return len(self.received)

    def payloads(self):
        with self.lock:
            return list(self.received)

    def settle(self, timeout=30):
        """Waits until the kernel queue is empty and the reader took the
        last datagram; returns the count."""
        wait_drained(self.port, timeout)
        last = [-1]

        def still():
            n = self.count()
            same = n == last[0]
            last[0] = n
            return same
        fp.wait_for(still, 5, 0.05)
        return self.count()

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.sock.close()
