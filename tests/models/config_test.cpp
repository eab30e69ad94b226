// Encoder presets, JSON configs and their errors.
#include "models/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/config_table_testing.h"
#include "common/fixtures.h"
#include "models/image_encoder_vit.h"
#include "models/resnet.h"
#include "models/tiny_vit.h"

namespace sd::models {
namespace {

using nlohmann::json;
using sd::testing::contains;
using sd::testing::error_of;

TEST(EncoderConfig, SamPresetsHaveTheOfficialSizes) {
  struct Expected {
    const char* name;
    int embed_dim, depth, heads;
    std::vector<int> global;
  };
  for (const auto& e : {Expected{"vit_h", 1280, 32, 16, {7, 15, 23, 31}},
                        Expected{"vit_l", 1024, 24, 16, {5, 11, 17, 23}},
                        Expected{"vit_b", 768, 12, 12, {2, 5, 8, 11}}}) {
    auto c = encoder_preset(e.name).as<ViTConfig>();
    EXPECT_EQ(c.embed_dim, e.embed_dim) << e.name;
    EXPECT_EQ(c.depth, e.depth) << e.name;
    EXPECT_EQ(c.num_heads, e.heads) << e.name;
    EXPECT_EQ(c.global_attn_indexes, e.global) << e.name;
    EXPECT_EQ(c.window_size, 14);
    EXPECT_TRUE(c.use_rel_pos);
    EXPECT_EQ(preset_name(c), e.name);
  }
}

TEST(EncoderConfig, VitTIsMobileSamsTinyViT) {
  auto c = encoder_preset("vit_t").as<TinyViTConfig>();
  EXPECT_EQ(c.embed_dims, (std::vector<int>{64, 128, 160, 320}));
  EXPECT_EQ(c.depths, (std::vector<int>{2, 2, 6, 2}));
  EXPECT_EQ(c.num_heads, (std::vector<int>{2, 4, 5, 10}));
  EXPECT_EQ(c.window_sizes, (std::vector<int>{7, 7, 14, 7}));
  EXPECT_EQ(preset_name(c), "vit_t");
}

TEST(EncoderConfig, UnknownPresetListsThePresets) {
  std::string message = error_of([] { encoder_preset("vit_x"); });
  EXPECT_PRED2(contains, message, "vit_x");
  EXPECT_PRED2(contains, message, "vit_h, vit_l, vit_b, vit_t");
}

TEST(EncoderConfig, FixtureStyleJsonFillsTheRestFromSamsBuilder) {
  auto c = encoder_config_from_json(json{{"embed_dim", 96},
                                         {"depth", 4},
                                         {"num_heads", 3},
                                         {"global_attn_indexes", {1, 3}},
                                         {"window_size", 14}},
                                    "config.json")
               .as<ViTConfig>();
  EXPECT_EQ(c.embed_dim, 96);
  EXPECT_EQ(c.global_attn_indexes, (std::vector<int>{1, 3}));
  EXPECT_EQ(c.img_size, 1024);
  EXPECT_EQ(c.patch_size, 16);
  EXPECT_EQ(c.out_chans, 256);
  EXPECT_EQ(preset_name(c), "custom");

  auto t = encoder_config_from_json(
               json{{"embed_dims", {64, 128, 256, 448}}, {"num_heads", {2, 4, 8, 14}}}, "11m.json")
               .as<TinyViTConfig>();
  EXPECT_EQ(t.embed_dims.back(), 448);
  EXPECT_EQ(t.depths, (std::vector<int>{2, 2, 6, 2}));
}

TEST(EncoderConfig, ToJsonRoundTrips) {
  for (const char* name : {"vit_h", "vit_t"}) {
    EncoderConfig c = encoder_preset(name);
    EXPECT_EQ(to_json(encoder_config_from_json(to_json(c), "round trip")), to_json(c)) << name;
    EXPECT_EQ(preset_name(encoder_config_from_json(to_json(c), "round trip")), name);
  }
}

TEST(EncoderConfig, ErrorsNameTheSourceAndTheKey) {
  auto error = [](const json& j) {
    return error_of([&] { encoder_config_from_json(j, "enc.json"); });
  };
  std::string m = error({{"embed_dim", 96}, {"depht", 4}});
  EXPECT_PRED2(contains, m, "enc.json");
  EXPECT_PRED2(contains, m, "depht");
  m = error({{"embed_dim", "96"}});
  EXPECT_PRED2(contains, m, "embed_dim");
  m = error({{"embed_dims", {64, 128, 160.5, 320}}});
  EXPECT_PRED2(contains, m, "embed_dims");
  EXPECT_PRED2(contains, error({{"depth", 4}}), "embed_dim");
  EXPECT_PRED2(contains, error({{"embed_dim", 96}, {"embed_dims", {1, 2, 3, 4}}}), "exactly one");
  EXPECT_PRED2(contains, error({{"embed_dims", {64, 128, 320}}}), "4 stages");
  EXPECT_PRED2(contains, error({{"embed_dims", {64, 128, 160, 256}}}), "320, 448 or 576");
  EXPECT_PRED2(contains, error({{"embed_dim", 96}, {"num_heads", 5}}), "num_heads");
  EXPECT_PRED2(contains, error({{"embed_dim", 96}, {"depth", 4}, {"global_attn_indexes", {4}}}),
               "global_attn_indexes");
  EXPECT_PRED2(contains, error(json::array({1, 2})), "enc.json");
  // A refused value names the source, the key, the value and the rule.
  EXPECT_PRED2(contains, error({{"embed_dims", {64, 128, 160.5, 320}}}),
               "enc.json: config key 'embed_dims' = [64,128,160.5,320]: must list integers");
  EXPECT_PRED2(contains, error({{"layers", {2, 2, 2}}}),
               "enc.json: config key 'layers' = [2,2,2]: must list 4 stages");
  EXPECT_PRED2(contains, error({{"layers", {2, 0, 2, 2}}}),
               "enc.json: config key 'layers' = [2,0,2,2]: each item must be > 0");
  EXPECT_PRED2(contains, error({{"layers", {2, 2, 2, 2}}, {"img_size", 1000}}),
               "enc.json: config key 'img_size' = 1000: must be a positive multiple of 32");
  EXPECT_PRED2(contains, error({{"embed_dims", {64, 128, 160, 320}}, {"depths", {2, 2, 0, 2}}}),
               "enc.json: config key 'depths'");
  EXPECT_PRED2(contains, error({{"embed_dim", 96}, {"patch_size", 15}}),
               "enc.json: config key 'patch_size' = 15: must divide img_size");
  EXPECT_PRED2(contains, error({{"embed_dim", 96}, {"depht", 4}}), "enc.json: unknown key 'depht'");
}

// Each family declares its keys once, in a table whose defaults are its struct's initialisers,
// and writes every key of it: the keys of the fixtures' and run folders' config.json.
TEST(EncoderConfig, EachFamilysKeysAreOneTableThatAgreesWithItsStruct) {
  sd::testing::expect_well_formed(ViTConfig::table());
  sd::testing::expect_initial_values_are_defaults(ViTConfig::table());
  sd::testing::expect_well_formed(TinyViTConfig::table());
  sd::testing::expect_initial_values_are_defaults(TinyViTConfig::table());
  sd::testing::expect_well_formed(ResNetConfig::table());
  sd::testing::expect_initial_values_are_defaults(ResNetConfig::table());
  EXPECT_EQ(to_json(encoder_preset("resnet34")), (json{{"img_size", 1024},
                                                       {"layers", {3, 4, 6, 3}},
                                                       {"neck_channels", 256},
                                                       {"out_chans", 256}}));
  EXPECT_EQ(to_json(encoder_preset("vit_t")), (json{{"img_size", 1024},
                                                    {"in_chans", 3},
                                                    {"num_classes", 1000},
                                                    {"embed_dims", {64, 128, 160, 320}},
                                                    {"depths", {2, 2, 6, 2}},
                                                    {"num_heads", {2, 4, 5, 10}},
                                                    {"window_sizes", {7, 7, 14, 7}},
                                                    {"mlp_ratio", 4.0},
                                                    {"mbconv_expand_ratio", 4.0},
                                                    {"local_conv_size", 3},
                                                    {"out_chans", 256}}));
  EXPECT_EQ(to_json(encoder_preset("vit_l")), (json{{"img_size", 1024},
                                                    {"patch_size", 16},
                                                    {"in_chans", 3},
                                                    {"embed_dim", 1024},
                                                    {"depth", 24},
                                                    {"num_heads", 16},
                                                    {"mlp_ratio", 4.0},
                                                    {"out_chans", 256},
                                                    {"qkv_bias", true},
                                                    {"use_abs_pos", true},
                                                    {"use_rel_pos", true},
                                                    {"window_size", 14},
                                                    {"global_attn_indexes", {5, 11, 17, 23}}}));
}

TEST(EncoderConfig, ResolvesPresetsAndFiles) {
  EXPECT_EQ(preset_name(resolve_encoder("vit_b")), "vit_b");
  std::string path = sd::testing::make_temp_dir("enc-config") + "/tiny.json";
  std::ofstream(path)
      << R"({"embed_dim": 96, "depth": 4, "num_heads": 3, "global_attn_indexes": [1, 3]})";
  EXPECT_EQ(resolve_encoder(path).as<ViTConfig>().embed_dim, 96);
  std::string m = error_of([] { resolve_encoder("/nonexistent/enc.json"); });
  EXPECT_PRED2(contains, m, "/nonexistent/enc.json");
  std::ofstream(path) << R"({"embed_dim": 96,)";
  EXPECT_PRED2(contains, error_of([&] { resolve_encoder(path); }), path);
}

TEST(EncoderFamily, TheRegistryKnowsTheFamiliesAndRefusesATakenName) {
  EXPECT_EQ(&encoder_family("ViT"), &ViTConfig::family());
  EXPECT_EQ(&encoder_family("TinyViT"), &TinyViTConfig::family());
  EXPECT_EQ(&encoder_preset("vit_t").family(), &TinyViTConfig::family());
  EXPECT_PRED2(contains, error_of([] { encoder_family("EfficientViT"); }),
               "unknown encoder family 'EfficientViT' (families: ViT, TinyViT, ResNet");
  EXPECT_PRED2(contains, error_of([] { register_encoder_family(ViTConfig::family()); }),
               "the family 'ViT' (key 'embed_dim') is registered");
  EXPECT_PRED2(contains, error_of([] { encoder_preset("vit_b").as<TinyViTConfig>(); }),
               "an encoder config of the wrong family: ViT");
  EXPECT_EQ(encoder_preset("vit_b").get_if<TinyViTConfig>(), nullptr);
}

}  // namespace
}  // namespace sd::models
