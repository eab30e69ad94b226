#include "data/prompts.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/fixtures.h"
#include "data/rle.h"
#include "eval/evaluator.h"

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
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] { parse_multimask("best"); }),
               "'best'");
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

}  // namespace
}  // namespace sd::eval
