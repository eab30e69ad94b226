#pragma once
#include <nlohmann/json.hpp>

namespace sd::bench {

// Evaluation throughput for the `bench` command, with the current LibTorch thread count:
// {"eval_prompts_per_s": box and point prompts per second through Evaluator::evaluate_image
// on a 1200x1800 image (both models' prompt encoder, mask decoder, upscaling to the original
// size and the IoUs; the image encoders excluded), vit_t-sized decoder, random weights}.
nlohmann::json bench_eval(int prompts);

}  // namespace sd::bench
