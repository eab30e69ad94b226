// The official checkpoints' shapes (manifests/*.json) and the fixtures' weights show the
// architecture they were made with.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "io/checkpoint.h"
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
    EXPECT_EQ(preset_matching(observe_encoder(w.entries)), preset);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

// Every value the weights determine is the config's; what no weight shows (TinyViT's
// first-stage heads) is compared nowhere and stays the config's when it is given.
TEST(SamWeightsRef, FixtureWeightsShowTheirConfig) {
  SD_REQUIRE_FIXTURES();
  for (const ModelFolder& folder : model_folders()) {
    SCOPED_TRACE(folder.path);
    const io::Weights w = io::read_weights(folder.file("weights.pth"));
    const EncoderConfig config =
        encoder_config_from_json(folder.config, folder.file("config.json"));
    const nlohmann::json observed = observe_encoder(w.entries);
    EXPECT_EQ(to_json(config_shown(observed, config, folder.path)), to_json(config));
    EXPECT_NO_THROW(check_fits(config, "config.json", w));
    EXPECT_EQ(to_json(encoder_config_of(w, folder.file("config.json"), "--model")),
              to_json(config));
    const EncoderConfig detected = encoder_config_of(w, "", "--model");
    EXPECT_EQ(to_json(config_shown(observed, detected, folder.path)), to_json(detected));
    EXPECT_NO_THROW(check_fits(detected, "detected", w));
  }
}

// The encoder `samdistill checkpoint` finds has the sizes of the folder's config.json, in a
// full model and in the encoder alone.
TEST(SamWeightsRef, SummaryFindsTheConfiguredEncoder) {
  SD_REQUIRE_FIXTURES();
  for (const ModelFolder& folder : model_folders()) {
    const io::StateDict sd = io::read_state_dict(folder.file("weights.pth"));
    const nlohmann::json full = encoder_summary(sd);
    const nlohmann::json alone = encoder_summary(io::strip_prefix(sd, "image_encoder."));
    EXPECT_EQ(full["prefix"], "image_encoder.");
    EXPECT_EQ(alone["prefix"], "");
    for (const auto& e : {full, alone}) {
      ASSERT_FALSE(e.is_null()) << folder.path;
      const std::vector<std::string> keys = folder.tiny_vit
                                                ? std::vector<std::string>{"embed_dims", "depths"}
                                                : std::vector<std::string>{"embed_dim", "depth"};
      EXPECT_EQ(e["family"], folder.tiny_vit ? "TinyViT" : "ViT");
      for (const std::string& key : keys) EXPECT_EQ(e[key], folder.config[key]) << key;
    }
  }
}

}  // namespace
}  // namespace sd::models
