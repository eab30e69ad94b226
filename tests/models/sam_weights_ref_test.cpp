// The official checkpoints' shapes (manifests/*.json) and the fixtures' weights show the
// architecture they were made with.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "models/sam_weights.h"

namespace sd::models {
namespace {

using namespace sd::testing;

// A state dict with the manifest's keys and shapes; every value is one shared zero.
io::StateDict shapes_of(const nlohmann::json& manifest) {
  const at::Tensor zero = at::zeros({});
  io::StateDict out;
  for (const auto& e : manifest)
    out.emplace_back(e[0].get<std::string>(), zero.expand(e[1].get<std::vector<int64_t>>()));
  return out;
}

TEST(SamWeightsRef, OfficialCheckpointsShowTheirPreset) {
  SD_REQUIRE_FIXTURES();
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(fixtures_root() + "/manifests")) {
    const std::string preset = entry.path().stem().string();  // vit_h, vit_l, vit_b, vit_t
    std::ifstream in(entry.path());
    const io::Weights w{entry.path().string(), shapes_of(nlohmann::json::parse(in)), "", ""};
    EXPECT_EQ(preset_name(encoder_config_of(w, "", "--model")), preset) << entry.path();
    EXPECT_EQ(preset_matching(io::observe_encoder(w.entries)), preset);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(SamWeightsRef, FixtureWeightsShowTheirConfig) {
  SD_REQUIRE_FIXTURES();
  for (const ModelFolder& folder : model_folders()) {
    const io::Weights w = io::read_weights(folder.file("weights.pth"));
    EXPECT_EQ(to_json(encoder_config_of(w, "", "--model")),
              to_json(encoder_config_from_json(folder.config, folder.file("config.json"))))
        << folder.path;
  }
}

}  // namespace
}  // namespace sd::models
