#include "data/prompts.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/fixtures.h"
#include "data/dataset.h"
#include "util/error.h"

namespace sd::data {
namespace {

Annotation annotation_of(const at::Tensor& mask, int64_t id = 1) {
  Annotation a;
  a.id = id;
  a.segmentation = rle_encode(mask);
  auto b = rle_bbox(a.segmentation);
  a.bbox = {double(b[0]), double(b[1]), double(b[2]), double(b[3])};
  a.area = rle_area(a.segmentation);
  a.point_coords = {{{12.5, 7.5}}};
  return a;
}

TEST(Prompts, CentreIsFarthestFromBoundary) {
  // A 7x7 square at rows 2..8, cols 3..9 of a 20x30 mask: its centre pixel (5, 6) is the only
  // one 4 pixels from the outside.
  at::Tensor m = at::zeros({20, 30}, at::kByte);
  m.slice(0, 2, 9).slice(1, 3, 10).fill_(1);
  EXPECT_EQ(mask_centre(m), (std::array<int64_t, 2>{5, 6}));
  // Touching the image border counts as boundary: a full mask's centre is the image centre.
  EXPECT_EQ(mask_centre(at::ones({7, 7}, at::kByte)), (std::array<int64_t, 2>{3, 3}));
  // Ties (a 5x9 rectangle: cols 5..9 of row 4 are all 3 away) go to the first in row-major order.
  at::Tensor wide = at::zeros({20, 30}, at::kByte);
  wide.slice(0, 2, 7).slice(1, 3, 12).fill_(1);
  EXPECT_EQ(mask_centre(wide), (std::array<int64_t, 2>{4, 5}));
  // An L shape: the thick part wins. Rows 0..9 x cols 0..2 (thin) plus rows 5..9 x cols 0..9.
  at::Tensor l = at::zeros({12, 12}, at::kByte);
  l.slice(0, 1, 11).slice(1, 1, 4).fill_(1);
  l.slice(0, 4, 11).slice(1, 1, 11).fill_(1);
  auto c = mask_centre(l);
  EXPECT_GE(c[0], 6);
  EXPECT_GE(c[1], 3);
  EXPECT_EQ(l[c[0]][c[1]].item<int>(), 1);
  EXPECT_THROW(mask_centre(at::zeros({4, 4}, at::kByte)), Error);
}

TEST(Prompts, FromAnnotation) {
  at::Tensor m = at::zeros({20, 30}, at::kByte);
  m.slice(0, 2, 9).slice(1, 3, 10).fill_(1);
  Annotation a = annotation_of(m);
  EXPECT_TRUE(annotation_prompt(a, PromptKind::box).equal(at::tensor({3.f, 2.f, 10.f, 9.f})));
  EXPECT_TRUE(
      annotation_prompt(a, PromptKind::point).equal(at::tensor({12.5f, 7.5f}).view({1, 2})));
  EXPECT_TRUE(
      annotation_prompt(a, PromptKind::center).equal(at::tensor({6.5f, 5.5f}).view({1, 2})));
  for (uint64_t seed = 0; seed < 20; ++seed) {
    at::Tensor p = random_mask_point(a, seed);
    EXPECT_TRUE(p.equal(random_mask_point(a, seed)));
    const int x = static_cast<int>(p[0][0].item<float>()),
              y = static_cast<int>(p[0][1].item<float>());
    EXPECT_EQ(m[y][x].item<int>(), 1) << "seed " << seed;
  }
  EXPECT_THROW(annotation_prompt(a, PromptKind::fgbg), Error);  // two points: make_prompt
  a.point_coords.clear();
  EXPECT_THROW(annotation_prompt(a, PromptKind::point), Error);
}

// The centre prompt searches only the mask's box; on real masks it finds the same pixel as the
// search over the whole image.
TEST(Prompts, CentreOfSampleMasksMatchesWholeImageSearch) {
  Dataset d = Dataset::index_sa1b({testing::data_sample()}, nullptr);
  const Entry* dog = nullptr;
  for (const Entry& e : d.entries())
    if (e.id == "sa_100003") dog = &e;
  ASSERT_NE(dog, nullptr);
  const Record r = load_record(*dog);
  ASSERT_EQ(r.annotations.size(), 75u);
  for (const Annotation& a : r.annotations) {
    auto [row, col] = mask_centre(rle_decode(a.segmentation));
    EXPECT_TRUE(annotation_prompt(a, PromptKind::center)
                    .equal(at::tensor({col + 0.5f, row + 0.5f}).view({1, 2})))
        << "annotation " << a.id;
  }
}

TEST(Prompts, Into1024Frame) {
  // 30 wide, 20 high -> 1024 x int(20 * 1024 / 30 + 0.5) = 683: x scales by 1024/30, y by 683/20.
  at::Tensor m = at::zeros({20, 30}, at::kByte);
  m.slice(0, 2, 7).slice(1, 3, 12).fill_(1);
  Annotation a = annotation_of(m);
  at::Tensor box = annotation_prompt_1024(a, PromptKind::box, {20, 30});
  at::Tensor expected =
      at::tensor({3 * 1024.0 / 30, 2 * 683.0 / 20, 12 * 1024.0 / 30, 7 * 683.0 / 20})
          .to(at::kFloat);
  EXPECT_TRUE(box.allclose(expected, 0, 1e-4));
  at::Tensor point = annotation_prompt_1024(a, PromptKind::point, {20, 30});
  EXPECT_TRUE(
      point.allclose(at::tensor({12.5f * 1024 / 30, 7.5f * 683 / 20}).view({1, 2}), 0, 1e-4));
}

// A disc of radius 40 centred at (100, 80) in a 200x300 (HxW) image.
Annotation disc(int64_t id) {
  at::Tensor m = at::zeros({200, 300}, at::kByte);
  for (int r = 0; r < 200; ++r)
    for (int c = 0; c < 300; ++c)
      if (std::hypot(c + 0.5 - 100, r + 0.5 - 80) < 40) m[r][c] = 1;
  Annotation a;
  a.id = id;
  a.segmentation = rle_encode(m);
  auto box = rle_bbox(a.segmentation);
  a.bbox = {double(box[0]), double(box[1]), double(box[2]), double(box[3])};
  a.point_coords = {{100.5, 80.5}};
  return a;
}

TEST(PromptSpecs, ParseAndName) {
  std::vector<PromptSpec> specs =
      parse_prompt_specs("box,point,center,fgbg@100,fgbg@200,fgbg@300,fgbg@400,fgbg@500");
  ASSERT_EQ(specs.size(), 8u);
  EXPECT_EQ(specs[0].name(), "box");
  EXPECT_EQ(specs[2].name(), "center");
  EXPECT_EQ(specs[3].kind, PromptKind::fgbg);
  EXPECT_EQ(specs[3].distance, 100);
  EXPECT_EQ(specs[7].name(), "fgbg@500");
  EXPECT_EQ(parse_prompt_specs("fgbg@12.5")[0].name(), "fgbg@12.5");
  for (const char* bad : {"boxes", "fgbg@", "fgbg@-3", "fgbg@10px", "box,,point", "centre"})
    EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([&] { parse_prompt_specs(bad); }),
                 "is not a prompt kind")
        << bad;
  // The error names where the list came from, the entry, and the kinds there are.
  EXPECT_EQ(sd::testing::error_of([] { parse_prompt_specs("box,fgbg@x", "val_prompts"); }),
            "val_prompts: 'fgbg@x' is not a prompt kind (the kinds are box, point, center, fgbg@D "
            "with D > 0 pixels, and without masks grid@N (N x N points, 1 <= N <= 64) and "
            "random@K (K points, 1 <= K <= 4096); eval also takes everything[@N] (SAM's "
            "automatic masks, N x N points, 1 <= N <= 64))");
  EXPECT_EQ(parse_prompt_specs("everything,everything@16")[1].name(), "everything@16");
  EXPECT_FALSE(parse_prompt_specs("everything")[0].needs_mask());
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] { parse_prompt_specs(""); }),
               "--prompts: no prompt kind given");
}

TEST(PromptSpecs, GridAndRandomNeedNoMask) {
  const std::vector<PromptSpec> specs = parse_prompt_specs("grid@8,random@5,box");
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].kind, PromptKind::grid);
  EXPECT_EQ(specs[0].count, 8);
  EXPECT_EQ(specs[0].name(), "grid@8");
  EXPECT_EQ(specs[1].name(), "random@5");
  EXPECT_FALSE(specs[0].needs_mask());
  EXPECT_FALSE(specs[1].needs_mask());
  EXPECT_TRUE(specs[2].needs_mask());
  EXPECT_TRUE(specs[0].single_point());
  for (const char* bad : {"grid@0", "grid@65", "grid@", "grid@2.5", "random@0", "random@4097",
                          "random@-1", "grid", "random@k"})
    EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([&] { parse_prompt_specs(bad); }),
                 "is not a prompt kind")
        << bad;
}

// SAM's build_point_grid(n) scaled by (width, height): x = (i + 0.5) / n * w, row by row.
TEST(ImagePrompts, GridIsSamsPointGrid) {
  const auto grid = image_prompts(parse_prompt_specs("grid@2")[0], {10, 20}, 0, "a");
  ASSERT_EQ(grid.size(), 4u);
  const std::vector<std::array<float, 2>> expected = {{5, 2.5}, {15, 2.5}, {5, 7.5}, {15, 7.5}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(
        grid[i].point_coords.equal(at::tensor({expected[i][0], expected[i][1]}).view({1, 2})))
        << i << ": " << grid[i].point_coords;
    EXPECT_TRUE(grid[i].point_labels.equal(at::ones({1}, at::kInt)));
  }
  // np.linspace(1/6, 5/6, 3) * 30: 5, 15, 25.
  const auto three = image_prompts(parse_prompt_specs("grid@3")[0], {30, 30}, 0, "a");
  EXPECT_FLOAT_EQ(three[4].point_coords[0][0].item<float>(), 15.f);
  EXPECT_FLOAT_EQ(three[8].point_coords[0][1].item<float>(), 25.f);
}

TEST(ImagePrompts, RandomPointsAreSeededByImageAndInside) {
  const PromptSpec spec = parse_prompt_specs("random@50")[0];
  const auto a = image_prompts(spec, {100, 200}, 3, "street/0001");
  const auto again = image_prompts(spec, {100, 200}, 3, "street/0001");
  const auto other = image_prompts(spec, {100, 200}, 3, "street/0002");
  const auto reseeded = image_prompts(spec, {100, 200}, 4, "street/0001");
  ASSERT_EQ(a.size(), 50u);
  double max_x = 0, max_y = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float x = a[i].point_coords[0][0].item<float>(),
                y = a[i].point_coords[0][1].item<float>();
    EXPECT_TRUE(x >= 0 && x < 200 && y >= 0 && y < 100) << x << ", " << y;
    max_x = std::max<double>(max_x, x);
    max_y = std::max<double>(max_y, y);
    EXPECT_TRUE(a[i].point_coords.equal(again[i].point_coords));
  }
  EXPECT_GT(max_x, 100);  // spread over the image, not a corner
  EXPECT_GT(max_y, 50);
  EXPECT_FALSE(a[0].point_coords.equal(other[0].point_coords));
  EXPECT_FALSE(a[0].point_coords.equal(reseeded[0].point_coords));
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([&] {
                 image_prompts(parse_prompt_specs("box")[0], {4, 4}, 0, "a");
               }),
               "made from an annotation");
}

// Mask kinds on images without masks stop with an error naming the kinds that work there.
TEST(ImagePrompts, MaskKindsOnPlainImagesAreRefused) {
  const Dataset plain =
      Dataset::from_entries({Entry{"a", "p", "/p/a.png", "", nullptr, nullptr, {}, {}}});
  EXPECT_NO_THROW(check_prompts_fit(parse_prompt_specs("grid@4,random@2"), plain, "--prompts"));
  EXPECT_EQ(sd::testing::error_of(
                [&] { check_prompts_fit(parse_prompt_specs("grid@4,box"), plain, "--prompts"); }),
            "--prompts: 'box' needs annotation masks, and '/p/a.png' (a plain image) has none; "
            "the kinds that work on images without masks are grid@N and random@K (scored "
            "against the teacher's mask)");
  const Dataset annotated = Dataset::from_entries(
      {Entry{"sa_1", "", "/d/sa_1.jpg", "/d/sa_1.json", nullptr, nullptr, {}, {}}});
  EXPECT_NO_THROW(check_prompts_fit(parse_prompt_specs("box,grid@2"), annotated, "--prompts"));
}

TEST(FgbgPoints, ForegroundInsideBackgroundOutsideAtTheDistance) {
  for (int64_t id = 1; id <= 50; ++id) {
    Annotation a = disc(id);
    at::Tensor mask = rle_decode(a.segmentation);
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
  Annotation a = disc(3);
  at::Tensor mask = rle_decode(a.segmentation);
  auto x = fgbg_points(a, mask, 50, 1), y = fgbg_points(a, mask, 50, 1),
       z = fgbg_points(a, mask, 50, 2);
  ASSERT_TRUE(x && y && z);
  EXPECT_EQ(x->fg, y->fg);
  EXPECT_EQ(x->bg, y->bg);
  EXPECT_TRUE(x->fg != z->fg || x->bg != z->bg);
}

TEST(FgbgPoints, ImpossiblePlacementGivesNone) {
  // Farther than the image's diagonal: every direction leaves the image.
  Annotation a = disc(1);
  at::Tensor mask = rle_decode(a.segmentation);
  EXPECT_FALSE(fgbg_points(a, mask, 400, 0));
  EXPECT_FALSE(make_prompt(a, mask, parse_prompt_specs("fgbg@400")[0], 0));
}

TEST(MakePrompt, KindsInOriginalPixels) {
  Annotation a = disc(1);
  at::Tensor mask = rle_decode(a.segmentation);
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

  a.point_coords.clear();
  EXPECT_FALSE(make_prompt(a, mask, specs[1], 0));  // no point_coords: no `point` prompt
}

}  // namespace
}  // namespace sd::data
