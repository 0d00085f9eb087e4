#!/usr/bin/env python3
"""
A captive portal answers every request with "200 OK" and an HTML page.  The
client must not take that for a delivery: no batch is acknowledged, bad_ack
counts the answers, the batches stay sealed in the spool.  When the real
gateway comes up on the same address, everything is delivered exactly once,
in order.
"""

import http.server
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

PAGE = b"<html>Welcome to Hotel WiFi</html>"


class Portal:
    """http.server in a thread: 200 text/html for every request.  Records
    the headers of each POST it reads."""

    def __init__(self, port):
        outer = self
        self.posts = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def do_GET(self):
                self._answer()

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with outer.lock:
                    outer.posts.append((self.path, dict(self.headers),
                                        len(body), body[:4]))
                self._answer()

            def log_message(self, fmt, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        fp._register(self)

    def post_count(self):
        with self.lock:
            return len(self.posts)

    def close(self):
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.server = None


def test_captive_portal():
    fp.require_binaries()
    d = fp.tmpdir()
    keys = os.path.join(d, "keys")
    keyf = os.path.join(d, "client.key")
    fp.genkey("kit-portal", keys, keyf)
    port = fp.free_port()
    portal = Portal(port)
    url = "http://127.0.0.1:%d/flowpost" % port
    cl = fp.Client(url, keyf, "kit-portal", ipv6=False, conf={
        "batch_max_age": "1s", "retry_initial": "1s", "retry_factor": 1,
        "retry_max": "1s", "connect_timeout": "2s", "request_timeout": "5s"})

    sent = fp.v5_stream(40, seed=21)
    rep = fp.Replayer(cl)
    rep.send(sent[:20], 4)
    # A second batch, sealed after the first one was already refused.
    fp.wait_for(lambda: portal.post_count() >= 1, 20, what="a first POST")
    rep.send(sent[20:], 4)

    st = cl.wait_stats(lambda s: s.get("bad_ack", 0) >= 3 and
                       s.get("batches_sealed", 0) >= 2, 30,
                       "three portal answers and two sealed batches")
    fp.log("client stats behind the portal: %s" % fp.fmt_stats(st))
    assert st["acked_batches"] == 0, st
    assert st["acked_datagrams"] == 0, st
    assert st["bad_ack"] > 0, st
    assert st["spool_batches"] > 0, st
    assert st["spool_batches"] == st["batches_sealed"], st
    assert st["datagrams_sealed"] == len(sent), st
    files = cl.spool_files("*.fpb")
    assert len(files) == st["spool_batches"], (files, st)
    for f in files:
        with open(f, "rb") as fh:
            assert fh.read(4) == b"FPB1", f

    # What the portal saw is a well-formed flowpost POST.
    with portal.lock:
        posts = list(portal.posts)
    for path, headers, length, head in posts:
        h = {k.lower(): v for k, v in headers.items()}
        assert path == "/flowpost/v1/batch", path
        assert h.get("content-type") == "application/vnd.flowpost.batch", h
        assert int(h["content-length"]) == length and head == b"FPB1", h
        assert "transfer-encoding" not in h and "expect" not in h, h
        assert h.get("x-flowpost-client") == "kit-portal", h

    # The portal goes away; the real gateway takes its address.
    portal.close()
    sink = fp.Sink()
    gw = fp.Gateway(keys, [sink.address], port=port)
    assert sink.wait_count(len(sent), 60), \
        "collector got %d of %d; client stats: %s" % (
            sink.count(), len(sent), fp.fmt_stats(cl.stats()))
    st = cl.wait_stats(lambda s: s.get("spool_batches", -1) == 0 and
                       s.get("acked_datagrams", 0) >= len(sent), 30,
                       "an empty spool")
    # Nothing arrives twice.
    assert not sink.wait_count(len(sent) + 1, 1.5), sink.count()
    diff = fp.compare_sequences(sent, sink.payloads())
    assert diff is None, diff
    fp.log("client stats after the gateway came: %s" % fp.fmt_stats(st))
    assert st["acked_datagrams"] == len(sent), st
    assert st["acked_batches"] == st["batches_sealed"], st
    assert st["acked_dup"] == 0, st
    assert cl.spool_files("*.fpb") == []
    assert gw.alive() and cl.alive()


if __name__ == "__main__":
    fp.main(test_captive_portal)
