#!/usr/bin/env bash
# The accelerator check, one run of under 10 minutes on a machine with CUDA and LibTorch (Python's
# PyTorch 2.x, else the system's) but none of our other packages and no network: builds the
# core (no OpenCV; GoogleTest from third_party/ where the system has none) against that
# LibTorch, runs the model, io, train and distill tests on CUDA (TF32 off) against the
# reference fixtures, a 2-process NCCL run where there are 2 GPUs, and writes the throughput:
# the trainer's vit_t img/s in fp32, bf16 and fp16 at batch 8 and 32, the vit_t encoder's
# forward at batch 1, ViT-H's (embed's teacher) img/s, each with its peak GPU memory.
# Without a GPU it runs the same on the CPU, with the figures the CPU affords (a rehearsal).
#
#   scripts/gpu_check.sh --prepare   here, beside ../shared: copies what the tests read (the
#                                    ViT fixture folder, manifests, train_step.pth, summary.json) to .gpu/
#   scripts/gpu_check.sh             there (the device tool: carry [".gpu"]); the figures go to
#                                    build-gpu/gpu_check.json, and to $OUT when $OUT is set
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

prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
if [ -n "$prefix" ]; then
  say "LibTorch of PyTorch $(python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)') at $prefix"
else
  say "no PyTorch in python3: the system's LibTorch"
fi
cuda=0
if nvidia-smi --list-gpus >/dev/null 2>&1; then
  cuda=1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
device=cpu
[ "$cuda" = 1 ] && device=cuda
say "testing on $device"

say "configure + build (core: models, io, store, train, distill, cli; no OpenCV)"
targets="samdistill test_models test_models_ref test_io test_io_ref test_train test_distill"
if ! { cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release ${prefix:+-DCMAKE_PREFIX_PATH="$prefix"} \
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

# One bench figure as build-gpu/NAME.json, with the peak GPU memory of its process (nvidia-smi's
# used memory, sampled every 100 ms: the CUDA context included).
figure() {
  local name=$1 sampler=
  shift
  if [ "$cuda" = 1 ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"build-gpu/$name.mem" &
    sampler=$!
  fi
  # The JSON from its first line on (spdlog's default logger writes to stdout too).
  if build-gpu/samdistill bench --json "$@" >"build-gpu/$name.out" 2>"build-gpu/$name.log"; then
    sed -n '/^{$/,$p' "build-gpu/$name.out" >"build-gpu/$name.json"
    say "$name: $(tr -d '\n ' <"build-gpu/$name.json" | cut -c1-160)"
  else
    failed=1
    say "$name FAILED: $(tail -3 "build-gpu/$name.out" "build-gpu/$name.log")"
    echo null >"build-gpu/$name.json"
  fi
  if [ -n "$sampler" ]; then
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    local peak
    peak=$(sort -n "build-gpu/$name.mem" | tail -1)
    echo "{\"figure\": $(cat "build-gpu/$name.json"), \"peak_gpu_memory_mb\": ${peak:-null}}" >"build-gpu/$name.json"
  fi
}

figures=()
if [ "$cuda" = 1 ]; then
  say "figures on CUDA: trainer (vit_t, random pixels and embeddings), encoder forwards"
  for amp in off bf16 fp16; do
    for batch in 8 32; do
      figure "train_${amp}_b$batch" --only train --train-device cuda --train-amp "$amp" \
        --train-batch-size "$batch" --train-steps $((batch == 8 ? 30 : 10))
      figures+=("train_${amp}_b$batch")
    done
    figure "infer_$amp" --only infer --infer-device cuda --infer-amp "$amp" --teacher vit_h \
      --infer-batch 8 --repeats 5
    figures+=("infer_$amp")
  done
  if [ "$(nvidia-smi --list-gpus | wc -l)" -gt 1 ]; then
    say "data-parallel trainer: 2 processes x 1 GPU (NCCL) vs 1"
    figure dist_bf16_b16 --only dist --train-device cuda --train-amp bf16 --train-batch-size 16 \
      --train-steps 10
    figures+=(dist_bf16_b16)
  fi
else
  say "no GPU: the figures the CPU affords (vit_t alone, batch 2, few steps)"
  for amp in off bf16; do
    figure "train_${amp}_b2" --only train --train-device cpu --train-amp "$amp" \
      --train-batch-size 2 --train-steps 2
    figures+=("train_${amp}_b2")
  done
  figure infer_off --only infer --infer-device cpu --teacher vit_t --infer-batch 1 --repeats 1
  figures+=(infer_off)
fi
{
  echo "{\"device\": \"$device\", \"tests\": \"$([ $failed = 0 ] && echo passed || echo FAILED)\""
  for f in "${figures[@]}"; do echo ", \"$f\": $(cat "build-gpu/$f.json")"; done
  echo "}"
} >build-gpu/gpu_check.json
cat build-gpu/gpu_check.json
[ -n "${OUT:-}" ] && cp build-gpu/gpu_check.json build-gpu.log build-gpu/test_*.log "$OUT"/ 2>/dev/null || true
say "done, $([ $failed = 0 ] && echo passed || echo FAILED)"
exit $failed
