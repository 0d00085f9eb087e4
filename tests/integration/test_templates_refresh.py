#!/usr/bin/env python3
"""
Templates across collector and gateway restarts (gateway/template.h).

An exporter written here sends an IPFIX or a NetFlow v9 stream whose
templates come only at the start, through client -> gateway -> nfcapd.
nfcapd is restarted in the middle of the stream, so the new process has
never seen the templates:

- template_refresh on: once the refresh interval has passed, the gateway
  sends the cached templates ahead of the stream's next datagram, and every
  record sent after the restart is decoded;
- template_refresh = 0: none of them is (the collector cannot decode data
  without its template), which is what the feature is for;
- gateway restart: with a refresh interval far longer than the test, the
  templates saved in state_dir are sent ahead of the stream's first
  datagram after the gateway started again, and the restarted nfcapd
  decodes everything.

Skips (77) without nfcapd/nfdump.
"""

import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402
import nfpeers  # noqa: E402

RECORDS = 10            # data records per datagram
DATAGRAMS = 20          # data datagrams per phase

# (information element / v9 field type, length)
IPFIX_FIELDS = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8),
                (152, 8), (153, 8))
V9_FIELDS = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4),
             (22, 4), (21, 4))


class Exporter:
    """A v9 or IPFIX exporter with one data template (256) and one
    options template (257), sent only by templates()."""

    def __init__(self, version, domain=4242):
        self.version = version
        self.domain = domain
        self.seq = 0            # v9: packets, IPFIX: data records
        self.unix = int(time.time()) - 60
        self.uptime = 3600000

    def _message(self, sets, records):
        if self.version == 10:
            body = b"".join(sets)
            msg = struct.pack("!HHIII", 10, 16 + len(body), self.unix,
                              self.seq, self.domain) + body
            self.seq += records
        else:
            count = records
            msg = struct.pack("!HHIIII", 9, count, self.uptime, self.unix,
                              self.seq, self.domain) + b"".join(sets)
            self.seq += 1
        return msg

    @staticmethod
    def _set(set_id, body):
        pad = (-len(body)) % 4
        return struct.pack("!HH", set_id, 4 + len(body) + pad) + body + \
            b"\0" * pad

    def templates(self):
        fields = IPFIX_FIELDS if self.version == 10 else V9_FIELDS
        tmpl = struct.pack("!HH", 256, len(fields)) + b"".join(
            struct.pack("!HH", t, l) for t, l in fields)
        if self.version == 10:
            opts = struct.pack("!HHHHHHHHH", 257, 3, 1, 144, 4, 305, 4,
                               304, 2)
            sets = [self._set(2, tmpl), self._set(3, opts)]
        else:
            opts = struct.pack("!HHHHHHHHH", 257, 4, 8, 1, 4, 34, 4, 35, 1)
            sets = [self._set(0, tmpl), self._set(1, opts)]
        # IPFIX template sets carry no data records: seq does not move.
        return self._message(sets, 2 if self.version == 9 else 0)

    def data(self, n, net):
        """n datagrams of RECORDS flows from 10.<net>.x.y each."""
        out = []
        for i in range(n):
            recs = []
            for r in range(RECORDS):
                k = i * RECORDS + r
                src = (10 << 24) | (net << 16) | k
                dst = (192 << 24) | (168 << 16) | (k & 0xFFFF)
                if self.version == 10:
                    ms = self.unix * 1000
                    recs.append(struct.pack("!IIHHBQQQQ", src, dst,
                                            1024 + k, 443, 6, 1 + r,
                                            100 + k, ms - 5000, ms - 1000))
                else:
                    recs.append(struct.pack("!IIHHBIIII", src, dst,
                                            1024 + k, 443, 6, 1 + r,
                                            100 + k, self.uptime - 5000,
                                            self.uptime - 1000))
            out.append(self._message([self._set(256, b"".join(recs))],
                                     RECORDS))
            self.uptime += 10
        return out


def sources(records):
    """The source addresses of nfdump records (column 'sa')."""
    return sorted(r[3] for r in records)


def expected(net):
    return sorted("10.%d.%d.%d" % (net, k >> 8, k & 0xFF)
                  for k in range(DATAGRAMS * RECORDS))


def template_messages(gw):
    return fp.metric_sum(gw.metrics(),
                         "flowpost_gateway_template_messages_total") or 0


def _collector_restart(version, refresh):
    """Phase 1 into nfcapd #1, restart nfcapd, phase 2 into nfcapd #2;
    returns (records of #1, records of #2, tunnel, summary of #2)."""
    nfpeers.require_tools("nfcapd", "nfdump")
    fp.require_binaries()
    first = nfpeers.Nfcapd(name="nfcapd-1")
    t = nfpeers.Tunnel([first.address],
                       gateway_conf={"template_refresh": refresh})
    ex = Exporter(version)
    phase1 = [ex.templates()] + ex.data(DATAGRAMS, 1)
    t.send(phase1)
    t.wait_forwarded(len(phase1), 30)
    done1 = time.monotonic()
    assert first.finish() == 0, "nfcapd #1 exit status"
    r1 = first.records()

    second = nfpeers.Nfcapd(port=first.port, name="nfcapd-2")
    if refresh:
        # The refresh is due template_refresh seconds after the stream
        # was first seen, which was before done1: wait out that interval.
        left = done1 + refresh + 0.2 - time.monotonic()
        if left > 0:
            time.sleep(left)
    phase2 = ex.data(DATAGRAMS, 2)
    t.send(phase2)
    t.wait_forwarded(len(phase1) + len(phase2), 30)
    assert second.finish() == 0, "nfcapd #2 exit status"
    return r1, second.records(), t, second.summary()


def _check_refresh(version):
    r1, r2, t, s2 = _collector_restart(version, 1)
    assert sources(r1) == expected(1), "phase 1: %d records" % len(r1)
    assert sources(r2) == expected(2), \
        "v%d with template_refresh: nfcapd #2 decoded %d of %d records " \
        "sent after its restart" % (version, len(r2), DATAGRAMS * RECORDS)
    assert template_messages(t.gw) >= 1
    # The template message's header keeps the stream's numbering: a
    # collector that starts with it sees no gap (PROTOCOL.md 5).
    assert s2["sequence_errors"] == 0 and s2["bad_packets"] == 0, s2
    fp.log("v%d: all %d records after the collector restart decoded; %d "
           "template message(s) sent ahead" % (version, len(r2),
                                               template_messages(t.gw)))
    assert t.cl.stop() == 0 and t.gw.stop() == 0


def _check_off(version):
    r1, r2, t, _ = _collector_restart(version, 0)
    assert sources(r1) == expected(1), "phase 1: %d records" % len(r1)
    assert r2 == [], "v%d without template_refresh: nfcapd #2 decoded %d " \
        "records without ever getting a template?" % (version, len(r2))
    assert template_messages(t.gw) == 0
    fp.log("v%d: without template_refresh the %d records after the "
           "collector restart are lost" % (version, DATAGRAMS * RECORDS))
    assert t.cl.stop() == 0 and t.gw.stop() == 0


def test_ipfix_refresh():
    _check_refresh(10)


def test_v9_refresh():
    _check_refresh(9)


def test_ipfix_off():
    _check_off(10)


def test_v9_off():
    _check_off(9)


def test_gateway_restart():
    """Templates saved in state_dir survive a gateway restart."""
    nfpeers.require_tools("nfcapd", "nfdump")
    fp.require_binaries()
    for version in (10, 9):
        first = nfpeers.Nfcapd(name="nfcapd-v%d-1" % version)
        conf = {"template_refresh": "1h"}
        t = nfpeers.Tunnel([first.address], gateway_conf=conf)
        ex = Exporter(version)
        phase1 = [ex.templates()] + ex.data(DATAGRAMS, 1)
        t.send(phase1)
        t.wait_forwarded(len(phase1), 30)
        assert first.finish() == 0
        assert sources(first.records()) == expected(1)

        # Gateway and collector both restart; the client retries.
        old = t.gw
        assert old.stop() == 0, "gateway exit status"
        state = os.path.join(old.state_dir, "templates.cache")
        assert os.path.exists(state), "no %s after a stop" % state
        second = nfpeers.Nfcapd(port=first.port, name="nfcapd-v%d-2"
                                % version)
        conf.update({"rate_limit_client": 0})
        t.gw = fp.Gateway(t.keys_file, [second.address], port=old.port,
                          workdir=old.dir, conf=conf,
                          name="gateway-v%d-2" % version)
        phase2 = ex.data(DATAGRAMS, 2)
        t.send(phase2)
        t.wait_forwarded(len(phase2), 30)
        assert second.finish() == 0
        r2 = second.records()
        assert sources(r2) == expected(2), \
            "v%d after a gateway restart: %d of %d records decoded" % (
                version, len(r2), DATAGRAMS * RECORDS)
        assert template_messages(t.gw) == 1, template_messages(t.gw)
        fp.log("v%d: templates from state_dir sent once after the gateway "
               "restart; all %d records decoded" % (version, len(r2)))
        assert t.cl.stop() == 0 and t.gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_ipfix_refresh, test_v9_refresh, test_ipfix_off, test_v9_off,
            test_gateway_restart)
