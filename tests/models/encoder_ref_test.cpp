// Both image encoders against the Python reference, stage by stage: every `trace.*` summary
// of cases.pth ([sum, L2 norm, first 256 values in C order]) and the full embedding, for
// every model folder of the fixtures.
#include <ATen/ATen.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "models/autocast.h"
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

// The teacher under `--amp bf16` (CPU autocast: products in bf16, the fused attention reading
// bf16 q, k and v): its embedding of the fixture's image stays within 1% (relative L2) of fp32's.
TEST(EncoderRef, Bf16TeacherEmbeddingIsWithinOnePercentOfFp32) {
  SD_REQUIRE_FIXTURES();
  bool any = false;
  for (const auto& folder : model_folders()) {
    if (!folder.config.contains("embed_dim")) continue;  // TinyViT students: not teachers
    any = true;
    auto encoder = encoder_testing::load_encoder(folder);
    const at::Tensor input = encoder_testing::encoder_input(folder);
    torch::NoGradGuard no_grad;
    const at::Tensor fp32 = encoder->forward(input);
    at::Tensor bf16;
    {
      AutocastScope autocast(Amp::bf16, input.device());
      bf16 = encoder->forward(input);
    }
    const double error = relative_error(bf16.to(at::kFloat), fp32);
    std::cout << folder.name << " bf16 embedding: relative L2 to fp32 " << error << "\n";
    EXPECT_GT(error, 0);
    EXPECT_LE(error, 0.01);
  }
  if (!any) GTEST_SKIP() << "no ViT model folder under " << fixtures_root();
}

}  // namespace
}  // namespace sd::models
