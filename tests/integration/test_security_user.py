#!/usr/bin/env python3
"""
The privilege drop (`user`): started as root, the gateway binds, reads its
keys and then runs as that user, with no capabilities and no way back; it
still forwards, writes its state as that user, and reloads a keys file the
user can read.  Skipped unless the test runs as root and `nobody` exists.
"""

import os
import pwd
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

USER = "nobody"


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def test_user_drop():
    fp.require_binaries()
    if os.geteuid() != 0:
        raise fp.Skip("not running as root")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        raise fp.Skip("no user %s" % USER)

    d = fp.tmpdir()
    os.chmod(d, 0o755)                  # the user must reach its state dir
    keys = os.path.join(d, "keys")
    key_file = os.path.join(d, "client.key")
    fp.genkey("kit-1", keys, key_file)
    state = os.path.join(d, "state")
    os.makedirs(state)
    os.chown(state, pw.pw_uid, pw.pw_gid)
    sink = fp.Sink()
    gw = fp.Gateway(keys, [sink.address], workdir=d,
                    conf={"user": USER, "state_dir": state})

    st = proc_status(gw.pid)
    fp.log("Uid %s Gid %s Groups %s CapEff %s NoNewPrivs %s" % (
        st["Uid"], st["Gid"], st.get("Groups"), st["CapEff"],
        st.get("NoNewPrivs")))
    assert st["Uid"] == [str(pw.pw_uid)] * 4, st["Uid"]
    assert st["Gid"] == [str(pw.pw_gid)] * 4, st["Gid"]
    assert "0" not in st.get("Groups", []), st.get("Groups")
    assert int(st["CapEff"][0], 16) == 0, st["CapEff"]
    assert int(st["CapPrm"][0], 16) == 0, st["CapPrm"]
    assert "running as user %s" % USER in gw.log_text()

    cl = fp.Client(gw.url, key_file, "kit-1", ipv6=False)
    sent = fp.v5_stream(20)
    fp.Replayer(cl).send(sent)
    assert sink.wait_count(len(sent), 30), "collector got %d of %d" % (
        sink.count(), len(sent))
    assert sink.payloads() == sent
    # The duplicate window was written by the unprivileged user.  A
    # temporary file may be renamed between listing and stat: skip those.
    owned = []
    for root, _, files in os.walk(state):
        for f in files:
            try:
                owned.append(os.stat(os.path.join(root, f)).st_uid)
            except FileNotFoundError:
                if not f.startswith(".tmp."):
                    raise
    assert owned and set(owned) == {pw.pw_uid}, owned

    # keys_file is 0600 root: a reload cannot read it and keeps the keys.
    gw.signal(signal.SIGHUP)
    fp.wait_for(lambda: "keeping the 1 loaded keys" in gw.log_text(), 10,
                what="reload refused with the keys kept")
    # Readable by the user, the reload works.
    os.chown(keys, pw.pw_uid, pw.pw_gid)
    gw.signal(signal.SIGHUP)
    fp.wait_for(lambda: "reload: 1 client keys" in gw.log_text(), 10,
                what="reload done")
    assert gw.alive()
    assert cl.stop() == 0
    assert gw.stop() == 0


if __name__ == "__main__":
    fp.main(test_user_drop)
