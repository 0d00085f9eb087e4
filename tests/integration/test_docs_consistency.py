#!/usr/bin/env python3
"""
The documentation agrees with the binaries.

For each daemon, the keys `--help` lists (its key table) must be exactly
the keys documented in
  - docs/man/flowpost.conf.5 (CLIENT KEYS / GATEWAY KEYS: ".TP" + ".B key"),
  - docs/CONFIGURATION.md ("## flowpost-<name> keys": first table column),
  - docs/flowpost-<name>.conf (a `key =` line, or a commented `# key =`),
with the defaults `--help` prints in CONFIGURATION.md's default column and
in the sample file's uncommented lines.  The other options `--help` names
(--check-config, --genkey, ...) must appear in the daemon's man page and in
CONFIGURATION.md.  The man pages must format without groff warnings.

A key added to a daemon without documentation, or a documented key the
daemon does not know, fails here with the list of differences.
"""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

DOCS = os.path.join(fp.SRC, "docs")
NAMES = ("client", "gateway")

# "  --key VALUE   help text (one of: ...) (default: X)"
KEY_RE = re.compile(r"^\s+--([a-z][a-z0-9_]*) VALUE\b(.*)$")
DEFAULT_RE = re.compile(r"\(default: ([^()]*)\)\s*$")


def binary(name):
    return fp.client_bin() if name == "client" else fp.gateway_bin()


def help_text(name):
    r = fp.run([binary(name), "--help"])
    assert r.returncode == 0, (name, r.returncode, r.stderr)
    return r.stdout


def help_keys(text):
    """{key: default or None} from the key lines of --help.  The help text
    of a long key name continues on the next line."""
    keys, last = {}, None
    for line in text.splitlines():
        m = KEY_RE.match(line)
        if m:
            last = m.group(1)
            keys[last] = None
            rest = m.group(2)
        elif last is not None and line.startswith(" " * 8) and \
                not line.lstrip().startswith("-"):
            rest = line
        else:
            last = None
            continue
        d = DEFAULT_RE.search(rest)
        if d:
            keys[last] = d.group(1).strip()
    return keys


def help_options(text):
    """The options of --help that are not keys: --check-config, -c's long
    form, --genkey, ...; plus bare command words (status)."""
    opts = set()
    for line in text.splitlines():
        if KEY_RE.match(line):
            continue
        for o in re.findall(r"(?:^|[\s,\[|])(--[a-z][a-z0-9-]*)", line):
            if o not in ("--key", "--KEY"):
                opts.add(o)
    # Words listed like an option ("  status   summary ...").
    for m in re.finditer(r"^  ([a-z][a-z-]+)\s{2,}\S", text, re.M):
        opts.add(m.group(1))
    return opts


def roff_plain(text):
    """Roff source without font escapes and with \\- as -."""
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\fB|\\&", "", text)
    return text.replace("\\-", "-").replace("\\(em", "-")


def man5_keys(section):
    """Keys of the man page section "CLIENT KEYS" or "GATEWAY KEYS"."""
    with open(os.path.join(DOCS, "man", "flowpost.conf.5")) as f:
        lines = f.read().splitlines()
    keys, inside = [], False
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            inside = line[3:].strip().strip('"') == section
            continue
        if inside and line == ".TP" and i + 1 < len(lines):
            m = re.match(r"^\.B ([a-z][a-z0-9_]*)$", lines[i + 1])
            if m:
                keys.append(m.group(1))
    return keys


def md_keys(name):
    """{key: default cell} from the tables under "## flowpost-<name> keys"."""
    with open(os.path.join(DOCS, "CONFIGURATION.md")) as f:
        text = f.read()
    m = re.search(r"^## flowpost-%s keys$(.*?)(?=^## |\Z)" % name, text,
                  re.M | re.S)
    assert m, "CONFIGURATION.md has no '## flowpost-%s keys' section" % name
    keys = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[a-z][a-z0-9_]*`", cells[0]):
            key = cells[0].strip("`")
            assert key not in keys, "CONFIGURATION.md lists %s twice" % key
            keys[key] = cells[2]
    return keys


def sample_keys(name):
    """{key: value or None (commented out)} from docs/flowpost-<name>.conf."""
    path = os.path.join(DOCS, "flowpost-%s.conf" % name)
    keys = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([a-z][a-z0-9_]*)\s*=\s*(.*?)\s*$", line)
            if m:
                keys[m.group(1)] = m.group(2)
                continue
            # "# key = value" with at most one word after '=': a key shown
            # commented out, not prose that happens to contain " = ".
            m = re.match(r"^[#;]\s?([a-z][a-z0-9_]*)\s*=\s*\S*\s*$", line)
            if m:
                keys.setdefault(m.group(1), None)
    return keys


def diff(what, documented, known):
    documented, known = set(documented), set(known)
    out = []
    if known - documented:
        out.append("%s lacks %s" % (what, sorted(known - documented)))
    if documented - known:
        out.append("%s documents unknown keys %s" % (
            what, sorted(documented - known)))
    return out


def same_value(a, b):
    return a.strip('"').lower() == b.strip('"').lower()


def test_keys_documented():
    fp.require_binaries()
    problems = []
    for name in NAMES:
        keys = help_keys(help_text(name))
        assert len(keys) >= 20, "parsed only %d keys of %s --help: %s" % (
            len(keys), name, sorted(keys))

        man = man5_keys("%s KEYS" % name.upper())
        dups = sorted({k for k in man if man.count(k) > 1})
        if dups:
            problems.append("flowpost.conf.5 lists %s twice" % dups)
        problems += diff("flowpost.conf.5 %s KEYS" % name.upper(), man, keys)

        md = md_keys(name)
        problems += diff("CONFIGURATION.md flowpost-%s keys" % name, md, keys)
        for k, d in keys.items():
            if d is not None and k in md and "`%s`" % d not in md[k]:
                problems.append("CONFIGURATION.md: %s default is %r, the "
                                "binary says %r" % (k, md[k], d))

        sample = sample_keys(name)
        problems += diff("docs/flowpost-%s.conf" % name, sample, keys)
        for k, d in keys.items():
            v = sample.get(k)
            if d is not None and v is not None and not same_value(v, d):
                problems.append("docs/flowpost-%s.conf: %s = %s, but the "
                                "default is %s" % (name, k, v, d))
    assert not problems, "\n  " + "\n  ".join(problems)


def test_options_documented():
    fp.require_binaries()
    with open(os.path.join(DOCS, "CONFIGURATION.md")) as f:
        md = f.read()
    problems = []
    for name in NAMES:
        opts = help_options(help_text(name))
        assert "--check-config" in opts and "--help" in opts, opts
        with open(os.path.join(DOCS, "man", "flowpost-%s.8" % name)) as f:
            man = roff_plain(f.read())
        for o in sorted(opts):
            pat = r"(?<![\w-])%s(?![\w-])" % re.escape(o)
            if not re.search(pat, man):
                problems.append("flowpost-%s.8 lacks %s" % (name, o))
            if not re.search(pat, md):
                problems.append("CONFIGURATION.md lacks %s (of %s)" % (o,
                                                                      name))
    assert not problems, "\n  " + "\n  ".join(problems)


def test_man_pages_format():
    if not shutil.which("groff"):
        raise fp.Skip("groff not installed")
    pages = [os.path.join(DOCS, "man", p) for p in
             ("flowpost-client.8", "flowpost-gateway.8", "flowpost.conf.5")]
    for p in pages:
        r = fp.run(["groff", "-t", "-man", "-ww", "-z", p])
        assert r.returncode == 0 and not r.stderr.strip(), (p, r.stderr)
        r = fp.run(["groff", "-t", "-man", "-Tutf8", "-P-c", p])
        text = re.sub(r".\x08", "", r.stdout)     # overstrike bold
        assert r.returncode == 0 and "NAME" in text and \
            "SEE ALSO" in text, (p, r.stderr, text[:300])


if __name__ == "__main__":
    fp.main(test_keys_documented, test_options_documented,
            test_man_pages_format)
