#include "models/bench.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "models/predictor.h"

namespace sd::models {
namespace {

// `run` must end with a value read back to the host, so that queued device work is timed.
double median_seconds(const std::function<void()>& run, int repeats) {
  run();  // warm-up
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

nlohmann::json bench_decoder(Sam sam, int repeats) {
  sam->eval();
  SamPredictor predictor(sam);
  predictor.set_image_embedding(at::randn({1, 256, 64, 64}), {1200, 1800});
  Prompts prompts;
  prompts.box = at::tensor({300.0f, 200.0f, 1400.0f, 1000.0f});
  double seconds = median_seconds(
      [&] {
        Prediction out = predictor.predict(prompts, /*multimask_output=*/false);
        out.iou_predictions.sum().item<float>();
      },
      repeats);
  return {{"decoder_prompt_s", seconds}};
}

}  // namespace sd::models
