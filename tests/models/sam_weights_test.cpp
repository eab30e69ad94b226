// Which encoder architecture weights hold (models/sam_weights.h): read from their shapes,
// or given and checked against them.
#include "models/sam_weights.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "models/sam.h"

namespace sd::models {
namespace {

using nlohmann::json;
using sd::testing::contains;
using sd::testing::error_of;

// Weights as read from a file named "w.pth", holding the state dict of `module`.
io::Weights weights_of(const torch::nn::Module& module, const std::string& run_model = "") {
  return {"w.pth", io::state_dict(module), run_model, run_model.empty() ? "" : "/run/config.json"};
}

io::Weights encoder_weights(const EncoderConfig& config, const std::string& run_model = "") {
  return weights_of(*make_image_encoder(config), run_model);
}

ViTConfig small_vit() {
  ViTConfig c;
  c.embed_dim = 32;
  c.depth = 3;
  c.num_heads = 2;
  c.window_size = 7;
  c.global_attn_indexes = {1};
  c.out_chans = 64;
  return c;
}

// Stage 0 (convolutional) has no attention: its heads and window are vit_t's, as shown.
TinyViTConfig small_tiny_vit() {
  TinyViTConfig c;
  c.embed_dims = {16, 32, 64, 320};
  c.depths = {1, 2, 1, 1};
  c.num_heads = {2, 1, 2, 5};
  c.window_sizes = {7, 5, 14, 7};
  c.mlp_ratio = 3.0;
  c.mbconv_expand_ratio = 2.0;
  c.local_conv_size = 5;
  c.num_classes = 0;
  c.out_chans = 64;
  return c;
}

class SamWeights : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = sd::testing::make_temp_dir("sd-sam-weights"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // A JSON config file of `config`.
  std::string config_file(const EncoderConfig& config) const {
    const std::string path = dir_ + "/model.json";
    std::ofstream(path) << to_json(config).dump();
    return path;
  }
  std::string dir_;
};

TEST_F(SamWeights, AnEncoderAloneOrInAFullSamShowsItsWholeConfig) {
  for (const EncoderConfig& config :
       {EncoderConfig(small_vit()), EncoderConfig(small_tiny_vit())}) {
    SCOPED_TRACE(to_json(config).dump());
    EXPECT_EQ(to_json(encoder_config_of(encoder_weights(config), "", "--model")), to_json(config));
    EXPECT_EQ(to_json(encoder_config_of(weights_of(*build_sam(config)), "", "--model")),
              to_json(config));
  }
  const EncoderConfig vit_t = encoder_preset("vit_t");
  EXPECT_EQ(preset_name(encoder_config_of(encoder_weights(vit_t), "", "--model")), "vit_t");
}

TEST_F(SamWeights, ARatioThatRoundsGivesTheSameWidths) {
  ViTConfig config = small_vit();
  config.embed_dim = 14;
  config.num_heads = 2;
  config.mlp_ratio = 4.36;  // int(14 * 4.36) = 61 hidden units, but int(14 * (61 / 14.0)) = 60
  const io::Weights w = encoder_weights(config);
  const EncoderConfig shown = encoder_config_of(w, "", "--model");
  EXPECT_EQ(int64_t(14 * std::get<ViTConfig>(shown).mlp_ratio), 61);
  io::load_state_dict(*make_image_encoder(shown), w.entries, "", w.file);  // the same shapes
  EXPECT_NO_THROW(check_fits(config, "--model", w));
  EXPECT_EQ(to_json(encoder_config_of(w, config_file(config), "--model")), to_json(config));
}

TEST_F(SamWeights, AGivenArchitectureThatFitsIsTaken) {
  const io::Weights w = encoder_weights(small_vit());
  EXPECT_EQ(to_json(encoder_config_of(w, config_file(small_vit()), "--model")),
            to_json(small_vit()));
  EXPECT_EQ(
      preset_name(encoder_config_of(encoder_weights(encoder_preset("vit_t")), "vit_t", "--model")),
      "vit_t");
}

TEST_F(SamWeights, AGivenArchitectureThatDoesNotFitNamesBothAndEachSize) {
  const io::Weights w = encoder_weights(small_vit());
  const std::string message = error_of([&] { encoder_config_of(w, "vit_b", "--model"); });
  EXPECT_PRED2(contains, message,
               "--model 'vit_b' does not fit the weights 'w.pth', which hold a custom ViT encoder");
  EXPECT_PRED2(contains, message, "embed_dim 32 there, 768 in --model 'vit_b'");
  EXPECT_PRED2(contains, message, "depth 3 there, 12 in --model 'vit_b'");
  EXPECT_PRED2(contains, message, "global_attn_indexes [1] there, [2,5,8,11] in --model 'vit_b'");
  EXPECT_PRED2(contains, message, "leave --model out");

  ViTConfig heads = small_vit();
  heads.num_heads = 4;
  EXPECT_PRED2(contains, error_of([&] { encoder_config_of(w, config_file(heads), "--teacher"); }),
               "num_heads 2 there, 4 in --teacher");
  EXPECT_PRED2(contains, error_of([&] { encoder_config_of(w, "vit_t", "--student-model"); }),
               "a ViT there, a TinyViT in --student-model 'vit_t'");
  EXPECT_PRED2(contains,
               error_of([&] { check_fits(encoder_preset("vit_t"), "student_model 'vit_t'", w); }),
               "student_model 'vit_t' does not fit the weights 'w.pth'");
}

TEST_F(SamWeights, TheRunsStudentModelIsTakenAndChecked) {
  const EncoderConfig tiny = small_tiny_vit();
  EXPECT_EQ(
      to_json(encoder_config_of(encoder_weights(tiny, config_file(tiny)), "", "--student-model")),
      to_json(tiny));
  const std::string message =
      error_of([&] { encoder_config_of(encoder_weights(tiny, "vit_t"), "", "--student-model"); });
  EXPECT_PRED2(contains, message,
               "the student_model 'vit_t' of /run/config.json does not fit the weights 'w.pth'");
  EXPECT_PRED2(contains, message, "give --student-model");
  // A flag comes before the run's config.
  EXPECT_EQ(to_json(encoder_config_of(encoder_weights(tiny, "vit_t"), config_file(tiny),
                                      "--student-model")),
            to_json(tiny));
}

TEST_F(SamWeights, WhatTheShapesDoNotTellNamesTheFlag) {
  ViTConfig absolute_only = small_vit();
  absolute_only.use_rel_pos = false;  // the heads no longer show in any shape
  const io::Weights w = encoder_weights(absolute_only);
  const std::string message = error_of([&] { encoder_config_of(w, "", "--teacher"); });
  EXPECT_PRED2(contains, message, "'w.pth' does not show its encoder's attention heads");
  EXPECT_PRED2(contains, message, "give --teacher");
  EXPECT_EQ(to_json(encoder_config_of(w, config_file(absolute_only), "--teacher")),
            to_json(absolute_only));

  const io::Weights decoder_only{
      "d.pth", {{"mask_decoder.iou_token.weight", at::zeros({1, 256})}}, "", ""};
  EXPECT_PRED2(contains, error_of([&] { encoder_config_of(decoder_only, "", "--model"); }),
               "'d.pth' holds no SAM / MobileSAM image encoder");
}

TEST(SamWeightsPreset, MatchesTheSizesObserved) {
  json sizes = {{"family", "ViT"}, {"prefix", ""}, {"embed_dim", 768}, {"depth", 12}};
  EXPECT_EQ(preset_matching(sizes), "vit_b");
  sizes["depth"] = 2;
  EXPECT_EQ(preset_matching(sizes), "custom");
  EXPECT_EQ(preset_matching(
                io::observe_encoder(io::state_dict(*make_image_encoder(encoder_preset("vit_t"))))),
            "vit_t");
  EXPECT_EQ(
      preset_matching(io::observe_encoder(io::state_dict(*make_image_encoder(small_tiny_vit())))),
      "custom");
}

}  // namespace
}  // namespace sd::models
