#!/usr/bin/env python3
"""
Scenario: captive portals, one row per behaviour, all at once.

Each row puts a small HTTP server of this test (proxies.Relay with a fixed
answer) where the gateway should be; a client posts to it.  Then the
portal goes away, the real gateway takes its port, and the client must
deliver everything it held.  (tests/integration/test_captive_portal.py
covers the plain "200 + HTML" portal in depth; this table adds the other
answers portals give.)

proxy:       none (the portal sits on the gateway's address)
fault:       per row, every request gets:
               html-200     200 text/html login page
               redirect-302 302 to a login page
               auth-511     511 Network Authentication Required
               no-content   204 (what connectivity checks expect)
               forged-ack   200 text/plain with a well-formed FPACK1 line for
                            the batch's client id and seq but a made-up MAC
expectation: while the portal answers: acked_batches 0, nothing counted as
             delivered, every sealed batch still in the spool, the counter
             of the row moved (bad_ack for a 200, posts_failed for all), the
             log names what came back, the client never followed the
             redirect.  After: everything arrives byte-identical, in order,
             once.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import Answer, fp  # noqa: E402

PAGE = (b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head>"
        b"<body>Please accept the terms of use.</body></html>\n")


def forged_ack(ex):
    line = "FPACK1 %s %s new %s\n" % (ex.header("X-Flowpost-Client"),
                                      ex.header("X-Flowpost-Seq"), "0" * 64)
    return Answer(200, line.encode(), [("Content-Type", "text/plain")])


# name, answer (an Answer, or a function of the exchange), words the
# client's log must hold, the counter that must have moved.
PORTALS = [
    ("html-200", Answer(200, PAGE, [("Content-Type", "text/html")]),
     ("HTTP 200", "without a valid acknowledgement"), "bad_ack"),
    ("redirect-302", lambda ex: Answer(302, PAGE, [
        ("Location", "http://127.0.0.1:%d/login?continue=%s"
         % (ex.port, ex.target)), ("Content-Type", "text/html")]),
     ("HTTP 302",), "posts_failed"),
    ("auth-511", Answer(511, b"<html><title>Network Authentication "
                        b"Required</title></html>\n",
                        [("Content-Type", "text/html")]),
     ("HTTP 511",), "posts_failed"),
    ("no-content", Answer(204), ("HTTP 204",), "posts_failed"),
    ("forged-ack", forged_ack,
     ("HTTP 200", "without a valid acknowledgement", "FPACK1"), "bad_ack"),
]


class Row:
    def __init__(self, i, name, answer, words, counter):
        self.name, self.words, self.counter = name, words, counter
        self.cid = "kit-%s" % name
        self.be = proxies.Backend((self.cid,), start=False)

        def policy(ex, answer=answer):
            ex.port = self.portal.port
            return answer(ex) if callable(answer) else answer
        self.portal = proxies.Relay(policy, name=name)
        self.be.port = self.portal.port
        self.cl = self.be.client(self.cid)
        self.rep = fp.Replayer(self.cl)
        self.sent = fp.v5_stream(60, start_seq=1000 + 100000 * i,
                                 seed=60 + i)


def test_captive_portals():
    rows = [Row(i, *r) for i, r in enumerate(PORTALS)]
    for r in rows:
        r.rep.send(r.sent[:30])
    # A second batch, sealed after the first was already refused.
    for r in rows:
        r.portal.wait(lambda xs, r=r: [x for x in xs if x.header(
            "X-Flowpost-Client") == r.cid], 20, "a first POST")
        r.rep.send(r.sent[30:])
    for r in rows:
        st = r.cl.wait_stats(
            lambda s, r=r: s.get(r.counter, 0) >= 3 and
            s.get("datagrams_sealed", 0) == len(r.sent), 30,
            "%s: three portal answers, all sealed" % r.name)
        st = proxies.assert_undelivered(r.cl, what=r.name)
        assert st["batches_sealed"] >= 2, (r.name, st)
        assert st["posts_failed"] >= 3, (r.name, st)
        if r.counter != "bad_ack":
            assert st["bad_ack"] == 0, (r.name, st)
        lines = proxies.log_lines(r.cl, "not delivered", *r.words)
        assert lines, "%s: no log line with %s:\n%s" % (
            r.name, r.words, r.cl.log_text()[-2000:])
        fp.log("%-12s %s" % (r.name, lines[0].split("warn: ", 1)[-1]))
        xs = r.portal.records(r.cid)
        assert xs, r.name
        # Every request was a batch POST: no redirect followed, no login
        # page fetched.
        assert all(x.method == "POST" and x.target == "/flowpost/v1/batch"
                   and x.seq is not None for x in xs), (r.name, xs)

    # The portals go; the gateways take their ports.
    for r in rows:
        r.portal.close()
        r.be.start()
    for r in rows:
        st = proxies.assert_delivered(r.be.sink, r.cl, r.sent, what=r.name)
        assert st["acked_dup"] == 0, (r.name, st)
        assert r.cl.stop() == 0


if __name__ == "__main__":
    fp.main(test_captive_portals)
