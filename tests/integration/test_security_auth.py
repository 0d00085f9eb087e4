#!/usr/bin/env python3
"""
What a batch must prove before the gateway forwards it, against real
processes on loopback:

- a batch sealed under another client's key is refused with 401, counted,
  never forwarded, and stays in the kit's spool (docs/SECURITY.md, key
  rotation: a restart with another key quarantines such batches);
- a replayed batch (a copy of a sealed batch file, POSTed again after the
  client delivered it) is acknowledged `dup` and not forwarded again;
- a batch older than max_batch_age is refused with 410;
- rate limits: a forger's failed authentications under a real client's id
  turn into 429 for the forger, while that client's real batches still
  pass; a client over rate_limit_client gets 429 with Retry-After; replays
  of its delivered batches do not use up its rate.

Real sealed batches come from a flowpost-client whose gateway is not
listening yet: its spool files are the batches byte for byte.
"""

import http.client
import os
import re
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

BATCH_PATH = "/flowpost/v1/batch"
CTYPE = "application/vnd.flowpost.batch"
ACK_RE = re.compile(r"^FPACK1 (\S+) (\d+) (new|dup) [0-9a-f]{64}\n$")
# Fast retries, so that delivery after the gateway comes up is quick.
CLIENT_CONF = {"retry_initial": "1s", "retry_factor": 1, "retry_max": "1s",
               "batch_max_bytes": "4K"}


def post(port, body, timeout=10):
    """(status, {header: value}, body text) of one batch POST."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", BATCH_PATH, body=body,
                  headers={"Content-Type": CTYPE})
        r = c.getresponse()
        return (r.status, {k.lower(): v for k, v in r.getheaders()},
                r.read().decode("utf-8", "replace"))
    finally:
        c.close()


def header_seq_created(batch):
    """(seq, created_us) from a batch's clear header."""
    seq, created = struct.unpack_from("!QQ", batch, 8)
    return seq, created


def keys_for(d, *ids):
    """A keys file with every id; returns (keys path, {id: key file})."""
    keys = os.path.join(d, "keys")
    files = {}
    for cid in ids:
        files[cid] = os.path.join(d, "%s.key" % cid)
        fp.genkey(cid, keys, files[cid])
    return keys, files


def capture(key_file, client_id, n, port=None, stop=True):
    """Starts a client posting to a port nobody listens on (yet), feeds it
    until its spool holds at least n sealed batches and returns
    (client, port, [batch bytes in sequence order]).  The client is
    stopped first when `stop` is set, so it cannot deliver them itself."""
    port = port or fp.free_port()
    url = "http://127.0.0.1:%d/flowpost" % port
    cl = fp.Client(url, key_file, client_id, conf=CLIENT_CONF, ipv6=False)
    rp = fp.Replayer(cl)
    sent = 0
    deadline = time.monotonic() + 30
    while len(cl.spool_files()) < n:
        assert time.monotonic() < deadline, \
            "client sealed only %d batches" % len(cl.spool_files())
        rp.send(fp.v5_stream(20, start_seq=1000 + sent * 40, seed=sent))
        sent += 20
        fp.wait_for(lambda: len(cl.spool_files()) >= n, 2)
    if stop:
        assert cl.stop() == 0
    files = cl.spool_files()
    batches = []
    for f in files[:n]:
        with open(f, "rb") as fh:
            batches.append(fh.read())
    return cl, port, batches


def metric(gw, name):
    return fp.metric_sum(gw.metrics(), name) or 0


def test_wrong_key():
    """kit-1's batches sealed under kit-2's key: 401, never forwarded."""
    fp.require_binaries()
    d = fp.tmpdir()
    keys, kf = keys_for(d, "kit-1", "kit-2")
    sink = fp.Sink()
    gw = fp.Gateway(keys, [sink.address])
    cl = fp.Client(gw.url, kf["kit-2"], "kit-1", conf=CLIENT_CONF, ipv6=False)
    fp.Replayer(cl).send(fp.v5_stream(30))

    fp.wait_for(lambda: metric(gw, "flowpost_gateway_auth_failures_total")
                >= 2, 30, what="two authentication failures")
    m = gw.metrics()
    assert m.get('flowpost_gateway_http_responses_total{code="401"}', 0) \
        >= 2, m
    assert m.get('flowpost_gateway_rejected_batches_total{reason="auth"}',
                 0) >= 2, m
    assert m.get('flowpost_gateway_client_auth_failures_total'
                 '{client="kit-1"}', 0) >= 2, m
    assert fp.metric_sum(m, "flowpost_gateway_batches_total") == 0, m
    assert not sink.wait_count(1, 1.0), \
        "collector got %d datagrams" % sink.count()
    st = cl.stats()
    assert st.get("acked_batches", 0) == 0, fp.fmt_stats(st)
    spooled = [f for f in cl.spool_files() if "quarantine" not in f]
    assert spooled, "the client's spool lost the refused batches"
    assert "401" in cl.log_text() or "authentication" in cl.log_text(), \
        "client log does not say why"
    fp.log("401 x%d, spool keeps %d batches, collector got nothing"
           % (m['flowpost_gateway_http_responses_total{code="401"}'],
              len(spooled)))

    # Restarted with the right key, the kit cannot open what it sealed
    # under the other key: those batches go to quarantine, not to the
    # gateway (docs/SECURITY.md, "Key rotation").
    assert cl.stop() == 0
    # Stopping seals the open batch too, under the same wrong key.
    spooled = [f for f in cl.spool_files() if "quarantine" not in f]
    # The new process is ready when it has written its own stats file.
    os.remove(cl.stats_path)
    cl2 = fp.Client(gw.url, kf["kit-1"], "kit-1", spool_dir=cl.spool_dir,
                    conf=CLIENT_CONF, ipv6=False, name="client-rekeyed",
                    listen_ports=(cl.port4, None))
    quarantined = fp.wait_for(
        lambda: [f for f in cl2.spool_files() if "quarantine" in f], 15,
        what="old-key batches in quarantine")
    assert len(quarantined) == len(spooled), (quarantined, spooled)
    # And from now on it delivers.
    sent = fp.v5_stream(10, start_seq=90000, seed=9)
    fp.Replayer(cl2).send(sent)
    assert sink.wait_count(len(sent), 30), "collector got %d of %d" % (
        sink.count(), len(sent))
    assert sink.payloads() == sent
    assert cl2.stop() == 0
    assert gw.stop() == 0


def test_replay():
    """A copy of a delivered batch, POSTed again: ack dup, not forwarded."""
    fp.require_binaries()
    d = fp.tmpdir()
    keys, kf = keys_for(d, "kit-1")
    sink = fp.Sink()
    cl, port, batches = capture(kf["kit-1"], "kit-1", 1, stop=False)
    seq, _ = header_seq_created(batches[0])

    captured = cl.spool_files()[0]
    gw = fp.Gateway(keys, [sink.address], port=port)
    fp.wait_for(lambda: not os.path.exists(captured), 30,
                what="the captured batch delivered")
    # Stopped, the client sends nothing more: every later datagram at the
    # collector would come from the replays.
    assert cl.stop() == 0
    n = sink.count()
    assert n > 0
    assert metric(gw, "flowpost_gateway_duplicates_total") == 0

    st, _, body = post(gw.port, batches[0])
    assert st == 200, (st, body)
    m = ACK_RE.match(body)
    assert m and m.group(1) == "kit-1" and int(m.group(2)) == seq and \
        m.group(3) == "dup", body
    fp.log("replayed seq %d: %s" % (seq, body.strip()))
    # Twice more, for good measure: each is dup and forwards nothing.
    for _ in range(2):
        st, _, body = post(gw.port, batches[0])
        assert st == 200 and " dup " in body, (st, body)
    assert not sink.wait_count(n + 1, 1.0), \
        "replay was forwarded: %d -> %d datagrams" % (n, sink.count())
    assert metric(gw, "flowpost_gateway_duplicates_total") == 3

    # The same batch with one bit of the sealed body flipped is no replay
    # but a forgery: 401.
    bad = bytearray(batches[0])
    bad[-20] ^= 1
    st, _, body = post(gw.port, bytes(bad))
    assert st == 401, (st, body)
    assert sink.count() == n
    assert gw.stop() == 0


def test_too_old():
    """A sealed batch older than max_batch_age: 410, not forwarded."""
    fp.require_binaries()
    d = fp.tmpdir()
    keys, kf = keys_for(d, "kit-1")
    sink = fp.Sink()
    _, port, batches = capture(kf["kit-1"], "kit-1", 1)
    _, created_us = header_seq_created(batches[0])
    gw = fp.Gateway(keys, [sink.address], port=port,
                    conf={"max_batch_age": "1s"})
    # The condition here is the clock itself: two seconds past sealing.
    fp.wait_for(lambda: time.time() * 1e6 > created_us + 2.2e6, 10,
                what="the batch to be 2 s old")
    st, hdrs, body = post(gw.port, batches[0])
    assert st == 410, (st, body)
    assert hdrs.get("content-type", "").startswith("text/plain")
    fp.log("2 s old batch: %d %s" % (st, body.strip()))
    m = gw.metrics()
    assert m.get('flowpost_gateway_rejected_batches_total'
                 '{reason="too_old"}') == 1, m
    assert not sink.wait_count(1, 0.5)
    assert gw.stop() == 0


def test_rate_limits():
    """Forged batches under kit-1's id cannot lock kit-1 out; kit-1's own
    batches over rate_limit_client get 429 with Retry-After."""
    fp.require_binaries()
    d = fp.tmpdir()
    keys, kf = keys_for(d, "kit-1")
    sink = fp.Sink()
    _, port, batches = capture(kf["kit-1"], "kit-1", 3)
    gw = fp.Gateway(keys, [sink.address], port=port,
                    conf={"rate_limit_client": 1,
                          "rate_limit_auth_failures": 2})

    # A forger floods kit-1's id: two failures a second get 401, the rest
    # 429 with Retry-After.
    forged = [post(gw.port, fp.fake_batch("kit-1", seq=i + 1))
              for i in range(12)]
    codes = [st for st, _, _ in forged]
    fp.log("forged under kit-1: %s" % codes)
    assert codes[:2] == [401, 401], codes
    assert set(codes) <= {401, 429}, codes
    assert codes.count(429) >= 6, codes
    for st, hdrs, body in forged:
        if st == 429:
            assert int(hdrs["retry-after"]) >= 1, hdrs
            assert "failed authentications" in body, body
    assert metric(gw, "flowpost_gateway_auth_failures_total") == 12

    # kit-1's real batch right after: accepted, the forgery did not touch
    # kit-1's request bucket.
    st, _, body = post(gw.port, batches[0])
    assert st == 200 and " new " in body, (st, body)

    # A second real batch within the same second is over rate_limit_client.
    st, hdrs, body = post(gw.port, batches[1])
    assert st == 429, (st, body)
    retry = int(hdrs["retry-after"])
    assert 1 <= retry <= 2, hdrs
    assert "this client" in body, body
    fp.log("second batch within 1 s: 429, Retry-After %d" % retry)

    # After Retry-After it passes.
    got = []

    def accepted():
        got[:] = [post(gw.port, batches[1])]
        return got[0][0] == 200
    fp.wait_for(accepted, retry + 5, interval=0.25,
                what="batch accepted after Retry-After")
    assert " new " in got[0][2], got

    # Replays of kit-1's delivered batches (anybody who once saw them can
    # send them) are answered dup and charge nothing: once a token is back,
    # ten replays in a row all pass, and kit-1's next new batch too.
    def replay_passes():
        got[:] = [post(gw.port, batches[0])]
        return got[0][0] == 200
    fp.wait_for(replay_passes, 5, interval=0.25, what="a token back")
    replays = [post(gw.port, batches[0])[0] for _ in range(10)]
    assert replays == [200] * 10, replays
    st, _, body = post(gw.port, batches[2])
    assert st == 200 and " new " in body, (st, body)

    # Unknown client ids have no buckets: 403, whatever their rate.
    for i in range(5):
        st, _, _ = post(gw.port, fp.fake_batch("ghost-%d" % i))
        assert st == 403, st

    m = gw.metrics()
    n429 = m.get('flowpost_gateway_http_responses_total{code="429"}', 0)
    assert n429 >= codes.count(429) + 1, m
    # The 429s by reason appear in the stats line (SIGUSR1).
    gw.signal(signal.SIGUSR1)
    line = fp.wait_for(lambda: [l for l in gw.log_text().splitlines()
                                if "stats (SIGUSR1)" in l], 10,
                       what="stats line")[-1]
    fp.log(line)
    reasons = dict(re.findall(r"(\w+) (\d+)", line.split("rate_limited")[1]))
    assert int(reasons["auth_failures"]) == codes.count(429), line
    assert int(reasons["client"]) >= 1, line
    assert int(reasons["global"]) == 0, line
    assert sink.count() > 0
    assert gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_wrong_key, test_replay, test_too_old, test_rate_limits)
