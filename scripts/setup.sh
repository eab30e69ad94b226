#!/usr/bin/env bash
# Installs what samdistill needs on a fresh Debian 12 / Ubuntu machine (run as root or with sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# protobuf and protoc: the tests decode TensorBoard event files with TensorBoard's own message
# definitions; chromium: the test that renders eval's HTML page.
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ccache pkg-config clang-format \
  libtorch-dev libopencv-dev nlohmann-json3-dev libspdlog-dev libcli11-dev \
  libgtest-dev libopenblas0-openmp libblas-dev \
  libprotobuf-dev protobuf-compiler chromium \
  clang libclang-rt-14-dev libfuzzer-14-dev \
  libarchive-dev libgloo-dev libmimalloc-dev libjemalloc-dev libturbojpeg0-dev zlib1g-dev >/dev/null
# clang, libclang-rt, libfuzzer: scripts/fuzz.sh. libarchive: SA-1B tars read in place.
# libgloo: the Gloo process group (torch.distributed on CPUs). mimalloc, jemalloc: allocator
# choices (SAMDISTILL_ALLOCATOR). libturbojpeg: JPEGs decoded straight to RGB. zlib: PNGs
# deflated. libblas-dev:
# links the BLAS LibTorch uses (OpenBLAS, through the alternatives) for TinyViT's window
# products.
