#!/usr/bin/env python3
"""
Command lines and configuration files of both programs: --help, --version,
--check-config on good and bad files (errors name file, line and key, exit
status 2), command-line options over file values, required keys, unknown
options and sections.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text):
    m = re.fullmatch(r"(\d+)\s*([kKmMgG]?)(i?[bB])?", text.strip())
    assert m, "not a size: %r" % text
    return int(m.group(1)) * SIZE_UNITS[m.group(2).lower()]


def output(r):
    return r.stdout + r.stderr


def setup_files():
    d = fp.tmpdir()
    keys = os.path.join(d, "keys")
    keyf = os.path.join(d, "client.key")
    fp.genkey("kit-cli", keys, keyf)
    spool = os.path.join(d, "spool")
    state = os.path.join(d, "state")
    os.makedirs(spool)
    os.makedirs(state)
    client = {
        "listen": "127.0.0.1:%d, [::1]:%d" % (fp.free_udp_port(),
                                             fp.free_udp_port("::1")
                                             if fp.have_ipv6_loopback()
                                             else fp.free_udp_port()),
        "gateway_url": "http://127.0.0.1:%d/flowpost" % fp.free_port(),
        "proxy": "none",
        "client_id": "kit-cli",
        "key_file": keyf,
        "spool_dir": spool,
        "batch_max_bytes": "64K",
        "batch_max_age": "2s",
    }
    if not fp.have_ipv6_loopback():
        client["listen"] = client["listen"].split(",")[0]
    gateway = {
        "listen": "127.0.0.1:%d" % fp.free_port(),
        "path_prefix": "/flowpost",
        "collector": "127.0.0.1:%d" % fp.free_udp_port(),
        "state_dir": state,
        "keys_file": keys,
        "metrics_listen": "127.0.0.1:%d" % fp.free_port(),
    }
    return d, client, gateway


def write(d, name, section, values, extra_lines=()):
    path = os.path.join(d, name)
    fp.write_ini(path, section, values)
    with open(path, "a") as f:
        for l in extra_lines:
            f.write(l + "\n")
    return path


def line_of(path, text):
    with open(path) as f:
        for i, l in enumerate(f, 1):
            if text in l:
                return i
    raise AssertionError("%r not in %s" % (text, path))


def expect_exit(argv, code, what, must_contain=()):
    r = fp.run(argv)
    out = output(r)
    assert r.returncode == code, "%s: exit %s, want %s; output:\n%s" % (
        what, r.returncode, code, out)
    for s in must_contain:
        assert s in out, "%s: %r not in output:\n%s" % (what, s, out)
    return out


def test_help_version():
    fp.require_binaries()
    for prog, name in ((fp.client_bin(), "flowpost-client"),
                       (fp.gateway_bin(), "flowpost-gateway")):
        for opt in ("--help", "-h"):
            out = expect_exit([prog, opt], 0, "%s %s" % (name, opt), [name])
            # Help lists the keys of the table as options.
            assert "--log_level" in out or "--log-level" in out, out
        for opt in ("--version", "-V"):
            out = expect_exit([prog, opt], 0, "%s %s" % (name, opt), [name])
            assert re.search(r"\d+\.\d+", out), out


def test_check_config():
    fp.require_binaries()
    d, client, gateway = setup_files()
    cl, gw = fp.client_bin(), fp.gateway_bin()
    cconf = write(d, "client.conf", "client", client)
    gconf = write(d, "gateway.conf", "gateway", gateway)
    expect_exit([cl, "-c", cconf, "--check-config"], 0, "good client conf")
    expect_exit([gw, "-c", gconf, "--check-config"], 0, "good gateway conf")

    # No section header is fine too, and so is one file for both programs.
    plain = write(d, "plain.conf", None, client)
    expect_exit([cl, "-c", plain, "--check-config"], 0, "no section")
    both = os.path.join(d, "both.conf")
    with open(both, "w") as f:
        f.write(open(cconf).read().replace("# written", "# client"))
        f.write(open(gconf).read().replace("# written", "# gateway"))
    expect_exit([cl, "-c", both, "--check-config"], 0, "client, both.conf")
    expect_exit([gw, "-c", both, "--check-config"], 0, "gateway, both.conf")

    # Unknown key: file, line and key named.
    for prog, section, values, name in ((cl, "client", client, "client"),
                                        (gw, "gateway", gateway, "gateway")):
        bad = write(d, "%s-unknown.conf" % name, section, values,
                    ["# a comment", "no_such_key = 1"])
        n = line_of(bad, "no_such_key")
        out = expect_exit([prog, "-c", bad, "--check-config"], 2,
                          "%s unknown key" % name, ["no_such_key"])
        assert bad in out or os.path.basename(bad) in out, out
        assert re.search(r"(:|line )%d\b" % n, out), \
            "line %d not named: %s" % (n, out)

    # Unknown section.
    bad = write(d, "section.conf", "client", client, ["[proxy]", "x = 1"])
    expect_exit([cl, "-c", bad, "--check-config"], 2, "unknown section",
                ["proxy"])

    # Bad value.
    bad = write(d, "bad-value.conf", "client",
                dict(client, batch_max_age="five"))
    out = expect_exit([cl, "-c", bad, "--check-config"], 2, "bad value",
                      ["batch_max_age"])
    assert os.path.basename(bad) in out, out
    expect_exit([cl, "-c", cconf, "--check-config", "--batch_max_age",
                 "five"], 2, "bad value on the command line",
                ["batch_max_age"])
    bad = write(d, "bad-gw-value.conf", "gateway",
                dict(gateway, max_body_bytes="lots"))
    expect_exit([gw, "-c", bad, "--check-config"], 2, "gateway bad value",
                ["max_body_bytes"])

    # Required keys.
    missing = dict(client)
    del missing["gateway_url"]
    bad = write(d, "no-url.conf", "client", missing)
    expect_exit([cl, "-c", bad, "--check-config"], 2, "missing gateway_url",
                ["gateway_url"])
    missing = dict(gateway)
    del missing["collector"]
    bad = write(d, "no-collector.conf", "gateway", missing)
    expect_exit([gw, "-c", bad, "--check-config"], 2, "missing collector",
                ["collector"])

    # Unknown options; a missing config file.
    expect_exit([cl, "-c", cconf, "--check-config", "--bogusopt", "1"],
                2, "client unknown option", ["bogusopt"])
    expect_exit([gw, "-c", gconf, "--check-config", "--bogusopt", "1"],
                2, "gateway unknown option", ["bogusopt"])
    expect_exit([cl, "-c", os.path.join(d, "absent.conf"),
                 "--check-config"], 2, "missing file", ["absent.conf"])


def dumped(out, key):
    m = re.search(r"^\s*%s\s*=\s*(.*?)\s*$" % re.escape(key), out, re.M)
    assert m, "%s not in --check-config -v output:\n%s" % (key, out)
    return m.group(1)


def test_option_overrides_file():
    fp.require_binaries()
    d, client, gateway = setup_files()
    cl, gw = fp.client_bin(), fp.gateway_bin()
    cconf = write(d, "client.conf", "client", client)
    out = expect_exit([cl, "-c", cconf, "--check-config", "-v"], 0,
                      "client -v")
    assert parse_size(dumped(out, "batch_max_bytes")) == 64 * 1024, out
    # The option wins over the file wherever it stands on the line, in
    # both spellings.
    for argv in ([cl, "-c", cconf, "--check-config", "-v",
                  "--batch_max_bytes", "4K"],
                 [cl, "--batch-max-bytes=4K", "--check-config", "-v",
                  "-c", cconf]):
        out = expect_exit(argv, 0, " ".join(argv[1:]))
        assert parse_size(dumped(out, "batch_max_bytes")) == 4096, out
    gconf = write(d, "gateway.conf", "gateway", gateway)
    out = expect_exit([gw, "-c", gconf, "--check-config", "-v",
                       "--max_body_bytes", "2M"], 0, "gateway override")
    assert parse_size(dumped(out, "max_body_bytes")) == 2 << 20, out


if __name__ == "__main__":
    fp.main(test_help_version, test_check_config, test_option_overrides_file)
