#!/usr/bin/env bash
# Installs every Debian package the lab, the tests and the benchmarks need. Idempotent.
# `deps.sh drill`: only what `scripts/lab-drill` needs (the lab: QEMU, tgtd, DRBD's tools as the
# guests' bring-up, the iSCSI client); no argument: everything the tests need too.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case "$what" in all|drill) ;; *) echo "usage: $0 [drill]" >&2; exit 2 ;; esac
lab=(qemu-system-x86 busybox-static cpio kmod tgt drbd-utils libiscsi-bin libiscsi-dev
     socat iputils-ping arping iproute2 xz-utils zstd gzip ca-certificates
     make gcc-12 binutils)  # these three build the lab's DRBD 9 modules (tests/src/drbd9)
tests=(systemd  # systemd-analyze verify of packaging/iscsi-ha.service
       systemd-container  # systemd-nspawn: the unit under a real systemd (agent/tests/systemd_unit.rs)
       rpm rpm2cpio  # scripts/package: rpmbuild, rpm -qlp and rpm2cpio of the .rpm
       python3-aiosmtpd openssl)  # the SMTP server (STARTTLS + AUTH) the mail alert test runs
pkgs=("${lab[@]}")
[ "$what" = all ] && pkgs+=("${tests[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
# The lab downloads the Debian kernel package with `apt-get download`: it needs package lists.
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  apt-get update -qq
fi
# Debian's QEMU 10 (bookworm-backports), unpacked under target/lab-cache/qemu-backport, not installed:
# its TCG keeps a guest's translated code by physical page (PC-relative translation blocks), so a
# program started again in a guest is not translated again as under bookworm's QEMU 7.2 (3-4x
# faster process starts, tests/README.md "QEMU"). The lab uses it when present (tests/src/qemu.rs),
# else the system's qemu-system-x86_64. Its libraries are bookworm's (the backport is built
# against them); firmware comes from the installed seabios.
qemu10=target/lab-cache/qemu-backport
if [ ! -x "$qemu10/root/usr/bin/qemu-system-x86_64" ]; then
  rm -rf "$qemu10" && mkdir -p "$qemu10/apt/lists/partial" "$qemu10/apt/cache/archives/partial" "$qemu10/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" > "$qemu10/apt/sources.list"
  apt_bpo=(-o "Dir::Etc::sourcelist=$PWD/$qemu10/apt/sources.list" -o Dir::Etc::sourceparts=-
           -o "Dir::State::Lists=$PWD/$qemu10/apt/lists" -o "Dir::Cache=$PWD/$qemu10/apt/cache"
           -o APT::Sandbox::User=root)
  if apt-get "${apt_bpo[@]}" update -qq \
     && (cd "$qemu10/debs" && apt-get "${apt_bpo[@]}" download -qq qemu-system-x86/bookworm-backports \
           qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports); then
    for d in "$qemu10"/debs/*.deb; do dpkg-deb -x "$d" "$qemu10/root"; done
    rm -rf "$qemu10/apt" "$qemu10/debs"
    "$qemu10/root/usr/bin/qemu-system-x86_64" --version | head -1
  else
    echo "deps.sh: Debian's QEMU 10 backport could not be fetched; the lab uses the system's QEMU" >&2
    rm -rf "$qemu10"
  fi
fi
[ "$what" = drill ] && exit 0
# promtool and a real scrape of the agent's metrics; its recommends (node exporter, IPMI tools)
# are not needed.
if ! dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q 'install ok installed'; then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show prometheus >/dev/null 2>&1 || apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus
fi
# The OCF agent's tests and the lab's two-node Pacemaker cluster (tests/src/pacemaker.rs):
# ocf-tester + ra-api-1.dtd (resource-agents), xmllint, Pacemaker 2.1 + corosync 3; no recommends
# (fence-agents and their Python stack are not used: the lab fences with its own script).
pm=(resource-agents libxml2-utils pacemaker pacemaker-cli-utils corosync crmsh)
pm_missing=()
for p in "${pm[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pm_missing+=("$p")
done
if [ ${#pm_missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show pacemaker >/dev/null 2>&1 || apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pm_missing[@]}"
fi
