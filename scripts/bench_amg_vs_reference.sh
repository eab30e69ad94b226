#!/usr/bin/env bash
# Everything-mode side by side with the Python reference, in one sitting on this machine: SAM's
# automatic mask generator (../shared/reference-bench) and ours on the same weights (the
# reference fixtures' vit_t: seeded random values), the same 1500 x 2250 image
# (data/sample/sa_100001.jpg scaled) and the same thresholds (segment::bench_amg_params: SAM's
# defaults keep no mask of random weights). Prints one JSON object: both sides, the ratios
# (ours / Python's seconds, below 1 is better) and whether the masks are the same.
#   scripts/bench_amg_vs_reference.sh [threads] [samdistill binary]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
binary="${2:-build/samdistill}"
python="${PYTHON:-/usr/bin/python3}"  # Debian's, with python3-torch and python3-torchvision
fixture="${SAMDISTILL_FIXTURES:-../shared/fixtures/reference}/sam_vit_t"
out="${OUT:-build/bench-amg}"
params='{"pred_iou_thresh": 0.12, "stability_score_thresh": 0.19, "stability_score_offset": 0.05}'
mkdir -p "$out/images"
"$python" -c "from PIL import Image
Image.open('data/sample/sa_100001.jpg').convert('RGB').resize((2250, 1500), Image.BICUBIC).save('$out/images/image.png')"

REF_BF16="${REF_BF16:-}" "$python" scripts/ref_amg_bench.py "$fixture/weights.pth" \
  "$fixture/config.json" "$out/images/image.png" "$threads" "$params" "$out/python_records.json" \
  >"$out/python.json"
"$binary" --threads "$threads" bench --json --only segment --segment-student "$fixture/weights.pth" \
  --segment-image "$out/images/image.png" 2>"$out/ours.log" | sed -n '/^{/,$p' >"$out/ours.json"
echo "$params" >"$out/params.json"
rm -rf "$out/segment"
"$binary" --threads "$threads" segment --everything --student "$fixture/weights.pth" \
  --data "$out/images" --out "$out/segment" --config "$out/params.json" 2>>"$out/ours.log" >/dev/null

"$python" - "$out" <<'PY'
import json, sys
d = sys.argv[1]
py, ours = json.load(open(f"{d}/python.json")), json.load(open(f"{d}/ours.json"))
ref = json.load(open(f"{d}/python_records.json"))
mine = json.load(open(f"{d}/segment/image.json"))
same = len(ref) == len(mine) and all(
    r["counts"] == m["segmentation"]["counts"] and r["bbox"] == m["bbox"] for r, m in zip(ref, mine))
ratios = {"amg_image_s": ours["amg_image_s"] / py["amg_image_s"],
          "segment_boxes_per_s": ours["segment_boxes_per_s"] / py["segment_boxes_per_s"]}
if "amg_image_bf16_s" in py:
    ratios["amg_image_bf16_s"] = ours["amg_image_bf16_s"] / py["amg_image_bf16_s"]
ratios["amg_image_bf16_s_vs_python_fp32"] = ours["amg_image_bf16_s"] / py["amg_image_s"]
print(json.dumps({"ratios": ratios, "same_masks": same, "masks": [len(ref), len(mine)],
                  "ours": ours, "python": py}, indent=2))
PY
