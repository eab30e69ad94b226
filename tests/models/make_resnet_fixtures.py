#!/usr/bin/python3
"""Reference outputs of NanoSAM's ResNet student for tests/models/resnet_ref_test.cpp.

The encoder is NanoSAM's TimmImageEncoder (NVIDIA-AI-IOT/nanosam,
nanosam/models/timm_image_encoder.py): the ResNet of Debian's python3-torchvision as backbone
(timm's features_only ResNet has the same modules and parameter names; the pooling and the
classifier go), its stride-32 features through the neck `up_1` (three 3x3 convolutions with
GELU, a stride-2 transposed 3x3 convolution with GELU) and `proj` (3x3 convolution, GELU, 1x1
convolution), plus the learned `pos_embedding`.

Weights: every entry but the BatchNorms' is a function of its key (seeded_values below, written
the same way in the C++ test), so no weight file of megabytes is kept. The BatchNorms' affine
values are seeded the same way, and their running statistics are those of the image's own
activations (one calibration pass, as the reference fixtures' TinyViT): they are in bn.pth.
The image is the `image_resized` of the reference fixtures' sam_vit_t/cases.pth, normalised and
padded as SAM does.

Writes into OUT_DIR (default tests/models/fixtures/resnet):
  manifest.json  per preset (resnet18, resnet34): [key, shape] of every state-dict entry, in order
  bn.pth         resnet18's BatchNorm entries (weight, bias, running_mean, running_var,
                 num_batches_tracked), torch.save zip format
  expected.pth   resnet18 in eval mode: `channels` (the embedding's channels 0, 32, ..., 224 in
                 full: 8x64x64), `channel_norms` (the L2 norm of each of the 256 channels, float64),
                 `trace.<stage>` ([sum, L2 norm, first 256 values]) for backbone.layer1..4, up_1,
                 proj
  summary.json   how far the embedding moves when the image is black or its channels swapped
Needs Debian's python3-torch, python3-torchvision, python3-numpy.
Usage: make_resnet_fixtures.py [FIXTURES_ROOT [OUT_DIR]]
"""
import json, os, sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
PIXEL_MEAN = [123.675, 116.28, 103.53]
PIXEL_STD = [58.395, 57.12, 57.375]
STAGES = ["backbone.layer1", "backbone.layer2", "backbone.layer3", "backbone.layer4", "up_1",
          "proj"]
SAMPLED_CHANNELS = slice(0, 256, 32)

M64 = (1 << 64) - 1


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def seeded_values(key, shape):
    """Uniform values in [-bound, bound): splitmix64 of (FNV-1a of the key + element index), its
    top 24 bits as u in [0, 1). bound: sqrt(6 / fan_in) for weights of rank > 1 (fan_in = numel /
    shape[0]), 0.5 for pos_embedding, 0.1 for other vectors. BatchNorm weights: 0.5 + 0.5 u."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(fnv1a64(key))
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    if key.endswith("bn1.weight") or key.endswith("bn2.weight") or key.endswith(
            "downsample.1.weight"):
        v = 0.5 + 0.5 * u
    else:
        if key == "pos_embedding":
            bound = 0.5
        elif len(shape) > 1:
            bound = np.sqrt(6.0 / (n // shape[0]))
        else:
            bound = 0.1
        v = (2.0 * u - 1.0) * bound
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


class NanoSamResNet(nn.Module):
    """NanoSAM's TimmImageEncoder over torchvision's ResNet (feature_dim = neck_channels = 256,
    feature_shape 64x64)."""

    def __init__(self, name):
        super().__init__()
        self.backbone = getattr(torchvision.models, name)()
        del self.backbone.avgpool, self.backbone.fc  # features_only keeps up to layer4
        c = 256
        self.up_1 = nn.Sequential(
            nn.Conv2d(512, c, 3, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1), nn.GELU(),
            nn.ConvTranspose2d(c, c, 3, 2, 1, 1), nn.GELU())
        self.proj = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, c, 1))
        self.register_parameter("pos_embedding", nn.Parameter(1e-5 * torch.randn(1, c, 64, 64)))

    def forward(self, x, trace=None):
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        for i in range(1, 5):
            x = getattr(b, f"layer{i}")(x)
            if trace is not None:
                trace[f"backbone.layer{i}"] = x
        x = self.up_1(x)
        if trace is not None:
            trace["up_1"] = x
        x = self.proj(x)
        if trace is not None:
            trace["proj"] = x
        return x + self.pos_embedding


def is_batch_norm(key):
    return any(key.endswith(s) for s in ("running_mean", "running_var", "num_batches_tracked")) or \
        any(key.endswith(p + s) for p in ("bn1.", "bn2.", "downsample.1.") for s in ("weight",
                                                                                      "bias"))


def seeded(model):
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
        elif key.endswith("running_mean"):
            state[key] = torch.zeros_like(value)
        elif key.endswith("running_var"):
            state[key] = torch.ones_like(value)
        else:
            state[key] = seeded_values(key, list(value.shape))
    model.load_state_dict(state)


def calibrate(model, image):
    """Running statistics of the image's own activations: one train-mode pass, momentum None."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(image)
    model.eval()


def summary(t):
    flat = t.detach().reshape(-1).float()
    return torch.cat([flat.sum().view(1), flat.norm().view(1), flat[:256]])


def model_input(fixtures_root):
    cases = torch.load(os.path.join(fixtures_root, "sam_vit_t", "cases.pth"))
    image = cases["image_resized"].permute(2, 0, 1).float()
    mean = torch.tensor(PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(3, 1, 1)
    x = (image - mean) / std
    h, w = x.shape[1:]
    return torch.nn.functional.pad(x, (0, 1024 - w, 0, 1024 - h)).unsqueeze(0)


def main():
    fixtures_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        repo, "..", "shared", "fixtures", "reference")
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "fixtures", "resnet")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    manifest = {}
    for name in ("resnet18", "resnet34"):
        model = NanoSamResNet(name)
        manifest[name] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=0)

    x = model_input(fixtures_root)
    model = NanoSamResNet("resnet18")
    seeded(model)
    calibrate(model, x)
    torch.save({k: v for k, v in model.state_dict().items() if is_batch_norm(k)},
               os.path.join(out_dir, "bn.pth"))

    trace = {}
    with torch.no_grad():
        embedding = model(x, trace)
        black = model(((torch.zeros_like(x[0]) - torch.tensor(PIXEL_MEAN).view(3, 1, 1)) /
                       torch.tensor(PIXEL_STD).view(3, 1, 1)).unsqueeze(0))
        swapped = model(x[:, [2, 1, 0]])
    assert embedding.shape == (1, 256, 64, 64), embedding.shape
    expected = {"channels": embedding[0, SAMPLED_CHANNELS].contiguous(),
                "channel_norms": embedding[0].double().flatten(1).norm(dim=1)}
    for stage in STAGES:
        expected["trace." + stage] = summary(trace[stage])
    torch.save(expected, os.path.join(out_dir, "expected.pth"))

    def moved(other):
        return float((other - embedding).norm() / embedding.norm())

    info = {"embedding_norm": float(embedding.norm()),
            "moved_by_black_image": moved(black),
            "moved_by_swapped_channels": moved(swapped),
            "stage_norms": {s: float(trace[s].norm()) for s in STAGES}}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(info, f, indent=2)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
