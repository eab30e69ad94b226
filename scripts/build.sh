#!/usr/bin/env bash
# Configures and builds samdistill and its tests into ./build.
# SAMDISTILL_WERROR=ON (CI) makes compiler warnings errors.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache, where present: paths relative to the checkout's parent (a clone elsewhere hits the
# same cache) and the sloppiness that lets it cache with a precompiled header.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd .. && pwd)}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSAMDISTILL_WERROR="${SAMDISTILL_WERROR:-OFF}" >/dev/null
cmake --build build -j"$(nproc)"
