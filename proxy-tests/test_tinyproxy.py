#!/usr/bin/env python3
"""
Scenario: tinyproxy, a second and different forward proxy.

proxy:       tinyproxy (tinyproxy.conf.in); one kit posts plain HTTP
             through it, another tunnels HTTPS with CONNECT to a gateway
             that serves TLS itself (test CA, ca_file)
fault:       none
expectation: both streams arrive byte-identical, in order, once; tinyproxy's
             log shows the relayed POSTs (absolute URL of the plain gateway)
             and the CONNECT to the TLS gateway, nothing else.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import fp  # noqa: E402


def test_tinyproxy():
    ca = proxies.TestCA()
    tp = proxies.Tinyproxy.start()
    plain = proxies.Backend(("kit-tp",))
    tls = proxies.Backend(("kit-tp-tls",), ca=ca)
    conf = {"proxy": tp.url(), "batch_max_bytes": "16K"}
    kits = {
        "kit-tp": (plain, plain.client("kit-tp", conf=conf)),
        "kit-tp-tls": (tls, tls.client("kit-tp-tls", conf=dict(
            conf, ca_file=ca.ca))),
    }
    sent = {}
    for i, (cid, (be, cl)) in enumerate(kits.items()):
        sent[cid] = fp.v5_stream(250, start_seq=1000 + 100000 * i,
                                 seed=50 + i)
        fp.Replayer(cl).send(sent[cid])
    for cid, (be, cl) in kits.items():
        st = proxies.assert_delivered(be.sink, cl, sent[cid], what=cid)
        fp.log("%s: %s" % (cid, fp.fmt_stats(st)))
        assert st["posts_failed"] == 0, st
        assert proxies.stats_word(cl, "route") == "configured", cid

    reqs = tp.requests(ports={plain.port, tls.port})
    posts = [r for r in reqs if r[0] == "POST"]
    connects = [r for r in reqs if r[0] == "CONNECT"]
    want = "%s/v1/batch" % plain.url
    assert posts and all(r[1] == want for r in posts), reqs
    # Every batch of kit-tp went through tinyproxy: the client knows no
    # other way to the gateway.
    assert len(posts) == kits["kit-tp"][1].stats()["posts"], reqs
    assert connects and all(r[1] == "localhost:%d" % tls.port
                            for r in connects), reqs
    assert len(posts) + len(connects) == len(reqs), reqs
    fp.log("tinyproxy relayed %d POSTs and %d CONNECT tunnels"
           % (len(posts), len(connects)))
    for be, cl in kits.values():
        assert cl.stop() == 0


if __name__ == "__main__":
    fp.main(test_tinyproxy)
