"""
proxies.py: real proxies, small HTTP servers and relays for the proxy tests.

Builds on tests/integration/fp.py: every process, socket, thread and temp
directory made here is registered with fp and torn down by fp.cleanup()
after each test, so a failing test leaves nothing running.

- Squid, Tinyproxy, Nginx: the real programs in the foreground on
  127.0.0.1, each with a config rendered from a template in this directory
  (@NAME@ placeholders: ports and temp paths filled in at run time), each
  in its own temp dir, stopped by PID (SIGTERM, then SIGKILL).  A missing
  program makes the test skip (exit 77).
- Backend: sink (collector) + gateway (plain HTTP or TLS) + client keys.
- TestCA: a CA and a server certificate (localhost, GW_NAME) made with
  openssl at test time.
- Relay: a small HTTP/1.x server on 127.0.0.1 that hands every request to
  a policy (answer it, forward it to the gateway, change it, drop or delay
  the answer, close the connection); captive portals, an HTTP/1.0 proxy, a
  flaky path and a body-rewriting middlebox are policies of it.
- assert_delivered(): the end-to-end check shared by every scenario.

Python 3 standard library only.
"""

import contextlib
import grp
import os
import pwd
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("FLOWPOST_SRC") or os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import fp  # noqa: E402

# A host name only proxies given a hosts file can resolve: a kit that
# names the gateway so cannot reach it directly (DNS fails), only through
# such a proxy, as at a site where the proxy is the only way out.
GW_NAME = "gateway.flowpost.invalid"

# Client settings every proxy scenario starts from: quick retries so that a
# failed attempt costs about a second, not minutes.
CLIENT_CONF = {
    "batch_max_age": "1s",
    "retry_initial": "1s",
    "retry_factor": 1,
    "retry_max": "1s",
    "connect_timeout": "3s",
    "request_timeout": "10s",
}


# ---------------------------------------------------------------------------
# Programs, templates, users

def need(*programs):
    """Paths of the programs; skips the test when one is missing."""
    out = []
    for p in programs:
        path = shutil.which(p, path=os.environ.get("PATH", "") +
                            ":/usr/sbin:/sbin")
        if path is None:
            raise fp.Skip("%s is not installed (scripts/deps installs it)"
                          % p)
        out.append(path)
    return out if len(out) > 1 else out[0]


def render(template, dest, **subs):
    """Writes proxy-tests/<template> to dest with every @KEY@ replaced by
    subs["KEY"]; a placeholder left without a value is an error."""
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in subs.items():
        text = text.replace("@%s@" % k, str(v))
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise AssertionError("%s: no value for %s" % (template,
                                                      ", ".join(left)))
    with open(dest, "w") as f:
        f.write(text)
    return dest


def daemon_user():
    """(user, group) a proxy runs as: an unprivileged account when we are
    root (squid and tinyproxy switch to it), else ourselves."""
    if os.geteuid() != 0:
        return (pwd.getpwuid(os.getuid()).pw_name,
                grp.getgrgid(os.getgid()).gr_name)
    for user in ("proxy", "nobody"):
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            continue
        return user, grp.getgrgid(pw.pw_gid).gr_name
    raise fp.Skip("no unprivileged user (proxy, nobody) to run proxies as")


def give_to(path, user):
    """Makes a temp dir and its files the daemon user's (when root), so
    that a proxy that dropped privileges can write its logs there."""
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for n in files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def to_ports(url, ports):
    """True if `ports` is None or the URL (http://host:port/... or a
    CONNECT's host:port) names one of them.  Other engineers' tests on the
    same machine may have left a client retrying towards a port that one
    of our proxies got later: checks look at our own requests only."""
    if ports is None:
        return True
    m = re.match(r"^(?:[a-z]+://)?[^/]*:(\d+)(?:/|$)", url)
    return m is not None and int(m.group(1)) in ports


def tcp_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def environ(**values):
    """Runs the body with the proxy variables of the environment replaced
    by `values` (children started inside inherit exactly these)."""
    names = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
             "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    saved = {n: os.environ.get(n) for n in names + tuple(values)}
    for n in names:
        os.environ.pop(n, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


# ---------------------------------------------------------------------------
# Daemons

class Daemon(fp.Proc):
    """A proxy in the foreground.  Stopped by its PID: SIGTERM, a bounded
    wait, then SIGKILL.  `extra_logs` are printed with its output when a
    test fails."""

    extra_logs = ()

    def close(self):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        super().close()

    def print_log(self, tail=60):
        super().print_log(tail)
        for path in self.extra_logs:
            lines = read_text(path).splitlines()
            fp.log("----- %s (last %d of %d lines) -----"
                   % (path, min(tail, len(lines)), len(lines)))
            for line in lines[-tail:]:
                fp.log("  " + line)

    def wait_up(self, ready, timeout, what):
        def check():
            if not self.alive():
                raise AssertionError("%s exited with %s before %s"
                                     % (self.name, self.returncode(), what))
            return ready()
        fp.wait_for(check, timeout, 0.05, what="%s: %s" % (self.name, what))


def _start(cls, attempts=3, **kw):
    """Starts a daemon on a fresh free port; tries again (a few times) when
    it exits at once, as when another process took the port meanwhile."""
    for i in range(attempts):
        d = cls(**kw)
        try:
            d.ready()
            return d
        except AssertionError:
            if d.alive() or i == attempts - 1:
                raise
            fp.log("%s exited at start (port %d taken?); again"
                   % (d.name, d.port))
    raise AssertionError("unreachable")


SQUID_LOGFORMAT = re.compile(
    r"^(?P<ts>\S+) (?P<client>\S+) (?P<method>\S+) (?P<url>\S+) "
    r"(?P<status>\d+) (?P<result>\S+) (?P<kit>\S+) (?P<seq>\S+)")


class Squid(Daemon):
    """squid -N -f CONF on 127.0.0.1:port, memory only.  The template gets
    PORT, DIR, USER, plus anything in `subs`; its access log uses the
    `flowpost` logformat (method, URL, status, X-Flowpost-Client)."""

    def __init__(self, template="squid-open.conf.in", name="squid",
                 subs=None, hosts=("127.0.0.1 localhost " + GW_NAME,)):
        binary = need("squid")
        self.user, _ = daemon_user()
        self.dir = fp.tmpdir("fp-squid-")
        os.chmod(self.dir, 0o755)
        self.port = fp.free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        self.cache_log = os.path.join(self.dir, "cache.log")
        self.extra_logs = (self.cache_log, self.access_log)
        values = {"PORT": self.port, "DIR": self.dir, "USER": self.user}
        values.update(subs or {})
        # The hosts_file of templates that have one.
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            f.write("\n".join(hosts) + "\n")
        self.conf = render(template, os.path.join(self.dir, "squid.conf"),
                           **values)
        give_to(self.dir, self.user)
        super().__init__(name, [binary, "-N", "-f", self.conf], self.dir)

    def ready(self, timeout=30):
        # Startup reads the config, sets up memory and helpers: it can take
        # a few seconds on a loaded machine.
        # No probe connection: squid would log it as an error line.
        self.wait_up(lambda: "Accepting HTTP Socket connections" in
                     read_text(self.cache_log), timeout, "its port")

    @classmethod
    def start(cls, **kw):
        return _start(cls, **kw)

    def url(self, user=None, password=None):
        cred = ""
        if user is not None:
            cred = "%s:%s@" % (user, password)
        return "http://%s127.0.0.1:%d" % (cred, self.port)

    def entries(self, ports=None):
        """Access log lines as dicts (method, url, status, kit, ...); with
        `ports`, only requests for those ports (see to_ports())."""
        out = []
        for line in read_text(self.access_log).splitlines():
            m = SQUID_LOGFORMAT.match(line)
            if m and m.group("method") != "-" and \
                    to_ports(m.group("url"), ports):
                e = m.groupdict()
                e["status"] = int(e["status"])
                e["line"] = line
                out.append(e)
        return out


class Tinyproxy(Daemon):
    """tinyproxy -d -c CONF on 127.0.0.1:port; its log names every
    request line it relays."""

    REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) "
                         r"(HTTP/\S+)")

    def __init__(self, template="tinyproxy.conf.in", name="tinyproxy",
                 subs=None):
        binary = need("tinyproxy")
        user, group = daemon_user()
        self.dir = fp.tmpdir("fp-tinyproxy-")
        os.chmod(self.dir, 0o755)
        self.port = fp.free_port()
        self.logfile = os.path.join(self.dir, "relay.log")
        self.extra_logs = (self.logfile,)
        values = {"PORT": self.port, "DIR": self.dir, "USER": user,
                  "GROUP": group}
        values.update(subs or {})
        self.conf = render(template, os.path.join(self.dir,
                                                  "tinyproxy.conf"), **values)
        give_to(self.dir, user)
        super().__init__(name, [binary, "-d", "-c", self.conf], self.dir)

    def ready(self, timeout=15):
        self.wait_up(lambda: tcp_open(self.port), timeout, "its port")

    @classmethod
    def start(cls, **kw):
        return _start(cls, **kw)

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def requests(self, ports=None):
        """[(method, url, version)] of the requests it relayed; with
        `ports`, only those for these ports (see to_ports())."""
        return [m.groups() for m in
                self.REQUEST.finditer(read_text(self.logfile))
                if to_ports(m.group(2), ports)]


class Nginx(Daemon):
    """nginx -p DIR -c CONF -g 'daemon off;' on 127.0.0.1:port.  The
    server block is `source` (the text of a config file such as
    docs/nginx-flowpost.conf) with each (old, new) of `replace` applied:
    every `old` must occur exactly once; "{DIR}" in `new` is the temp dir.
    proxy-tests/nginx-main.conf.in includes it."""

    LOGLINE = re.compile(r'^\S+ - \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" '
                         r'(\d+) (\d+) kit=(\S+)')

    def __init__(self, source, replace, port, name="nginx"):
        binary = need("nginx")
        self.dir = fp.tmpdir("fp-nginx-")
        self.port = port
        for sub in ("logs", "tmp"):
            os.makedirs(os.path.join(self.dir, sub))
        self.error_log = os.path.join(self.dir, "logs", "error.log")
        self.access_log = os.path.join(self.dir, "logs", "access.log")
        self.extra_logs = (self.error_log, self.access_log)
        text = source
        for old, new in replace:
            n = text.count(old)
            if n != 1:
                raise AssertionError("nginx config: %r occurs %d times, "
                                     "not once" % (old, n))
            text = text.replace(old, new.replace("{DIR}", self.dir))
        self.server_text = text
        server = os.path.join(self.dir, "flowpost-server.conf")
        with open(server, "w") as f:
            f.write(text)
        self.conf = render("nginx-main.conf.in",
                           os.path.join(self.dir, "nginx.conf"),
                           DIR=self.dir, SERVER_CONF=server)
        argv = [binary, "-p", self.dir + "/", "-c", self.conf, "-g",
                "daemon off;"]
        r = fp.run(argv[:1] + ["-t", "-q"] + argv[1:])
        if r.returncode != 0:
            raise AssertionError("nginx -t refuses the config:\n%s\n%s"
                                 % (r.stderr, text))
        super().__init__(name, argv, self.dir)

    def ready(self, timeout=15):
        self.wait_up(lambda: tcp_open(self.port), timeout, "its port")

    def access(self, kit=None):
        """[(method, uri, status, body_bytes_sent)] from the access log
        (log_format flowpost of nginx-main.conf.in); with `kit`, only the
        requests of that client id."""
        out = []
        for line in read_text(self.access_log).splitlines():
            m = self.LOGLINE.match(line)
            if m and (kit is None or m.group(5) == kit):
                out.append((m.group(1), m.group(2), int(m.group(3)),
                            int(m.group(4))))
        return out


# ---------------------------------------------------------------------------
# TLS

def openssl(*args, cwd):
    r = fp.run([need("openssl")] + list(args), cwd=cwd)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr))


class TestCA:
    """A throw-away CA, a second unrelated CA, and a server certificate for
    DNS:localhost and DNS:GW_NAME signed by the first (all P-256, valid two
    days)."""

    def __init__(self):
        self.dir = fp.tmpdir("fp-ca-")
        d = self.dir
        self.ca, self.ca_key = self._ca("ca")
        self.other_ca, _ = self._ca("otherca")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
                "-out", "server.csr", cwd=d)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,DNS:%s\n" % GW_NAME +
                    "basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", self.ca,
                "-CAkey", self.ca_key, "-CAcreateserial", "-days", "2",
                "-extfile", "server.ext", "-out", "server.pem", cwd=d)
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        os.chmod(self.key, 0o600)

    def _ca(self, name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=flowpost proxy-test %s" % name,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout", "%s.key" % name, "-out", "%s.pem" % name,
                cwd=self.dir)
        return (os.path.join(self.dir, "%s.pem" % name),
                os.path.join(self.dir, "%s.key" % name))


def https_get(port, path, ca, host="localhost"):
    """Status of a GET over verified TLS to 127.0.0.1:port, or None."""
    import ssl
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            with ctx.wrap_socket(s, server_hostname=host) as t:
                t.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: "
                           "close\r\n\r\n" % (path, host)).encode())
                data = b""
                while True:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        return int(data.split(b" ", 2)[1])
    except (OSError, ssl.SSLError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------
# The far end: collector and gateway

class Backend:
    """A sink and a gateway forwarding to it, with a key per client id.
    With `ca` (a TestCA) the gateway serves HTTPS with its localhost
    certificate and `url` is https://localhost:PORT/flowpost."""

    def __init__(self, client_ids=("kit-1",), ca=None, conf=None, port=None,
                 prefix="/flowpost", start=True):
        fp.require_binaries()
        self.dir = fp.tmpdir("fp-backend-")
        self.keys_file = os.path.join(self.dir, "keys")
        self.key_files = {}
        for cid in client_ids:
            self.key_files[cid] = os.path.join(self.dir, "%s.key" % cid)
            fp.genkey(cid, self.keys_file, self.key_files[cid])
        self.sink = fp.Sink()
        self.ca = ca
        self.prefix = prefix
        self.conf = dict(conf or {})
        # A per-client rate of 20 batches/s would make a drained backlog
        # wait on 429s; these tests are about paths, not rate limits.
        self.conf.setdefault("rate_limit_client", 0)
        if ca is not None:
            self.conf.update(tls_cert=ca.cert, tls_key=ca.key)
        self.port = port or fp.free_port()
        self.gw = None
        if start:
            self.start()

    def start(self):
        self.gw = fp.Gateway(self.keys_file, [self.sink.address],
                             prefix=self.prefix, port=self.port,
                             conf=self.conf, wait_ready=self.ca is None)
        if self.ca is not None:
            gw = self.gw

            def ready():
                assert gw.alive(), "gateway exited with %s" % gw.returncode()
                return https_get(gw.port, self.prefix + "/healthz",
                                 self.ca.ca) == 200
            fp.wait_for(ready, 15, what="gateway healthz over HTTPS")
        return self.gw

    @property
    def url(self):
        if self.ca is not None:
            return "https://localhost:%d%s" % (self.port, self.prefix)
        return "http://127.0.0.1:%d%s" % (self.port, self.prefix)

    def named_url(self, scheme=None):
        """The gateway's URL under GW_NAME, which only a proxy with our
        hosts file resolves."""
        scheme = scheme or ("https" if self.ca is not None else "http")
        return "%s://%s:%d%s" % (scheme, GW_NAME, self.port, self.prefix)

    def client(self, cid="kit-1", conf=None, name=None, **kw):
        """A flowpost-client of id `cid` posting to this gateway (or to
        conf["gateway_url"]) with CLIENT_CONF under `conf`."""
        c = dict(CLIENT_CONF)
        c.update(conf or {})
        url = c.pop("gateway_url", self.url)
        return fp.Client(url, self.key_files[cid], cid, ipv6=False,
                         conf=c, name=name or cid, **kw)

    def counter(self, name):
        return fp.metric_sum(self.gw.metrics(), name) or 0


# ---------------------------------------------------------------------------
# Checks

def stats_word(cl, name):
    """The value of a non-numeric line of the stats file (e.g. `route`),
    or None."""
    for line in read_text(cl.stats_path).splitlines():
        f = line.split(None, 1)
        if len(f) == 2 and f[0] == name:
            return f[1].strip()
    return None


def assert_no_more(sink, n, settle=1.0):
    if sink.wait_count(n + 1, settle):
        raise AssertionError("collector got %d datagrams, expected %d"
                             % (sink.count(), n))


def wait_running(cl, timeout=15):
    """Waits until the stats file is this client process's own (a client
    started on a used spool finds the last process's file there)."""
    def ready():
        if not cl.alive():
            raise AssertionError("%s exited with %s" % (cl.name,
                                                        cl.returncode()))
        return cl.stats().get("pid") == cl.pid
    fp.wait_for(ready, timeout, what="%s's own stats file" % cl.name)


def assert_delivered(sink, cl, sent, timeout=40, same_batches=True,
                     what="", before=()):
    """Everything sent reached the collector byte-identical, in order and
    once, after the datagrams `before` (delivered earlier by another
    client process); the client acknowledged every datagram and its spool
    is empty; nothing was lost on the way in.  Returns the client's
    stats."""
    tag = (what + ": ") if what else ""
    want = list(before) + list(sent)
    if not sink.wait_count(len(want), timeout):
        raise AssertionError(
            "%scollector got %d of %d datagrams within %ss: %s; client "
            "stats: %s" % (tag, sink.count(), len(want), timeout,
                           fp.compare_sequences(want, sink.payloads()),
                           fp.fmt_stats(cl.stats())))
    st = cl.wait_stats(lambda s: s.get("acked_datagrams", 0) >= len(sent)
                       and s.get("spool_batches", -1) == 0, 20,
                       "%severy datagram acknowledged, empty spool" % tag)
    assert_no_more(sink, len(want))
    diff = fp.compare_sequences(want, sink.payloads())
    assert diff is None, tag + diff
    bad = {k: st.get(k) for k in (
        "dropped_invalid", "dropped_malformed", "dropped_truncated",
        "dropped_backpressure", "spool_dropped_batches", "quarantined",
        "spool_write_errors") if st.get(k, 0) != 0}
    assert not bad, "%sclient lost or refused data: %s" % (tag, bad)
    assert st["received_datagrams"] == len(sent), (tag, st)
    assert st["datagrams_sealed"] == len(sent), (tag, st)
    assert st["acked_datagrams"] == len(sent), (tag, st)
    if same_batches:
        assert st["acked_batches"] == st["batches_sealed"], (tag, st)
    assert st["posts"] == st["acked_batches"] + st["posts_failed"], (tag, st)
    assert [f for f in cl.spool_files() if "quarantine" not in f] == [], tag
    return st


def assert_undelivered(cl, sink=None, what=""):
    """Nothing of this client was acknowledged or forwarded; every batch it
    sealed is still in its spool (none quarantined).  Waits (bounded) for
    the stats file, rewritten every second, to agree with the spool."""
    tag = (what + ": ") if what else ""
    last = {}

    def settled():
        st = cl.stats()
        files = [f for f in cl.spool_files() if "quarantine" not in f]
        last.update(st, files=files)
        return st.get("batches_sealed", 0) >= 1 and \
            st.get("spool_batches") == st.get("batches_sealed") == \
            len(files) and cl.stats().get("batches_sealed") == len(files)
    if not fp.wait_for(settled, 5):
        raise AssertionError("%sspool and stats disagree, or a batch left "
                             "the spool: %s" % (tag, last))
    st = cl.stats()
    assert st.get("acked_batches", 0) == 0, (tag, fp.fmt_stats(st))
    assert st.get("acked_datagrams", 0) == 0, (tag, fp.fmt_stats(st))
    assert st.get("quarantined", 0) == 0, (tag, fp.fmt_stats(st))
    if sink is not None:
        assert sink.count() == 0, "%scollector got %d datagrams" % (
            tag, sink.count())
    return st


def log_lines(cl, *words):
    """Lines of the client's log holding every one of `words`
    (case-insensitive)."""
    out = []
    for line in cl.log_text().splitlines():
        low = line.lower()
        if all(w.lower() in low for w in words):
            out.append(line)
    return out


# ---------------------------------------------------------------------------
# HTTP relay

BATCH_HEAD = struct.Struct("!4sBBBBQQI")


def batch_seq_count(body):
    """(seq, count) from a flowpost batch's clear header, or (None, None)
    (docs/PROTOCOL.md section 1)."""
    if len(body) < BATCH_HEAD.size or body[:4] != b"FPB1":
        return None, None
    f = BATCH_HEAD.unpack_from(body, 0)
    return f[5], f[7]


class Exchange:
    """One request seen by a Relay, and what became of it."""

    def __init__(self, index, conn):
        self.index = index
        self.conn = conn            # connection number (1, 2, ...)
        self.method = self.target = self.version = None
        self.headers = []           # [(name, value)] as received
        self.body = b""
        self.seq = self.count = None    # batch header, if a batch
        self.action = None          # what the policy did
        self.status = None          # status the client was sent, if any
        self.upstream_status = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return ("#%d conn %d %s %s %s seq %s -> %s (upstream %s, %s)"
                % (self.index, self.conn, self.method, self.target,
                   self.version, self.seq, self.status,
                   self.upstream_status, self.action))


class _Reader:
    """Buffered reads from a socket with deadlines."""

    def __init__(self, sock, stop):
        self.sock = sock
        self.buf = b""
        self.stop = stop

    def _fill(self, deadline):
        while not self.stop.is_set():
            left = 0.2 if deadline is None else \
                min(0.2, deadline - time.monotonic())
            if left <= 0:
                raise socket.timeout()
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return False
            self.buf += chunk
            return True
        return False

    def head(self, deadline=None, idle=None):
        """Bytes up to the blank line, or None at end of stream.  With
        `idle`, raises socket.timeout when no byte came for that long."""
        first = None if idle is None else time.monotonic() + idle
        while b"\r\n\r\n" not in self.buf:
            dl = first if not self.buf and first is not None else deadline
            if not self._fill(dl):
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def exact(self, n, deadline=None):
        while len(self.buf) < n:
            if not self._fill(deadline):
                return None
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def to_eof(self, deadline=None):
        while self._fill(deadline):
            pass
        data, self.buf = self.buf, b""
        return data


def parse_head(head):
    """(start line words, [(name, value)]) of an HTTP head."""
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return start, headers


HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection",
              "proxy-authorization", "proxy-authenticate", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length", "expect")

REASONS = {200: "OK", 204: "No Content", 302: "Found", 400: "Bad Request",
           401: "Unauthorized", 405: "Method Not Allowed",
           411: "Length Required", 413: "Payload Too Large",
           417: "Expectation Failed", 501: "Not Implemented",
           502: "Bad Gateway", 505: "HTTP Version Not Supported",
           511: "Network Authentication Required"}


class Answer:
    """A response a Relay policy sends itself."""

    def __init__(self, status, body=b"", headers=(), close=False):
        self.status = status
        self.body = body
        self.headers = list(headers)
        self.close = close


class Relay:
    """HTTP/1.x server on 127.0.0.1 (port 0 or `port`).  For every request
    it calls policy(ex) with the Exchange (head and body read) and acts on
    what it returns:

      Answer(...)          send that answer (no upstream)
      "forward"            send the request to `upstream` (host, port) on
                           a fresh connection and relay its answer
      ("forward", body)    the same with another body (same length)
      "close"              close the connection without an answer
      "forward-close"      forward, then close without relaying the answer
      ("forward-delay", s) forward, hold the answer s seconds, then send it
                           (the client may have given up by then)

    `precheck(ex)` (optional) sees the head before the body is read and may
    return an Answer (the connection is then closed): an HTTP/1.0 proxy
    refuses chunked bodies and Expect: 100-continue this way.  `http10`
    answers with an HTTP/1.0 status line and closes after every answer.
    `after(ex)` (optional) returns how long to keep the connection open
    for the next request after an answer (None: until the client closes;
    0: close at once)."""

    def __init__(self, policy, upstream=None, precheck=None, after=None,
                 http10=False, port=0, name="relay"):
        self.policy = policy
        self.upstream = upstream
        self.precheck = precheck
        self.after = after
        self.http10 = http10
        self.name = name
        self.lock = threading.Condition()
        self.exchanges = []
        self.idle_closes = 0        # keep-alive connections closed idle
        self._stop = threading.Event()
        self._conns = set()
        self._nconn = 0
        self._last = {}             # connection number: its last exchange
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True,
                                       name="%s-%d" % (name, self.port))
        self.thread.start()
        fp._register(self)

    def url(self, prefix="/flowpost"):
        return "http://127.0.0.1:%d%s" % (self.port, prefix)

    def records(self, kit=None):
        """The exchanges so far; with `kit`, only the requests of that
        client id (X-Flowpost-Client): a client of another test may have
        been left retrying towards a port this relay got later."""
        with self.lock:
            xs = list(self.exchanges)
        if kit is None:
            return xs
        return [x for x in xs if x.header("X-Flowpost-Client") == kit]

    def wait(self, pred, timeout, what):
        """Waits until pred(exchanges) is true; returns the exchanges."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred(list(self.exchanges)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: timed out after %ss waiting "
                                         "for %s; exchanges: %r" % (
                                             self.name, timeout, what,
                                             self.exchanges))
                self.lock.wait(min(left, 0.05))
            return list(self.exchanges)

    def _accept(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.2)
            if not r:
                continue
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            with self.lock:
                self._nconn += 1
                cid = self._nconn
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn, cid),
                             daemon=True).start()

    def _note(self, ex, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(ex, k, v)
            self.lock.notify_all()

    def _serve(self, conn, cid):
        rd = _Reader(conn, self._stop)
        idle = None
        try:
            while not self._stop.is_set():
                try:
                    head = rd.head(time.monotonic() + 30, idle)
                except socket.timeout:
                    with self.lock:
                        self.idle_closes += 1
                    return
                if head is None:
                    return
                keep, ex = self._one(conn, rd, cid, head)
                if not keep:
                    return
                idle = self.after(ex) if self.after else None
                if idle == 0:
                    with self.lock:
                        self.idle_closes += 1
                    return
        except (OSError, socket.timeout):
            return
        finally:
            with self.lock:
                self._conns.discard(conn)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _one(self, conn, rd, cid, head):
        """Serves one request: (keep the connection open?, exchange)."""
        keep = self._serve_one(conn, rd, cid, head)
        with self.lock:
            return keep, self._last[cid]

    def _serve_one(self, conn, rd, cid, head):
        start, headers = parse_head(head)
        with self.lock:
            ex = Exchange(len(self.exchanges), cid)
            self.exchanges.append(ex)
            self._last[cid] = ex
            ex.headers = headers
            if len(start) == 3:
                ex.method, ex.target, ex.version = start
            self.lock.notify_all()
        if len(start) != 3:
            self._send(conn, ex, Answer(400, b"bad request line\n"))
            return False
        if self.precheck is not None:
            ans = self.precheck(ex)
            if ans is not None:
                self._note(ex, action="refused")
                self._send(conn, ex, ans)
                return False
        clen = ex.header("Content-Length")
        if ex.header("Transfer-Encoding") is not None:
            # Chunked bodies are not relayed here: no flowpost client
            # should send one.
            self._note(ex, action="refused")
            self._send(conn, ex, Answer(411, b"chunked body refused\n"))
            return False
        body = rd.exact(int(clen), time.monotonic() + 30) if clen else b""
        if body is None:
            return False
        seq, count = batch_seq_count(body)
        self._note(ex, body=body, seq=seq, count=count)

        act = self.policy(ex)
        if isinstance(act, Answer):
            self._note(ex, action="answered")
            return self._send(conn, ex, act)
        if act == "close":
            self._note(ex, action="closed")
            return False
        kind, arg = (act, None) if isinstance(act, str) else act
        if kind == "forward" and arg is not None:
            body = arg
        resp = self._forward(ex, body)
        if resp is None:
            self._note(ex, action="no upstream")
            return False
        self._note(ex, upstream_status=resp.status)
        if kind == "forward-close":
            self._note(ex, action="answer dropped")
            return False
        if kind == "forward-delay":
            self._note(ex, action="answer delayed %.1fs" % arg)
            if self._stop.wait(arg):
                return False
        elif arg is not None:
            self._note(ex, action="body changed")
        else:
            self._note(ex, action="forwarded")
        return self._send(conn, ex, resp)

    def _forward(self, ex, body):
        """The upstream's answer to the request, or None."""
        if self.upstream is None:
            return None
        path = ex.target
        m = re.match(r"^https?://[^/]+(/.*)?$", path)
        if m:
            path = m.group(1) or "/"     # absolute-form (a proxy request)
        lines = ["%s %s HTTP/1.1" % (ex.method, path)]
        for k, v in ex.headers:
            if k.lower() not in HOP_BY_HOP and k.lower() != "host":
                lines.append("%s: %s" % (k, v))
        lines += ["Host: %s:%d" % self.upstream, "Connection: close",
                  "Content-Length: %d" % len(body)]
        req = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        try:
            up = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            return None
        try:
            up.sendall(req)
            rd = _Reader(up, self._stop)
            deadline = time.monotonic() + 30
            head = rd.head(deadline)
            if head is None:
                return None
            start, headers = parse_head(head)
            clen = None
            for k, v in headers:
                if k.lower() == "content-length":
                    clen = int(v)
            rbody = rd.exact(clen, deadline) if clen is not None else \
                rd.to_eof(deadline)
            if rbody is None:
                return None
            keep = [(k, v) for k, v in headers
                    if k.lower() not in HOP_BY_HOP]
            return Answer(int(start[1]), rbody, keep)
        except (OSError, socket.timeout, ValueError, IndexError):
            return None
        finally:
            up.close()

    def _send(self, conn, ex, ans):
        """Sends an answer; False when the connection must close after."""
        version = "HTTP/1.0" if self.http10 else "HTTP/1.1"
        close = ans.close or self.http10
        lines = ["%s %d %s" % (version, ans.status,
                               REASONS.get(ans.status, "Status"))]
        lines += ["%s: %s" % kv for kv in ans.headers]
        lines.append("Content-Length: %d" % len(ans.body))
        if close:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + ans.body
        try:
            conn.sendall(data)
        except OSError:
            self._note(ex, status=None)
            return False
        self._note(ex, status=ans.status)
        return not close

    def close(self):
        if self._stop.is_set():
            return
        self._stop.set()
        self.thread.join(5)
        self.lsock.close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def raw_request(port, data, timeout=5):
    """Sends raw bytes to 127.0.0.1:port; returns the answer: up to the end
    of its body when it has a Content-Length, else until the peer closed
    (or `timeout`)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(response):
    """Status code of a raw HTTP response, or None."""
    try:
        return int(response.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def seeded(seed):
    return random.Random(seed)
