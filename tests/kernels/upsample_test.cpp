// The separable bilinear upsampling against ATen's upsample_bilinear2d, which it replaces in
// postprocess_masks: same taps and weights, so the numbers agree to a float rounding.
#include "kernels/upsample.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <tuple>

namespace sd::kernels {
namespace {

// ATen computes each value as (a * w0 + b * w1) * h0 + (c * w0 + d * w1) * h1 too, in its own
// vector code: a value may round differently (one float ulp of the inputs' magnitude, ~2.4e-7
// for these), never by a wrong tap or weight (which would be ~1e-2).
constexpr double kTolerance = 1e-6;

at::Tensor aten_upsample(const at::Tensor& x, Size2 size, Size2 keep) {
  return at::upsample_bilinear2d(x, {size[0], size[1]}, /*align_corners=*/false)
      .slice(2, 0, keep[0])
      .slice(3, 0, keep[1]);
}

TEST(UpsampleBilinear, MatchesAtenOnUpAndDownScalingAndCrops) {
  at::NoGradGuard no_grad;
  at::manual_seed(0);
  const std::vector<std::tuple<Size2, Size2, Size2>> cases = {
      {{256, 256}, {1024, 1024}, {683, 1024}},  // SAM's first step, cropped to the input size
      {{683, 1024}, {1200, 1800}, {1200, 1800}},
      {{256, 256}, {1024, 1024}, {1024, 771}},
      {{17, 33}, {100, 61}, {100, 61}},    // scales that are not whole
      {{300, 200}, {123, 77}, {123, 77}},  // downscaling
      {{5, 7}, {5, 7}, {5, 7}},            // the same size: a copy
      {{1, 1}, {3, 4}, {3, 4}}};
  for (const auto& [in, size, keep] : cases) {
    at::Tensor x = at::randn({2, 3, in[0], in[1]});
    at::Tensor ours = kernels::upsample_bilinear(x, size, keep);
    ASSERT_EQ(ours.sizes(), (at::IntArrayRef{2, 3, keep[0], keep[1]}));
    EXPECT_LE((ours - aten_upsample(x, size, keep)).abs().max().item<double>(), kTolerance)
        << in[0] << "x" << in[1] << " -> " << size[0] << "x" << size[1];
  }
}

TEST(UpsampleBilinear, ReadsStridedInputsAsTheyAre) {
  at::NoGradGuard no_grad;
  at::Tensor x = at::randn({1, 4, 256, 256}).slice(1, 0, 1).slice(2, 0, 171);  // a cropped slice
  EXPECT_LE((kernels::upsample_bilinear(x, {684, 1024}, {684, 1000}) -
             aten_upsample(x.contiguous(), {684, 1024}, {684, 1000}))
                .abs()
                .max()
                .item<double>(),
            kTolerance);
}

TEST(UpsampleBilinear, KeepsTheAutogradGraphWhenAGradientIsWanted) {
  at::Tensor x = at::randn({1, 1, 8, 8}).requires_grad_(true);
  at::Tensor y = kernels::upsample_bilinear(x, {32, 32}, {20, 32});
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  at::Tensor expected = x.detach().clone().requires_grad_(true);
  aten_upsample(expected, {32, 32}, {20, 32}).sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), expected.grad()));
}

}  // namespace
}  // namespace sd::kernels
