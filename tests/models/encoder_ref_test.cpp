// Both image encoders against the Python reference, stage by stage: every `trace.*` summary
// of cases.pth ([sum, L2 norm, first 256 values in C order]) and the full embedding, for
// every model folder of the fixtures.
#include <ATen/ATen.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "models/encoder_testing.h"

namespace sd::models {
namespace {

using namespace sd::testing;
using encoder_testing::relative_error;
using encoder_testing::trace_error;

constexpr double kTolerance = 1e-4;  // fixtures README: embedding relative L2 error

TEST(EncoderRef, EveryStageAndTheEmbeddingMatchPython) {
  SD_REQUIRE_FIXTURES();
  auto folders = model_folders();
  ASSERT_FALSE(folders.empty()) << "no model folder (config.json) under " << fixtures_root();
  for (const auto& folder : folders) {
    SCOPED_TRACE(folder.path);
    auto cases = load_tensors(folder.file("cases.pth"));
    auto encoder = encoder_testing::load_encoder(folder);
    Trace trace;
    at::Tensor embedding;
    {
      torch::NoGradGuard no_grad;
      embedding = encoder->forward(encoder_testing::encoder_input(folder), &trace);
    }
    std::string first_departing;
    size_t reference_stages = 0;
    for (const auto& [key, value] : cases)
      if (key.rfind("trace.", 0) == 0 && key != "trace.image_pe") ++reference_stages;
    EXPECT_EQ(trace.size(), reference_stages) << "stages traced vs trace.* entries of cases.pth";
    for (const auto& [stage, output] : trace) {
      auto it = cases.find("trace." + stage);
      if (it == cases.end()) {
        ADD_FAILURE() << "stage '" << stage << "' has no trace in cases.pth";
        continue;
      }
      double error = trace_error(output, it->second);
      std::cout << folder.name << " " << stage << ": max relative error " << error << "\n";
      if (error > kTolerance && first_departing.empty()) first_departing = stage;
    }
    EXPECT_EQ(first_departing, "") << "first stage departing from the Python reference";
    double error = relative_error(embedding, cases.at("embedding"));
    std::cout << folder.name << " embedding: relative L2 error " << error << "\n";
    EXPECT_LE(error, kTolerance);
  }
}

}  // namespace
}  // namespace sd::models
