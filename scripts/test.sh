#!/usr/bin/env bash
# Builds (if needed) and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# One test per core: on a 2-core machine the whole suite takes 26 min instead of 37 (the
# tests set their own threads; each fits beside another in memory).
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
