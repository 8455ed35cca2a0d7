#!/usr/bin/env bash
# Installs the Debian packages named after PURPOSE when missing. Idempotent; needs root (or
# passwordless sudo) only when something is actually missing.
#   scripts/install-packages.sh tests procps
#   scripts/install-packages.sh bench etcd-server
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
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
