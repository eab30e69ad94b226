#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "data/prompts.h"
#include "data/records.h"
#include "models/predictor.h"

// The prompts a fine-tuning step trains on, sampled from an image's annotations, or made from
// the image alone (grid, random).
namespace sd::finetune {

struct TrainingPrompt {
  data::PromptSpec spec;
  models::Prompts prompt;  // original pixels, as data::make_prompt gives it
  at::Tensor mask;         // the annotation's HxW uint8 0/1 mask; undefined for grid, random
};

// Up to `count` prompts, each of the next kind of `kinds` in turn (seeded by the image's
// rng::prompt_seed). A kind made from a mask takes the next of the annotations with a
// non-empty mask, drawn without replacement; one that cannot give its kind's prompt (no
// point_coords, fgbg placement failed) is passed over. grid and random take their next point
// (data::image_prompts; the grid's in a seeded order). Fewer when either runs out.
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
