#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: system packages, npm ci, typecheck, vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
# What the suites drive for real: dockerd + containerd + runc and a static busybox (one private
# engine per simulated host, tests/helpers/dockerd.ts), `ip` for their bridges, `dig`.
bash scripts/install-packages.sh tests procps docker.io busybox-static iproute2 bind9-dnsutils
npm ci --no-audit --no-fund
npm test
