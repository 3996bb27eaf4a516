#!/usr/bin/env bash
# Installs every Debian package the lab, the tests and the benchmarks need. Idempotent.
# `deps.sh drill`: only what `scripts/lab-drill` needs (the lab: QEMU, tgtd, DRBD's tools as the
# guests' bring-up, the iSCSI client); no argument: everything the tests need too.
set -euo pipefail
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
