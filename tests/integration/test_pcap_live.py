#!/usr/bin/env python3
"""
Live capture (`input = pcap:IFACE`): the client takes export datagrams off
the wire without binding their port, and every one reaches the collector,
byte-identical and in order, including an IPFIX message the kernel
fragments on the way.

Root only (exit 77 otherwise, or without `ip netns`).  Everything runs in
two network namespaces the test creates and removes:

  fpx<pid> (exporter)                 fpw<pid> ("wire": kit and gateway)
  fpa<pid> 192.0.2.2/24  <== veth ==>  fpb<pid>, no address, captured
     sends to 192.0.2.1:2055           lo: gateway, sink, client's HTTP

192.0.2.1 (TEST-NET-1) is nobody: a static neighbour entry with an unused
MAC sends the frames onto the veth, where the wire namespace, having no
address and no route, drops them after the capture saw them.  No packet
leaves the two namespaces.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402
import test_pcap_file as tpf  # noqa: E402

N_V5 = 200
PORT = 2055


def sh(*argv, check=True):
    r = subprocess.run(list(argv), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(argv),
                                                  r.returncode, r.stderr))
    return r


def can_run():
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no ip(8)"
    # Creating one is the only real test: listing works without the
    # privileges that creating needs (a container may lack CAP_SYS_ADMIN).
    probe = "fpprobe%d" % os.getpid()
    try:
        if sh("ip", "netns", "add", probe, check=False).returncode != 0:
            return "ip netns add does not work here"
        sh("ip", "netns", "del", probe, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "ip netns does not work here"
    return None


def exporter_payloads():
    """The datagrams the exporter sends, in order: v5 and one IPFIX
    message larger than the veth MTU (the kernel fragments it)."""
    # fixed export times: the exporter (another process) builds them too
    v5, seq = [], 1000
    for i in range(N_V5):
        count = 1 + (i * 7) % 30
        v5.append(fp.v5_datagram(seq, count, i, 1700000000 + i // 50))
        seq += count
    big = tpf.ipfix_message(1, 3472)
    return v5[:N_V5 // 2] + [big] + v5[N_V5 // 2:]


EXPORTER = r"""
import socket, sys, time
sys.path.insert(0, %(dir)r)
import test_pcap_live as t
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.2", 40001))
for i, p in enumerate(t.exporter_payloads()):
    s.sendto(p, ("192.0.2.1", %(port)d))
    if i %% 20 == 19:
        time.sleep(0.005)   # pacing only: the capture buffer is 8 MiB
print("sent", i + 1)
"""


def inner(ns_exp, ifname):
    """Runs inside the wire namespace."""
    def test_live_capture():
        fp.require_binaries()
        sh("ip", "link", "set", "lo", "up")
        s = fp.Stack(client_id="kit-live", start_client=False, ipv6=False)
        cl = s.start_client(args={"input": "pcap:" + ifname})
        want = exporter_payloads()
        r = sh("ip", "netns", "exec", ns_exp, sys.executable, "-c",
               EXPORTER % {"dir": os.path.dirname(os.path.abspath(
                   __file__)), "port": PORT})
        fp.log(r.stdout.strip())
        ok = s.sink.wait_count(len(want), 60)
        st = cl.stats()
        assert ok, "collector got %d of %d: %s; client: %s" % (
            s.sink.count(), len(want),
            fp.compare_sequences(want, s.sink.payloads()),
            fp.fmt_stats(st))
        diff = fp.compare_sequences(want, s.sink.payloads())
        assert diff is None, diff
        st = cl.wait_stats(lambda x: x.get("acked_datagrams", 0) >=
                           len(want), 30, "all acknowledged")
        fp.log("client: %s" % fp.fmt_stats({k: v for k, v in st.items()
                                            if k.startswith("pcap_")}))
        assert st["pcap_fragments"] >= 3, st
        assert st["pcap_reassembled"] >= 1, st
        assert st["pcap_kernel_drops"] == 0, st
        assert st["received_datagrams"] == len(want), st
        assert cl.stop() == 0, "client exit status"
    fp.main(test_live_capture)


def main():
    why = can_run()
    if why is not None:
        print("skip: %s" % why)
        sys.exit(fp.SKIP)
    try:
        fp.require_binaries()
    except fp.Skip as e:
        print("skip: %s" % e)
        sys.exit(fp.SKIP)
    pid = os.getpid()
    ns_exp, ns_wire = "fpx%d" % pid, "fpw%d" % pid
    veth_exp, veth_wire = "fpa%d" % pid, "fpb%d" % pid
    made = []
    rc = 1
    try:
        for ns in (ns_exp, ns_wire):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        sh("ip", "link", "add", veth_exp, "type", "veth", "peer", "name",
           veth_wire)
        sh("ip", "link", "set", veth_exp, "netns", ns_exp)
        sh("ip", "link", "set", veth_wire, "netns", ns_wire)
        ex = ("ip", "netns", "exec", ns_exp)
        sh(*ex, "ip", "link", "set", "lo", "up")
        sh(*ex, "ip", "addr", "add", "192.0.2.2/24", "dev", veth_exp)
        sh(*ex, "ip", "link", "set", veth_exp, "up")
        sh(*ex, "ip", "neigh", "replace", "192.0.2.1", "lladdr",
           "02:00:00:00:00:01", "dev", veth_exp, "nud", "permanent")
        sh("ip", "netns", "exec", ns_wire, "ip", "link", "set", veth_wire,
           "up")
        env = dict(os.environ)
        p = subprocess.run(["ip", "netns", "exec", ns_wire, sys.executable,
                            os.path.abspath(__file__), "--inner", ns_exp,
                            veth_wire], stdin=subprocess.DEVNULL, env=env,
                           timeout=240)
        rc = p.returncode
    finally:
        # deleting a namespace deletes the veth pair with it
        for ns in reversed(made):
            sh("ip", "netns", "del", ns, check=False)
        left = sh("ip", "netns", "list", check=False).stdout
        if ns_exp in left or ns_wire in left:
            print("warning: namespaces left behind: %s" % left)
    sys.exit(rc)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--inner":
        ns_exp_arg, ifname_arg = sys.argv[2], sys.argv[3]
        sys.argv = sys.argv[:1]         # fp.main picks tests from argv
        inner(ns_exp_arg, ifname_arg)
    else:
        main()
