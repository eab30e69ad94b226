#!/usr/bin/env bash
# Builds the tests of the stages that read untrusted input (io, data, store) with
# AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/ and runs them, so that the
# bit-flip, truncation and hostile-file tests fail on any out-of-bounds read, use after free
# or undefined behaviour, not only on a wrong answer. Extra arguments go to every test binary
# (e.g. --gtest_filter=Hostile*).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SANITIZE_BUILD_JOBS:-$(nproc)}
flags="-O1 -g1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan -j "$jobs" --target test_io test_data test_store
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in test_io test_data test_store; do
  echo "== $t (ASan + UBSan)"
  build-asan/$t --gtest_brief=1 "$@"
done
