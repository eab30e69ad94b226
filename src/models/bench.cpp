#include "models/bench.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "models/image_encoder.h"
#include "models/predictor.h"
#include "util/clock.h"
#include "util/memory.h"

namespace sd::models {
namespace {

// `run` must end with a value read back to the host, so that queued device work is timed.
double median_seconds(const std::function<void()>& run, int repeats) {
  run();  // warm-up
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(seconds_since(start));
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

nlohmann::json bench_encoder(int repeats) {
  auto encoder = make_image_encoder(encoder_preset("vit_t"));
  encoder->eval();
  at::Tensor image = at::randn({1, 3, 1024, 1024});
  double infer = median_seconds(
      [&] {
        torch::NoGradGuard no_grad;
        encoder->forward(image).sum().item<float>();
      },
      repeats);

  encoder->train();
  torch::optim::AdamW optimizer(encoder->parameters(), torch::optim::AdamWOptions(1e-3));
  at::Tensor images = at::randn({2, 3, 1024, 1024}), target = at::randn({2, 256, 64, 64});
  double step = median_seconds(
      [&] {
        optimizer.zero_grad();
        at::Tensor loss = at::mse_loss(encoder->forward(images), target);
        loss.backward();
        optimizer.step();
        loss.item<float>();
      },
      repeats);
  return {{"encoder_infer_s", infer},
          {"train_step_b2_s", step},
          {"peak_rss_mb", peak_rss_mb()},
          {"threads", at::get_num_threads()}};
}

}  // namespace sd::models
