#!/usr/bin/env python3
"""The Python reference's decoder per box prompt in the parts `samdistill bench --only decoder`
reports (decoder_parts_s), timed the same way (medians of 20 after a warm-up): SAM's prompt
encoder with get_dense_pe, the mask decoder's two-way transformer, the rest of the mask decoder
(its time less the transformer's) and postprocess_masks to 1200x1800 with the threshold; and decoder_prompt_s, the whole prompt
through SamPredictor.predict_torch as ref_bench.py times it.
Usage: ref_decoder_parts.py [threads]   -> one JSON line. Run it in the same sitting as the
bench, with the reference bench's malloc settings (../shared/reference-bench/README.md).
REF_BENCH names the reference-bench folder (default ../shared/reference-bench from the repo).
"""
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("REF_BENCH", os.path.join(here, "..", "..", "shared",
                                                            "reference-bench")))
import numpy as np, torch
from mobile_sam import sam_model_registry
from mobile_sam.predictor import SamPredictor

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)
sam = sam_model_registry["vit_t"]().eval()
original, input_size = (1200, 1800), (683, 1024)
embedding = torch.randn(1, 256, 64, 64)
box = torch.tensor([[100.0, 100.0, 600.0, 500.0]])


def median(run, repeats=20):
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    return float(np.median(times))


with torch.no_grad():
    def prompt():
        sparse, dense = sam.prompt_encoder(points=None, boxes=box, masks=None)
        return sparse, dense, sam.prompt_encoder.get_dense_pe()
    sparse, dense, pe = prompt()
    dec = sam.mask_decoder
    tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], 0).unsqueeze(0)
    tokens = torch.cat([tokens, sparse], 1)
    low_res = dec(embedding, pe, sparse, dense, multimask_output=False)[0]
    parts = {
        "prompt_encoder": median(prompt),
        "transformer": median(lambda: dec.transformer(embedding + dense, pe, tokens)),
        "mask_decoder": median(lambda: dec(embedding, pe, sparse, dense, multimask_output=False)),
        "postprocess_masks": median(
            lambda: sam.postprocess_masks(low_res, input_size, original) > sam.mask_threshold),
    }
    # The whole prompt as SamPredictor.predict_torch runs it (ref_bench.py's decoder_prompt_s).
    predictor = SamPredictor(sam)
    predictor.set_torch_image(torch.zeros(1, 3, *input_size), original)
    whole = median(lambda: predictor.predict_torch(None, None, boxes=box, multimask_output=False))
parts["upscaling_and_heads"] = max(0.0, parts.pop("mask_decoder") - parts["transformer"])
print(json.dumps({"threads": threads, "torch": torch.__version__, "decoder_prompt_s": whole,
                  "decoder_parts_s": parts}))
