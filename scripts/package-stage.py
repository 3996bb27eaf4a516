#!/usr/bin/env python3
"""Stages the iscsi-ha packages' trees from the asset lists in agent/Cargo.toml
([package.metadata.deb] and [package.metadata.generate-rpm], the one place they are written)
and writes the DEBIAN/control file and the RPM spec, for dpkg-deb and rpmbuild.

    package-stage.py BINARY WORK COMPRESSION [--strip]

BINARY replaces the assets' target/release/iscsi-ha (its debug sections removed with --strip,
as cargo-deb does by default). WORK receives deb/ (the tree with
DEBIAN/control), rpm-root/ (the tree) and iscsi-ha.spec. Depends (deb) come from the binary's
NEEDED libraries and the newest GLIBC_ symbol version it uses (what dpkg-shlibdeps would say);
the RPM's come from rpmbuild's own ELF dependency generator.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

binary, work, compression = sys.argv[1:4]
strip = "--strip" in sys.argv[4:]
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
meta = json.loads(subprocess.run(
    ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
    cwd=root, check=True, capture_output=True, text=True).stdout)
pkg = next(p for p in meta["packages"] if p["name"] == "agent")
agent_dir = os.path.dirname(pkg["manifest_path"])
deb, rpm = pkg["metadata"]["deb"], pkg["metadata"]["generate-rpm"]
RELEASE_BIN = "target/release/iscsi-ha"


def source(src):
    return os.path.abspath(binary) if src == RELEASE_BIN else os.path.join(agent_dir, src)


def place(tree, src, dest, mode):
    dest = dest.lstrip("/")
    if dest.endswith("/"):
        dest += os.path.basename(src)
    path = os.path.join(tree, dest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(source(src), path)
    if strip and src == RELEASE_BIN:
        subprocess.run(["strip", "--strip-debug", path], check=True)
    os.chmod(path, int(mode, 8))
    return "/" + dest


def glibc_needs(path):
    out = subprocess.run(["objdump", "-T", "-p", path], check=True, capture_output=True,
                         text=True).stdout
    versions = sorted({tuple(int(x) for x in v.split("."))
                       for v in re.findall(r"GLIBC_([0-9.]+)", out)})
    needed = re.findall(r"^\s*NEEDED\s+(\S+)", out, re.M)
    return (".".join(map(str, versions[-1])) if versions else None), needed


# The .deb tree and its control file.
deb_tree = os.path.join(work, "deb")
for src, dest, mode in deb["assets"]:
    place(deb_tree, src, dest, mode)
glibc, needed = glibc_needs(binary)
depends = []
for lib in needed:
    if re.match(r"(libc|libm|libpthread|libdl|librt|ld-linux-x86-64)\.so", lib):
        dep = f"libc6 (>= {glibc})"
    elif lib == "libgcc_s.so.1":
        dep = "libgcc-s1 (>= 4.2)"
    else:
        sys.exit(f"package-stage: {binary} needs {lib}: name its Debian package here")
    if dep not in depends:
        depends.append(dep)
size_kib = sum(os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(deb_tree) for f in fs) // 1024
extended = textwrap.fill(deb["extended-description"], 79)
control = {
    "Package": deb["name"],
    "Version": f"{pkg['version']}-1",
    "Architecture": "amd64",
    "Maintainer": deb["maintainer"],
    "Installed-Size": str(size_kib),
    "Depends": ", ".join(depends),
    "Recommends": deb["recommends"],
    "Section": deb["section"],
    "Priority": deb["priority"],
    "Description": pkg["description"] + "\n" + "\n".join(
        " " + (line or ".") for line in extended.splitlines()),
}
os.makedirs(os.path.join(deb_tree, "DEBIAN"))
with open(os.path.join(deb_tree, "DEBIAN", "control"), "w") as f:
    f.writelines(f"{k}: {v}\n" for k, v in control.items())

# The RPM tree and its spec (%install copies the tree; no build, no strip, no debuginfo).
rpm_tree = os.path.join(work, "rpm-root")
files = []
for a in rpm["assets"]:
    dest = place(rpm_tree, a["source"], a["dest"], a["mode"])
    files.append(("%doc " if a.get("doc") else "") + dest)
spec = f"""Name: {rpm['name']}
Version: {pkg['version']}
Release: 1
Summary: {rpm['summary']}
License: {pkg['license']}
%description
{deb['extended-description']}
%global debug_package %{{nil}}
%global __os_install_post %{{nil}}
%global _build_id_links none
%global _binary_payload w{compression}.gzdio
%install
cp -a {rpm_tree}/. %{{buildroot}}/
%files
""" + "\n".join(files) + "\n"
with open(os.path.join(work, "iscsi-ha.spec"), "w") as f:
    f.write(spec)
print(f"staged: deb Depends: {control['Depends']}")
