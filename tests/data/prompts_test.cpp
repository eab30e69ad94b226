#include "data/prompts.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

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
      annotation_prompt(a, PromptKind::point_coords).equal(at::tensor({12.5f, 7.5f}).view({1, 2})));
  EXPECT_TRUE(
      annotation_prompt(a, PromptKind::centre).equal(at::tensor({6.5f, 5.5f}).view({1, 2})));
  for (uint64_t seed = 0; seed < 20; ++seed) {
    at::Tensor p = annotation_prompt(a, PromptKind::random_point, seed);
    EXPECT_TRUE(p.equal(annotation_prompt(a, PromptKind::random_point, seed)));
    const int x = static_cast<int>(p[0][0].item<float>()),
              y = static_cast<int>(p[0][1].item<float>());
    EXPECT_EQ(m[y][x].item<int>(), 1) << "seed " << seed;
  }
  a.point_coords.clear();
  EXPECT_THROW(annotation_prompt(a, PromptKind::point_coords), Error);
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
    EXPECT_TRUE(annotation_prompt(a, PromptKind::centre)
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
  at::Tensor point = annotation_prompt_1024(a, PromptKind::point_coords, {20, 30});
  EXPECT_TRUE(
      point.allclose(at::tensor({12.5f * 1024 / 30, 7.5f * 683 / 20}).view({1, 2}), 0, 1e-4));
}

}  // namespace
}  // namespace sd::data
