#!/usr/bin/env python3
"""
The Debian packages: `cpack -G DEB` from the build directory makes
flowpost-client and flowpost-gateway; each, extracted with `dpkg-deb -x`
into an empty tree, holds its binary, man pages, systemd unit, docs and
sample configuration, and nothing of the other package; the control fields
name section net, a maintainer, a description and the shared libraries the
binary links; the units call the packaged binary with options it knows;
and the extracted binaries run (`--version`) against the system libraries.

Skips (77) without cpack, dpkg-deb or a configured build directory.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp  # noqa: E402

NAMES = ("client", "gateway")

# Libraries both daemons link, and what only the client links.
CORE_DEPENDS = {
    "client": {"libcurl4", "libmicrohttpd12", "zlib1g", "libinih1",
               "libsodium23"},
    "gateway": {"libmicrohttpd12", "zlib1g", "libinih1", "libsodium23"},
}

DOCS = ("README.md", "LICENSE", "CONFIGURATION.md", "OPERATIONS.md",
        "TROUBLESHOOTING.md", "SECURITY.md", "PROTOCOL.md")


def tools():
    need = {}
    for t in ("cpack", "dpkg-deb"):
        need[t] = shutil.which(t)
        if not need[t]:
            raise fp.Skip("%s not installed" % t)
    if not fp.BIN or not os.path.exists(
            os.path.join(fp.BIN, "CPackConfig.cmake")):
        raise fp.Skip("no configured build directory (FLOWPOST_BIN)")
    return need


def build_packages(outdir):
    """Runs cpack into outdir; returns {name: path of the .deb}."""
    r = fp.run(["cpack", "-G", "DEB", "-B", outdir, "--config",
                os.path.abspath(os.path.join(fp.BIN, "CPackConfig.cmake"))],
               timeout=120,
               cwd=outdir)
    assert r.returncode == 0, "cpack failed:\n%s\n%s" % (r.stdout, r.stderr)
    debs = {}
    for name in NAMES:
        found = glob.glob(os.path.join(outdir, "flowpost-%s_*.deb" % name))
        assert len(found) == 1, (name, os.listdir(outdir))
        debs[name] = found[0]
    return debs


def field(deb, name):
    r = fp.run(["dpkg-deb", "-f", deb, name])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def depends_names(text):
    """Package names of a Depends field, without versions or arch."""
    out = set()
    for alt in re.split(r"[,|]", text):
        alt = alt.strip()
        if alt:
            out.add(re.split(r"[\s(:]", alt, 1)[0])
    return out


def linked_packages(binary):
    """Debian packages owning the shared libraries `binary` links directly
    (NEEDED, from readelf; paths from ldd; owners from dpkg -S); empty when
    a tool is missing."""
    if not all(shutil.which(t) for t in ("readelf", "ldd", "dpkg")):
        return set()
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            fp.run(["readelf", "-d", binary]).stdout))
    r = fp.run(["ldd", binary])
    pkgs = set()
    for m in re.finditer(r"^\s*(\S+) => (/\S+) \(", r.stdout, re.M):
        if m.group(1) not in needed:
            continue
        lib = os.path.realpath(m.group(2))
        s = fp.run(["dpkg", "-S", lib])
        if s.returncode != 0:
            s = fp.run(["dpkg", "-S", m.group(2)])
        if s.returncode == 0:
            pkgs.add(s.stdout.split(":", 1)[0].strip())
    # Sanitizer runtimes are a property of the ASan build, not a dependency
    # the test insists on.
    return {p for p in pkgs if not p.startswith(("libasan", "libubsan",
                                                 "libgcc", "libstdc++"))}


def extract(deb, root):
    os.makedirs(root)
    r = fp.run(["dpkg-deb", "-x", deb, root])
    assert r.returncode == 0, r.stderr
    files = set()
    for d, _, fs in os.walk(root):
        for f in fs:
            files.add(os.path.relpath(os.path.join(d, f), root))
    return files


def help_options(binary):
    """Every --option the binary's --help names, '-' and '_' alike."""
    r = fp.run([binary, "--help"])
    assert r.returncode == 0, r
    return {o.replace("_", "-") for o in re.findall(r"--([a-z][a-z0-9_-]*)",
                                                     r.stdout)}


def check_unit(name, root, files):
    unit = os.path.join(root, "usr/lib/systemd/system/flowpost-%s.service"
                        % name)
    with open(unit) as f:
        text = f.read()
    opts = help_options(os.path.join(root, "usr/bin/flowpost-%s" % name))
    execs = re.findall(r"^(ExecStart(?:Pre)?)=(\S+)(.*)$", text, re.M)
    assert len(execs) >= 2, execs
    for key, binary, args in execs:
        assert binary == "/usr/bin/flowpost-%s" % name, (key, binary)
        assert binary.lstrip("/") in files, binary
        for o in re.findall(r"(?:^|\s)--([a-z][a-z0-9_-]*)", args):
            assert o.replace("_", "-") in opts, \
                "%s: %s uses --%s, which the binary does not know" % (
                    unit, key, o)
        assert re.search(r"(?:^|\s)-c /etc/flowpost/flowpost-%s\.conf(\s|$)"
                         % name, args), (key, args)
    for doc in re.findall(r"^Documentation=(.*)$", text, re.M):
        for ref in doc.split():
            if ref.startswith("file:"):
                assert ref[len("file:"):].lstrip("/") in files, ref
            elif ref.startswith("man:"):
                m = re.match(r"man:([^()]+)\((\d)\)$", ref)
                assert m, ref
                page = "usr/share/man/man%s/%s.%s" % (m.group(2), m.group(1),
                                                      m.group(2))
                assert page in files, ref


def test_packages():
    tools()
    fp.require_binaries()
    out = fp.tmpdir("fp-pkg-")
    debs = build_packages(out)
    version = fp.run([fp.client_bin(), "--version"]).stdout.split()[-1]

    contents = {}
    for name in NAMES:
        deb = debs[name]
        assert field(deb, "Package") == "flowpost-%s" % name
        assert field(deb, "Section") == "net"
        assert "@" in field(deb, "Maintainer")
        assert field(deb, "Version").startswith(version), \
            field(deb, "Version")
        desc = field(deb, "Description")
        assert "NetFlow" in desc and len(desc.splitlines()) >= 2, desc

        deps = depends_names(field(deb, "Depends"))
        missing = CORE_DEPENDS[name] - deps
        assert not missing, "%s: Depends lacks %s: %s" % (name, missing,
                                                          sorted(deps))
        built = fp.client_bin() if name == "client" else fp.gateway_bin()
        missing = linked_packages(built) - deps - {"libc6"}
        assert not missing, "%s links libraries of %s, not in Depends %s" % (
            name, missing, sorted(deps))
        if name == "gateway":
            assert "libcurl4" not in deps, deps

        root = os.path.join(out, "root-%s" % name)
        files = extract(deb, root)
        contents[name] = files
        doc = "usr/share/doc/flowpost-%s/" % name
        want = ["usr/bin/flowpost-%s" % name,
                "usr/share/man/man8/flowpost-%s.8" % name,
                "usr/share/man/man5/flowpost-%s.conf.5" % name,
                "usr/lib/systemd/system/flowpost-%s.service" % name,
                doc + "examples/flowpost-%s.conf" % name]
        want += [doc + d for d in DOCS]
        absent = [w for w in want if w not in files]
        assert not absent, "%s package lacks %s; has %s" % (
            name, absent, sorted(files))
        other = "gateway" if name == "client" else "client"
        assert not [f for f in files if "flowpost-%s" % other in f], files

        # The packaged binary runs against the system's libraries.
        binary = os.path.join(root, "usr/bin/flowpost-%s" % name)
        r = fp.run([binary, "--version"])
        assert r.returncode == 0 and r.stdout.strip() == \
            "flowpost-%s %s" % (name, version), (r.returncode, r.stdout,
                                                 r.stderr)
        check_unit(name, root, files)
        if shutil.which("groff"):
            for page in ("usr/share/man/man8/flowpost-%s.8" % name,
                         "usr/share/man/man5/flowpost-%s.conf.5" % name):
                r = fp.run(["groff", "-t", "-man", "-ww", "-z",
                            os.path.join(root, page)])
                assert r.returncode == 0 and not r.stderr.strip(), \
                    (page, r.stderr)

    assert not contents["client"] & contents["gateway"], \
        "files in both packages: %s" % sorted(contents["client"] &
                                                contents["gateway"])
    r = fp.run(["dpkg-deb", "-I", debs["gateway"], "postinst"])
    assert r.returncode == 0 and "useradd" in r.stdout, r


if __name__ == "__main__":
    fp.main(test_packages)
