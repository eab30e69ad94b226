#!/usr/bin/env bash
# The accelerator check. On a machine with CUDA and Python's PyTorch 2.x but none of our
# other packages and no network: builds the core (no OpenCV; GoogleTest from third_party/)
# against PyTorch's LibTorch, runs the model tests on CUDA against the reference fixtures,
# and prints the trainer's throughput (vit_t, bf16, batch 8) and the peak GPU memory.
#
#   scripts/gpu_check.sh --prepare   here, beside ../shared: copies what the tests read (the
#                                    ViT fixture folder, manifests, train_step.pth, summary.json) to .gpu/
#   scripts/gpu_check.sh             there (the device tool: carry [".gpu"]); figures also go
#                                    to $OUT/gpu_check.json when $OUT is set
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  src=${SAMDISTILL_FIXTURES:-../shared/fixtures/reference}
  rm -rf .gpu/fixtures && mkdir -p .gpu/fixtures
  for d in "$src"/*/; do  # the ViT folders (their config has embed_dim, TinyViT's embed_dims)
    if grep -q '"embed_dim"' "$d/config.json" 2>/dev/null; then cp -r "$d" .gpu/fixtures/; fi
  done
  cp -r "$src/manifests" "$src/train_step.pth" "$src/summary.json" .gpu/fixtures/
  du -sh .gpu
  exit 0
fi

start=$(date +%s)
say() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*"; }
[ -d .gpu/fixtures ] || { echo "gpu_check: .gpu/fixtures missing: run scripts/gpu_check.sh --prepare first and carry .gpu" >&2; exit 2; }

prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
version=$(python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')
cuda=$(python3 -c 'import torch; print(int(torch.cuda.is_available()))')
device=cpu
[ "$cuda" = 1 ] && device=cuda
say "PyTorch $version at $prefix; testing on $device"
[ "$cuda" = 1 ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

say "configure + build (core: models, io, store, train, distill, cli; no OpenCV)"
targets="samdistill test_models test_models_ref test_io test_io_ref test_train test_distill"
if ! { cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
         -DSAMDISTILL_WITH_OPENCV=OFF && cmake --build build-gpu -j"$(nproc)" --target $targets; } >build-gpu.log 2>&1; then
  grep -m 20 -A 8 -E 'error|Error' build-gpu.log || tail -40 build-gpu.log
  exit 1
fi
say "built"
# Our kernels' OpenMP is the system compiler's libgomp; a LibTorch that bundles its own (renamed)
# runtime makes two thread pools that can oversubscribe the cores: say which are loaded.
runtimes=$(ldd build-gpu/samdistill | { grep -oE 'lib(gomp|iomp5|omp)[^ ]*' || true; } | sort -u | tr '\n' ' ')
say "OpenMP runtimes: $runtimes"
[ "$(echo "$runtimes" | wc -w)" -gt 1 ] && say "WARNING: more than one OpenMP runtime (threads may oversubscribe)"

export SAMDISTILL_FIXTURES=$PWD/.gpu/fixtures SAMDISTILL_TEST_DEVICE=$device
failed=0
for t in test_models test_io test_train test_distill test_models_ref test_io_ref; do
  if build-gpu/$t --gtest_brief=1 >"build-gpu/$t.log" 2>&1; then
    say "$t: $(grep -E '^\[  PASSED  \]' "build-gpu/$t.log") $(grep -cE '^\[  SKIPPED \]' "build-gpu/$t.log") skipped"
  else
    failed=1
    say "$t FAILED:"; grep -E 'FAILED|Failure|error' -A 4 "build-gpu/$t.log" | head -60
  fi
done

say "trainer throughput: vit_t, amp bf16, batch 8 (random pixels and embeddings)"
amp=off
[ "$cuda" = 1 ] && amp=bf16
peak_file=$(mktemp)
if [ "$cuda" = 1 ]; then  # nvidia-smi's used memory, sampled every 100 ms, includes the CUDA context
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$peak_file" &
  sampler=$!
fi
build-gpu/samdistill bench --only train --train-device "$device" --train-amp "$amp" \
  --train-batch-size 8 --train-steps 20 --json >build-gpu/bench.json
[ "$cuda" = 1 ] && kill "$sampler"
peak=$(sort -n "$peak_file" | tail -1)
dist=null
gpus=$([ "$cuda" = 1 ] && nvidia-smi --list-gpus | wc -l || echo 0)
if [ "$gpus" -gt 1 ]; then  # NCCL: 2 processes, one GPU each, against 1 on the same global batch
  say "data-parallel trainer: 2 processes x 1 GPU (NCCL) vs 1"
  build-gpu/samdistill bench --only dist --train-device cuda --train-amp "$amp" \
    --train-batch-size 8 --train-steps 10 --json >build-gpu/bench_dist.json && dist=$(cat build-gpu/bench_dist.json)
fi
echo "{\"peak_gpu_memory_mb\": ${peak:-null}, \"bench\": $(cat build-gpu/bench.json), \"bench_dist\": $dist}" | tee build-gpu/gpu_check.json
[ -n "${OUT:-}" ] && cp build-gpu/gpu_check.json build-gpu.log build-gpu/*.log "$OUT"/ 2>/dev/null || true
say "done, tests $([ $failed = 0 ] && echo passed || echo FAILED)"
exit $failed
