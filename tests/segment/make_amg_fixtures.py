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
from mobile_sam.predictor import SamPredictor
from mobile_sam.utils.amg import mask_to_rle_pytorch

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
# tests/models/decoder_ref_test.cpp's relative tolerance for the decoder's outputs.
UNDECIDED = 1e-4
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


def undecided_pixels(sam, image, records):
    """Adds `undecided` to each record: the pixels whose logit is within UNDECIDED (relative to
    the mask's largest logit magnitude) of the threshold. The generator keeps no logits, so each
    record's point is predicted again on its crop (as _process_crop does), and of the three
    masks the one with the record's predicted IoU is its. Returns the number of such pixels."""
    total = 0
    predictor = SamPredictor(sam)
    h, w = image.shape[:2]
    by_crop = {}
    for r in records:
        by_crop.setdefault(tuple(r["crop_box"]), []).append(r)
    for (x0, y0, cw, ch), crop_records in by_crop.items():
        predictor.set_image(image[y0:y0 + ch, x0:x0 + cw])
        points = np.array([r["point_coords"][0] for r in crop_records]) - [x0, y0]
        points = torch.as_tensor(predictor.transform.apply_coords(points, (ch, cw)))
        with torch.no_grad():
            logits, iou, _ = predictor.predict_torch(
                points[:, None, :], torch.ones(len(points), 1, dtype=torch.int),
                multimask_output=True, return_logits=True)
        for r, masks, scores in zip(crop_records, logits, iou):
            which = int((scores - r["predicted_iou"]).abs().argmin())
            assert abs(float(scores[which]) - r["predicted_iou"]) < 1e-5, r["point_coords"]
            logit = masks[which]
            band = logit.abs() <= UNDECIDED * float(logit.abs().max())
            undecided = torch.zeros(h, w, dtype=torch.bool)
            undecided[y0:y0 + ch, x0:x0 + cw] = band
            total += int(band.sum())
            r["undecided"] = rle_string(mask_to_rle_pytorch(undecided[None])[0]["counts"])
    return total


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
                   "image": name + ".png", "undecided": UNDECIDED, "cases": {}}
        for case, params in CASES.items():
            generator = SamAutomaticMaskGenerator(sam, output_mode="uncompressed_rle", **params)
            records = [record(a) for a in generator.generate(image)]
            undecided = undecided_pixels(sam, image, records)
            fixture["cases"][case] = {"params": params, "masks": records}
            print(name, case, len(records), "masks,", undecided, "undecided pixels",
                  file=sys.stderr)
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(fixture, f)


if __name__ == "__main__":
    main()
