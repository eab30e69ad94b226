"""The Python reference's SAM (../shared/reference-bench/mobile_sam) for a model folder of the
reference fixtures: its config.json (TinyViT when it has `embed_dims`, ViT when `embed_dim`)
and weights.pth. Shared by the scripts that make or compare against reference outputs
(tests/segment/make_amg_fixtures.py, tests/onnx/reference_compare.py,
scripts/ref_amg_bench.py). Importing it puts the reference package on sys.path."""
import json, os, sys
from functools import partial

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_BENCH = os.path.join(REPO, "..", "shared", "reference-bench")
if REFERENCE_BENCH not in sys.path:
    sys.path.insert(0, REFERENCE_BENCH)

import torch  # noqa: E402
from mobile_sam.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,  # noqa: E402
                                 TinyViT, TwoWayTransformer)


def build(config):
    """The reference's SAM for a fixture config.json's dict, randomly initialised, in eval()."""
    if "embed_dims" in config:
        encoder = TinyViT(img_size=1024, in_chans=3, num_classes=1000, mlp_ratio=4.0,
                          drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
                          mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=0.8,
                          **{k: config[k] for k in ("embed_dims", "depths", "num_heads",
                                                    "window_sizes")})
    else:
        encoder = ImageEncoderViT(depth=config["depth"], embed_dim=config["embed_dim"],
                                  img_size=1024, mlp_ratio=4,
                                  norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                  num_heads=config["num_heads"], patch_size=16, qkv_bias=True,
                                  use_rel_pos=True,
                                  global_attn_indexes=config["global_attn_indexes"],
                                  window_size=config.get("window_size", 14), out_chans=256)
    sam = Sam(image_encoder=encoder,
              prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                           input_image_size=(1024, 1024), mask_in_chans=16),
              mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                       transformer=TwoWayTransformer(depth=2, embedding_dim=256,
                                                                     mlp_dim=2048, num_heads=8),
                                       transformer_dim=256, iou_head_depth=3,
                                       iou_head_hidden_dim=256),
              pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    sam.eval()
    return sam


def load(config_path, weights_path):
    """build() from a config.json file with the weights of a torch.save'd state dict."""
    with open(config_path) as f:
        sam = build(json.load(f))
    sam.load_state_dict(torch.load(weights_path))
    sam.eval()  # again, after loading: TinyViT caches its attention biases in eval()
    return sam


def load_folder(folder):
    """load() of a fixture model folder's config.json and weights.pth."""
    return load(os.path.join(folder, "config.json"), os.path.join(folder, "weights.pth"))
