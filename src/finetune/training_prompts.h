#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "data/prompts.h"
#include "data/records.h"
#include "models/predictor.h"

// The prompts a fine-tuning step trains on, sampled from an image's SA-1B annotations.
namespace sd::finetune {

struct TrainingPrompt {
  data::PromptSpec spec;
  models::Prompts prompt;  // original pixels, as data::make_prompt gives it
  at::Tensor mask;         // the annotation's HxW uint8 0/1 mask
};

// Up to `count` annotations with a non-empty mask, drawn without replacement (seeded by the
// image's rng::prompt_seed), each
// with the next kind of `kinds` in turn; an annotation that cannot give its kind's prompt
// (no point_coords, fgbg placement failed) is passed over.
std::vector<TrainingPrompt> sample_prompts(const data::Record& record,
                                           const std::vector<data::PromptSpec>& kinds,
                                           int64_t count, uint64_t seed);

// SAM's refinement click: a pixel drawn uniformly where the HxW masks `predicted` and `target`
// (bool, low-res) disagree within their first valid_h rows and valid_w columns; label 1 where
// the target holds the object (a missed part), else 0. (x, y) is the pixel's centre times
// `scale` (low-res to resized-image pixels). nullopt when they agree everywhere.
struct Click {
  double x = 0, y = 0;
  int label = 0;
};
std::optional<Click> error_click(const at::Tensor& predicted, const at::Tensor& target,
                                 int64_t valid_h, int64_t valid_w, double scale,
                                 at::Generator& generator);

}  // namespace sd::finetune
