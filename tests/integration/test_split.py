#!/usr/bin/env python3
"""
413 adaptation.  A body size limit smaller than the client's batches, first
the gateway's own max_body_bytes (text/plain 413), then an nginx-like front
whose client_max_body_size answers 413 with an HTML page: the client splits
each refused batch in two in its place in the spool, again if need be,
makes new batches smaller, and every datagram arrives exactly once, in
order.  A batch of a single datagram that is still too big cannot be split:
it goes to quarantine with a loud log line, and the datagrams around it are
delivered.
"""

import http.client
import http.server
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

CLIENT_CONF = {
    "batch_max_age": "2s",
    "retry_initial": "1s",
    "retry_factor": 1,
    "retry_max": "1s",
    "connect_timeout": "2s",
    "request_timeout": "10s",
    "log_level": "debug",
}

NGINX_413 = (b"<html>\r\n<head><title>413 Request Entity Too Large</title>"
             b"</head>\r\n<body>\r\n<center><h1>413 Request Entity Too "
             b"Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")


class SizeLimitedFront:
    """A reverse proxy in front of the gateway that refuses bodies over
    `limit` bytes as nginx's client_max_body_size does: 413 with an HTML
    page, before reading the body.  Everything else goes to the gateway."""

    def __init__(self, upstream_port, limit):
        outer = self
        self.limit = limit
        self.refused = 0
        self.passed = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n > outer.limit:
                    with outer.lock:
                        outer.refused += 1
                    self.send_response(413)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(NGINX_413)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(NGINX_413)
                    self.close_connection = True
                    return
                body = self.rfile.read(n)
                up = http.client.HTTPConnection("127.0.0.1", upstream_port,
                                                timeout=10)
                try:
                    up.request("POST", self.path, body=body, headers={
                        k: v for k, v in self.headers.items()
                        if k.lower() not in ("connection", "host")})
                    r = up.getresponse()
                    data = r.read()
                    status, ctype = r.status, r.getheader("Content-Type")
                finally:
                    up.close()
                with outer.lock:
                    outer.passed += 1
                self.send_response(status)
                self.send_header("Content-Type", ctype or "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        fp._register(self)

    def url(self, prefix="/flowpost"):
        return "http://127.0.0.1:%d%s" % (self.port, prefix)

    def close(self):
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.server = None


def check_split_delivery(st, sent, what):
    final = st.wait_delivered(sent, 60)
    fp.assert_no_more(st.sink, len(sent))
    diff = fp.compare_sequences(sent, st.sink.payloads())
    assert diff is None, diff
    final = st.cl.wait_stats(lambda s: s["spool_batches"] == 0, 20,
                             "an empty spool")
    fp.log("%s: %s" % (what, fp.fmt_stats(final)))
    assert final["splits"] >= 2, final
    assert final["batch_size_reduced"] >= 1, final
    assert final["batch_max_bytes"] < 256 << 10, final
    assert final["quarantined"] == 0, final
    assert final["acked_datagrams"] == len(sent), final
    assert final["acked_dup"] == 0, final
    log = st.cl.log_text()
    assert "is too big for the gateway or a proxy on the way (HTTP 413" \
        in log, "no split line in the log"
    assert "new batches close at" in log
    return final


def test_gateway_limit():
    # max_body_bytes 8K: a batch of 300 v5 datagrams is far over it.
    st = fp.Stack(client_id="kit-split", client_conf=CLIENT_CONF,
                  gateway_conf={"max_body_bytes": "8K"}, ipv6=False)
    sent = fp.v5_stream(300, seed=7)
    rep = fp.Replayer(st.cl)
    rep.send(sent)
    final = check_split_delivery(st, sent, "behind max_body_bytes 8K")
    # the gateway saw each datagram once: no batch number was reused
    assert fp.gateway_counter(st.gw, "flowpost_gateway_duplicates_total") \
        == 0
    # new batches are small enough to pass at once: more traffic goes
    # through without a further split of a new batch
    more = fp.v5_stream(60, start_seq=900000, seed=8)
    rep.send(more)
    st.wait_delivered(sent + more, 60)
    diff = fp.compare_sequences(sent + more, st.sink.payloads())
    assert diff is None, diff
    assert st.cl.stats()["quarantined"] == final["quarantined"]


def test_nginx_front():
    st = fp.Stack(client_id="kit-front", client_conf=CLIENT_CONF,
                  ipv6=False, start_client=False)
    front = SizeLimitedFront(st.gw.port, 6 << 10)
    st.cl = fp.Client(front.url(), st.key_file, st.client_id,
                      conf=CLIENT_CONF, ipv6=False)
    sent = fp.v5_stream(200, seed=9)
    fp.Replayer(st.cl).send(sent)
    check_split_delivery(st, sent, "behind an nginx-like front of 6K")
    assert front.refused >= 2, front.refused
    assert "413 Request Entity Too Large" in st.cl.log_text()


def test_single_datagram_too_big():
    # max_body_bytes 1K: small datagrams fit, one of 1464 bytes that does
    # not compress (random records) cannot fit even alone.
    st = fp.Stack(client_id="kit-big", client_conf=CLIENT_CONF,
                  gateway_conf={"max_body_bytes": "1K"}, ipv6=False)
    small = [fp.v5_datagram(100 + i, 1, i) for i in range(4)]
    big = fp.v5_datagram(200, 30, 77)[:24] + os.urandom(30 * 48)
    sent = small[:2] + [big] + small[2:]
    fp.Replayer(st.cl).send(sent)
    want = small
    ok = st.sink.wait_count(len(want), 60)
    st_ = st.cl.wait_stats(lambda s: s["quarantined"] >= 1 and
                           s["spool_batches"] == 0, 30,
                           "the big datagram in quarantine")
    assert ok, (st.sink.count(), fp.fmt_stats(st_))
    fp.assert_no_more(st.sink, len(want))
    diff = fp.compare_sequences(want, st.sink.payloads())
    assert diff is None, diff
    assert st_["unsplittable"] == 1, st_
    assert st_["quarantined"] == 1, st_
    assert st_["acked_datagrams"] == len(want), st_
    q = st.cl.spool_files("quarantine/*.fpb")
    assert len(q) == 1, q
    h = fp.read_batch_header(q[0])
    assert h["count"] == 1, h
    assert "cannot be split" in st.cl.log_text()


def test_backlog_renumbered():
    # A big batch and small ones behind it wait in the spool while the
    # gateway is down.  After a restart of the client (its numbers now
    # come from a new block) the big batch is split: its halves get
    # numbers far above those of the small batches, which are therefore
    # sealed again with fresh numbers before they go, so that none falls
    # out of the gateway's duplicate window.
    st = fp.Stack(client_id="kit-renum", ipv6=False,
                  client_conf=dict(CLIENT_CONF, batch_max_age="1s"),
                  gateway_conf={"max_body_bytes": "2K",
                                "dedup_window": 64})
    assert st.gw.stop() == 0
    bigs = [fp.v5_datagram(300 + i, 30, 90 + i)[:24] + os.urandom(30 * 48)
            for i in range(3)]
    smalls = [fp.v5_datagram(400 + i, 1, 60 + i) for i in range(3)]
    rep = fp.Replayer(st.cl)
    rep.send(bigs)
    st.cl.wait_stats(lambda s: s["batches_sealed"] >= 1, 20, "big batch")
    for i, d in enumerate(smalls):
        rep.send([d])
        st.cl.wait_stats(lambda s: s["batches_sealed"] >= 2 + i, 20,
                         "small batch %d" % i)
    assert st.cl.stop() == 0
    st.gw = fp.respawn(st.gw)
    st.cl = fp.respawn(st.cl)
    sent = bigs + smalls
    ok = st.sink.wait_count(len(sent), 60)
    final = st.cl.wait_stats(lambda s: s["spool_batches"] == 0 and
                             s["acked_datagrams"] == len(sent), 30,
                             "an empty spool")
    assert ok, (st.sink.count(), fp.fmt_stats(final))
    fp.assert_no_more(st.sink, len(sent))
    diff = fp.compare_sequences(sent, st.sink.payloads())
    assert diff is None, diff
    fp.log("after the backlog: %s" % fp.fmt_stats(final))
    assert final["splits"] == 2, final
    assert final["renumbered"] == len(smalls), final
    assert final["quarantined"] == 0, final
    assert fp.gateway_counter(st.gw, "flowpost_gateway_duplicates_total") \
        == 0


if __name__ == "__main__":
    fp.main(test_gateway_limit, test_nginx_front,
            test_single_datagram_too_big, test_backlog_renumbered)
