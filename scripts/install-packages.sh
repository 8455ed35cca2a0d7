#!/usr/bin/env bash
# Installs the Debian packages named after PURPOSE when missing. Idempotent; needs root (or
# passwordless sudo) only when something is actually missing.
#   scripts/install-packages.sh tests procps docker.io
#   scripts/install-packages.sh bench etcd-server dnsperf
# Packages installed here never start their system services: tests run private daemons
# (e.g. one dockerd per simulated host, tests/helpers/dockerd.ts), never the machine's own.
set -euo pipefail
purpose=$1
shift
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "${purpose}: system packages all present ($*)"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "${purpose}: installing ${missing[*]}"
# A policy-rc.d that exits 101 tells invoke-rc.d not to start services (README.policy-rc.d in
# init-system-helpers); only one created here is removed again.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o=Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" >/dev/null
