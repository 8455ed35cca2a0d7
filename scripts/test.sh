#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: system packages, npm ci, typecheck, vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
npm ci --no-audit --no-fund
npm test
