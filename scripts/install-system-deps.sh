#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, when missing. Idempotent; needs root
# (or passwordless sudo) only when something is actually missing.
set -euo pipefail

# Each later suite adds what it drives for real here (docker.io, bind9-dnsutils, ...).
PACKAGES=(procps)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${PACKAGES[*]})"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system packages: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
