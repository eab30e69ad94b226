#include "data/prompts.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/fixtures.h"
#include "data/rle.h"
#include "eval/evaluator.h"
#include "models/config.h"
#include "models/sam.h"

// What evaluation does with the prompt kinds of data/prompts.h.
namespace sd::eval {
namespace {

TEST(PromptSpecs, DefaultKinds) {
  std::vector<data::PromptSpec> specs = data::parse_prompt_specs(kDefaultPrompts);
  ASSERT_EQ(specs.size(), 8u);
  EXPECT_EQ(specs[0].name(), "box");
  EXPECT_EQ(specs[7].name(), "fgbg@500");
}

TEST(PromptSpecs, MultimaskDefaults) {
  auto specs = data::parse_prompt_specs("box,point,center,fgbg@100");
  std::vector<Multimask> expected = {Multimask::off, Multimask::score, Multimask::score,
                                     Multimask::off};
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_EQ(multimask_for(Multimask::per_kind, specs[i]), expected[i]) << specs[i].name();
    EXPECT_EQ(multimask_for(Multimask::oracle, specs[i]), Multimask::oracle);
  }
  EXPECT_PRED2(sd::testing::contains,
               sd::testing::error_of([] { parse_word<Multimask>("best", "--multimask"); }),
               "unknown --multimask 'best' (expected auto, score, oracle or off)");
}

TEST(PromptSpecs, DescribedInOriginalPixels) {
  at::Tensor mask = at::zeros({200, 300}, at::kByte);
  mask.slice(0, 40, 120).slice(1, 60, 140).fill_(1);
  data::Annotation a;
  a.id = 1;
  a.segmentation = data::rle_encode(mask);
  a.bbox = {60, 40, 80, 80};
  auto box = data::make_prompt(a, mask, data::parse_prompt_specs("box")[0], 0);
  ASSERT_TRUE(box);
  EXPECT_EQ(describe(*box).rfind("box ", 0), 0u);
  auto two = data::make_prompt(a, mask, data::parse_prompt_specs("fgbg@60")[0], 0);
  ASSERT_TRUE(two);
  EXPECT_EQ(describe(*two).rfind("points ", 0), 0u);
}

// An image without annotations is scored on grid and random points alone: one outcome per
// point, student mask against teacher mask, no ground truth (NaN).
TEST(ImagePrompts, ImageWithoutMasksIsScoredOnGridAndRandomPoints) {
  at::manual_seed(0);
  const models::Sam sam = models::build_sam(models::encoder_config_from_json(
      nlohmann::json::parse(R"({"embed_dims": [16, 32, 64, 320], "depths": [1, 1, 1, 1],
                                "num_heads": [1, 1, 2, 5], "window_sizes": [7, 7, 14, 7]})"),
      "test"));
  EvalSettings settings;
  settings.prompts = data::parse_prompt_specs("grid@2,random@3");
  Evaluator evaluator(sam, settings);
  data::Record plain;  // as the image reader gives a plain image's: its size, no annotations
  plain.image.height = 512;
  plain.image.width = 1024;
  const at::Tensor resized = at::randint(0, 256, {512, 1024, 3}, at::kByte);
  EvalReport report = evaluator.empty_report();
  std::vector<PromptMasks> masks;
  evaluator.evaluate_image("street/1", plain, resized, at::randn({1, 256, 64, 64}), report, &masks);
  ASSERT_EQ(report.outcomes.size(), 7u);
  EXPECT_EQ(masks.size(), 7u);
  EXPECT_EQ(report.images, 1);
  for (size_t i = 0; i < 7; ++i) {
    const PromptOutcome& o = report.outcomes[i];
    EXPECT_EQ(o.kind, i < 4 ? "grid@2" : "random@3");
    EXPECT_EQ(o.annotation, int64_t(i < 4 ? i : i - 4));
    EXPECT_TRUE(o.iou >= 0 && o.iou <= 1) << o.iou;
    EXPECT_TRUE(std::isnan(o.teacher_gt));
    EXPECT_EQ(o.width, 1024);
  }
  EXPECT_EQ(report.outcomes[0].prompt, describe(masks[0].prompt));
  EXPECT_PRED2(sd::testing::contains, report.outcomes[0].prompt, "256,128");  // (0.25 w, 0.25 h)
}

}  // namespace
}  // namespace sd::eval
