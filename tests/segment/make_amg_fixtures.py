#!/usr/bin/python3
"""Reference masks of SAM's automatic mask generator for tests/segment/amg_ref_test.cpp.

For every model folder of the reference fixtures (a subfolder with config.json: its weights.pth
and image.jpg), runs the public Python SamAutomaticMaskGenerator
(../shared/reference-bench/mobile_sam) with each case of CASES and writes
tests/segment/fixtures/<folder>.json: the weights' SHA-256 (the test refuses a fixture made
from other weights), the image it ran on (<folder>.png, image.jpg made small), and per case the generator's parameters and its records, each
mask as a COCO compressed RLE string. The fixtures' weights are seeded random values, so the
quality thresholds are lowered (the same on both sides); everything else runs as SAM's.
Needs Debian's python3-torch, python3-torchvision, python3-pil, python3-numpy and
python3-opencv (min_mask_region_area). Usage: make_amg_fixtures.py [FIXTURES_ROOT [OUT_DIR]]
"""
import hashlib, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
sys.path.insert(0, os.path.dirname(here))
from reference_sam import load_folder  # puts the reference package on the path
import numpy as np, torch
from PIL import Image
from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator

# Small grids keep the test quick; the second case covers crop layers (their NMS, overlap,
# point downscale, uncropping) and the small-region clean-up with its NMS.
# Seeded weights make noisy masks spanning the whole image, whose boxes are all the image's:
# box NMS would keep one of them, so these cases keep all (IoU > 1 never holds) and NMS is
# compared with torchvision's on boxes of its own (nms.json).
LOWERED = dict(pred_iou_thresh=0.12, stability_score_thresh=0.19, stability_score_offset=0.05,
               box_nms_thresh=1.0)
CASES = {
    "grid12": dict(points_per_side=12, points_per_batch=64, **LOWERED),
    "crops": dict(points_per_side=8, points_per_batch=50, crop_n_layers=1, crop_nms_thresh=1.0,
                  crop_n_points_downscale_factor=2, min_mask_region_area=30, **LOWERED),
}
# The image.jpg of each model folder scaled to this longest side (PIL's bicubic), kept beside
# the fixture as PNG: small masks keep the fixture small.
IMAGE_SIDE = 96


def rle_string(counts):
    """pycocotools' rleToString: each count (after the second, less the one two before) in
    5-bit groups, low first, 0x20 = more follow, plus 48."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def record(ann):
    rle = ann["segmentation"]
    return {"size": rle["size"], "counts": rle_string(rle["counts"]), "area": int(ann["area"]),
            "bbox": [int(v) for v in ann["bbox"]], "predicted_iou": ann["predicted_iou"],
            "point_coords": ann["point_coords"], "stability_score": ann["stability_score"],
            "crop_box": [int(v) for v in ann["crop_box"]]}


def nms_cases():
    """torchvision's batched_nms (one category, as SAM calls it) on random integer boxes with
    tied scores."""
    from torchvision.ops.boxes import batched_nms
    g = torch.Generator().manual_seed(0)
    xy = torch.randint(0, 100, (300, 2), generator=g)
    wh = torch.randint(0, 60, (300, 2), generator=g)
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.randint(0, 20, (300,), generator=g).float() / 20
    cases = []
    for thresh in (0.3, 0.7):
        keep = batched_nms(boxes.float(), scores, torch.zeros(300), thresh)
        cases.append({"thresh": thresh, "keep": keep.tolist()})
    return {"boxes": boxes.tolist(), "scores": scores.tolist(), "cases": cases}


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "..", "shared", "fixtures",
                                                              "reference")
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    with open(os.path.join(out_dir, "nms.json"), "w") as f:
        json.dump(nms_cases(), f)
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isfile(os.path.join(folder, "config.json")):
            continue
        sam = load_folder(folder)
        image = Image.open(os.path.join(folder, "image.jpg")).convert("RGB")
        scale = IMAGE_SIDE / max(image.size)
        image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)),
                             Image.BICUBIC)
        image.save(os.path.join(out_dir, name + ".png"))
        image = np.array(image)
        fixture = {"weights_sha256": sha256(os.path.join(folder, "weights.pth")),
                   "image": name + ".png", "cases": {}}
        for case, params in CASES.items():
            generator = SamAutomaticMaskGenerator(sam, output_mode="uncompressed_rle", **params)
            records = [record(a) for a in generator.generate(image)]
            fixture["cases"][case] = {"params": params, "masks": records}
            print(name, case, len(records), "masks", file=sys.stderr)
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(fixture, f)


if __name__ == "__main__":
    main()
