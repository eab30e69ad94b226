#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <limits>

#include "common/config_table_testing.h"
#include "common/fixtures.h"
#include "io/config.h"
#include "models/image_encoder.h"
#include "train/config.h"
#include "train/loss_scale.h"
#include "train/param_groups.h"
#include "train/schedule.h"
#include "util/error.h"

namespace sd::train {
namespace {

TEST(LrSchedule, WarmsUpLinearlyThenFollowsTheCosine) {
  LrSchedule s{1e-3, 1e-5, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(9), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_NEAR(s.at(60), 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-15);
  EXPECT_DOUBLE_EQ(s.at(110), 1e-5);
  EXPECT_DOUBLE_EQ(s.at(500), 1e-5);
}

TEST(ParamGroups, NormsBiasesAndAttentionBiasesAreNotDecayed) {
  auto config = models::encoder_preset("vit_t");
  auto encoder = models::make_image_encoder(config);
  for (const auto& g : make_param_groups(*encoder, config, 1.0)) {
    for (size_t i = 0; i < g.names.size(); ++i) {
      const auto& name = g.names[i];
      bool expect_decay =
          g.params[i].dim() > 1 && name.find("attention_biases") == std::string::npos;
      EXPECT_EQ(g.weight_decay, expect_decay) << name;
    }
  }
  EXPECT_FALSE(decays("layers.1.blocks.0.attn.attention_biases", at::zeros({4, 49})));
  EXPECT_FALSE(decays("neck.1.bias", at::zeros({256})));
  EXPECT_TRUE(decays("neck.0.weight", at::zeros({256, 320, 1, 1})));
}

TEST(ParamGroups, LayerDecayFollowsTinyViTsBlockOrder) {
  auto config = models::encoder_preset("vit_t");  // depths 2, 2, 6, 2: 12 blocks
  const double d = 0.8;
  EXPECT_DOUBLE_EQ(layer_lr_scale("patch_embed.seq.0.c.weight", config, d), std::pow(d, 11));
  EXPECT_DOUBLE_EQ(layer_lr_scale("layers.0.blocks.1.conv1.c.weight", config, d), std::pow(d, 10));
  // layer 0's downsampling shares its last block's (index 1) scale
  EXPECT_DOUBLE_EQ(layer_lr_scale("layers.0.downsample.conv1.c.weight", config, d),
                   std::pow(d, 10));
  EXPECT_DOUBLE_EQ(layer_lr_scale("layers.2.blocks.5.attn.qkv.weight", config, d), std::pow(d, 2));
  EXPECT_DOUBLE_EQ(layer_lr_scale("layers.3.blocks.1.mlp.fc1.weight", config, d), 1.0);
  EXPECT_DOUBLE_EQ(layer_lr_scale("neck.0.weight", config, d), 1.0);

  auto vit = models::encoder_preset("vit_b");  // 12 blocks
  EXPECT_DOUBLE_EQ(layer_lr_scale("pos_embed", vit, d), std::pow(d, 11));
  EXPECT_DOUBLE_EQ(layer_lr_scale("blocks.3.attn.qkv.weight", vit, d), std::pow(d, 8));
  EXPECT_DOUBLE_EQ(layer_lr_scale("neck.2.weight", vit, d), 1.0);
}

TEST(ParamGroups, AdamWGroupsCarryScaledLrAndTheirDecay) {
  auto config = models::encoder_preset("vit_t");
  auto encoder = models::make_image_encoder(config);
  auto groups = make_param_groups(*encoder, config, 0.8);
  GroupOptions options;
  options.lr = 2e-3;
  options.weight_decay = 0.05;
  torch::optim::AdamW adamw(adamw_groups(groups, options));
  ASSERT_EQ(adamw.param_groups().size(), groups.size());
  size_t total = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(adamw.param_groups()[i].options());
    EXPECT_DOUBLE_EQ(o.lr(), 2e-3 * groups[i].lr_scale);
    EXPECT_DOUBLE_EQ(o.weight_decay(), groups[i].weight_decay ? 0.05 : 0.0);
    total += groups[i].params.size();
  }
  EXPECT_EQ(total, encoder->parameters().size());
}

TEST(TrainConfig, UnknownKeysAndWrongTypesAreNamed) {
  const auto& defaults = train_config_defaults();
  try {
    io::merge_config(defaults, {{"epochz", 3}}, "my.json");
    FAIL() << "unknown key accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my.json: unknown key 'epochz'"), std::string::npos)
        << e.what();
  }
  try {
    io::merge_config(defaults, {{"lr", "fast"}}, "my.json");
    FAIL() << "string lr accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("key 'lr' must be a number, got "), std::string::npos)
        << e.what();
  }
  auto merged = io::merge_config(defaults, {{"lr", 1}, {"epochs", 2}}, "my.json");
  EXPECT_DOUBLE_EQ(train_config_from_json(merged).lr, 1.0);
  EXPECT_THROW(train_config_from_json(io::merge_config(defaults, {{"batch_size", 0}}, "x")), Error);
  EXPECT_THROW(train_config_from_json(io::merge_config(defaults, {{"amp", "fp8"}}, "x")), Error);
}

TEST(TrainConfig, EveryKeyHasHelpADefaultOfItsTypeAndACheck) {
  sd::testing::expect_well_formed(train_config_table());
  EXPECT_EQ(train_config_table().keys().at(0).key, "student_model");  // the order of configs/*.json
}

TEST(TrainConfig, InitialValuesAreTheTablesDefaults) {
  sd::testing::expect_initial_values_are_defaults(train_config_table());
  EXPECT_EQ(TrainConfig{}.epochs, 8);
  EXPECT_EQ(TrainConfig{}.log_every, 10);
}

TEST(TrainConfig, AFractionalIntegerIsRefusedAsNotAnInteger) {
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 train_config_from_json({{"batch_size", 2.5}}, "c.json");
               }),
               "c.json: key 'batch_size' must be an integer, got 2.5");
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 io::parse_override(train_config_defaults().at("batch_size"), "batch-size", "2.5");
               }),
               "option --batch-size: '2.5' is not an integer");
}

TEST(TrainConfig, DeviceAmpAndLossAreWordsAndOthersAreRefusedListingThem) {
  const TrainConfig c =
      train_config_from_json({{"device", "cpu"}, {"amp", "fp16"}, {"loss", "huber"}});
  EXPECT_EQ(c.device, DeviceChoice::cpu);
  EXPECT_EQ(c.amp, models::Amp::fp16);
  EXPECT_EQ(c.loss, EmbeddingLoss::huber);
  EXPECT_EQ(train_config_from_json(nlohmann::json::object()).device, DeviceChoice::automatic);
  EXPECT_EQ(train_config_from_json(nlohmann::json::object()).loss, EmbeddingLoss::mse);
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 train_config_from_json({{"loss", "l2"}});
               }),
               "config key 'loss' = \"l2\": must be mse, huber or l1");
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 train_config_from_json({{"amp", "fp8"}});
               }),
               "config key 'amp' = \"fp8\": must be off, bf16 or fp16");
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 train_config_from_json({{"device", "gpu"}});
               }),
               "config key 'device' = \"gpu\": must be auto, cpu or cuda");
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] { parse_device("gpu"); }),
               "unknown device 'gpu' (expected auto, cpu or cuda)");
  EXPECT_EQ(parse_device("cpu"), c10::Device(c10::kCPU));
}

// A config.json as the runs before the config table wrote it (keys sorted, enums as words):
// read and written back unchanged but for the keys added since (strict), which take their
// defaults, so that old run folders resume.
TEST(TrainConfig, AConfigWrittenThenReadIsTheSame) {
  const nlohmann::json old_run = nlohmann::json::parse(R"({
    "amp": "bf16", "batch_size": 2, "checkpoint_every": 5, "clip_grad": 1.5, "data": ["a", "b"],
    "device": "cpu", "epochs": 3, "grad_accum": 2, "init": "init.pth", "keep_last": 4,
    "layer_decay": 0.8, "log_every": 1, "loss_ignore_padding": true, "lr": 0.002,
    "max_nonfinite": 7, "max_steps": 11, "min_lr": 1e-06, "seed": 42, "store": "emb",
    "student_model": "student.json", "warmup_steps": 3, "weight_decay": 0.05, "workers": 1})");
  const TrainConfig c = train_config_from_json(old_run, "config.json");
  nlohmann::json written = old_run;
  written["strict"] = false;
  written["images"] = "";
  written["sync_batchnorm"] = false;
  written["recompute_stages"] = 0;
  written["loss"] = "mse";
  EXPECT_EQ(c.json, written);
  EXPECT_EQ(c.json.dump(2), written.dump(2));
  EXPECT_EQ(c.amp, models::Amp::bf16);
  EXPECT_EQ(c.data, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.layer_decay, 0.8);
  const TrainConfig again = train_config_from_json(c.json, "config.json");
  EXPECT_EQ(train_config_table().write(again), c.json);
  EXPECT_EQ(again.seed, 42);
  EXPECT_EQ(again.min_lr, 1e-6);
  EXPECT_EQ(again.device, DeviceChoice::cpu);
  EXPECT_EQ(train_config_from_json(nlohmann::json::object()).json, train_config_defaults());
}

TEST(TrainConfig, OverridesTakeTheDefaultsType) {
  const auto& d = train_config_defaults();
  EXPECT_EQ(io::parse_override(d.at("epochs"), "epochs", "3"), 3);
  EXPECT_EQ(io::parse_override(d.at("lr"), "lr", "5e-4"), 5e-4);
  EXPECT_EQ(io::parse_override(d.at("loss_ignore_padding"), "loss-ignore-padding", "true"), true);
  EXPECT_EQ(io::parse_override(d.at("data"), "data", "a,b"), nlohmann::json::array({"a", "b"}));
  EXPECT_THROW(io::parse_override(d.at("epochs"), "epochs", "3.5"), Error);
  EXPECT_THROW(io::parse_override(d.at("lr"), "lr", "x"), Error);
}

}  // namespace
}  // namespace sd::train

namespace sd::train {
namespace {

TEST(LossScale, OverflowSkipsAndHalvesGoodStepsGrow) {
  at::Tensor p = at::zeros({3}).set_requires_grad(true);
  p.mutable_grad() = at::full({3}, 8.0);
  LossScale s{true, 4.0, 0, 2};
  EXPECT_DOUBLE_EQ(s.factor(), 4.0);
  s.unscale({p});
  EXPECT_TRUE(at::equal(p.grad(), at::full({3}, 2.0)));
  s.update(false);
  EXPECT_DOUBLE_EQ(s.scale, 2.0);
  s.update(true);
  EXPECT_DOUBLE_EQ(s.scale, 2.0);
  s.update(true);  // growth_interval good steps in a row
  EXPECT_DOUBLE_EQ(s.scale, 4.0);
  EXPECT_EQ(s.good_steps, 0);

  LossScale off;
  EXPECT_DOUBLE_EQ(off.factor(), 1.0);
  off.unscale({p});
  EXPECT_TRUE(at::equal(p.grad(), at::full({3}, 2.0)));
  off.update(false);
  EXPECT_DOUBLE_EQ(off.scale, 65536.0);
}

// fp16's steps, driven by CPU gradients as if a backward of the scaled loss had made them:
// a finite step moves by the unscaled gradient; an overflow moves nothing and halves the scale;
// growth_interval finite steps in a row double it.
TEST(LossScale, AnOverflowedStepIsSkippedAndFiniteOnesStepUnscaled) {
  at::Tensor p = at::ones({2}).set_requires_grad(true);
  torch::optim::SGD sgd({p}, torch::optim::SGDOptions(1.0));
  LossScale s{true, 8.0, 0, 2};
  const double inf = std::numeric_limits<double>::infinity();
  auto step_with = [&](std::vector<float> scaled, double loss) {
    p.mutable_grad() = at::tensor(scaled);
    return s.step(sgd, {p}, loss, inf);
  };

  EXPECT_DOUBLE_EQ(step_with({8, 0}, 0.5), 1.0);  // the norm of the unscaled gradient
  EXPECT_TRUE(at::equal(p, at::tensor({0.f, 1.f})));
  EXPECT_DOUBLE_EQ(s.scale, 8.0);
  EXPECT_EQ(s.good_steps, 1);

  EXPECT_FALSE(std::isfinite(step_with({static_cast<float>(inf), 8}, 0.5)));
  EXPECT_TRUE(at::equal(p, at::tensor({0.f, 1.f}))) << "an overflowed step moved the weights";
  EXPECT_DOUBLE_EQ(s.scale, 4.0);
  EXPECT_EQ(s.good_steps, 0);

  EXPECT_TRUE(std::isnan(step_with({4, 4}, std::nan(""))));  // a non-finite loss: no step
  EXPECT_TRUE(at::equal(p, at::tensor({0.f, 1.f})));
  EXPECT_DOUBLE_EQ(s.scale, 2.0);

  step_with({2, 0}, 0.5);
  EXPECT_TRUE(at::equal(p, at::tensor({-1.f, 1.f})));
  EXPECT_DOUBLE_EQ(s.scale, 2.0);
  step_with({0, 2}, 0.5);  // the second finite step in a row
  EXPECT_TRUE(at::equal(p, at::tensor({-1.f, 0.f})));
  EXPECT_DOUBLE_EQ(s.scale, 4.0);
  EXPECT_EQ(s.good_steps, 0);

  // Clipped after unscaling: the norm before clipping, the step by the clipped gradient.
  p.mutable_grad() = at::tensor({12.f, 16.f});
  EXPECT_DOUBLE_EQ(s.step(sgd, {p}, 0.5, 1.0), 5.0);
  EXPECT_TRUE(at::allclose(p, at::tensor({-1.6f, -0.8f})));
}

// Without fp16 the loss is not scaled, and a non-finite gradient still skips the step.
TEST(LossScale, DisabledItStepsWithTheGradientAsIs) {
  at::Tensor p = at::ones({2}).set_requires_grad(true);
  torch::optim::SGD sgd({p}, torch::optim::SGDOptions(1.0));
  LossScale off;
  p.mutable_grad() = at::tensor({3.f, 4.f});
  EXPECT_DOUBLE_EQ(off.step(sgd, {p}, 0.5, std::numeric_limits<double>::infinity()), 5.0);
  EXPECT_TRUE(at::equal(p, at::tensor({-2.f, -3.f})));
  p.mutable_grad() = at::tensor({NAN, 1.f});
  EXPECT_TRUE(std::isnan(off.step(sgd, {p}, 0.5, std::numeric_limits<double>::infinity())));
  EXPECT_TRUE(at::equal(p, at::tensor({-2.f, -3.f})));
  EXPECT_DOUBLE_EQ(off.scale, 65536.0);
}

}  // namespace
}  // namespace sd::train
