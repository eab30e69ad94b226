#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/config_table_testing.h"
#include "common/fixtures.h"
#include "data/rle.h"
#include "finetune/config.h"
#include "finetune/mask_loss.h"
#include "finetune/training_prompts.h"
#include "io/config.h"
#include "util/random.h"

namespace sd::finetune {
namespace {

TEST(MaskLoss, FocalAndDiceHaveTheirClosedForms) {
  // Logits 0: p = 1/2 everywhere. Target all ones: focal = 0.25 * ln 2 * (1/2)^2 per pixel.
  at::Tensor logits = at::zeros({1, 1, 4, 4});
  at::Tensor ones = at::ones({1, 1, 4, 4});
  EXPECT_NEAR(focal_loss(logits, ones).item<double>(), 0.25 * std::log(2.0) * 0.25, 1e-7);
  EXPECT_NEAR(focal_loss(logits, at::zeros_like(ones)).item<double>(), 0.75 * std::log(2.0) * 0.25,
              1e-7);
  // dice = 1 - (2 * 8 + 1) / (8 + 16 + 1)
  EXPECT_NEAR(dice_loss(logits, ones).item<double>(), 1.0 - 17.0 / 25.0, 1e-7);
  EXPECT_NEAR(bce_loss(logits, ones).item<double>(), std::log(2.0), 1e-7);
  // A confident, right mask costs (almost) nothing.
  EXPECT_LT((20 * focal_loss(100 * (2 * ones - 1), ones) + bce_loss(100 * (2 * ones - 1), ones))
                .item<double>(),
            1e-6);
}

TEST(MaskLoss, IousOfThresholdedMasks) {
  at::Tensor logits = at::full({1, 2, 2, 2}, -1.0);
  logits[0][0][0][0] = 1;  // mask 0: one pixel; mask 1: empty
  at::Tensor target = at::zeros({1, 2, 2, 2});
  target[0][0][0][0] = 1;
  target[0][0][0][1] = 1;
  at::Tensor iou = mask_ious(logits, target);
  EXPECT_FLOAT_EQ(iou[0][0].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(iou[0][1].item<float>(), 1.0f);  // both empty
}

TEST(MaskLoss, OnlyTheBestOfThreeMasksLearns) {
  at::Tensor target = at::zeros({1, 1, 8, 8});
  target.slice(2, 0, 4).fill_(1);
  at::Tensor logits = at::randn({1, 3, 8, 8});
  logits[0][1] = 50 * (2 * target[0][0] - 1);  // mask 1 is right
  logits.requires_grad_(true);
  at::Tensor ious = at::full({1, 3}, 0.5).requires_grad_(true);
  PromptLoss l = prompt_loss(logits, ious, target, MaskLoss::focal_dice_iou);
  EXPECT_EQ(l.kept, 1);
  l.loss.backward();
  EXPECT_EQ(logits.grad()[0][0].abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(logits.grad()[0][2].abs().sum().item<float>(), 0.0f);
  EXPECT_GT(ious.grad().abs().min().item<float>(), 0.0f);  // every IoU prediction learns
  EXPECT_TRUE(prompt_loss(logits, ious, target, MaskLoss::bce_dice).loss.requires_grad());
}

data::Record record_with_squares(int n) {
  data::Record r;
  r.image.height = 64;
  r.image.width = 64;
  for (int i = 0; i < n; ++i) {
    at::Tensor m = at::zeros({64, 64}, at::kByte);
    m.slice(0, 4 * i, 4 * i + 8).slice(1, 4 * i, 4 * i + 8).fill_(1);
    data::Annotation a;
    a.id = i;
    a.segmentation = data::rle_encode(m);
    a.bbox = {4.0 * i, 4.0 * i, 8, 8};
    a.point_coords = {{4.0 * i + 4, 4.0 * i + 4}};
    r.annotations.push_back(a);
  }
  r.annotations.push_back(r.annotations[0]);
  r.annotations.back().segmentation =
      data::rle_encode(at::zeros({64, 64}, at::kByte));  // empty: never drawn
  return r;
}

TEST(TrainingPrompts, SeededDrawsWithoutReplacementInKindOrder) {
  const data::Record r = record_with_squares(6);
  const auto kinds = data::parse_prompt_specs("box,point");
  auto a = sample_prompts(r, kinds, 4, rng::prompt_seed(1, 0, "sa_1"));
  auto b = sample_prompts(r, kinds, 4, rng::prompt_seed(1, 0, "sa_1"));
  ASSERT_EQ(a.size(), 4u);
  std::set<int64_t> boxes;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].spec.name(), i % 2 ? "point" : "box");
    EXPECT_TRUE(at::equal(a[i].mask, b[i].mask));
    EXPECT_GT(a[i].mask.sum().item<int64_t>(), 0);
    boxes.insert(a[i].mask.nonzero()[0][0].item<int64_t>());
  }
  EXPECT_EQ(boxes.size(), 4u) << "drawn without replacement";
  EXPECT_EQ(sample_prompts(r, kinds, 20, 7).size(), 6u) << "at most every non-empty annotation";
  EXPECT_NE(rng::prompt_seed(1, 0, "sa_1"), rng::prompt_seed(1, 1, "sa_1"));
  EXPECT_NE(rng::prompt_seed(1, 0, "sa_1"), rng::prompt_seed(1, 0, "sa_2"));
}

// Without annotations, grid and random give their points (no mask: teacher targets); mixed
// with mask kinds, each kind takes its turn.
TEST(TrainingPrompts, GridAndRandomNeedNoAnnotation) {
  data::Record plain;
  plain.image.height = 40;
  plain.image.width = 80;
  plain.image.file_name = "p/1";
  const auto grid = sample_prompts(plain, data::parse_prompt_specs("grid@3"), 5, 11);
  ASSERT_EQ(grid.size(), 5u);
  std::set<std::pair<float, float>> points;
  for (const TrainingPrompt& p : grid) {
    EXPECT_FALSE(p.mask.defined());
    EXPECT_EQ(p.spec.name(), "grid@3");
    points.insert(
        {p.prompt.point_coords[0][0].item<float>(), p.prompt.point_coords[0][1].item<float>()});
  }
  EXPECT_EQ(points.size(), 5u) << "grid points drawn without replacement";
  EXPECT_EQ(sample_prompts(plain, data::parse_prompt_specs("grid@2"), 10, 11).size(), 4u);
  EXPECT_EQ(sample_prompts(plain, data::parse_prompt_specs("random@3"), 10, 11).size(), 3u);

  const data::Record r = record_with_squares(6);
  const auto mixed = sample_prompts(r, data::parse_prompt_specs("box,random@8"), 6, 5);
  ASSERT_EQ(mixed.size(), 6u);
  for (size_t i = 0; i < mixed.size(); ++i) {
    EXPECT_EQ(mixed[i].spec.name(), i % 2 ? "random@8" : "box");
    EXPECT_EQ(mixed[i].mask.defined(), i % 2 == 0);
  }
}

TEST(TrainingPrompts, ErrorClicksLieWhereTheMasksDisagree) {
  at::Tensor target = at::zeros({8, 8}, at::kBool);
  target[2][3] = true;  // missed: a foreground click
  at::Tensor predicted = at::zeros({8, 8}, at::kBool);
  predicted[7][7] = true;  // outside the valid 6x6 area: ignored
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  std::optional<Click> c = error_click(predicted, target, 6, 6, 4.0, g);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->label, 1);
  EXPECT_DOUBLE_EQ(c->x, 3.5 * 4);
  EXPECT_DOUBLE_EQ(c->y, 2.5 * 4);
  predicted[2][3] = true;
  EXPECT_FALSE(error_click(predicted, target, 6, 6, 4.0, g));
  target[2][3] = false;
  c = error_click(predicted, target, 6, 6, 4.0, g);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->label, 0);  // a false positive: a background click
}

TEST(FinetuneConfig, DefaultsParseAndDistillOnlyKeysAreAbsent) {
  nlohmann::json j = finetune_config_defaults();
  EXPECT_FALSE(j.contains("init"));
  EXPECT_FALSE(j.contains("layer_decay"));
  sd::testing::expect_well_formed(finetune_config_table());
  j["student"] = "s.pth";
  FinetuneConfig c = finetune_config_from_json(j);
  EXPECT_EQ(c.encoder_lr, 0.0);
  EXPECT_EQ(c.target, Target::teacher);
  EXPECT_EQ(c.loop.lr, 1e-4);
  j["holdout"] = 1.0;
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([&] { finetune_config_from_json(j); }),
               "config key 'holdout'");
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([&] {
                 io::merge_config(finetune_config_defaults(), {{"refine_iter", 1}}, "ft.json");
               }),
               "refine_iter");
}

TEST(FinetuneConfig, InitialValuesAreTheTablesDefaults) {
  sd::testing::expect_initial_values_are_defaults(finetune_config_table());
  EXPECT_EQ(FinetuneConfig{}.loop.epochs, 4);         // a decoder's, not the distillation's 8
  EXPECT_EQ(FinetuneConfig{}.loop.layer_decay, 1.0);  // not a key here: the distillation's
}

TEST(FinetuneConfig, SharesTheLoopsKeysAndItsChecks) {
  const nlohmann::json& d = finetune_config_defaults();
  for (const io::KeyInfo& k : train::train_config_table().keys()) {
    if (k.key == "init" || k.key == "layer_decay" || k.key == "loss" ||
        k.key == "loss_ignore_padding")
      continue;
    EXPECT_TRUE(d.contains(k.key)) << k.key;
  }
  EXPECT_EQ(d.at("lr"), 1e-4);  // a decoder's defaults
  EXPECT_EQ(d.at("clip_grad"), 1.0);
  EXPECT_EQ(d.at("weight_decay"), train::train_config_defaults().at("weight_decay"));
  const FinetuneConfig c = finetune_config_from_json({{"student", "s.pth"}});
  const train::TrainConfig distill = train::train_config_from_json(nlohmann::json::object());
  EXPECT_EQ(c.loop.init, distill.init);  // the distillation's own keys keep their defaults
  EXPECT_EQ(c.loop.layer_decay, distill.layer_decay);
  EXPECT_EQ(c.loop.loss_ignore_padding, distill.loss_ignore_padding);
  EXPECT_EQ(c.loop.loss, distill.loss);
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 finetune_config_from_json({{"student", "s.pth"}, {"min_lr", 1.0}});
               }),
               "config key 'min_lr' = 1.0: must be in [0, lr]");
}

TEST(FinetuneConfig, ChoicesAreWordsAndOthersAreRefusedListingThem) {
  const FinetuneConfig c =
      finetune_config_from_json({{"student", "s.pth"}, {"target", "gt"}, {"loss", "bce_dice"}});
  EXPECT_EQ(c.target, Target::gt);
  EXPECT_EQ(c.loss, MaskLoss::bce_dice);
  auto error = [](const nlohmann::json& given) {
    return sd::testing::error_of([&] { finetune_config_from_json(given); });
  };
  EXPECT_PRED2(sd::testing::contains, error({{"student", "s.pth"}, {"target", "truth"}}),
               "config key 'target' = \"truth\": must be teacher or gt");
  EXPECT_PRED2(sd::testing::contains, error({{"student", "s.pth"}, {"loss", "dice"}}),
               "config key 'loss' = \"dice\": must be focal_dice_iou or bce_dice");
  EXPECT_PRED2(sd::testing::contains, error({{"student", "s.pth"}, {"prompts", "box,corner"}}),
               "config key 'prompts' = \"box,corner\"");
  EXPECT_PRED2(sd::testing::contains, error({{"student", "s.pth"}, {"prompts_per_image", 1.5}}),
               "an integer");
  EXPECT_PRED2(sd::testing::contains, error(nlohmann::json::object()), "config key 'student'");
}

TEST(FinetuneConfig, AConfigWrittenThenReadIsTheSame) {
  nlohmann::json given = finetune_config_defaults();
  given.update({{"student", "run"},
                {"teacher_checkpoint", "sam.pth"},
                {"encoder_lr", 1e-5},
                {"train_prompt_encoder", true},
                {"prompts", "box,fgbg@50"},
                {"target", "gt"},
                {"loss", "bce_dice"},
                {"holdout", 0.5},
                {"device", "cpu"},
                {"amp", "fp16"},
                {"data", {"sa1b"}},
                {"epochs", 2},
                {"patience", 0}});
  const FinetuneConfig c = finetune_config_from_json(given, "config.json");
  EXPECT_EQ(c.loop.json, given);  // the whole config, as RUN/config.json holds it
  const FinetuneConfig again = finetune_config_from_json(c.loop.json, "config.json");
  EXPECT_EQ(again.loop.json, given);
  EXPECT_EQ(again.loop.amp, models::Amp::fp16);
  EXPECT_EQ(again.loop.epochs, 2);
  EXPECT_EQ(again.loop.data, std::vector<std::string>{"sa1b"});
  EXPECT_EQ(again.encoder_lr, 1e-5);
  EXPECT_EQ(again.prompts, "box,fgbg@50");
  EXPECT_EQ(again.loss, MaskLoss::bce_dice);
  EXPECT_TRUE(again.train_prompt_encoder);
}

}  // namespace
}  // namespace sd::finetune
