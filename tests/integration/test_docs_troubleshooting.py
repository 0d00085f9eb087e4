#!/usr/bin/env python3
"""
docs/TROUBLESHOOTING.md quotes the daemons' messages word for word; this
checks that the sources still print them.

Each quoted message (a "### `...`" heading, or a code span with a `<...>`
placeholder in the text) is cut at its placeholders, at digit runs and at
": ", "; " and parentheses (where the code joins a message from parts), and every piece
of four characters or more must occur in a string literal of client/,
gateway/ or common/, with printf conversions taken as cut points too.  A
message that was reworded in the code fails here with the piece that is
gone.  Needs no binaries.
"""

import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

DOC = os.path.join(fp.SRC, "docs", "TROUBLESHOOTING.md")

LITERAL_RE = re.compile(r'"((?:\\.|[^"\\\n])*)"')
# What may stand between two literals that C joins: blanks, comments and
# the <inttypes.h> PRI macros.
JOIN_RE = re.compile(r"^(?:\s|\\\n|/\*.*?\*/|PRI[a-zA-Z0-9]+)*$", re.S)
CONV_RE = re.compile(r"%[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?"
                     r"(?:hh|h|ll|l|z|j|t|L)?[diouxXeEfgGcsp]|%PRI|%")


def source_segments():
    """Literal text of every C string in the daemons' sources, cut at the
    printf conversions."""
    segs = set()
    files = []
    for d in ("client", "gateway", "common"):
        files += glob.glob(os.path.join(fp.SRC, d, "*.c"))
        files += glob.glob(os.path.join(fp.SRC, d, "*.h"))
    for path in files:
        with open(path, errors="replace") as f:
            text = f.read()
        lits = list(LITERAL_RE.finditer(text))
        i = 0
        while i < len(lits):
            s = lits[i].group(1)
            j = i
            while j + 1 < len(lits) and JOIN_RE.match(
                    text[lits[j].end():lits[j + 1].start()]):
                between = text[lits[j].end():lits[j + 1].start()]
                s += ("PRI" if "PRI" in between else "") + lits[j + 1].group(1)
                j += 1
            s = s.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t")
            s = s.replace("\\\\", "\\").replace("%%", "\x01")
            for part in CONV_RE.split(s):
                part = part.replace("\x01", "%")
                if part.strip():
                    segs.add(part)
            i = j + 1
    return segs


def quoted_messages():
    """(line number, message) for each message the page quotes."""
    out = []
    with open(DOC) as f:
        for n, line in enumerate(f, 1):
            if line.startswith("|"):
                continue        # table cells quote parts, not messages
            m = re.match(r"^### `(.+)`\s*$", line)
            if m:
                out.append((n, m.group(1)))
                continue
            for span in re.findall(r"`([^`]+)`", line):
                if re.search(r"<[a-z][a-z _]*>", span) and len(span) >= 20:
                    out.append((n, span))
    return out


def pieces(msg):
    parts = re.split(r"<[^<>]*>/?|\d+|: |; |[()]", msg)
    return [p.strip() for p in parts if len(p.strip()) >= 4]


def test_messages_exist():
    segs = source_segments()
    assert len(segs) > 500, "found only %d literals under %s" % (len(segs),
                                                                  fp.SRC)
    msgs = quoted_messages()
    assert len(msgs) >= 40, "found only %d quoted messages" % len(msgs)
    missing = []
    for n, msg in msgs:
        for p in pieces(msg):
            if not any(p in s for s in segs):
                missing.append("line %d: %r (from %r)" % (n, p, msg))
                break
    assert not missing, "messages the code no longer prints:\n  " + \
        "\n  ".join(missing)


if __name__ == "__main__":
    fp.main(test_messages_exist)
