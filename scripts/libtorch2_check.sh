#!/usr/bin/env bash
# Builds samdistill against LibTorch 2.x (CPU) and runs its tests there, on a Debian 12 machine
# that has LibTorch 1.13: a Debian 13 (trixie: LibTorch 2.6, GCC 14) root made with debootstrap,
# this checkout cloned into it, ../shared mounted beside the clone. Needs root and Debian's
# package mirror. Minutes to set up, then a full build (9.5 minutes on 2 cores, empty ccache).
#   scripts/libtorch2_check.sh [ROOT] [ctest arguments...]   ROOT: /var/tmp/samdistill-trixie
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-/var/tmp/samdistill-trixie}"
shift || true
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export DEBIAN_FRONTEND=noninteractive

if [ ! -x "$root/usr/bin/cmake" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  [ -x "$root/bin/bash" ] || debootstrap --variant=minbase trixie "$root" "$mirror" >/dev/null
  cp /etc/resolv.conf "$root/etc/"
  # setup.sh's packages that the build and its tests use (not the fuzzers' or the browser).
  chroot "$root" bash -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    build-essential cmake ccache pkg-config git libtorch-dev libopencv-dev nlohmann-json3-dev \
    libspdlog-dev libcli11-dev libgtest-dev libopenblas0-openmp libblas-dev libprotobuf-dev \
    protobuf-compiler libarchive-dev libgloo-dev libjemalloc-dev libturbojpeg0-dev >/dev/null"
fi

mounted=()
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" || true; done; }
trap cleanup EXIT
for m in proc sys dev; do
  if ! mountpoint -q "$root/$m"; then
    mount --rbind "/$m" "$root/$m" && mounted+=("$root/$m")
  fi
done
mkdir -p "$root/work/shared"
if ! mountpoint -q "$root/work/shared"; then
  mount --bind "$(cd ../shared && pwd)" "$root/work/shared" && mounted+=("$root/work/shared")
fi

# The checkout as committed, so what is tested is what would land. ctest's arguments quoted
# for the shell inside the root.
args=$(printf ' %q' "$@")
rm -rf "$root/work/samdistill"
git clone -q "$(pwd)" "$root/work/samdistill"
chroot "$root" bash -c "cd /work/samdistill && \
  SAMDISTILL_WERROR=ON bash scripts/build.sh && \
  dpkg-query -W libtorch-dev g++ && \
  ctest --test-dir build --output-on-failure -j$(nproc)$args"
