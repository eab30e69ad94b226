#!/usr/bin/python3
"""The reference's train step in float64, for tests/models/train_step_ref_test.cpp.

train_step.pth (fixtures README) holds one fp32 decoupled-distillation step. Some of its
entries are rounding noise (a bias before a train-mode BatchNorm has a zero gradient in exact
arithmetic; AdamW's first step turns noise-level gradients into steps of up to lr), so fp32
cannot check a port there. This script runs the same step with the public Python code
(../shared/reference-bench/mobile_sam) twice on this machine: in float64 throughout (teacher
target, student, AdamW), which decides every entry, and in fp32, whose distance from the
float64 step per entry is the reference's own rounding spread (the README's tolerance).
It writes tests/models/fixtures/train_step_float64.json: the SHA-256 of the train_step.pth it
belongs to, the float64 step's loss, output sum, gradient norms and after-step sums, and the
fp32 spreads. Needs Debian's python3-torch. Usage: make_train_step_fixture.py [FIXTURES_ROOT]
"""
import hashlib, json, os, platform, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from reference_sam import load_folder  # puts the reference package on the path
import torch

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "..", "shared",
                                                          "fixtures", "reference")


def first_folder(tiny_vit):
    """The first model folder (by path) of the kind, as tests/common/fixtures.cpp picks it."""
    for name in sorted(os.listdir(root)):
        config = os.path.join(root, name, "config.json")
        if os.path.isfile(config):
            with open(config) as f:
                if ("embed_dims" in json.load(f)) == tiny_vit:
                    return os.path.join(root, name)
    sys.exit("no %s model folder under %s" % ("TinyViT" if tiny_vit else "ViT", root))


def encoder_input(folder):
    """cases.pth's image_resized normalised in fp32 and padded to 1x3x1024x1024 (README)."""
    image = torch.load(os.path.join(folder, "cases.pth"))["image_resized"]
    x = image.permute(2, 0, 1).float()
    x = (x - torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)) / \
        torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    return torch.nn.functional.pad(x, (0, 1024 - x.shape[2], 0, 1024 - x.shape[1]))[None]


def step(student_folder, images, target, dtype):
    student = load_folder(student_folder).image_encoder.to(dtype)
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.01)
    out = student(images.to(dtype))
    loss = torch.nn.functional.mse_loss(out, target.to(dtype))
    loss.backward()
    grads = {k: None if p.grad is None else p.grad.detach().double().clone()
             for k, p in student.named_parameters()}
    optimizer.step()
    after = {k: v.detach().double().clone() for k, v in student.state_dict().items()
             if v.is_floating_point()}
    student.eval()
    with torch.no_grad():
        loss_eval = torch.nn.functional.mse_loss(student(images.to(dtype)), target.to(dtype))
    return {"loss": loss.item(), "loss_after_eval_mode": loss_eval.item(),
            "student_out_sum": out.detach().double().sum().item(), "grads": grads,
            "after": after}


def main():
    student_folder, teacher_folder = first_folder(True), first_folder(False)
    images = torch.cat([encoder_input(student_folder), encoder_input(teacher_folder)])
    teacher = load_folder(teacher_folder).image_encoder
    with torch.no_grad():
        target32 = teacher(images)
        target64 = teacher.double()(images.double())
    fp32 = step(student_folder, images, target32, torch.float32)
    exact = step(student_folder, images, target64, torch.float64)

    train_step = os.path.join(root, "train_step.pth")
    fixture = torch.load(train_step)
    if abs(fp32["loss"] - fixture["loss"].item()) > 1e-4 * fixture["loss"].item():
        sys.exit("this fp32 step's loss %r is not train_step.pth's %r: not the same step"
                 % (fp32["loss"], fixture["loss"].item()))
    with open(train_step, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    out = {"train_step_sha256": sha, "made_on": cpu, "torch": torch.__version__,
           "loss": exact["loss"], "loss_after_eval_mode": exact["loss_after_eval_mode"],
           "student_out_sum": exact["student_out_sum"],
           "grad_norm": {}, "grad_norm_fp32_spread": {}, "after": {}, "after_fp32_spread": {}}
    for key, g in exact["grads"].items():
        if g is None:
            out["grad_norm"][key] = -1
            continue
        out["grad_norm"][key] = g.norm().item()
        out["grad_norm_fp32_spread"][key] = (fp32["grads"][key] - g).norm().item()
    for key, value in exact["after"].items():
        out["after"][key] = value.sum().item()
        out["after_fp32_spread"][key] = (fp32["after"][key] - value).abs().sum().item()
    path = os.path.join(here, "fixtures", "train_step_float64.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("wrote %s (%d gradient norms, %d after-step sums)"
          % (path, len(out["grad_norm"]), len(out["after"])))


main()
