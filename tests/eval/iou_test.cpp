#include "eval/iou.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/fixtures.h"

namespace sd::eval {
namespace {

at::Tensor rect(int64_t h, int64_t w, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  at::Tensor m = at::zeros({h, w}, at::kBool);
  m.slice(0, r0, r1).slice(1, c0, c1).fill_(true);
  return m;
}

TEST(MaskIou, KnownOverlaps) {
  // 10x10 and a 10x10 shifted right by 5: intersection 50, union 150.
  EXPECT_DOUBLE_EQ(mask_iou(rect(20, 30, 0, 10, 0, 10), rect(20, 30, 0, 10, 5, 15)), 50.0 / 150.0);
  // Contained: 4x4 inside 8x8.
  EXPECT_DOUBLE_EQ(mask_iou(rect(20, 30, 2, 6, 2, 6), rect(20, 30, 0, 8, 0, 8)), 16.0 / 64.0);
  EXPECT_DOUBLE_EQ(mask_iou(rect(20, 30, 0, 5, 0, 5), rect(20, 30, 10, 15, 10, 15)), 0.0);
  at::Tensor m = rect(20, 30, 3, 9, 4, 17);
  EXPECT_DOUBLE_EQ(mask_iou(m, m.clone()), 1.0);
  // 0/1 uint8 masks count the same as bool ones.
  EXPECT_DOUBLE_EQ(mask_iou(m.to(at::kByte), rect(20, 30, 3, 9, 4, 10)), 36.0 / 78.0);
}

TEST(MaskIou, BothEmptyIsOne) {
  EXPECT_DOUBLE_EQ(mask_iou(at::zeros({4, 5}, at::kBool), at::zeros({4, 5}, at::kBool)), 1.0);
  EXPECT_DOUBLE_EQ(mask_iou(at::zeros({4, 5}, at::kBool), rect(4, 5, 0, 1, 0, 1)), 0.0);
}

TEST(MaskIou, DifferentSizesAreAnError) {
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 mask_iou(at::zeros({4, 5}), at::zeros({5, 4}));
               }),
               "different sizes");
}

TEST(Histogram, BinsCoverZeroToOne) {
  Histogram h(10);
  for (double v : {0.0, 0.05, 0.1, 0.55, 0.999, 1.0}) h.add(v);
  EXPECT_EQ(h.counts, (std::vector<int64_t>{2, 1, 0, 0, 0, 1, 0, 0, 0, 2}));
  nlohmann::json j = h.to_json();
  EXPECT_EQ(j["edges"].size(), 11u);
  EXPECT_DOUBLE_EQ(j["edges"][10].get<double>(), 1.0);
}

}  // namespace
}  // namespace sd::eval
