#!/usr/bin/python3
"""The Python reference's automatic mask generator and box prompts, timed on this machine:
SamAutomaticMaskGenerator (../shared/reference-bench/mobile_sam) on one image, and 100 box
prompts through SamPredictor.predict_torch on one embedding. Prints one JSON line with the keys
of `samdistill bench --only segment`: amg_image_s, amg_masks, segment_boxes_per_s; with REF_BF16=1
also amg_image_bf16_s (CPU autocast). Writes the generator's records (COCO RLE) to RECORDS when
given, for comparing masks with `samdistill segment`.
Usage: ref_amg_bench.py WEIGHTS CONFIG_JSON IMAGE THREADS AMG_PARAMS_JSON [RECORDS]
"""
import json, os, sys, time

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, "..", "tests"), os.path.join(here, "..", "tests", "segment")]
import numpy as np, torch
from PIL import Image
from reference_sam import load  # puts the reference package on the path
from make_amg_fixtures import rle_string
from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator

weights, config, image_path, threads, params = sys.argv[1:6]
records_path = sys.argv[6] if len(sys.argv) > 6 else None
torch.set_num_threads(int(threads))
sam = load(config, weights)
image = np.array(Image.open(image_path).convert("RGB"))
params = json.loads(params)
res = {"threads": int(threads), "image": list(image.shape[:2])}

generator = SamAutomaticMaskGenerator(sam, output_mode="uncompressed_rle", **params)
t = time.perf_counter()
masks = generator.generate(image)
res["amg_image_s"] = time.perf_counter() - t
res["amg_masks"] = len(masks)
if records_path:
    with open(records_path, "w") as f:
        json.dump([{"counts": rle_string(m["segmentation"]["counts"]), "bbox": m["bbox"],
                    "predicted_iou": m["predicted_iou"]} for m in masks], f)
if os.environ.get("REF_BF16"):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t = time.perf_counter()
        generator.generate(image)
        res["amg_image_bf16_s"] = time.perf_counter() - t

# 100 boxes on one embedding, single-mask output, as a detector's boxes are run.
predictor = generator.predictor
predictor.set_image(image)
h, w = image.shape[:2]
g = torch.Generator().manual_seed(0)
xy = torch.rand(100, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
wh = torch.rand(100, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3]) + 8
boxes = torch.cat([xy, xy + wh], 1)
with torch.no_grad():
    t = time.perf_counter()
    predictor.predict_torch(None, None, boxes=predictor.transform.apply_boxes_torch(boxes, (h, w)),
                            multimask_output=False)
    res["segment_boxes_per_s"] = 100 / (time.perf_counter() - t)
print(json.dumps(res))
