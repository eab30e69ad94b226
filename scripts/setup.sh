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
  libarchive-dev libgloo-dev libmimalloc-dev libjemalloc-dev libturbojpeg0-dev zlib1g-dev \
  libdnnl-dev >/dev/null
# clang, libclang-rt, libfuzzer: scripts/fuzz.sh. libarchive: SA-1B tars read in place.
# libgloo: the Gloo process group (torch.distributed on CPUs). mimalloc, jemalloc: allocator
# choices (SAMDISTILL_ALLOCATOR). libturbojpeg: JPEGs decoded straight to RGB. zlib: PNGs
# deflated. libblas-dev: links the BLAS LibTorch uses (OpenBLAS, through the alternatives) for
# TinyViT's window products.
# libdnnl-dev: oneDNN's headers, for the inference Linears (the library itself comes with
# LibTorch).
# python3-onnx: ONNX's own checker, and node with onnxruntime-node (npm, into tests/onnx/node;
# its install script only fetches a CUDA add-on, hence --ignore-scripts): the tests of the ONNX
# export run the exported models in ONNX Runtime; onnxruntime-web and puppeteer-core (same
# folder) run the page of `export --web` in the chromium above. A node already installed (e.g.
# NodeSource's) is kept.
$SUDO apt-get install -y -qq --no-install-recommends python3-onnx >/dev/null
if ! command -v npm >/dev/null; then
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
(cd "$(dirname "$0")/../tests/onnx/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
