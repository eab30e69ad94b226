// Which encoder architecture weights hold (models/sam_weights.h): read from their shapes,
// or given and checked against them.
#include "models/sam_weights.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "models/image_encoder_vit.h"
#include "models/sam.h"
#include "models/tiny_vit.h"

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
  EXPECT_EQ(int64_t(14 * shown.as<ViTConfig>().mlp_ratio), 61);
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
               "'d.pth' holds no image encoder of a known family (ViT, TinyViT");
}

// TinyViT's first stage is convolutional: its num_heads and window_sizes entries are in no
// weight. Weights whose first stage has 1 head (vit_t's has 2) show everything else; the
// comparisons leave that entry out and a config given keeps its value.
TEST_F(SamWeights, WhatNoWeightShowsIsNeitherComparedNorTakenFromAGuess) {
  TinyViTConfig one_head;  // vit_t's sizes
  one_head.num_heads[0] = 1;
  one_head.window_sizes[0] = 3;
  const io::Weights w = encoder_weights(one_head);
  const json observed = observe_encoder(w.entries);
  EXPECT_EQ(observed["num_heads"], json({nullptr, 4, 5, 10}));
  EXPECT_EQ(observed["window_sizes"], json({nullptr, 7, 14, 7}));
  EXPECT_EQ(preset_matching(observed), "vit_t");
  EXPECT_NO_THROW(check_fits(one_head, "--model", w));
  EXPECT_NO_THROW(check_fits(encoder_preset("vit_t"), "--model", w));
  EXPECT_EQ(to_json(config_shown(observed, one_head, "w.pth")), to_json(one_head));
  EXPECT_EQ(to_json(encoder_config_of(w, config_file(one_head), "--model")), to_json(one_head));
  EXPECT_EQ(to_json(encoder_config_of(
                weights_of(*make_image_encoder(one_head), config_file(one_head)), "", "--model")),
            to_json(one_head));
  // Without a config, what no weight shows is the family's default (vit_t's).
  EXPECT_EQ(to_json(encoder_config_of(w, "", "--model")), to_json(encoder_preset("vit_t")));
  // What the weights show wins over a base config; what they do not show stays the base's.
  TinyViTConfig other = one_head;
  other.depths = {1, 1, 1, 1};
  EXPECT_EQ(to_json(config_shown(observed, other, "w.pth")), to_json(one_head));
  EXPECT_PRED2(contains, error_of([&] { config_shown(observed, small_vit(), "w.pth"); }),
               "w.pth: a TinyViT, not a ViT");
}

// The sizes a SAM ViT's keys show; the heads from its relative position tables.
TEST(ObserveEncoder, ViTSizesFromItsShapes) {
  io::StateDict vit = {{"image_encoder.patch_embed.proj.weight", at::zeros({96, 3, 16, 16})},
                       {"image_encoder.pos_embed", at::zeros({1, 64, 64, 96})},
                       {"image_encoder.neck.0.weight", at::zeros({256, 96, 1, 1})}};
  for (int i = 0; i < 4; ++i) {
    const std::string block = "image_encoder.blocks." + std::to_string(i) + ".";
    vit.emplace_back(block + "attn.qkv.bias", at::zeros({288}));
    vit.emplace_back(block + "attn.rel_pos_h", at::zeros({i % 2 ? 127 : 27, 32}));
    vit.emplace_back(block + "mlp.lin1.weight", at::zeros({384, 96}));
  }
  EXPECT_EQ(observe_encoder(vit), json({{"family", "ViT"},
                                        {"prefix", "image_encoder."},
                                        {"embed_dim", 96},
                                        {"depth", 4},
                                        {"in_chans", 3},
                                        {"patch_size", 16},
                                        {"img_size", 1024},
                                        {"use_abs_pos", true},
                                        {"use_rel_pos", true},
                                        {"qkv_bias", true},
                                        {"num_heads", 3},
                                        {"window_size", 14},
                                        {"global_attn_indexes", {1, 3}},
                                        {"mlp_ratio", 4.0},
                                        {"out_chans", 256}}));
  EXPECT_TRUE(observe_encoder({{"mask_decoder.iou_token.weight", at::zeros({1, 256})}}).is_null());
}

// What `samdistill checkpoint` shows: the family, where, its summary sizes and the preset.
TEST(ObserveEncoder, SummaryShowsTheFamilysSizesAndPreset) {
  const io::StateDict sd = {{"patch_embed.proj.weight", at::zeros({96, 3, 16, 16})},
                            {"blocks.0.norm1.weight", at::zeros({96})},
                            {"blocks.1.norm1.weight", at::zeros({96}, at::kHalf)}};
  EXPECT_EQ(encoder_summary(sd), json({{"family", "ViT"},
                                       {"prefix", ""},
                                       {"embed_dim", 96},
                                       {"depth", 2},
                                       {"preset", "custom"}}));
  EXPECT_EQ(encoder_summary(io::state_dict(*build_sam(encoder_preset("vit_t")))),
            json({{"family", "TinyViT"},
                  {"prefix", "image_encoder."},
                  {"embed_dims", {64, 128, 160, 320}},
                  {"depths", {2, 2, 6, 2}},
                  {"preset", "vit_t"}}));
  EXPECT_TRUE(encoder_summary({{"x", at::zeros({1})}}).is_null());
}

TEST(SamWeightsPreset, MatchesTheSizesObserved) {
  json sizes = {{"family", "ViT"}, {"prefix", ""}, {"embed_dim", 768}, {"depth", 12}};
  EXPECT_EQ(preset_matching(sizes), "vit_b");
  sizes["depth"] = 2;
  EXPECT_EQ(preset_matching(sizes), "custom");
  EXPECT_EQ(preset_matching(
                observe_encoder(io::state_dict(*make_image_encoder(encoder_preset("vit_t"))))),
            "vit_t");
  EXPECT_EQ(preset_matching(observe_encoder(io::state_dict(*make_image_encoder(small_tiny_vit())))),
            "custom");
}

}  // namespace
}  // namespace sd::models
