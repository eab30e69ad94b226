#include "eval/prompts.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/fixtures.h"
#include "data/rle.h"
#include "eval/evaluator.h"

namespace sd::eval {
namespace {

// A disc of radius 40 centred at (100, 80) in a 200x300 (HxW) image.
data::Annotation disc(int64_t id) {
  at::Tensor m = at::zeros({200, 300}, at::kByte);
  for (int r = 0; r < 200; ++r)
    for (int c = 0; c < 300; ++c)
      if (std::hypot(c + 0.5 - 100, r + 0.5 - 80) < 40) m[r][c] = 1;
  data::Annotation a;
  a.id = id;
  a.segmentation = data::rle_encode(m);
  auto box = data::rle_bbox(a.segmentation);
  a.bbox = {double(box[0]), double(box[1]), double(box[2]), double(box[3])};
  a.point_coords = {{100.5, 80.5}};
  return a;
}

TEST(PromptSpecs, ParseAndName) {
  std::vector<PromptSpec> specs = parse_prompt_specs(kDefaultPrompts);
  ASSERT_EQ(specs.size(), 8u);
  EXPECT_EQ(specs[0].name(), "box");
  EXPECT_EQ(specs[2].name(), "center");
  EXPECT_EQ(specs[3].kind, PromptSpec::Kind::fgbg);
  EXPECT_EQ(specs[3].distance, 100);
  EXPECT_EQ(specs[7].name(), "fgbg@500");
  EXPECT_EQ(parse_prompt_specs("fgbg@12.5")[0].name(), "fgbg@12.5");
  for (const char* bad : {"boxes", "fgbg@", "fgbg@-3", "fgbg@10px", "box,,point"})
    EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([&] { parse_prompt_specs(bad); }),
                 "is not a prompt kind")
        << bad;
}

TEST(PromptSpecs, MultimaskDefaults) {
  auto specs = parse_prompt_specs("box,point,center,fgbg@100");
  std::vector<Multimask> expected = {Multimask::off, Multimask::score, Multimask::score,
                                     Multimask::off};
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_EQ(multimask_for(Multimask::per_kind, specs[i]), expected[i]) << specs[i].name();
    EXPECT_EQ(multimask_for(Multimask::oracle, specs[i]), Multimask::oracle);
  }
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] { parse_multimask("best"); }),
               "'best'");
}

TEST(FgbgPoints, ForegroundInsideBackgroundOutsideAtTheDistance) {
  for (int64_t id = 1; id <= 50; ++id) {
    data::Annotation a = disc(id);
    at::Tensor mask = data::rle_decode(a.segmentation);
    for (double d : {45.0, 90.0, 120.0}) {  // beyond the radius: always placeable
      auto pair = fgbg_points(a, mask, d, /*seed=*/7);
      ASSERT_TRUE(pair) << id << " " << d;
      EXPECT_NEAR(std::hypot(pair->bg[0] - pair->fg[0], pair->bg[1] - pair->fg[1]), d, 1e-9);
      EXPECT_EQ(mask[int64_t(pair->fg[1])][int64_t(pair->fg[0])].item<int>(), 1);
      EXPECT_EQ(mask[int64_t(pair->bg[1])][int64_t(pair->bg[0])].item<int>(), 0);
      EXPECT_TRUE(pair->bg[0] >= 0 && pair->bg[0] < 300 && pair->bg[1] >= 0 && pair->bg[1] < 200);
    }
  }
}

TEST(FgbgPoints, SeededAndVaried) {
  data::Annotation a = disc(3);
  at::Tensor mask = data::rle_decode(a.segmentation);
  auto x = fgbg_points(a, mask, 50, 1), y = fgbg_points(a, mask, 50, 1),
       z = fgbg_points(a, mask, 50, 2);
  ASSERT_TRUE(x && y && z);
  EXPECT_EQ(x->fg, y->fg);
  EXPECT_EQ(x->bg, y->bg);
  EXPECT_TRUE(x->fg != z->fg || x->bg != z->bg);
}

TEST(FgbgPoints, ImpossiblePlacementGivesNone) {
  // Farther than the image's diagonal: every direction leaves the image.
  data::Annotation a = disc(1);
  at::Tensor mask = data::rle_decode(a.segmentation);
  EXPECT_FALSE(fgbg_points(a, mask, 400, 0));
  EXPECT_FALSE(make_prompt(a, mask, parse_prompt_specs("fgbg@400")[0], 0));
}

TEST(MakePrompt, KindsInOriginalPixels) {
  data::Annotation a = disc(1);
  at::Tensor mask = data::rle_decode(a.segmentation);
  auto specs = parse_prompt_specs("box,point,center,fgbg@60");
  auto box = make_prompt(a, mask, specs[0], 0);
  ASSERT_TRUE(box && box->box.defined());
  EXPECT_FALSE(box->point_coords.defined());
  EXPECT_TRUE(at::equal(box->box, at::tensor({60.f, 40.f, 140.f, 120.f})));
  auto point = make_prompt(a, mask, specs[1], 0);
  ASSERT_TRUE(point);
  EXPECT_TRUE(at::equal(point->point_coords, at::tensor({100.5f, 80.5f}).view({1, 2})));
  EXPECT_EQ(point->point_labels.item<int>(), 1);
  auto centre = make_prompt(a, mask, specs[2], 0);
  ASSERT_TRUE(centre);
  EXPECT_NEAR(centre->point_coords[0][0].item<float>(), 100, 1.0);
  EXPECT_NEAR(centre->point_coords[0][1].item<float>(), 80, 1.0);
  auto two = make_prompt(a, mask, specs[3], 0);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->point_coords.sizes(), (at::IntArrayRef{2, 2}));
  EXPECT_TRUE(at::equal(two->point_labels, at::tensor({1, 0}, at::kInt)));
  EXPECT_EQ(describe(*two).rfind("points ", 0), 0u);

  a.point_coords.clear();
  EXPECT_FALSE(make_prompt(a, mask, specs[1], 0));  // no point_coords: no `point` prompt
}

}  // namespace
}  // namespace sd::eval
