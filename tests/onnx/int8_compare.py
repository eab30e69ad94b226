#!/usr/bin/python3
"""`export --format onnx --quantize int8` against fp32 in ONNX Runtime.

    /usr/bin/python3 tests/onnx/int8_compare.py SAMDISTILL_BINARY STUDENT DATA_DIR OUT_DIR [N]

Exports STUDENT (weights file or run folder) in fp32 and int8, and for the first N (default
10) annotations of every SA-1B image of DATA_DIR runs both in ONNX Runtime (tests/onnx/node,
2 threads) with a box prompt (the annotation's bbox) and a point prompt (the bbox centre, as
eval's `center`): prints one JSON line with file sizes, median encoder and decoder times, the
embedding's relative L2 and the masks' mIoU of int8 against fp32 per prompt kind.
"""
import glob, json, os, shutil, subprocess, sys, tempfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "reference-bench"))
sys.path.insert(0, HERE)
from mobile_sam.utils.transforms import ResizeLongestSide  # noqa: E402
from reference_compare import run_ort_feeds as run_ort  # noqa: E402

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)


def main():
    binary, student, data, out = sys.argv[1:5]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 10
    res = {"student": student, "threads": 2}
    for kind in ("fp32", "int8"):
        args = [binary, "export", "--student", student, "--format", "onnx", "--out",
                os.path.join(out, kind)] + (["--quantize", "int8"] if kind == "int8" else [])
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        res[kind] = {f: os.path.getsize(os.path.join(out, kind, f + ".onnx"))
                     for f in ("encoder", "decoder")}
    res["size_ratio"] = {f: res["int8"][f] / res["fp32"][f] for f in ("encoder", "decoder")}
    tr = ResizeLongestSide(1024)
    rel, ious, times = [], {"box": [], "point": []}, {"fp32": [[], []], "int8": [[], []]}
    for jpg in sorted(glob.glob(os.path.join(data, "*.jpg"))):
        img = np.array(Image.open(jpg).convert("RGB"))
        h, w = img.shape[:2]
        r = (torch.as_tensor(tr.apply_image(img)).permute(2, 0, 1).float() - MEAN) / STD
        x = torch.nn.functional.pad(r, (0, 1024 - r.shape[2], 0, 1024 - r.shape[1]))[None]
        with open(jpg[:-4] + ".json") as f:
            anns = json.load(f)["annotations"][:n]
        feeds = []
        for a in anns:
            x0, y0, bw, bh = a["bbox"]
            box = tr.apply_coords(np.array([[x0, y0], [x0 + bw, y0 + bh]], np.float32), (h, w))
            centre = tr.apply_coords(np.array([[x0 + bw / 2, y0 + bh / 2]], np.float32), (h, w))
            base = {"mask_input": np.zeros((1, 1, 256, 256), np.float32),
                    "has_mask_input": np.zeros(1, np.float32),
                    "orig_im_size": np.array([h, w], np.float32)}
            feeds.append(dict(base, point_coords=box[None], point_labels=np.array([[2, 3.0]])))
            feeds.append(dict(base, point_coords=np.concatenate([centre, [[0, 0]]])[None],
                              point_labels=np.array([[1, -1.0]])))
        outs = {}
        for kind in ("fp32", "int8"):
            work = tempfile.mkdtemp(prefix="sd_int8_")
            (enc,), t_enc = run_ort(os.path.join(out, kind, "encoder.onnx"), [{"image": x.numpy()}],
                                    work, repeats=3)
            e = enc["image_embeddings"]
            for f in feeds:
                f["image_embeddings"] = e
            dec, t_dec = run_ort(os.path.join(out, kind, "decoder.onnx"), feeds, work)
            shutil.rmtree(work)
            outs[kind] = (e, dec)
            times[kind][0] += t_enc
            times[kind][1] += t_dec
        a, b = outs["fp32"], outs["int8"]
        rel.append(float(np.linalg.norm(b[0] - a[0]) / np.linalg.norm(a[0])))
        for k, (da, db) in enumerate(zip(a[1], b[1])):
            # the mask SAM's predictor returns without multimask: the first
            ma, mb = da["masks"][0, 0] > 0, db["masks"][0, 0] > 0
            ious[("box", "point")[k % 2]].append(float((ma & mb).sum() / max(1, (ma | mb).sum())))
    res["embedding_rel_l2"] = float(np.mean(rel))
    res["miou_vs_fp32"] = {k: float(np.mean(v)) for k, v in ious.items()}
    res["prompts"] = {k: len(v) for k, v in ious.items()}
    res["ort_ms"] = {k: {"encoder": float(np.median(v[0])), "decoder": float(np.median(v[1]))}
                     for k, v in times.items()}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
