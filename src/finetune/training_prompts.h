#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "data/records.h"
#include "eval/prompts.h"
#include "models/predictor.h"

// The prompts a fine-tuning step trains on, sampled from an image's SA-1B annotations.
namespace sd::finetune {

struct TrainingPrompt {
  eval::PromptSpec spec;
  models::Prompts prompt;  // original pixels, as eval::make_prompt gives it
  at::Tensor mask;         // the annotation's HxW uint8 0/1 mask
};

// The seed of an image's prompts in an epoch: the same on every run and resume.
uint64_t prompt_seed(uint64_t seed, int64_t epoch, const std::string& image_id);

// Up to `count` annotations with a non-empty mask, drawn without replacement (seeded), each
// with the next kind of `kinds` in turn; an annotation that cannot give its kind's prompt
// (no point_coords, fgbg placement failed) is passed over.
std::vector<TrainingPrompt> sample_prompts(const data::Record& record,
                                           const std::vector<eval::PromptSpec>& kinds,
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
