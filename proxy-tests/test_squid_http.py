#!/usr/bin/env python3
"""
Scenario: squid as a forward proxy, plain HTTP to the gateway.

proxy:       squid (squid-open.conf.in), client `proxy = http://squid`
fault:       none
expectation: every datagram reaches the collector byte-identical, in order,
             once; the client acknowledged every batch it sealed; squid's
             access log shows each batch as a relayed POST (absolute URL of
             the gateway, 200, the client's id), and no CONNECT.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import fp  # noqa: E402


def test_squid_http():
    squid = proxies.Squid.start()
    be = proxies.Backend(("kit-squid",))
    cl = be.client("kit-squid", conf={"proxy": squid.url(),
                                      "batch_max_bytes": "16K"})
    sent = fp.v5_stream(300, seed=11)
    fp.Replayer(cl).send(sent)
    st = proxies.assert_delivered(be.sink, cl, sent)
    fp.log("client: %s" % fp.fmt_stats(st))
    assert st["batches_sealed"] >= 5, st     # several POSTs, keep-alive

    entries = [e for e in squid.entries() if e["kit"] == "kit-squid"]
    posts = [e for e in entries if e["method"] == "POST"]
    want_url = "%s/v1/batch" % be.url
    assert posts, "squid logged no POST of kit-squid: %s" % squid.entries()
    assert all(e["url"] == want_url for e in posts), posts
    assert not [e for e in squid.entries(ports={be.port})
                if e["method"] == "CONNECT"]
    ok = [e for e in posts if e["status"] == 200]
    # Every acknowledged batch went through squid (the client knows no
    # other way to the gateway).
    assert len(ok) == st["acked_batches"], (len(ok), st)
    assert len(posts) == st["posts"], (len(posts), st)
    seqs = [int(e["seq"]) for e in ok]
    assert seqs == sorted(set(seqs)), "batches out of order: %s" % seqs
    fp.log("squid relayed %d POSTs, e.g. %s" % (len(posts), posts[0]))
    assert be.counter("flowpost_gateway_datagrams_total") == len(sent)
    assert be.counter("flowpost_gateway_duplicates_total") == 0
    assert proxies.stats_word(cl, "route") == "configured"
    assert st.get("route_changes") == 0, st
    assert cl.stop() == 0
    assert be.gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_squid_http)
