#!/usr/bin/env python3
"""
A black hole on the gateway's address: it accepts connections and reads
whatever comes, and never answers.  With request_timeout = 2s the client
must give up on each POST after about that long, keep every batch in its
spool and retry with back-off.  Then the black hole is replaced by a real
gateway on the same port: everything arrives once, in order.
"""

import os
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

BATCH = 16 << 10
REQUEST_TIMEOUT = 2
CLIENT_CONF = {
    "batch_max_age": "1s",
    "batch_max_bytes": "16K",
    "retry_initial": "1s",
    "retry_factor": 2,
    "retry_max": "2s",
    "connect_timeout": "2s",
    "request_timeout": "%ds" % REQUEST_TIMEOUT,
    "log_level": "debug",
}


class BlackHole:
    """Accepts on 127.0.0.1:port, reads and discards, never writes.
    Records for each connection when it was accepted, how many bytes came
    and when the peer closed it."""

    def __init__(self, port):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(16)
        self.port = port
        self.lock = threading.Lock()
        self.conns = []         # [socket, accepted, bytes, closed or None]
        self._rd, self._wr = os.pipe()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        fp._register(self)

    def _run(self):
        while not self._stop:
            with self.lock:
                open_socks = [c[0] for c in self.conns if c[3] is None]
            r, _, _ = select.select([self.lsock, self._rd] + open_socks,
                                    [], [], 0.5)
            if self._rd in r:
                return
            now = time.monotonic()
            for s in r:
                if s is self.lsock:
                    c, _ = self.lsock.accept()
                    with self.lock:
                        self.conns.append([c, now, 0, None])
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                with self.lock:
                    rec = next(c for c in self.conns if c[0] is s)
                    rec[2] += len(data)
                    if not data:
                        rec[3] = now

    def summary(self):
        """[(bytes, seconds held open by the peer or None)]."""
        with self.lock:
            return [(b, None if t is None else t - a)
                    for _, a, b, t in self.conns]

    def close(self):
        if self._stop:
            return
        self._stop = True
        os.write(self._wr, b"x")
        self.thread.join(5)
        self.lsock.close()
        with self.lock:
            for c in self.conns:
                c[0].close()
        os.close(self._rd)
        os.close(self._wr)


def test_blackhole_then_gateway():
    fp.require_binaries()
    d = fp.tmpdir()
    keys = os.path.join(d, "keys")
    keyf = os.path.join(d, "client.key")
    fp.genkey("kit-hole", keys, keyf)
    port = fp.free_port()
    hole = BlackHole(port)
    cl = fp.Client("http://127.0.0.1:%d/flowpost" % port, keyf, "kit-hole",
                   conf=CLIENT_CONF, ipv6=False)
    sent = fp.v5_stream(600, seed=505)
    rep = fp.Replayer(cl)
    fp.send_sealed_steps(rep, cl, sent[:300], BATCH)

    # Three POSTs swallowed, each given up after the request time-out.
    fp.wait_for(lambda: sum(1 for b, t in hole.summary()
                            if t is not None and b > 0) >= 3, 30,
                what="three POSTs given up by the client")
    fp.send_sealed_steps(rep, cl, sent[300:], BATCH)
    st = cl.wait_stats(
        lambda s: s["posts_failed"] >= 3 and
        s["received_datagrams"] == len(sent) and
        s["datagrams_sealed"] == len(sent), 20,
        "failed POSTs and every datagram sealed")
    fp.log("behind the black hole: %s; connections %s"
           % (fp.fmt_stats(st), hole.summary()))
    held = [t for b, t in hole.summary() if t is not None and b > 0]
    for t in held:
        # curl's time-out, not an early give-up nor a hang.
        assert REQUEST_TIMEOUT - 0.5 <= t <= REQUEST_TIMEOUT + 3, held
    assert st["acked_batches"] == 0 and st["acked_datagrams"] == 0, st
    assert st["spool_batches"] == st["batches_sealed"], st
    assert st["spool_dropped_batches"] == 0, st
    assert st["retries"] >= 3, st
    files = cl.spool_files("*.fpb")
    assert len(files) == st["batches_sealed"], (files, st)
    assert sum(fp.read_batch_header(f)["count"] for f in files) == len(sent)

    # The real gateway takes the black hole's place.
    hole.close()
    sink = fp.Sink()
    gw = fp.Gateway(keys, [sink.address], port=port)
    assert sink.wait_count(len(sent), 40), \
        "collector got %d of %d; client stats: %s" % (
            sink.count(), len(sent), fp.fmt_stats(cl.stats()))
    final = cl.wait_stats(lambda s: s["spool_batches"] == 0 and
                          s["acked_datagrams"] == len(sent), 20,
                          "an empty spool")
    fp.assert_no_more(sink, len(sent))
    diff = fp.compare_sequences(sent, sink.payloads())
    assert diff is None, diff
    fp.log("after the gateway came: %s" % fp.fmt_stats(final))
    assert final["acked_batches"] == final["batches_sealed"], final
    assert final["acked_dup"] == 0, final
    assert fp.gateway_counter(gw, "flowpost_gateway_duplicates_total") == 0
    assert cl.spool_files("*.fpb") == []


if __name__ == "__main__":
    fp.main(test_blackhole_then_gateway)
