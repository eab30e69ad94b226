#!/usr/bin/env bash
# Our figures beside the Python reference's, measured in one sitting on this machine
# (../shared/reference-bench): the reference as it comes and with glibc's malloc tuned, each
# figure held against the better of the two. Prints one JSON object: both sides and the
# ratios (ours / Python's for seconds and memory, so below 1 is better; rates the other way).
#   scripts/bench_vs_reference.sh [threads] [samdistill binary]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
binary="${2:-build/samdistill}"
ref="../shared/reference-bench/ref_bench.py"
python="${PYTHON:-/usr/bin/python3}"  # Debian's, with python3-torch
data="../shared/data/sa1b_sample"
out="${OUT:-build/bench-vs-reference}"  # each side's JSON is kept here
mkdir -p "$out"

"$python" "$ref" "$data" "$threads" >"$out/python_plain.json"
REF_BF16=1 MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=1073741824 \
  MALLOC_TOP_PAD_=268435456 "$python" "$ref" "$data" "$threads" >"$out/python_tuned.json"
"$binary" --threads "$threads" bench --json --only encoder,decoder,data,memory --data "$data" \
  2>"$out/ours.log" | sed -n '/^{/,$p' >"$out/ours.json"

python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
plain, tuned, ours = (json.load(open(f"{d}/{n}.json")) for n in ("python_plain", "python_tuned", "ours"))
def best(key, lower=True):
    vals = [r[key] for r in (plain, tuned) if key in r]
    return (min if lower else max)(vals) if vals else None
ratios = {}
for key in ("encoder_infer_s", "train_step_b2_s", "decoder_prompt_s"):
    ratios[key] = ours[key] / best(key)
ratios["encoder_infer_bf16_s_vs_python_fp32"] = ours["encoder_infer_bf16_s"] / best("encoder_infer_s")
ratios["train_step_b2_bf16_s_vs_python_fp32"] = ours["train_step_b2_bf16_s"] / best("train_step_b2_s")
ratios["preprocess_img_per_s"] = ours["preprocess_img_per_s"] / best("preprocess_img_per_s", False)
ratios["train_step_b2_peak_rss_mb_vs_python_peak"] = ours["train_step_b2_peak_rss_mb"] / best("peak_rss_mb")
# recompute_stages 1: the step's time and peak with the first stage run again in backward
ratios["train_step_b2_recompute_s"] = ours["train_step_b2_recompute_s"] / best("train_step_b2_s")
ratios["train_step_b2_recompute_peak_rss_mb_vs_python_peak"] = (
    ours["train_step_b2_recompute_peak_rss_mb"] / best("peak_rss_mb"))
print(json.dumps({"ratios": ratios, "ours": ours, "python_plain": plain, "python_tuned": tuned}, indent=2))
PY
