#!/usr/bin/env python3
"""
Scenario: squid asks for Basic proxy authentication (basic_ncsa_auth with
an htpasswd file made here); the credentials are in the client's `proxy`
URL.

proxy:       squid (squid-auth.conf.in); two kits: one posts plain HTTP
             through squid, the other tunnels HTTPS with CONNECT to a gateway
             that serves TLS itself
fault:       a wrong password in `proxy`, then the right one loaded with
             SIGHUP.  The kits name the gateway by a host name only squid
             resolves (its hosts_file): squid is their only way out, as at
             a site where direct connections are blocked; otherwise
             way-finding would rightly go around the refusing proxy.
expectation: with the wrong password squid answers 407 (to the POST, or to
             the CONNECT); the client logs the 407, delivers nothing and
             keeps every batch.  After SIGHUP with the right password
             everything arrives byte-identical, in order, once, and squid
             logged the requests under the user name.  No password ever
             appears in the client's log or in its route.state.
"""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies  # noqa: E402
from proxies import fp  # noqa: E402

USER = "fieldkit"
GOOD = "s3cret-Pass"
WRONG = "wrong-Pass"


def helper():
    for d in ("/usr/lib/squid", "/usr/lib/squid3", "/usr/libexec/squid",
              "/usr/lib64/squid"):
        p = os.path.join(d, "basic_ncsa_auth")
        if os.access(p, os.X_OK):
            return p
    raise fp.Skip("basic_ncsa_auth not found under /usr/lib/squid")


def set_proxy(cl, url):
    """Rewrites the `proxy` line of the client's config file."""
    with open(cl.conf_path) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^proxy = .*$", "proxy = %s" % url, text)
    assert n == 1, text
    with open(cl.conf_path, "w") as f:
        f.write(text)


def test_squid_auth():
    htpasswd = proxies.need("htpasswd")
    squid_helper = helper()
    ca = proxies.TestCA()
    squid = proxies.Squid(template="squid-auth.conf.in",
                          subs={"HELPER": squid_helper})
    # htpasswd file in squid's dir, readable by the helper squid starts.
    pw = os.path.join(squid.dir, "htpasswd")
    r = fp.run([htpasswd, "-c", "-b", "-m", pw, USER, GOOD])
    assert r.returncode == 0, r.stderr
    proxies.give_to(squid.dir, squid.user)
    squid.ready()

    plain = proxies.Backend(("kit-auth",))
    tls = proxies.Backend(("kit-auth-tls",), ca=ca)
    wrong = squid.url(USER, WRONG)
    conf = {"proxy": wrong, "batch_max_bytes": "16K"}
    kits = {
        "kit-auth": (plain, plain.client("kit-auth", conf=dict(
            conf, gateway_url=plain.named_url()))),
        "kit-auth-tls": (tls, tls.client("kit-auth-tls", conf=dict(
            conf, ca_file=ca.ca, gateway_url=tls.named_url()))),
    }
    sent = {}
    for i, (cid, (be, cl)) in enumerate(kits.items()):
        sent[cid] = fp.v5_stream(200, start_seq=1000 + 100000 * i,
                                 seed=30 + i)
        fp.Replayer(cl).send(sent[cid])

    for cid, (be, cl) in kits.items():
        st = cl.wait_stats(lambda s: s.get("posts_failed", 0) >= 3 and
                           s.get("datagrams_sealed", 0) == len(sent[cid]),
                           30, "%s: three refused POSTs, all sealed" % cid)
        proxies.assert_undelivered(cl, be.sink, what=cid)
        lines = proxies.log_lines(cl, "not delivered", "407")
        assert lines, "%s: no log line names the 407:\n%s" % (
            cid, cl.log_text()[-3000:])
        fp.log("%s: %s" % (cid, lines[0].strip()))
    ours = {plain.port, tls.port}
    refused = [e for e in squid.entries(ours) if e["status"] == 407]
    assert [e for e in refused if e["method"] == "POST"], squid.entries()
    assert [e for e in refused if e["method"] == "CONNECT"], squid.entries()
    assert not [e for e in squid.entries(ours) if e["status"] == 200]

    # The operator fixes the password; SIGHUP re-reads `proxy`.
    for cid, (be, cl) in kits.items():
        set_proxy(cl, squid.url(USER, GOOD))
        cl.signal(signal.SIGHUP)
    for cid, (be, cl) in kits.items():
        st = proxies.assert_delivered(be.sink, cl, sent[cid], what=cid)
        fp.log("%s: %s" % (cid, fp.fmt_stats(st)))
        assert st["posts_failed"] >= 3, st
        # Neither the log nor the remembered ways hold a password.
        state = proxies.read_text(os.path.join(cl.spool_dir, "route.state"))
        assert "127.0.0.1:%d" % squid.port in state, state
        for where, text in (("log", cl.log_text()),
                            ("route.state", state)):
            for secret in (GOOD, WRONG):
                assert secret not in text, "%s: a proxy password is in " \
                    "the %s:\n%s" % (cid, where, [
                        l for l in text.splitlines() if secret in l])
        assert cl.stop() == 0
    # Both kits got through squid, under the user name (plainly or in a
    # tunnel: after the 407s way-finding may have moved to another way
    # through the proxy).
    for be in (plain, tls):
        host = "%s:%d" % (proxies.GW_NAME, be.port)
        fp.wait_for(lambda: [e for e in squid.entries()
                             if e["status"] == 200 and host in e["url"]],
                    10, what="squid's log of an accepted request to %s"
                    % host)
    assert all(e["line"].split()[-1] == USER for e in squid.entries(ours)
               if e["status"] == 200), squid.entries()


if __name__ == "__main__":
    fp.main(test_squid_auth)
