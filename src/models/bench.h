#pragma once
#include <nlohmann/json.hpp>

#include "models/sam.h"

// Timings of the model stages for the `bench` command: medians over `repeats` runs after
// one warm-up, on the model's device, with the current LibTorch thread count.
namespace sd::models {

// {"decoder_prompt_s": seconds for one box prompt through the prompt encoder, the mask
// decoder and postprocess_masks to 1200x1800 (thresholded), on a random embedding}.
nlohmann::json bench_decoder(Sam sam, int repeats);

}  // namespace sd::models
