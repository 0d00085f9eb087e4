#!/usr/bin/env python3
"""
flowpost demo (run through scripts/demo, which builds first).

Carries real NetFlow v5, v9 and IPFIX captures from tests/data/exports
through flowpost-client and flowpost-gateway on loopback to nfcapd, then
prints what nfcapd stored.  The gateway also feeds a small Python collector,
which counts the datagrams and checks they are byte-identical.  Without
nfcapd the Python collector is the only one.
"""

import os
import shutil
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("FLOWPOST_SRC", ROOT)
os.environ.setdefault("FLOWPOST_BIN", os.path.join(ROOT, "build"))
import fp  # noqa: E402

CAPTURES = (
    "logstash__netflow5.pcap",
    "graylog__nprobe-netflow9-3.pcap",
    "logstash__netflow9_test_cisco_asr9k_opttpl256+opttpl257+opttpl334"
    "+tpl260+tpl266+data256+data260.pcap",
    "logstash__ipfix_test_yaf_tpls_option_tpl+tpl45841+data45841+data45873"
    "+data53248.pcap",
    "ipfixcol2__example_flows.pcap",
)


def say(*a):
    fp.log(*a)


def udp_port_taken(port):
    """True once something holds 127.0.0.1:port (UDP)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def versions(dgs):
    out = {}
    for d in dgs:
        v = int.from_bytes(d.payload[:2], "big")
        name = {5: "v5", 9: "v9", 10: "IPFIX"}.get(v, "version %d" % v)
        out[name] = out.get(name, 0) + 1
    return ", ".join("%d %s" % (n, k) for k, n in sorted(out.items()))


def demo():
    fp.require_binaries()
    work = fp.tmpdir("flowpost-demo-")
    say("work directory: %s" % work)

    # 1. A key shared by the kit and the gateway.
    keys = os.path.join(work, "gateway.keys")
    keyf = os.path.join(work, "client.key")
    r = fp.run([fp.gateway_bin(), "--genkey", "demo-kit"])
    say("\n$ flowpost-gateway --genkey demo-kit\n%s" % r.stdout.rstrip())
    fp.genkey("demo-kit", keys, keyf)

    # 2. Collectors: nfcapd if installed, and a counting Python sink.
    sink = fp.Sink()
    collectors = [sink.address]
    nfcapd = None
    nfdir = os.path.join(work, "nfcapd")
    if shutil.which("nfcapd"):
        os.makedirs(nfdir)
        port = fp.free_udp_port()
        nfcapd = fp.Proc("nfcapd", ["nfcapd", "-w", nfdir, "-p", str(port),
                                    "-b", "127.0.0.1", "-t", "3600",
                                    "-B", str(8 << 20)], work)
        fp.wait_for(lambda: udp_port_taken(port) or not nfcapd.alive(), 10,
                    what="nfcapd to bind 127.0.0.1:%d" % port)
        assert nfcapd.alive(), "nfcapd exited: %s" % nfcapd.log_text()
        collectors.insert(0, "127.0.0.1:%d" % port)
        say("nfcapd (pid %d) collects on 127.0.0.1:%d into %s"
            % (nfcapd.pid, port, nfdir))
    else:
        say("nfcapd is not installed: the Python collector is the only one")
    say("Python collector on %s" % sink.address)

    # 3. Gateway and client.
    gw = fp.Gateway(keys, collectors, workdir=os.path.join(work, "gw"))
    say("gateway (pid %d) at %s, metrics on 127.0.0.1:%d"
        % (gw.pid, gw.url, gw.metrics_port))
    cl = fp.Client(gw.url, keyf, "demo-kit", ipv6=False,
                   workdir=os.path.join(work, "client"))
    say("client (pid %d) listens on 127.0.0.1:%d, spool %s"
        % (cl.pid, cl.port4, cl.spool_dir))

    # 4. Replay the captures into the client.
    rep = fp.Replayer(cl)
    say("")
    for name in CAPTURES:
        dgs = fp.load_pcap(os.path.join(fp.DATA, "exports", name))
        rep.send(dgs, 4)
        say("sent %-60s %s" % (name[:60], versions(dgs)))
    sent = rep.sent

    # 5. Wait until everything arrived and was acknowledged.
    ok = sink.wait_count(len(sent), 60)
    st = cl.wait_stats(lambda s: s.get("acked_datagrams", 0) >= len(sent)
                       or not ok, 30, "acknowledgements")
    got = sink.payloads()
    say("\ndatagrams in:  %d sent to the client, %d received by it"
        % (len(sent), st.get("received_datagrams", 0)))
    say("datagrams out: %d at the Python collector (%s), %d acknowledged "
        "in %d batches" % (len(got), "byte-identical, in order"
                           if got == sent else "DIFFERENT: " +
                           str(fp.compare_sequences(sent, got)),
                           st.get("acked_datagrams", 0),
                           st.get("acked_batches", 0)))
    try:
        m = gw.metrics()
        for k in sorted(m):
            if ("datagram" in k or "batch" in k) and \
                    (m[k] or "rejected" not in k):
                say("  gateway metric %s %g" % (k, m[k]))
    except AssertionError as e:
        say("  gateway metrics unavailable: %s" % e)

    # 6. Stop everything; nfcapd writes its file on exit.
    cl.stop()
    gw.stop()
    if nfcapd is not None:
        nfcapd.stop()
        files = sorted(f for f in os.listdir(nfdir)
                       if f.startswith("nfcapd.") and "current" not in f)
        say("\nnfcapd wrote: %s" % ", ".join(files))
        for args in (["-o", "line", "-c", "15"], ["-I"]):
            cmd = ["nfdump", "-R", nfdir] + args
            r = fp.run(cmd)
            say("\n$ %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    if got != sent:
        raise AssertionError("not everything arrived")


if __name__ == "__main__":
    try:
        demo()
    except fp.Skip as e:
        say("demo cannot run: %s" % e)
        sys.exit(1)
    except (AssertionError, subprocess.SubprocessError) as e:
        fp.dump_logs()
        say("demo failed: %s" % e)
        sys.exit(1)
    finally:
        fp.cleanup()
