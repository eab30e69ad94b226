#!/usr/bin/python3
"""samdistill's ONNX export against the Python reference's own, in ONNX Runtime.

    /usr/bin/python3 tests/onnx/reference_compare.py FIXTURE_FOLDER SAMDISTILL_BINARY OUT_DIR [RUNS]

FIXTURE_FOLDER is a reference model folder (config.json, weights.pth, cases.pth: e.g.
../shared/fixtures/reference/sam_vit_t). Exports its model twice: with `samdistill export
--format onnx` and with the reference's torch.onnx.export (the image encoder, and SamOnnxModel
as segment-anything's scripts/export_onnx_model.py does; Debian's python3-torch exports without
the onnx package). Runs all four files in ONNX Runtime (tests/onnx/node, 2 threads, RUNS timed
runs after a warm-up, medians) on the fixture's image and a point prompt, and prints one JSON
line: agreement of the outputs and the times, with the reference's PyTorch encoder time; then
a second with `samdistill bench`'s LibTorch encoder and decoder times (2 threads).
Needs python3-torch and node with onnxruntime-node installed in tests/onnx/node.
"""
import json, os, subprocess, sys, tempfile, time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from reference_sam import load_folder  # noqa: E402  (puts the reference package on the path)
from mobile_sam.utils.onnx import SamOnnxModel  # noqa: E402
from mobile_sam.utils.transforms import ResizeLongestSide  # noqa: E402


def export_reference(sam, out):
    os.makedirs(out, exist_ok=True)
    torch.onnx.export(sam.image_encoder, torch.zeros(1, 3, 1024, 1024),
                      os.path.join(out, "encoder.onnx"), opset_version=17,
                      do_constant_folding=True, input_names=["image"],
                      output_names=["image_embeddings"])
    decoder = SamOnnxModel(sam, return_single_mask=False)
    dummy = (torch.randn(1, 256, 64, 64), torch.randint(0, 1024, (1, 5, 2)).float(),
             torch.randint(0, 4, (1, 5)).float(), torch.randn(1, 1, 256, 256),
             torch.tensor([1.0]), torch.tensor([1500.0, 2250.0]))
    torch.onnx.export(decoder, dummy, os.path.join(out, "decoder.onnx"), opset_version=17,
                      do_constant_folding=True,
                      input_names=["image_embeddings", "point_coords", "point_labels",
                                   "mask_input", "has_mask_input", "orig_im_size"],
                      output_names=["masks", "iou_predictions", "low_res_masks"],
                      dynamic_axes={"point_coords": {1: "num_points"},
                                    "point_labels": {1: "num_points"}})


def run_ort_feeds(model, feeds, work, repeats=1):
    """Outputs (one dict per feed) and timed runs (ms) of `model` in ONNX Runtime, one session,
    2 threads, through tests/onnx/node/run.js."""
    job = {"model": model, "threads": 2, "repeats": repeats, "out_dir": work, "feeds": []}
    for k, inputs in enumerate(feeds):
        specs = {}
        for name, value in inputs.items():
            value = np.ascontiguousarray(value)
            if value.dtype != np.int64:
                value = value.astype(np.float32)
            path = os.path.join(work, "in%d_%s.bin" % (k, name))
            value.tofile(path)
            specs[name] = {"type": "int64" if value.dtype == np.int64 else "float32",
                           "dims": list(value.shape), "file": path}
        job["feeds"].append(specs)
    with open(os.path.join(work, "job.json"), "w") as f:
        json.dump(job, f)
    subprocess.run(["node", os.path.join(HERE, "node", "run.js"), os.path.join(work, "job.json")],
                   check=True)
    with open(os.path.join(work, "result.json")) as f:
        result = json.load(f)
    outs = [{n: np.fromfile(os.path.join(work, "%d.%s.bin" % (k, n)), np.float32).reshape(d)
             for n, d in o.items()} for k, o in enumerate(result["outputs"])]
    return outs, [t for ts in result["times_ms"] for t in ts]


def run_ort(model, inputs, runs, work):
    (outputs,), times = run_ort_feeds(model, [inputs], work, runs)
    return outputs, times


def median(xs):
    return float(np.median(xs))


def compare(sam, weights, cases, binary, out, runs, name):
    """Exports `sam` with torch.onnx.export and its checkpoint `weights` with samdistill, runs
    both in ONNX Runtime on `cases`' image and a point prompt: agreement and times (a dict)."""
    t = time.perf_counter()
    export_reference(sam, os.path.join(out, "reference"))
    ref_export_s = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([binary, "export", "--student", weights, "--format", "onnx", "--out",
                    os.path.join(out, "samdistill")], check=True, stdout=subprocess.DEVNULL)
    ours_export_s = time.perf_counter() - t

    image = torch.as_tensor(cases["image_resized"]).permute(2, 0, 1).contiguous()[None]
    with torch.no_grad():
        x = sam.preprocess(image.float())
    h, w = [int(v) for v in cases["original_size"]]
    coords = ResizeLongestSide(1024).apply_coords(
        np.array([[w * 0.4, h * 0.55], [0.0, 0.0]], np.float32), (h, w))
    # the padding point is at (0, 0) in the resized frame
    coords[1] = 0.0
    prompt = {"point_coords": coords[None].astype(np.float32),
              "point_labels": np.array([[1.0, -1.0]], np.float32),
              "mask_input": np.zeros((1, 1, 256, 256), np.float32),
              "has_mask_input": np.array([0.0], np.float32),
              "orig_im_size": np.array([h, w], np.float32)}

    res = {"model": name, "threads": 2, "runs": runs,
           "export_s": {"samdistill": ours_export_s, "reference": ref_export_s}}
    outputs, times = {}, {}
    for who in ("samdistill", "reference"):
        work = tempfile.mkdtemp(prefix="sd_ref_ort_")
        enc, t_enc = run_ort(os.path.join(out, who, "encoder.onnx"), {"image": x.numpy()}, runs,
                             work)
        dec, t_dec = run_ort(os.path.join(out, who, "decoder.onnx"),
                             dict(prompt, image_embeddings=enc["image_embeddings"]), runs, work)
        outputs[who] = (enc, dec)
        times[who] = {"encoder_ms": median(t_enc), "decoder_ms": median(t_dec),
                      "encoder_bytes": os.path.getsize(os.path.join(out, who, "encoder.onnx")),
                      "decoder_bytes": os.path.getsize(os.path.join(out, who, "decoder.onnx"))}
    res["ort"] = times
    a, b = outputs["samdistill"], outputs["reference"]
    ea, eb = a[0]["image_embeddings"], b[0]["image_embeddings"]
    res["embedding_rel_l2"] = float(np.linalg.norm(ea - eb) / np.linalg.norm(eb))
    ma, mb = a[1]["masks"] > 0, b[1]["masks"] > 0
    res["mask_iou"] = [float((ma[0, i] & mb[0, i]).sum() / max(1, (ma[0, i] | mb[0, i]).sum()))
                       for i in range(ma.shape[1])]
    res["iou_predictions_max_abs"] = float(np.abs(a[1]["iou_predictions"] -
                                                  b[1]["iou_predictions"]).max())

    # The reference's own PyTorch inference of the same work, for scale.
    with torch.no_grad():
        sam.image_encoder(x)
        enc_t = []
        for _ in range(max(1, runs // 2)):
            t = time.perf_counter()
            sam.image_encoder(x)
            enc_t.append((time.perf_counter() - t) * 1e3)
    res["pytorch_reference_encoder_ms"] = median(enc_t)
    return res


def main():
    folder, binary, out = sys.argv[1], sys.argv[2], sys.argv[3]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 7
    torch.set_num_threads(2)
    sam = load_folder(folder)
    cases = torch.load(os.path.join(folder, "cases.pth"))
    res = compare(sam, os.path.join(folder, "weights.pth"), cases, binary, out, runs,
                  os.path.basename(folder.rstrip("/")))
    # samdistill's own LibTorch inference (vit_t encoder, decoder per prompt), 2 threads.
    print(json.dumps(res), flush=True)
    bench = subprocess.run([binary, "--threads", "2", "bench", "--json", "--only", "encoder",
                            "decoder", "--repeats", str(runs)], check=True,
                           capture_output=True, text=True)
    print(json.dumps({"samdistill_bench": json.loads(bench.stdout)}))


if __name__ == "__main__":
    main()
