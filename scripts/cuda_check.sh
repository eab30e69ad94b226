#!/usr/bin/env bash
# Builds samdistill against LibTorch 2.6 with CUDA 12.4 and NCCL 2.22 on a machine without a
# GPU, and runs its tests against that build: as root on Debian 12, in a Debian 13 root made
# with debootstrap (scripts/trixie_root.sh; contrib and non-free). Proves that the CUDA build
# compiles with warnings as errors and links, that its NCCL process group and LibTorch's CUDA
# library are in every program, and that the CPU suite passes there (CUDA tests skip, saying
# why). What needs a GPU is scripts/gpu_check.sh's. About 9 GB of root.
#   scripts/cuda_check.sh [ROOT] [ctest arguments...]   ROOT: /var/tmp/samdistill-trixie-cuda
# Without ctest arguments the unit tests run first, then those against the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/trixie_root.sh
source scripts/trixie_root.sh
root="${1:-/var/tmp/samdistill-trixie-cuda}"
shift || true
start=$(date +%s)
say() { echo "[cuda_check +$(($(date +%s) - start))s] $*" >&2; }

say "root $root"
trixie_bootstrap "$root"
# nvidia-cudnn (a dependency of libtorch-cuda-2.6) downloads cuDNN from NVIDIA once its licence
# is accepted; declined, it installs offline, without a libcudnn.
echo 'nvidia-cudnn nvidia-cudnn/question select I Decline' | chroot "$root" debconf-set-selections
trixie_install "$root" libtorch-cuda-dev libgloo-cuda-dev libnccl-dev nvidia-cuda-toolkit libcu++-dev
say "installed: $(trixie_in "$root" "dpkg-query -W -f='\${Package} \${Version}, ' \
  libtorch-cuda-dev libnccl-dev nvidia-cuda-toolkit g++") $(du -sxh "$root" | cut -f1)"

# Without cuDNN, a stand-in libcudnn.so.9 that defines the cudnn* functions LibTorch's CUDA
# libraries call (LibTorch's, and PyTorch's Python module where one is installed, as for making
# fixtures with the reference) completes their links and loads; each is a trap, should one ever be
# called.
trixie_in "$root" <<'STANDIN'
set -euo pipefail
lib=/usr/local/lib/libcudnn.so.9
if ldconfig -p | grep 'libcudnn\.so\.9 ' | grep -v "$lib" >/dev/null; then exit 0; fi  # a real cuDNN
users=$(ldconfig -p | grep -oE '/[^ ]+/libtorch_(cuda|python)\.so[.0-9]*$' | sort -u)
wanted=$(for u in $users; do nm -D --undefined-only "$u"; done | grep ' cudnn' || true)
src=$(mktemp --suffix=.c)
{
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo 'static void trap(const char* f) {'
  echo '  fprintf(stderr, "%s: called, but libcudnn.so.9 is cuda_check.sh'"'"'s stand-in (no cuDNN)\n", f);'
  echo '  abort();'
  echo '}'
  echo "$wanted" | awk '$2 ~ /^cudnn/ {sub(/@.*/, "", $2); print $2}' |
    sort -u | while read -r f; do echo "void $f(void) { trap(\"$f\"); }"; done
} >"$src"
# Under the version cuDNN gives its symbols (as LibTorch asks for them: cudnnCreate@libcudnn.so.9).
version=$(echo "$wanted" | awk -F@ '/ cudnn/ {print $2}' | sort -u)
echo "${version:-libcudnn.so.9} { global: cudnn*; local: *; };" >"$src.map"
gcc -shared -fPIC -Wl,-soname,libcudnn.so.9 -Wl,--version-script,"$src.map" -o "$lib" "$src"
rm "$src" "$src.map"
ldconfig
echo "stand-in $lib: $(nm -D --defined-only "$lib" | grep -c ' T cudnn') cudnn functions" >&2
STANDIN

say "build (warnings as errors)"
trixie_build "$root"
say "built"

# What makes it a CUDA build: CMake found CUDA and nccl.h (SAMDISTILL_WITH_NCCL), every program
# needs LibTorch's CUDA library (whose hooks make at::hasCUDA() true on a GPU: the paths on
# CUDA, autocast fp16 with loss scaling, CUDA generator states in checkpoints, pinned batches,
# the device of LOCAL_RANK, are branches on it), and samdistill makes NCCL process groups.
trixie_in "$root" <<'CHECK'
set -euo pipefail
cd /work/samdistill/build
fail() { echo "cuda_check: $*" >&2; exit 1; }
# Whether the lines on stdin hold PATTERN, reading them all: `grep -q` stops at the first match,
# and the program writing them then dies of SIGPIPE, which pipefail takes for a failure.
holds() { grep "$1" >/dev/null; }
grep -E '^(CUDA_VERSION|CUDA_NVCC_EXECUTABLE|SD_NCCL_INCLUDE_DIR):' CMakeCache.txt >&2
grep -q '^CUDA_VERSION:STRING=1' CMakeCache.txt || fail "CMake found no CUDA"
grep -q '^SD_NCCL_INCLUDE_DIR:PATH=/' CMakeCache.txt || fail "CMake found no nccl.h"
grep -q 'SAMDISTILL_WITH_NCCL' CMakeFiles/sd_distributed.dir/flags.make || fail "sd_distributed built without NCCL"
for program in samdistill test_*; do
  [ -x "$program" ] && [ -f "$program" ] || continue
  readelf -d "$program" | holds 'NEEDED.*\[libtorch_cuda\.so' ||
    fail "$program does not need libtorch_cuda.so"
  ! ldd "$program" | grep 'not found' || fail "$program: libraries not found"
done
ldd samdistill | holds 'libc10_cuda\.so' || fail "samdistill loads no libc10_cuda.so"
ldd samdistill | holds 'libnccl\.so' || fail "samdistill loads no libnccl.so"
nm -DC --undefined-only samdistill | holds 'c10d::ProcessGroupNCCL::ProcessGroupNCCL(' ||
  fail "samdistill makes no NCCL process group"
echo "every program needs libtorch_cuda.so; samdistill loads libc10_cuda.so and libnccl.so and makes ProcessGroupNCCL" >&2
CHECK
say "CUDA build checked"

# ctest's arguments quoted for the shell inside the root; the skipped tests and why, after.
ctest() {
  say "ctest $*"
  trixie_in "$root" "cd /work/samdistill && ctest --test-dir build --output-on-failure \
    -j$(nproc)$(printf ' %q' "$@"); status=\$?; \
    grep -h -A1 ': Skipped$' build/Testing/Temporary/LastTest.log | grep -v -- '^--' | \
    paste - - | sed 's/^/  skipped: /' | sort | uniq -c >&2; exit \$status"
}
status=0
if [ $# -gt 0 ]; then
  ctest "$@" || status=1
else
  ctest -LE reference || status=1
  ctest -L reference || status=1
fi
say "done, tests $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
