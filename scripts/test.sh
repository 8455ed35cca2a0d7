#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: system packages, npm ci, typecheck, vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each later suite adds what it drives for real here (docker.io, bind9-dnsutils, ...).
bash scripts/install-packages.sh tests procps
npm ci --no-audit --no-fund
npm test
