#!/usr/bin/env python3
"""
Scenario: squid with CONNECT to a gateway that serves HTTPS itself.

proxy:       squid (squid-open.conf.in); the gateway has tls_cert/tls_key
             from a test CA made with openssl; gateway_url is
             https://localhost:PORT/flowpost
fault:       (1) none, (2) the client trusts another CA, (3) the client
             names the gateway by an address the certificate does not
             carry (https://127.0.0.1:PORT)
expectation: (1) everything arrives byte-identical, in order, once, and
             squid logged a CONNECT tunnel to localhost:PORT and no POST;
             (2) and (3) deliver nothing, keep every batch in the spool and
             say why in the log (certificate problem / host name mismatch)
             although squid did open their tunnels.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import fp  # noqa: E402


def test_squid_connect_tls():
    ca = proxies.TestCA()
    squid = proxies.Squid.start()
    be = proxies.Backend(("kit-tls", "kit-otherca", "kit-wrongname"), ca=ca)
    conf = {"proxy": squid.url(), "batch_max_bytes": "16K"}
    good = be.client("kit-tls", conf=dict(conf, ca_file=ca.ca))
    sent = fp.v5_stream(250, seed=12)
    fp.Replayer(good).send(sent)
    st = proxies.assert_delivered(be.sink, good, sent)
    fp.log("kit-tls: %s" % fp.fmt_stats(st))
    assert proxies.stats_word(good, "route") == "configured"
    # squid logs a tunnel when it closes: stop the client to close it.
    assert good.stop() == 0
    tunnel = "localhost:%d" % be.port
    connects = fp.wait_for(lambda: [
        e for e in squid.entries() if e["method"] == "CONNECT" and
        e["url"] == tunnel and e["status"] == 200], 10,
        what="squid's log line of the CONNECT tunnel to %s" % tunnel)
    fp.log("squid: %s" % connects[0])
    clear = [e for e in squid.entries(ports={be.port})
             if e["method"] != "CONNECT"]
    assert not clear, "a request went through squid in clear: %s" % clear

    bad = {
        "kit-otherca": be.client("kit-otherca", conf=dict(
            conf, ca_file=ca.other_ca)),
        "kit-wrongname": be.client("kit-wrongname", conf=dict(
            conf, ca_file=ca.ca,
            gateway_url="https://127.0.0.1:%d/flowpost" % be.port)),
    }
    for i, cl in enumerate(bad.values()):
        fp.Replayer(cl).send(fp.v5_stream(30, start_seq=50000 * (i + 1),
                                          seed=40 + i))

    # The two misconfigured kits: tunnels opened, TLS refused by the kit.
    for cid, cl in bad.items():
        cl.wait_stats(lambda s: s.get("posts_failed", 0) >= 3 and
                      s.get("datagrams_sealed", 0) == 30, 30,
                      "%s: three failed POSTs, all sealed" % cid)
        proxies.assert_undelivered(cl, what=cid)
    why = {
        "kit-otherca": ("certificate", "unable to get local issuer"),
        "kit-wrongname": ("127.0.0.1", "subject name"),
    }
    for cid, words in why.items():
        lines = proxies.log_lines(bad[cid], "not delivered", *words)
        assert lines, "%s: the log does not name the cause %s:\n%s" % (
            cid, words, bad[cid].log_text()[-3000:])
        fp.log("%s: %s" % (cid, lines[0].strip()))
    wrong = "127.0.0.1:%d" % be.port
    for cl in bad.values():
        assert cl.stop() == 0
    fp.wait_for(lambda: [e for e in squid.entries()
                         if e["method"] == "CONNECT" and e["url"] == wrong],
                10, what="squid's log line of kit-wrongname's tunnel")
    m = be.gw.metrics()
    for cid in bad:
        assert not m.get('flowpost_gateway_client_batches_total{client="%s"}'
                         % cid), m
    assert be.sink.count() == len(sent)


if __name__ == "__main__":
    fp.main(test_squid_connect_tls)
