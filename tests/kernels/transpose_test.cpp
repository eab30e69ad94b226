// transposed_matrices: each matrix of a B x R x S tensor transposed into a contiguous B x S x R
// tensor, whole 8 x 8 blocks, tile edges and the rows and columns past the last block alike.
#include "kernels/transpose.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <array>

namespace sd::kernels {
namespace {

TEST(TransposedMatrices, EqualsAtensTransposeWhateverTheShape) {
  at::manual_seed(5);
  // Whole tiles (128 x 16), tiles cut short, and sizes that are no multiple of 8.
  for (const auto [b, r, s] : std::vector<std::array<int64_t, 3>>{{2, 256, 32},
                                                                  {2, 16384, 128},
                                                                  {1, 133, 37},
                                                                  {3, 7, 5},
                                                                  {1, 1, 9},
                                                                  {2, 9, 1},
                                                                  {1, 0, 4},
                                                                  {2, 160, 4096}}) {
    const at::Tensor t = at::randn({b, r, s});
    const at::Tensor out = transposed_matrices(t);
    EXPECT_TRUE(out.is_contiguous());
    ASSERT_EQ(out.sizes(), (at::IntArrayRef{b, s, r}));
    EXPECT_TRUE(at::equal(out, t.transpose(1, 2))) << b << " x " << r << " x " << s;
  }
}

TEST(TransposedMatrices, TakesStridedAndOtherTypedTensorsThroughAten) {
  const at::Tensor strided = at::randn({2, 40, 24}).transpose(1, 2);  // 2 x 24 x 40, not contiguous
  EXPECT_TRUE(at::equal(transposed_matrices(strided), strided.transpose(1, 2)));
  const at::Tensor doubles = at::randn({2, 19, 11}, at::kDouble);
  const at::Tensor out = transposed_matrices(doubles);
  EXPECT_EQ(out.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(out, doubles.transpose(1, 2)));
}

}  // namespace
}  // namespace sd::kernels
