"""
bench/rows_extra.py: more rows of bench/run's table.

  squid    fp-gen -> client -> squid (forward proxy) -> gateway -> fp-sink,
           zero-loss records/s with the flowpost row's search
  client   fp-gen -> client, gateway down: zero-loss records/s into the
           spool (every datagram sealed, nothing dropped, no backlog)
  gateway  a backlog spooled with the gateway down, then delivered:
           records/s out of the gateway (the drain's code, smaller backlog)
  bytes    bytes per flow record on a real run, through a counting TCP
           relay between client and gateway: raw NetFlow, gzip -6 of the
           same batch contents, the sealed bodies, HTTP requests and
           responses with their headers
  cpu10k   the client's CPU at a steady 10,000 records/s (target < 5 %)
  rss100k  the client's memory at a steady 100,000 records/s (target:
           peak RSS < 8 MiB), split into its private pages and the shared
           libraries' pages

bench/run imports this module and hands itself over with use(); the rows
reuse its processes, paths, trials and the zero-loss search.  Everything
runs on 127.0.0.1, every process is stopped by its PID, every wait is
bounded.  Python 3 standard library only.
"""

import glob
import gzip
import ipaddress
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib

import codec_bytes

ROWS = {"squid", "client", "gateway", "bytes", "cpu10k", "rss100k"}
R = None		# bench/run as a module, set by use()

CORPUS = "/work/shared/corpus"
CPU_RATE = 10000	# records/s of the cpu10k row
RSS_RATE = 100000	# records/s of the rss100k row
RSS_TARGET_MIB = 8
CPU_TARGET = 5.0	# % of one core
BYTES_TARGET_RAW = 25.0		# softflowd v5: at most this % of raw
BYTES_TARGET_GZIP = -25.0	# at least 25 % fewer bytes than gzip -6
BYTES_GEN_RECORDS = 300000	# the synthetic set: 10,000 v5 datagrams
FPB_FIXED = 65			# batch header bytes before the client id


def use(module):
    """bench/run hands itself over: its Proc, Flowpost, Sink, trial..."""
    global R
    R = module


def log(msg):
    R.log(msg)


# ---------------------------------------------------------------------------
# Options

def add_args(p):
    p.add_argument("--gw-records", type=int, default=None,
                   help="backlog of the gateway row (default 3000000, "
                   "quick 300000)")
    p.add_argument("--gw-runs", type=int, default=1,
                   help="gateway row repetitions (default 1)")
    p.add_argument("--cpu-window", type=float, default=10.0,
                   help="seconds the cpu10k row measures (default 10)")


def finish_args(a):
    a.gw_records = a.gw_records or (300000 if a.quick else 3000000)
    # The squid and client rows are reported against the direct path of
    # the same run.
    if a.only & {"squid", "client"}:
        a.only.add("direct")


# ---------------------------------------------------------------------------
# Hooks called from bench/run's suite()

def per_run(bench, runs, i):
    """The throughput rows that have a ratio to direct: after direct,
    socat and flowpost in run i."""
    a = bench.args
    if "squid" in a.only:
        if squid_binary() is None:
            if i == 0:
                log("bench: squid is not installed: no squid row")
        else:
            runs.setdefault("squid", []).append(R.run_path(
                bench, squid_path(bench, "squid%d" % i), a.fp_seconds,
                a.steps))
    if "client" in a.only:
        runs.setdefault("client", []).append(R.run_path(
            bench, client_path(bench, "spool%d" % i), a.fp_seconds,
            a.steps))


def after_runs(bench, runs):
    """The rows that stand on their own; returns their results (also the
    --json output's "extra")."""
    a = bench.args
    ex = {"squid_checks": getattr(bench, "squid_checks", []),
          "squid_installed": squid_binary() is not None,
          "gateway": [], "bytes": None, "cpu10k": [], "rss100k": []}
    if "cpu10k" in a.only:
        for i in range(a.runs):
            ex["cpu10k"].append(cpu_at_rate(bench, i, CPU_RATE,
                                            a.cpu_window))
    if "rss100k" in a.only:
        for i in range(a.runs):
            ex["rss100k"].append(cpu_at_rate(bench, 100 + i, RSS_RATE,
                                             a.cpu_window, tag="rss100k"))
    if "gateway" in a.only:
        fp_rates = [r["best"]["offered"] for r in runs.get("flowpost", [])
                    if r["best"]]
        load = a.load_rate or (0.8 * R.median(fp_rates) if fp_rates
                               else 100000)
        for i in range(a.gw_runs):
            ex["gateway"].append(gateway_alone(bench, i, a.gw_records,
                                               load))
    if "bytes" in a.only:
        ex["bytes"] = bytes_rows(bench)
    return ex


# ---------------------------------------------------------------------------
# squid: flowpost through a real forward proxy

SQUID_CONF = """\
# written by bench/run: squid as a plain forward proxy on loopback,
# memory only, nothing cached, everything in this directory.
http_port 127.0.0.1:{port}
visible_hostname flowpost-bench
cache_effective_user {user}
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log stdio:{dir}/access.log squid
cache_store_log none
coredump_dir {dir}
cache deny all
pinger_enable off
netdb_filename none
hosts_file {dir}/hosts
dns_nameservers 127.0.0.1
udp_incoming_address 127.0.0.1
udp_outgoing_address 127.0.0.1
shutdown_lifetime 0 seconds
acl loopback src 127.0.0.0/8
http_access allow loopback
http_access deny all
"""


def squid_binary():
    return shutil.which("squid", path=os.environ.get("PATH", "") +
                        ":/usr/sbin:/sbin")


def squid_user():
    """squid drops root privileges to this account; otherwise it runs as
    whoever runs the bench."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name
    for user in ("proxy", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            pass
    raise R.BenchError("squid: no unprivileged user (proxy, nobody)")


class Squid:
    """squid -N on 127.0.0.1:port with SQUID_CONF, in directory d.  A port
    taken between choosing and binding makes squid exit at once: tried
    again on a new port, a few times."""

    def __init__(self, bench, d, name):
        os.makedirs(d)
        os.chmod(d, 0o755)
        user = squid_user()
        if os.geteuid() == 0:
            # squid, no longer root, opens its logs by path: the
            # directories above its own (the bench's work directory is
            # 0700) must let it through, without listing them.
            up = os.path.dirname(d)
            while up.startswith(bench.workdir):
                os.chmod(up, os.stat(up).st_mode & 0o777 | 0o711)
                if up == bench.workdir:
                    break
                up = os.path.dirname(up)
        self.dir = d
        self.access_log = os.path.join(d, "access.log")
        cache_log = os.path.join(d, "cache.log")
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
        for attempt in range(3):
            self.port = R.free_port(socket.SOCK_STREAM)
            conf = os.path.join(d, "squid.conf")
            with open(conf, "w") as f:
                f.write(SQUID_CONF.format(port=self.port, dir=d, user=user))
            if os.geteuid() == 0:
                pw = pwd.getpwnam(user)
                for p in [d] + [os.path.join(d, n) for n in os.listdir(d)]:
                    os.chown(p, pw.pw_uid, pw.pw_gid)
            self.proc = R.Proc(name, [squid_binary(), "-N", "-f", conf],
                               bench.workdir)

            def up():
                try:
                    with open(cache_log, errors="replace") as f:
                        text = f.read()
                except OSError:
                    text = ""
                return ("Accepting HTTP Socket connections" in text or
                        not self.proc.alive())
            R.wait_for(up, 30, 0.05)
            if self.proc.alive() and up():
                self.url = "http://127.0.0.1:%d" % self.port
                return
            self.proc.stop()
            log("bench: squid did not start on port %d (attempt %d)"
                % (self.port, attempt + 1))
        raise R.BenchError("squid did not start; see %s and %s"
                           % (self.proc.logpath, cache_log))

    def posts(self):
        """POSTs in the access log by status ("squid" logformat: the 4th
        column is result/status, the 6th the method)."""
        out = {}
        try:
            with open(self.access_log, errors="replace") as f:
                for line in f:
                    cols = line.split()
                    if len(cols) > 5 and cols[5] == "POST":
                        st = cols[3].rpartition("/")[2]
                        out[st] = out.get(st, 0) + 1
        except OSError:
            pass
        return out


def squid_path(bench, tag):
    class SquidPath(R.Flowpost):
        """The flowpost path with `proxy` set to a squid of its own and
        the way pinned (`route = configured`: plain forwarding of the
        http:// POSTs), so that no fallback to direct can hide the
        proxy."""

        name = "squid"

        def __init__(self):
            super().__init__(bench, tag, client_extra={
                "route": "configured"})
            self.squid = None

        def start(self):
            self.squid = Squid(bench, os.path.join(self.dir, "squid"),
                               "squid-" + tag)
            self.client_extra["proxy"] = self.squid.url
            super().start()

        def daemons(self):
            return super().daemons() + ([self.squid.proc] if self.squid
                                        else [])

        def stop(self):
            # Everything acknowledged (the stats file then counts every
            # POST) before the count is compared with squid's log.
            posts = 0
            if self.client is not None and self.client.alive():
                self.settle()
                posts = self.stats().get("posts", 0)
            super().stop()
            if self.squid is not None:
                status = self.squid.posts()
                n = sum(status.values())
                checks = getattr(bench, "squid_checks", [])
                checks.append({"tag": tag, "client_posts": posts,
                               "squid_posts": n, "status": status})
                bench.squid_checks = checks
                # Every POST the client made went through squid.
                if n != posts:
                    bench.failures.append(
                        "squid: %s: the client made %d POSTs, squid "
                        "relayed %d" % (tag, posts, n))
    return SquidPath()


# ---------------------------------------------------------------------------
# client: the client alone, into its spool

def newest_batch_mono(spool):
    """When the newest batch file (*.fpb, named by sequence number) was
    written, on the monotonic clock of fp-gen's t_end; None if none."""
    newest = None
    try:
        with os.scandir(spool) as it:
            for e in it:
                if e.name.endswith(".fpb") and (newest is None or
                                                e.name > newest.name):
                    newest = e
        if newest is None:
            return None
        mtime = newest.stat().st_mtime
    except OSError:
        return None
    return mtime - (time.time() - time.monotonic())


def drops(st):
    return sum(v for k, v in st.items() if k.startswith("dropped"))


def client_path(bench, tag):
    class ClientOnly(R.Flowpost):
        """The client with nothing at its gateway_url: everything it
        seals stays in the spool.  A trial is judged on the client's own
        counters (bench/run's trial() hands it to self.trial)."""

        name = "client"

        def __init__(self):
            super().__init__(bench, tag, with_gateway=False,
                             client_extra={"spool_max_bytes": "8G"})

        def accounted(self, base, sent, timeout=30):
            """Waits until what the client received since `base` is
            sealed or counted as dropped, and nothing more arrives (all
            sent, or no growth for 2.5 s: the stats file is rewritten
            each second).  Returns the last stats."""
            seen = {"rx": -1, "since": time.monotonic(), "st": {}}

            def done():
                st = self.stats()
                seen["st"] = st
                rx = st.get("received_datagrams", 0) - base.get(
                    "received_datagrams", 0)
                if rx != seen["rx"]:
                    seen["rx"], seen["since"] = rx, time.monotonic()
                sealed = st.get("datagrams_sealed", 0) - base.get(
                    "datagrams_sealed", 0)
                return (sealed + drops(st) - drops(base) >= rx and
                        (rx >= sent or
                         time.monotonic() - seen["since"] > 2.5))
            if not R.wait_for(done, timeout, 0.05):
                log("bench: %s: the client's counters did not settle "
                    "within %d s: %s" % (tag, timeout, seen["st"]))
            return seen["st"]

        def trial(self, rate, seconds):
            return client_trial(bench, self, rate, seconds)
    return ClientOnly()


def client_trial(bench, path, rate, seconds):
    """Passes when the client sealed every datagram sent (datagrams_sealed
    grew by exactly what fp-gen sent), dropped none (socket, back-pressure,
    anything else) and the last batch was written within the lag limit
    after the generator's end."""
    s0 = path.accounted({}, 0)
    cpu0 = path.client.cpu_s()
    rx0 = R.udp_drops(path.dest_port)
    g = R.run_gen(bench.bins, path.dest_port, bench.args, rate=rate,
                  seconds=seconds)
    st = path.accounted(s0, g["datagrams"])
    t_seal = newest_batch_mono(path.spool)
    cpu = {path.client.name: (path.client.cpu_s() or 0) - (cpu0 or 0)}
    sealed = st.get("datagrams_sealed", 0) - s0.get("datagrams_sealed", 0)
    where = {"relay_socket": R.udp_drops(path.dest_port) - rx0,
             "client_backpressure": st.get("dropped_backpressure", 0) -
             s0.get("dropped_backpressure", 0),
             "client_other": drops(st) - drops(s0) -
             (st.get("dropped_backpressure", 0) -
              s0.get("dropped_backpressure", 0)),
             "sink_socket": 0}
    lag = t_seal - g["t_end"] if sealed and t_seal is not None else None
    # Records sealed, as a share of the records sent (v5: 30 a datagram).
    recs = (g["records"] * sealed / g["datagrams"]) if g["datagrams"] else 0
    delivered = (recs / (t_seal - g["t_start"])
                 if lag is not None and t_seal > g["t_start"] else 0.0)
    lost = g["datagrams"] - sealed
    passed = (lost == 0 and not any(where.values()) and lag is not None and
              lag <= path.lag_limit)
    t = {"path": path.name, "rate": rate, "offered": g["records_per_s"],
         "delivered": delivered, "records": g["records"],
         "sent": g["datagrams"], "got": sealed, "lost": lost,
         "exact": lost == 0, "lag": lag, "cpu": cpu, "where": where,
         "passed": passed,
         # What the search reads of a sink: records and their time span.
         "sink": {"records": recs, "t_first": g["t_start"],
                  "t_last": t_seal if t_seal is not None else g["t_end"]}}
    log("bench:   %-8s rate %-7s offered %8.0f sealed %8.0f rec/s  "
        "lost %d/%d (socket %d, bp %d, other %d)  lag %s  %s"
        % (path.name, "max" if rate == 0 else "%.0f" % rate, t["offered"],
           delivered, lost, g["datagrams"], where["relay_socket"],
           where["client_backpressure"], where["client_other"],
           "-" if lag is None else "%.2fs" % lag,
           "PASS" if passed else "fail"))
    return t


# ---------------------------------------------------------------------------
# gateway: a spooled backlog delivered (the drain, smaller)

def gateway_alone(bench, i, records, load):
    """bench/run's drain with the gateway's per-client rate limit off, so
    that the row measures the gateway (verify, inflate, re-emit) and not
    the limit.  Rate = records / (the sink's last - first datagram)."""
    res = R.drain(bench, records, load, tag="gw%d" % i,
                  gateway_extra={"rate_limit_client": "0"})
    span = res.get("sink_span")
    res["rate"] = (res["records"] / span if span and res["exact"] and
                   res["drain_s"] is not None else None)
    return res


# ---------------------------------------------------------------------------
# cpu10k: the client's CPU at a steady rate

def proc_status_kib(pid, keys):
    """{key: kB} of /proc/PID/status lines, {} once it is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in keys:
                    out[k] = int(line.split()[1])
    except OSError:
        pass
    return out


def cpu_at_rate(bench, i, rate, window, warmup=2.0, tag="cpu10k"):
    """fp-gen at `rate` records/s through the flowpost path; the client's
    utime+stime over `window` seconds after `warmup`, as % of one core,
    and its memory: VmHWM at the end, and the peaks of its private
    (RssAnon) and file-backed (RssFile: shared library pages) resident
    pages, sampled every 20 ms over the window.  The stream must arrive
    complete and in order (digest)."""
    a = bench.args
    path = R.Flowpost(bench, "cpu%d" % i)
    path.start()
    res = {"rate": rate, "window": window}
    try:
        seconds = int(warmup + window + 2)
        sink = R.Sink(bench.bins, path.sink_port, bench.workdir, idle=3,
                      wait_first=10, timeout=seconds + 60)
        gen = R.Proc("fp-gen-cpu%d" % i, [
            bench.bins["gen"], "--dest", "127.0.0.1:%d" % path.dest_port,
            "--rate", str(rate), "--version", str(a.nf_version),
            "--exporters", str(a.exporters), "--seed", str(a.seed),
            "--seconds", str(seconds)], bench.workdir, stdout_pipe=True)
        try:
            t_start = time.monotonic()
            # A measuring window, not a wait for a condition: the
            # generator paces itself, the client's counters are read at
            # both ends.
            time.sleep(warmup)
            c0, g0, t0 = (path.client.cpu_s(), path.gateway.cpu_s(),
                          time.monotonic())
            peak = {"RssAnon": 0, "RssFile": 0}
            while time.monotonic() - t0 < window:
                cur = proc_status_kib(path.client.pid, peak)
                for k, v in cur.items():
                    peak[k] = max(peak[k], v)
                time.sleep(0.02)
            c1, g1, t1 = (path.client.cpu_s(), path.gateway.cpu_s(),
                          time.monotonic())
            res["client_anon_peak"] = peak["RssAnon"]
            res["client_file_peak"] = peak["RssFile"]
            res["steady"] = gen.alive()	# still sending at the end
            try:
                out, _ = gen.p.communicate(timeout=seconds + 60 -
                                           (time.monotonic() - t_start))
            except subprocess.TimeoutExpired:
                raise R.BenchError("fp-gen overran its --seconds")
            g = R.last_json(out.decode())
        finally:
            gen.stop()
        s = sink.result()
        res["client_pct"] = 100.0 * (c1 - c0) / (t1 - t0)
        res["gateway_pct"] = 100.0 * (g1 - g0) / (t1 - t0)
        res["offered"] = g["records_per_s"]
        res["exact"] = (s["datagrams"] == g["datagrams"] and
                        s["hash"] == g["hash"])
        res["client_hwm"] = path.client.hwm_kib()
    finally:
        path.stop()
    if not res["exact"]:
        bench.failures.append("%s: sink got %d of %d datagrams or "
                              "another stream" % (tag, s["datagrams"],
                                                  g["datagrams"]))
    log("bench: %s: client %.2f %% of a core, gateway %.2f %% over "
        "%.1f s at %.0f rec/s offered; client VmHWM %d KiB, peak RssAnon "
        "%d KiB, RssFile %d KiB"
        % (tag, res["client_pct"], res["gateway_pct"], t1 - t0,
           res["offered"], res["client_hwm"] or 0, res["client_anon_peak"],
           res["client_file_peak"]))
    return res


# ---------------------------------------------------------------------------
# bytes: a counting relay between client and gateway

class HttpCount:
    """One direction of an HTTP/1.x connection: splits the bytes into
    message heads and bodies (Content-Length framing, the only one the
    client and the gateway use) and keeps the first `keep` bytes of each
    body."""

    def __init__(self, keep=0):
        self.keep = keep
        self.total = 0
        self.head_bytes = 0
        self.msgs = []		# (head, body length, body prefix)
        self.buf = b""
        self.left = 0
        self.cur = None

    def feed(self, data):
        self.total += len(data)
        while data:
            if self.cur is not None:
                n = min(self.left, len(data))
                head, blen, prefix = self.cur
                if len(prefix) < self.keep:
                    prefix += data[:min(n, self.keep - len(prefix))]
                self.cur = (head, blen, prefix)
                self.left -= n
                data = data[n:]
                if self.left == 0:
                    self.msgs.append(self.cur)
                    self.cur = None
                continue
            self.buf += data
            data = b""
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return		# the rest of the head comes later
            head, data = self.buf[:end + 4], self.buf[end + 4:]
            self.buf = b""
            self.head_bytes += len(head)
            m = re.search(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$",
                          head)
            blen = int(m.group(1)) if m else 0
            if blen:
                self.cur, self.left = (head, blen, b""), blen
            else:
                self.msgs.append((head, 0, b""))


class CountingRelay:
    """TCP relay 127.0.0.1:port -> 127.0.0.1:upstream; counts every byte
    in both directions (HttpCount) before forwarding it."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.pairs = []		# (requests, responses) per connection
        self.socks = []
        self.threads = []
        self.lock = threading.Lock()
        self.stopping = False
        self._thread(self._accept)

    def _thread(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(None)
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream),
                                             timeout=10)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            req, resp = HttpCount(keep=FPB_FIXED + 64), HttpCount()
            with self.lock:
                self.pairs.append((req, resp))
                self.socks += [c, u]
                self._thread(self._pump, c, u, req)
                self._thread(self._pump, u, c, resp)

    @staticmethod
    def _pump(src, dst, counter):
        try:
            while True:
                data = src.recv(1 << 18)
                if not data:
                    break
                counter.feed(data)
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.stopping = True
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for t in list(self.threads):
            t.join(5)
        with self.lock:
            for s in self.socks:
                s.close()
        self.lsock.close()

    def totals(self):
        req = [m for q, _ in self.pairs for m in q.msgs]
        return {
            "connections": len(self.pairs),
            "req_total": sum(q.total for q, _ in self.pairs),
            "req_heads": sum(q.head_bytes for q, _ in self.pairs),
            "resp_total": sum(r.total for _, r in self.pairs),
            "resp_heads": sum(r.head_bytes for _, r in self.pairs),
            "responses": sum(len(r.msgs) for _, r in self.pairs),
            "requests": req,
        }


class UdpCollector:
    """The gateway's collector for the bytes row: keeps every payload in
    arrival order (a few MB), so the delivery check is exact."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
        except OSError:		# SO_RCVBUFFORCE needs CAP_NET_ADMIN
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                 32 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.payloads = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                self.payloads.append(self.sock.recv(65535))
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def loopback_for(addr):
    """The 127.0.0.x a replayed exporter sends from: itself when already
    on loopback, else a fixed 127.0.0.2..254 from its address."""
    try:
        ip = ipaddress.ip_address(addr)
        if ip.version == 4 and ip.is_loopback:
            return str(ip)
    except ValueError:
        pass
    return "127.0.0.%d" % (2 + zlib.crc32(str(addr).encode()) % 253)


def replay(path, dgrams):
    """Sends (source address, source port, payload) to the client's
    listener, one UDP socket per exporter, pacing on the listener's
    receive queue so that loopback never overflows.  Returns, per
    datagram, (send time us, (address, port) sent from, payload): what the
    client writes into a batch entry."""
    socks = {}
    dest = ("127.0.0.1", path.dest_port)
    sent = []
    try:
        for k, (src, sport, payload) in enumerate(dgrams):
            s = socks.get((src, sport))
            if s is None:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((loopback_for(src), 0))
                socks[(src, sport)] = s
            if k % 16 == 0 and (R.udp_rx_queue(path.dest_port) or 0) > \
                    256 << 10:
                R.wait_for(lambda: (R.udp_rx_queue(path.dest_port) or 0)
                           <= 32 << 10, 10, 0.002)
            s.sendto(payload, dest)
            sent.append((int(time.time() * 1e6), s.getsockname(), payload))
    finally:
        for s in socks.values():
            s.close()
    return sent


def fpb_header(prefix):
    """The clear header of a posted batch (PROTOCOL.md 1): codec, flags,
    seq, count, raw_len, sealed_len; None if it is not one."""
    if len(prefix) < FPB_FIXED or prefix[:4] != b"FPB1":
        return None
    codec, flags = prefix[5], prefix[7]
    seq, = struct.unpack(">Q", prefix[8:16])
    count, raw_len, _, sealed_len = struct.unpack(">IIII", prefix[24:40])
    return {"codec": codec, "flags": flags, "seq": seq, "count": count,
            "raw_len": raw_len, "sealed_len": sealed_len}


def gzip_same_batches(batches, delivered, listen_port):
    """gzip -6 (Python's gzip, as bench/codec_bytes.py) of the contents of
    the batches the client posted, rebuilt from what was sent: the
    entries in order, `count` per batch (the clear header says), and a
    health block of the length raw_len leaves over, as zeros (the real
    block holds counters; zeros only make gzip's figure smaller).
    Returns (gzip bytes, entry bytes matched, health bytes)."""
    gz = health = 0
    k = 0
    for b in batches:
        ents = []
        for send_us, (addr, port), payload in delivered[k:k + b["count"]]:
            ents.append(codec_bytes.entry(send_us, 4,
                                          socket.inet_aton(addr), port,
                                          listen_port, payload))
        k += b["count"]
        body = b"".join(ents)
        h = b["raw_len"] - 4 - len(body)
        if h < 0:
            return None, k, health
        health += h
        gz += len(gzip.compress(struct.pack(">I", h) + bytes(h) + body,
                                compresslevel=6, mtime=0))
    return gz, k, health


def count_records(dgrams):
    """Flow records per datagram where countable: v5 from the header; v9
    and IPFIX data records through the (options) templates seen earlier
    from the same exporter and domain.  Returns (flow records, datagrams
    with data sets of an unknown template)."""
    templates = {}
    flows = uncounted = 0
    for src, sport, p in dgrams:
        if len(p) < 4:
            continue
        ver = struct.unpack(">H", p[:2])[0]
        if ver == 5:
            flows += codec_bytes.v5_records(p)
            continue
        if ver == 9 and len(p) >= 20:
            dom, off = struct.unpack(">I", p[16:20])[0], 20
        elif ver == 10 and len(p) >= 16:
            dom, off = struct.unpack(">I", p[12:16])[0], 16
        else:
            continue
        key = (src, sport, ver, dom)
        miss = False
        while off + 4 <= len(p):
            sid, slen = struct.unpack(">HH", p[off:off + 4])
            if slen < 4 or off + slen > len(p):
                break
            body = p[off + 4:off + slen]
            off += slen
            if (ver == 9 and sid in (0, 1)) or (ver == 10 and sid in (2, 3)):
                parse_templates(ver, sid, body, key, templates)
            elif sid >= 256:
                t = templates.get(key + (sid,))
                if t is None:
                    miss = True
                elif t[0] == "flow":
                    flows += data_records(body, t[1])
        uncounted += miss
    return flows, uncounted


def parse_templates(ver, sid, body, key, templates):
    """Fields (length, 65535 = variable) of each template in a set."""
    off = 0
    while off + 4 <= len(body):
        tid, n = struct.unpack(">HH", body[off:off + 4])
        off += 4
        kind = "flow"
        if ver == 9 and sid == 1:	# v9 options: byte lengths
            if off + 2 > len(body):
                return
            scope_len, opt_len = n, struct.unpack(">H",
                                                  body[off:off + 2])[0]
            off += 2
            n, kind = (scope_len + opt_len) // 4, "options"
        elif ver == 10 and sid == 3:
            off += 2			# scope field count
            kind = "options"
        if tid < 256 or n == 0:
            return			# padding or a withdrawal
        fields = []
        for _ in range(n):
            if off + 4 > len(body):
                return
            ie, flen = struct.unpack(">HH", body[off:off + 4])
            off += 4
            if ver == 10 and ie & 0x8000:
                off += 4		# enterprise number
            fields.append(flen)
        templates[key + (tid,)] = (kind, fields)
        if ver == 9 and kind == "options":
            off += (4 - off % 4) % 4	# padding to 32 bits


def data_records(body, fields):
    """Records in a data set; variable-length fields (IPFIX) walked."""
    if 65535 not in fields:
        size = sum(fields)
        return len(body) // size if size else 0
    n = off = 0
    while True:
        o = off
        for flen in fields:
            if flen == 65535:
                if o >= len(body):
                    return n
                flen = body[o]
                o += 1
                if flen == 255:
                    if o + 2 > len(body):
                        return n
                    flen = struct.unpack(">H", body[o:o + 2])[0]
                    o += 2
            o += flen
        if o > len(body) or o == off:
            return n
        n += 1
        off = o


def unique_files(dirs):
    """*.pcap of the directories, each content once (the shared corpus
    repeats the project's files)."""
    return codec_bytes.distinct([f for d in dirs for f in sorted(
        glob.glob(os.path.join(d, "*.pcap")))])


def pcap_set(files):
    """(source address, source port, payload) of every UDP datagram."""
    out = []
    for f in files:
        for _, fam, addr, sport, _, payload in \
                codec_bytes.pcap_datagrams(f):
            a = socket.inet_ntop(socket.AF_INET if fam == 4 else
                                 socket.AF_INET6, addr)
            out.append((a, sport, payload))
    return out


def byte_sets(bench):
    """The inputs of the bytes row: (name, unit, datagrams, source)."""
    sets = []
    pcap = os.path.join(bench.workdir, "bytes-gen.pcap")
    r = subprocess.run([bench.bins["gen"], "--out", pcap, "--records",
                        str(BYTES_GEN_RECORDS), "--version", "5",
                        "--exporters", str(bench.args.exporters),
                        "--seed", str(bench.args.seed)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    if r.returncode != 0:
        raise R.BenchError("fp-gen --out: %s" % r.stderr.decode()[-300:])
    sets.append(("fp-gen v5", "v5 flow", pcap_set([pcap]),
                 "fp-gen --records %d, %d exporters"
                 % (BYTES_GEN_RECORDS, bench.args.exporters)))
    traffic = unique_files([os.path.join(R.ROOT, "tests", "data",
                                         "traffic"),
                            os.path.join(CORPUS, "traffic")])
    sf = codec_bytes.softflowd_datagrams(traffic)
    sets.append(("softflowd v5", "v5 flow",
                 None if sf is None else
                 [(socket.inet_ntoa(d[2]), d[3], d[5]) for d in sf],
                 "softflowd -r, %d traffic pcaps" % len(traffic)))
    exports = unique_files([os.path.join(R.ROOT, "tests", "data",
                                         "exports"),
                            os.path.join(CORPUS, "exports")])
    ex = pcap_set(exports)
    sets.append(("exports mixed", "datagram", ex,
                 "%d export captures (v5, v9, IPFIX)" % len(exports)))
    sets.append(("exports v5", "v5 flow",
                 [d for d in ex if codec_bytes.v5_records(d[2])],
                 "their v5 datagrams only"))
    return sets


def bytes_one(bench, name, dgrams):
    """One set through client -> relay -> gateway -> collector."""
    tag = "bytes-" + re.sub(r"[^a-z0-9]+", "-", name)
    col = UdpCollector()
    path = R.Flowpost(bench, tag)
    path.sink_port = col.port
    relay = CountingRelay(path.gw_port)
    path.client_extra["gateway_url"] = "http://127.0.0.1:%d" % relay.port
    res = {"name": name}
    try:
        path.start()
        sent = replay(path, dgrams)
        st = {}

        def taken():
            st.update(path.stats())
            return st.get("received_datagrams", 0) >= len(sent)
        if not R.wait_for(taken, 15, 0.05):
            raise R.BenchError("bytes: %s: the client received %d of %d "
                               "datagrams" % (name,
                                              st.get("received_datagrams"),
                                              len(sent)))
        R.wait_for(lambda: st.update(path.stats()) or
                   st.get("datagrams_sealed", 0) + drops(st) >= len(sent),
                   15, 0.05)
        sealed = st.get("datagrams_sealed", 0)
        R.wait_for(lambda: len(col.payloads) >= sealed, 60, 0.02)
        # Every batch acknowledged: its response went through the relay.
        R.wait_for(lambda: st.update(path.stats()) or
                   (st.get("acked_datagrams", 0) >= sealed and
                    st.get("spool_batches", 1) == 0), 30, 0.05)
        res["client_stats"] = dict(st)
    finally:
        path.stop()
        relay.close()
        col.close()
    got = col.payloads
    # The collector's stream is what the client sealed, in order: an
    # in-order subsequence of what was sent (the client refuses what is
    # not NetFlow or IPFIX, counted under dropped_*).
    delivered, k = [], 0
    for s in sent:
        if k < len(got) and got[k] == s[2]:
            delivered.append(s)
            k += 1
    res["sent"] = len(sent)
    res["refused"] = drops(res["client_stats"])
    res["exact"] = (k == len(got) == sealed and
                    sealed + res["refused"] == len(sent))
    if not res["exact"]:
        bench.failures.append("bytes: %s: collector got %d datagrams, %d "
                              "in order of %d sent, %d sealed"
                              % (name, len(got), k, len(sent), sealed))
    tot = relay.totals()
    batches, posts, hb = {}, 0, 0
    for head, blen, prefix in tot.pop("requests"):
        h = fpb_header(prefix)
        if h is None:
            continue
        posts += 1
        if h["flags"] & 1:
            hb += 1
            continue
        h["body"] = blen
        batches[h["seq"]] = h
    bl = [batches[s] for s in sorted(batches)]
    res.update(tot)
    res["posts"] = posts
    res["heartbeats"] = hb
    res["batches"] = len(bl)
    res["codecs"] = sorted({b["codec"] for b in bl})
    res["bodies"] = sum(b["body"] for b in bl)
    res["datagrams"] = len(delivered)
    res["raw"] = sum(len(d[2]) for d in delivered)
    gz, matched, health = gzip_same_batches(bl, delivered, path.dest_port)
    res["gzip"] = gz if matched == len(delivered) else None
    res["health"] = health
    # Records of what was delivered, per exporter (one sending socket
    # each) for the v9 and IPFIX templates.
    res["v5_flows"] = sum(codec_bytes.v5_records(d[2]) for d in delivered)
    res["flows"], res["uncounted"] = count_records(
        [(d[1][0], d[1][1], d[2]) for d in delivered])
    log("bench: bytes: %s: %d datagrams, %d raw bytes, %d batches in %d "
        "POSTs over %d connections; requests %d bytes (%d heads), "
        "responses %d (%d heads)"
        % (name, res["datagrams"], res["raw"], res["batches"], posts,
           res["connections"], res["req_total"], res["req_heads"],
           res["resp_total"], res["resp_heads"]))
    return res


def bytes_rows(bench):
    out = []
    for name, unit, dgrams, source in byte_sets(bench):
        if dgrams is None:
            log("bench: bytes: %s: not run (softflowd is not installed)"
                % name)
            out.append({"name": name, "unit": unit, "source": source,
                        "skipped": "softflowd is not installed"})
            continue
        if not dgrams:
            out.append({"name": name, "unit": unit, "source": source,
                        "skipped": "no datagrams"})
            continue
        res = bytes_one(bench, name, dgrams)
        res["unit"] = unit
        res["source"] = source
        out.append(res)
    return out


# ---------------------------------------------------------------------------
# Report

def pct(x, base):
    return None if x is None or not base else 100.0 * x / base


def vs(x, base):
    return None if x is None or not base else 100.0 * (x - base) / base


def throughput_rows(bench, runs, ex):
    """squid, client and cpu10k rows, after bench/run's cost rows."""
    rows = []
    fmt, fmt_rate, median = R.fmt, R.fmt_rate, R.median
    direct = [r["best"]["offered"] if r["best"] else None
              for r in runs.get("direct", [])]
    flowpost = [r["best"]["offered"] if r["best"] else None
                for r in runs.get("flowpost", [])]

    def per_run_ratio(vals, refs):
        return median([v / d for v, d in zip(vals, refs) if v and d])
    if "squid" in bench.args.only and not ex["squid_installed"]:
        rows.append(("squid   via squid proxy, zero-loss records/s", "-",
                     "not run: squid is not installed"))
    for name, daemon, label, what in (
            ("squid", "squid-", "squid   via squid proxy, zero-loss "
             "records/s", "client -> squid -> gateway, route pinned"),
            ("client", "client-spool", "client  alone into its spool, "
             "zero-loss records/s", "gateway down; every datagram sealed, "
             "none dropped, last batch written <= 1.6 s after the end")):
        rs = runs.get(name) or []
        if not rs:
            continue
        vals = [r["best"]["offered"] if r["best"] else None for r in rs]
        full = sum(1 for r in rs if r["best"] and r["best"]["rate"] == 0)
        note = "median of %d; %s; %s" % (
            len(rs), what, "at full speed" if full == len(rs) else
            "%d of %d at full speed, else bisected" % (full, len(rs)))
        if None in vals:
            note += "; %d run(s) found no zero-loss rate" % vals.count(None)
        rows.append((label, fmt_rate(median(vals)), note))
        rn = "%s ratio to direct" % ("squid  " if name == "squid" else
                                     "client  alone:")
        extra = ""
        if name == "squid" and flowpost:
            extra = "; %s of the flowpost row (no proxy)" % fmt(
                per_run_ratio(vals, flowpost), "%.2f")
        rows.append((rn, fmt(per_run_ratio(vals, direct), "%.3f"),
                     "median of per-run ratios" + extra))
        who = "squid" if name == "squid" else "client  alone:"
        c = median([R.cost(r["trials"], n) for r in rs for n in r["hwm"]
                    if n.startswith(daemon)])
        h = median([v for r in rs for n, v in r["hwm"].items()
                    if n.startswith(daemon)])
        rows.append(("%s CPU s per M records" % who, fmt(c),
                     "over the zero-loss trials"))
        rows.append(("%s peak RSS (VmHWM) MiB" % who,
                     fmt(h / 1024 if h else None, "%.1f"), ""))
        if name == "squid":
            ck = ex["squid_checks"]
            status = {}
            for x in ck:
                for k, v in x["status"].items():
                    status[k] = status.get(k, 0) + v
            rows[-1] = rows[-1][:2] + (
                "squid relayed %d of the client's %d POSTs; status %s"
                % (sum(x["squid_posts"] for x in ck),
                   sum(x["client_posts"] for x in ck),
                   ", ".join("%s: %d" % kv for kv in sorted(
                       status.items()))),)
    cp = ex["cpu10k"]
    if cp:
        v = median([x["client_pct"] for x in cp])
        rows.append(("client CPU at 10,000 records/s, % of a core",
                     fmt(v), "target < %.0f %%: %s; median of %d %.0f-s "
                     "windows, end to end; gateway %s %%; %s"
                     % (CPU_TARGET, "met" if v < CPU_TARGET else "NOT met",
                        len(cp), cp[0]["window"],
                        fmt(median([x["gateway_pct"] for x in cp])),
                        "all delivered (digest)" if all(
                            x["exact"] for x in cp) else
                        "NOT all delivered") +
                     ("" if all(x["steady"] for x in cp) else
                      "; the generator stopped inside a window")))
    rs = ex.get("rss100k") or []
    if rs:
        hwm = median([x["client_hwm"] for x in rs if x["client_hwm"]])
        anon = median([x["client_anon_peak"] for x in rs])
        filep = median([x["client_file_peak"] for x in rs])
        hwm_mib = hwm / 1024 if hwm else None
        rows.append(("client peak RSS at 100,000 records/s, MiB",
                     fmt(hwm_mib, "%.1f"),
                     "VmHWM; target < %d MiB: %s; median of %d runs; %s"
                     % (RSS_TARGET_MIB, "met" if hwm_mib is not None and
                        hwm_mib < RSS_TARGET_MIB else "NOT met", len(rs),
                        "all delivered (digest)" if all(
                            x["exact"] for x in rs) else
                        "NOT all delivered")))
        rows.append(("  of which private pages (RssAnon peak) MiB",
                     fmt(anon / 1024 if anon else None, "%.1f"),
                     "the client's own memory: buffers, zlib, threads"))
        rows.append(("  of which library pages (RssFile peak) MiB",
                     fmt(filep / 1024 if filep else None, "%.1f"),
                     "shared with every process using libcurl, OpenSSL, "
                     "GnuTLS; present when idle"))
        rows.append(("client CPU at 100,000 records/s, % of a core",
                     fmt(median([x["client_pct"] for x in rs])),
                     "same windows; gateway %s %%" % fmt(median(
                         [x["gateway_pct"] for x in rs]))))
    return rows


def standalone_rows(bench, ex):
    """gateway and bytes rows, after bench/run's drain rows."""
    rows = []
    fmt, fmt_rate = R.fmt, R.fmt_rate
    for i, d in enumerate(ex["gateway"]):
        sfx = "" if len(ex["gateway"]) == 1 else " #%d" % (i + 1)
        recs = max(d["records"], 1)
        rows += [
            ("gateway alone%s: records/s delivered" % sfx,
             fmt_rate(d["rate"]),
             "%d spooled records, sink's first to last datagram %s s "
             "(%s s from spawning it); %s (%s check); rate_limit_client=0"
             % (d["records"], fmt(d.get("sink_span")), fmt(d["drain_s"]),
                "all delivered" if d["exact"] else "NOT all delivered",
                d["check"])),
            ("gateway alone%s: gateway CPU s per M" % sfx,
             fmt(d["gateway_cpu"] / recs * 1e6),
             "verify, inflate, re-emit, state; peak RSS %s MiB"
             % fmt(d["gateway_hwm"] / 1024 if d["gateway_hwm"] else None,
                   "%.1f")),
            ("gateway alone%s: client CPU s per M" % sfx,
             fmt(d["client_cpu_drain"] / recs * 1e6),
             "the client's share: read spool, POST (%s %% of the "
             "gateway's)" % fmt(pct(d["client_cpu_drain"],
                                    d["gateway_cpu"]), "%.0f")),
        ]
    for s in ex["bytes"] or []:
        rows += bytes_report(s)
    return rows


def bytes_report(s):
    fmt = R.fmt
    name = "bytes %s" % s["name"]
    if s.get("skipped"):
        return [("%s: per record" % name, "-", "not run: %s"
                 % s["skipped"])]
    mixed = s["unit"] == "datagram"
    n = s["datagrams"] if mixed else s["v5_flows"]
    n = max(n, 1)
    raw, gz = s["raw"], s["gzip"]
    req, resp = s["req_total"], s["resp_total"]
    unit = "datagram" if mixed else "flow"

    def per(x):
        return None if x is None else x / n

    def both(x):
        return "%s %% of raw, %s %% vs gzip -6" % (
            fmt(pct(x, raw), "%.1f"), fmt(vs(x, gz), "%+.1f"))
    desc = "%d datagrams, %d %s" % (
        s["datagrams"], s["flows"] if mixed else s["v5_flows"],
        "flow records countable (%d datagrams with data of an unknown "
        "template)" % s["uncounted"] if mixed else "v5 flows")
    if mixed:
        desc += "; per record: raw %s, requests %s" % (
            fmt(raw / s["flows"] if s["flows"] else None, "%.1f"),
            fmt(req / s["flows"] if s["flows"] else None, "%.1f"))
    rows = [
        ("%s: raw NetFlow per %s" % (name, unit), fmt(per(raw), "%.1f"),
         "%s; %s" % (s["source"], desc)),
        ("%s: gzip -6 per %s" % (name, unit), fmt(per(gz), "%.1f"),
         "%s %% of raw; the same %d batches' contents (health block as "
         "zeros)" % (fmt(pct(gz, raw), "%.1f"), s["batches"])),
        ("%s: sealed bodies per %s" % (name, unit),
         fmt(per(s["bodies"]), "%.1f"),
         "%s; codec %s" % (both(s["bodies"]),
                           ",".join(str(c) for c in s["codecs"]))),
        ("%s: wire requests per %s" % (name, unit), fmt(per(req), "%.1f"),
         "%s; bodies + %d B of headers in %d POSTs (%d conn.)"
         % (both(req), s["req_heads"], s["posts"], s["connections"])),
        ("%s: wire responses per %s" % (name, unit),
         fmt(per(resp), "%.2f"),
         "%s %% of raw; %d B of headers, %d B of acks in %d responses"
         % (fmt(pct(resp, raw), "%.1f"), s["resp_heads"],
            resp - s["resp_heads"], s["responses"])),
    ]
    if s["name"] == "softflowd v5":
        r_pct, g_vs = pct(req, raw), vs(req, gz)
        t_pct = pct(req + resp, raw)
        rows += [
            ("%s: target <= %.0f %% of raw" % (name, BYTES_TARGET_RAW),
             "met" if r_pct is not None and r_pct <= BYTES_TARGET_RAW
             else "NOT met",
             "requests on the wire %s %%; with the responses %s %% (%s)"
             % (fmt(r_pct, "%.1f"), fmt(t_pct, "%.1f"),
                "met" if t_pct is not None and t_pct <= BYTES_TARGET_RAW
                else "not met")),
            ("%s: target >= %.0f %% fewer than gzip -6"
             % (name, -BYTES_TARGET_GZIP),
             "met" if g_vs is not None and g_vs <= BYTES_TARGET_GZIP
             else "NOT met",
             "requests on the wire %s %% vs gzip -6; sealed bodies %s %%"
             % (fmt(g_vs, "%+.1f"), fmt(vs(s["bodies"], gz), "%+.1f"))),
        ]
    return rows
