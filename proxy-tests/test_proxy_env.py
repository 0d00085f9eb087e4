#!/usr/bin/env python3
"""
Scenario: the proxy comes from the environment.

proxy:       tinyproxy as http_proxy, squid as https_proxy, set in the
             client's environment; `proxy` left empty unless said
fault:       none; four kits, each with its own gateway:
               env-http   http:// gateway, proxy empty     -> via tinyproxy
               env-https  https:// gateway (TLS, test CA)  -> CONNECT via
                          squid
               no-proxy   http:// gateway, no_proxy=127.0.0.1 -> direct
               none       http:// gateway, `proxy = none`  -> direct
expectation: all four streams arrive byte-identical, in order, once; the
             proxies' logs show the requests of env-http (tinyproxy: POST of
             the absolute URL) and env-https (squid: CONNECT), and nothing of
             no-proxy and none.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import fp  # noqa: E402


def test_proxy_env():
    ca = proxies.TestCA()
    squid = proxies.Squid.start()
    tp = proxies.Tinyproxy.start()
    env = {"http_proxy": tp.url(), "https_proxy": squid.url()}
    kits = {
        "env-http": ({}, {"proxy": ""}, None),
        "env-https": ({}, {"proxy": ""}, ca),
        "no-proxy": ({"no_proxy": "127.0.0.1"}, {"proxy": ""}, None),
        "none": ({}, {"proxy": "none"}, None),
    }
    run = {}
    for i, (name, (more_env, conf, kit_ca)) in enumerate(kits.items()):
        cid = "kit-" + name
        be = proxies.Backend((cid,), ca=kit_ca)
        c = dict(conf, batch_max_bytes="16K")
        if kit_ca is not None:
            c["ca_file"] = kit_ca.ca
        with proxies.environ(**dict(env, **more_env)):
            cl = be.client(cid, conf=c)
        sent = fp.v5_stream(150, start_seq=1000 + 100000 * i, seed=100 + i)
        fp.Replayer(cl).send(sent)
        run[name] = (be, cl, sent)
    for name, (be, cl, sent) in run.items():
        st = proxies.assert_delivered(be.sink, cl, sent, what=name)
        assert st["posts_failed"] == 0, (name, st)
        assert proxies.stats_word(cl, "route") == "configured", name
        assert cl.stop() == 0

    http_be, https_be = run["env-http"][0], run["env-https"][0]
    reqs = tp.requests(ports={be.port for be, _, _ in run.values()})
    want = "%s/v1/batch" % http_be.url
    assert [r for r in reqs if r[:2] == ("POST", want)], reqs
    assert len(reqs) == run["env-http"][1].stats()["posts"], reqs
    for name in ("no-proxy", "none"):
        url = run[name][0].url
        assert not [r for r in reqs if url in r[1]], (name, reqs)
    fp.wait_for(lambda: [e for e in squid.entries()
                         if e["method"] == "CONNECT" and
                         e["url"] == "localhost:%d" % https_be.port], 10,
                what="squid's log line of env-https's tunnel")
    ours = {be.port for be, _, _ in run.values()}
    assert all(e["method"] == "CONNECT" for e in squid.entries(ours)), \
        squid.entries()
    fp.log("tinyproxy: %d requests; squid: %s" % (len(reqs),
                                                  squid.entries()))


if __name__ == "__main__":
    fp.main(test_proxy_env)
