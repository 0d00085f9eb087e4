#!/usr/bin/env python3
"""
TLS on the gateway itself (tls_cert, tls_key), against real processes on
loopback.  A test CA and a server certificate for "localhost" are made with
openssl at test time.

- a client with gateway_url https://localhost:PORT/... and ca_file = the
  CA delivers everything;
- a client that trusts another CA delivers nothing: its spool keeps the
  batches and its log says the certificate could not be verified;
- a client with the right CA that reaches the same listener under a name
  the certificate does not carry (https://127.0.0.1:PORT) delivers nothing;
- configuration errors: one of tls_cert/tls_key alone, a file that is not
  PEM, a key that does not belong to the certificate.
"""

import os
import shutil
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

CLIENT_CONF = {"retry_initial": "1s", "retry_factor": 1, "retry_max": "1s"}


def openssl(*args, cwd):
    r = fp.run(["openssl"] + list(args), cwd=cwd)
    assert r.returncode == 0, "openssl %s: %s" % (" ".join(args), r.stderr)


def make_ca(d, name):
    """A self-signed CA: (cert path, key path)."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=flowpost test %s" % name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", "%s.key" % name, "-out", "%s.pem" % name, cwd=d)
    return os.path.join(d, "%s.pem" % name), os.path.join(d, "%s.key" % name)


def make_server_cert(d, ca, ca_key, san="DNS:localhost"):
    """A server key and a certificate for `san` signed by the CA."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n" % san)
    openssl("x509", "-req", "-in", "server.csr", "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext",
            "-out", "server.pem", cwd=d)
    key = os.path.join(d, "server.key")
    os.chmod(key, 0o600)
    return os.path.join(d, "server.pem"), key


def https_healthy(port, ca, host="localhost"):
    """True if GET /flowpost/healthz over verified TLS answers 200."""
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            with ctx.wrap_socket(s, server_hostname=host) as t:
                t.sendall(b"GET /flowpost/healthz HTTP/1.1\r\n"
                          b"Host: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        return data.startswith(b"HTTP/1.1 200")
    except (OSError, ssl.SSLError):
        return False


def setup(d):
    if shutil.which("openssl") is None:
        raise fp.Skip("openssl not installed")
    ca, ca_key = make_ca(d, "ca")
    other_ca, _ = make_ca(d, "otherca")
    cert, key = make_server_cert(d, ca, ca_key)
    return ca, other_ca, cert, key


def start_gateway(keys, sink, cert, key, ca):
    gw = fp.Gateway(keys, [sink.address],
                    conf={"tls_cert": cert, "tls_key": key},
                    wait_ready=False)

    def ready():
        assert gw.alive(), "gateway exited with %s" % gw.returncode()
        return https_healthy(gw.port, ca)
    fp.wait_for(ready, 15, what="gateway healthz over HTTPS")
    return gw


def test_tls():
    fp.require_binaries()
    d = fp.tmpdir()
    ca, other_ca, cert, key = setup(d)
    keys = os.path.join(d, "keys")
    kf = {}
    for cid in ("kit-good", "kit-otherca", "kit-wrongname"):
        kf[cid] = os.path.join(d, "%s.key" % cid)
        fp.genkey(cid, keys, kf[cid])
    sink = fp.Sink()
    gw = start_gateway(keys, sink, cert, key, ca)
    assert "listening on https://" in gw.log_text()

    # Plain HTTP on the TLS port is no way in.
    st, _ = fp.http_get("127.0.0.1", gw.port, "/flowpost/healthz")
    assert st != 200, st
    # Nor is a TLS client that trusts another CA.
    assert not https_healthy(gw.port, other_ca)

    good_url = "https://localhost:%d/flowpost" % gw.port
    bad = {
        "kit-otherca": (good_url, other_ca),
        "kit-wrongname": ("https://127.0.0.1:%d/flowpost" % gw.port, ca),
    }
    clients = {}
    for cid, (url, cafile) in bad.items():
        clients[cid] = fp.Client(url, kf[cid], cid, ipv6=False, name=cid,
                                 conf=dict(CLIENT_CONF, ca_file=cafile))
        fp.Replayer(clients[cid]).send(fp.v5_stream(10, seed=len(cid)))
    for cid, cl in clients.items():
        cl.wait_stats(lambda s: s.get("posts_failed", 0) >= 2, 30,
                      "%s: two failed POSTs" % cid)

    good = fp.Client(good_url, kf["kit-good"], "kit-good", ipv6=False,
                     name="kit-good", conf=dict(CLIENT_CONF, ca_file=ca))
    sent = fp.v5_stream(40, start_seq=7000, seed=7)
    fp.Replayer(good).send(sent)
    assert sink.wait_count(len(sent), 60), "collector got %d of %d" % (
        sink.count(), len(sent))
    good.wait_stats(lambda s: s.get("acked_datagrams", 0) >= len(sent), 30,
                    "kit-good acknowledged")
    assert sink.payloads() == sent, fp.compare_sequences(sent,
                                                         sink.payloads())

    # Nothing of the two others arrived; their spools keep every batch;
    # their logs say why.
    for cid, cl in clients.items():
        st = cl.stats()
        assert st.get("acked_batches", 0) == 0, (cid, fp.fmt_stats(st))
        assert st.get("spool_batches", 0) >= 1, (cid, fp.fmt_stats(st))
        assert [f for f in cl.spool_files() if "quarantine" not in f], cid
        text = cl.log_text().lower()
        assert "certificate" in text, "%s log does not say why:\n%s" % (
            cid, text[-2000:])
        fp.log("%s: %s" % (cid, [l for l in text.splitlines()
                                 if "certificate" in l][0].strip()))
    m = gw.metrics()
    assert fp.metric_sum(m, "flowpost_gateway_batches_total") >= 1
    assert m.get('flowpost_gateway_client_batches_total{client="kit-good"}')
    for cid in bad:
        assert not m.get('flowpost_gateway_client_batches_total'
                         '{client="%s"}' % cid), m
    for cl in list(clients.values()) + [good]:
        assert cl.stop() == 0
    assert gw.stop() == 0


def check_config(conf, d):
    keys = os.path.join(d, "keys")
    if not os.path.exists(keys):
        fp.genkey("kit-1", keys, os.path.join(d, "kit-1.key"))
    args = [fp.gateway_bin(), "--check-config", "--collector",
            "127.0.0.1:9", "--keys-file", keys, "--state-dir",
            os.path.join(d, "state")]
    for k, v in conf.items():
        args += ["--" + k, v]
    return fp.run(args)


def test_tls_config_errors():
    fp.require_binaries("gateway")
    d = fp.tmpdir()
    ca, _, cert, key = setup(d)

    r = check_config({"tls_cert": cert, "tls_key": key}, d)
    assert r.returncode == 0, r.stderr
    for conf, want in (
            ({"tls_cert": cert}, "tls_cert is set without tls_key"),
            ({"tls_key": key}, "tls_key is set without tls_cert"),
            ({"tls_cert": key, "tls_key": key}, "not a PEM file with a "
             "CERTIFICATE block"),
            ({"tls_cert": cert, "tls_key": cert}, "not a PEM file with a "
             "PRIVATE KEY block"),
            ({"tls_cert": cert, "tls_key": os.path.join(d, "nope.key")},
             "No such file")):
        r = check_config(conf, d)
        fp.log("%s -> %d %s" % (sorted(conf), r.returncode, r.stderr.strip()))
        assert r.returncode == 2, (conf, r.returncode, r.stderr)
        assert want in r.stderr, (conf, r.stderr)

    # A key that does not belong to the certificate passes the PEM check
    # but the daemon does not start: exit 1 and a reason.
    sink = fp.Sink()
    gw = fp.Gateway(os.path.join(d, "keys"), [sink.address],
                    conf={"tls_cert": cert, "tls_key":
                          os.path.join(d, "ca.key")}, wait_ready=False)
    fp.wait_for(lambda: not gw.alive(), 15, what="gateway to exit")
    assert gw.returncode() == 1, gw.returncode()
    assert "do tls_cert and tls_key belong together" in gw.log_text(), \
        gw.log_text()
    fp.log("key of another certificate: exit 1; %s" % [
        l for l in gw.log_text().splitlines() if "error" in l][-1])


if __name__ == "__main__":
    fp.main(test_tls, test_tls_config_errors)
