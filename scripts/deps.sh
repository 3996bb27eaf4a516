#!/usr/bin/env bash
# Installs every Debian package the lab, the tests and the benchmarks need. Idempotent.
set -euo pipefail
pkgs=(qemu-system-x86 busybox-static cpio kmod tgt drbd-utils libiscsi-bin libiscsi-dev
      socat iputils-ping arping iproute2 xz-utils zstd gzip ca-certificates
      make gcc-12 binutils  # these three build the lab's DRBD 9 modules (tests/src/drbd9)
      systemd  # systemd-analyze verify of packaging/iscsi-ha.service
      python3-aiosmtpd openssl)  # the SMTP server (STARTTLS + AUTH) the mail alert test runs
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
# promtool and a real scrape of the agent's metrics; its recommends (node exporter, IPMI tools)
# are not needed.
if ! dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q 'install ok installed'; then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show prometheus >/dev/null 2>&1 || apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus
fi
# The lab downloads the Debian kernel package with `apt-get download`: it needs package lists.
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  apt-get update -qq
fi
