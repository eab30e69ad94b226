#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sd::bench {

// The thresholds the segment figures run with: the Python reference's side runs the same
// (scripts/bench_amg_vs_reference.sh). Seeded random weights predict low IoUs and stabilities
// and no logit above SAM's offset of 1, so SAM's defaults would keep no mask; these keep part
// of them, as trained weights do on real images.
nlohmann::json bench_amg_params();

// Segmenting figures for the `bench` command, with the current LibTorch thread count, one
// timed run each after one warm-up of the encoder: {"amg_image_s": the automatic mask
// generator (32 x 32 points, bench_amg_params) on one image, fp32; "amg_image_bf16_s": the same
// under bf16 autocast; "amg_masks": masks it gave; "segment_boxes_per_s": 100 box prompts
// through the decoder on one embedding, upscaled to masks with their RLE}. `student`: a full
// SAM checkpoint (default: vit_t with seeded random weights); `image`: the image (default
// data/sample/sa_100001.jpg scaled to 1500 x 2250).
nlohmann::json bench_segment(const std::string& student, const std::string& image);

}  // namespace sd::bench
