#!/usr/bin/env bash
# Builds samdistill against LibTorch 2.x (CPU) and runs its tests there, on a Debian 12 machine
# that has LibTorch 1.13: a Debian 13 (trixie: LibTorch 2.6, GCC 14) root made with debootstrap
# (scripts/trixie_root.sh), this checkout cloned into it, ../shared mounted beside the clone.
# Needs root and Debian's package mirror. Minutes to set up, then a full build (9.5 minutes on
# 2 cores, empty ccache).
#   scripts/libtorch2_check.sh [ROOT] [ctest arguments...]   ROOT: /var/tmp/samdistill-trixie
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/trixie_root.sh
source scripts/trixie_root.sh
root="${1:-/var/tmp/samdistill-trixie}"
shift || true

trixie_bootstrap "$root"
trixie_install "$root" libtorch-dev libgloo-dev
trixie_build "$root"
# ctest's arguments quoted for the shell inside the root.
trixie_in "$root" "cd /work/samdistill && dpkg-query -W libtorch-dev g++ && \
  ctest --test-dir build --output-on-failure -j$(nproc)$(printf ' %q' "$@")"
