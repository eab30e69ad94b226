#!/usr/bin/python3
"""samdistill's ONNX export of NanoSAM's ResNet18 student against torch.onnx.export's, in ONNX
Runtime.

    /usr/bin/python3 tests/onnx/resnet_reference_compare.py SAMDISTILL_BINARY OUT_DIR [RUNS]
        [FIXTURES_ROOT]

The student is the Python module of tests/models/make_resnet_fixtures.py (torchvision's
resnet18 and NanoSAM's neck) with that script's weights (seeded, the BatchNorms' from
tests/models/fixtures/resnet/bn.pth: what tests/models/resnet_ref_test.cpp and
tests/onnx/export_ref_test.cpp load), as the image encoder of the reference SAM of
FIXTURES_ROOT/sam_vit_t (default ../shared/fixtures/reference) in place of its TinyViT. Writes
that SAM as a checkpoint, exports it with `samdistill export --format onnx` and with
torch.onnx.export, and prints reference_compare.py's JSON line: agreement of the ONNX Runtime
outputs (embedding, masks and IoUs of a point prompt), their times (2 threads, medians of RUNS
runs after a warm-up) and the PyTorch encoder's.
Needs python3-torch, python3-torchvision and node with onnxruntime-node in tests/onnx/node.
"""
import json, os, sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "models"))
from make_resnet_fixtures import NanoSamResNet, seeded  # noqa: E402
from reference_compare import compare  # noqa: E402  (puts the reference package on the path)
from reference_sam import load_folder  # noqa: E402


def resnet18_student():
    model = NanoSamResNet("resnet18")
    seeded(model)
    bn = torch.load(os.path.join(os.path.dirname(HERE), "models", "fixtures", "resnet", "bn.pth"))
    state = model.state_dict()
    state.update(bn)
    model.load_state_dict(state)
    model.img_size = 1024  # what SamOnnxModel reads of SAM's image encoders
    return model.eval()


def main():
    binary, out = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    root = sys.argv[4] if len(sys.argv) > 4 else os.path.join(
        os.path.dirname(os.path.dirname(HERE)), "..", "shared", "fixtures", "reference")
    torch.set_num_threads(2)
    folder = os.path.join(root, "sam_vit_t")
    sam = load_folder(folder)
    sam.image_encoder = resnet18_student()
    sam.eval()
    os.makedirs(out, exist_ok=True)
    weights = os.path.join(out, "resnet18_sam.pth")
    torch.save(sam.state_dict(), weights)
    cases = torch.load(os.path.join(folder, "cases.pth"))
    print(json.dumps(compare(sam, weights, cases, binary, out, runs, "resnet18")), flush=True)


if __name__ == "__main__":
    main()
