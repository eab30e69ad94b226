// The convolutions a TinyViT Conv2d_BN trains with besides LibTorch's (kernels/depthwise_conv.h,
// kernels/pointwise_conv.h) against ATen's in double: the depthwise 3x3 in both of its layouts,
// channels-last (AVX-512) and NCHW (AVX2), and the NCHW 1x1.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>

#include "kernels/avx2.h"
#include "kernels/avx512_math.h"
#include "kernels/depthwise_conv.h"
#include "kernels/pointwise_conv.h"
#include "models/tiny_vit.h"

namespace sd::models {
namespace {

using Convolution = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& weight)>;

double largest(const at::Tensor& t) { return t.abs().max().item<double>(); }

// `ours` against `aten` in double on x and weight: the output (in x's layout), the input gradient
// and the weight gradient within fp32 rounding of the double ones.
void check(const Convolution& ours, const Convolution& aten, const at::Tensor& x_values,
           const at::Tensor& weight_values) {
  const at::Tensor x = x_values.clone().requires_grad_();
  const at::Tensor weight = weight_values.clone().requires_grad_();
  const at::Tensor x64 = x.detach().to(at::kDouble).requires_grad_();
  const at::Tensor weight64 = weight.detach().to(at::kDouble).requires_grad_();
  const at::Tensor y = ours(x, weight), y64 = aten(x64, weight64);
  const auto layout = x.suggest_memory_format();
  EXPECT_TRUE(y.is_contiguous(layout));
  ASSERT_EQ(y.sizes(), y64.sizes());
  const at::Tensor grad = at::randn(y.sizes()).contiguous(layout);
  y.backward(grad);
  y64.backward(grad.to(at::kDouble));
  const auto shape = x.sizes();
  EXPECT_LE(largest(y.to(at::kDouble) - y64), 1e-6 * largest(y64)) << shape;
  EXPECT_LE(largest(x.grad().to(at::kDouble) - x64.grad()), 1e-6 * largest(x64.grad())) << shape;
  EXPECT_LE(largest(weight.grad().to(at::kDouble) - weight64.grad()),
            1e-6 * largest(weight64.grad()))
      << shape;
}

void check_depthwise(at::IntArrayRef shape, at::MemoryFormat layout) {
  at::manual_seed(0);
  const int64_t channels = shape[1];
  const at::Tensor x = at::randn(shape).contiguous(layout);
  const at::Tensor weight = at::randn({channels, 1, 3, 3});
  ASSERT_TRUE(kernels::depthwise_conv3x3_applies(x, weight, 1, 1, channels));
  check(
      kernels::depthwise_conv3x3,
      [&](const at::Tensor& x, const at::Tensor& w) {
        return at::conv2d(x, w, {}, 1, 1, 1, channels);
      },
      x, weight);
}

TEST(DepthwiseConv, MatchesAtensInDouble) {
  if (!kernels::avx512::cpu_has_avx512()) GTEST_SKIP() << "the function needs AVX-512";
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  check_depthwise({2, 3, 7, 9}, channels_last);   // fewer channels than a register
  check_depthwise({1, 16, 5, 6}, channels_last);  // whole registers
  check_depthwise({2, 37, 9, 8}, channels_last);  // two registers and a tail of 5
  check_depthwise({1, 1, 1, 1}, channels_last);   // every tap but the centre is padding
}

TEST(DepthwiseConv, MatchesAtensInDoubleNchw) {
  if (!kernels::cpu_has_avx2_fma()) GTEST_SKIP() << "the NCHW passes need AVX2 and FMA";
  const auto nchw = at::MemoryFormat::Contiguous;
  check_depthwise({2, 3, 7, 9}, nchw);    // rows of a register and a tail
  check_depthwise({1, 4, 5, 16}, nchw);   // rows of whole registers
  check_depthwise({2, 5, 11, 21}, nchw);  // two registers and a tail of 5
  check_depthwise({1, 2, 1, 1}, nchw);    // every tap but the centre is padding
  check_depthwise({2, 3, 40, 3}, nchw);   // rows narrower than a register
}

std::string node(const at::Tensor& y) { return y.grad_fn()->name(); }

// A training Conv2d_BN's convolution of x (8 channels) is the depthwise function where it is
// depthwise with stride 1, and LibTorch's for a strided or a dense one.
void expect_depthwise_layers_only(const at::Tensor& x) {
  tiny_vit::Conv2d_BN depthwise(8, 8, 3, 1, 1, 8), strided(8, 8, 3, 2, 1, 8), dense(8, 8, 3, 1, 1);
  EXPECT_NE(node(depthwise->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_EQ(node(strided->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_EQ(node(dense->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_FALSE(
      kernels::depthwise_conv3x3_applies(x.to(at::kDouble), depthwise->c->weight, 1, 1, 8));
  EXPECT_FALSE(
      kernels::depthwise_conv3x3_applies(x.transpose(2, 3), depthwise->c->weight, 1, 1, 8));
}

TEST(DepthwiseConv, RunsForTrainingDepthwiseLayersOnly) {
  if (!kernels::avx512::cpu_has_avx512()) GTEST_SKIP() << "the function needs AVX-512";
  expect_depthwise_layers_only(at::randn({2, 8, 6, 6}).contiguous(at::MemoryFormat::ChannelsLast));
}

TEST(DepthwiseConv, RunsForTrainingDepthwiseLayersOnlyNchw) {
  if (!kernels::cpu_has_avx2_fma()) GTEST_SKIP() << "the NCHW passes need AVX2 and FMA";
  expect_depthwise_layers_only(at::randn({2, 8, 6, 6}));
}

TEST(PointwiseConv, MatchesAtensInDouble) {
  at::manual_seed(0);
  // A shape, and one pixel: the samples' weight gradients still add up.
  for (const auto& [shape, outputs] : std::vector<std::pair<std::vector<int64_t>, int64_t>>{
           {{2, 3, 7, 9}, 5}, {{1, 16, 5, 6}, 4}, {{3, 8, 1, 1}, 8}, {{2, 64, 32, 32}, 24}}) {
    const at::Tensor x = at::randn(shape), weight = at::randn({outputs, shape[1], 1, 1});
    ASSERT_TRUE(kernels::pointwise_conv_applies(x, weight, 1, 0, 1));
    check(
        kernels::pointwise_conv,
        [](const at::Tensor& x, const at::Tensor& w) { return at::conv2d(x, w); }, x, weight);
  }
}

TEST(PointwiseConv, LeavesOutTheGradientsNobodyAsksFor) {
  const at::Tensor x = at::randn({2, 4, 3, 3});  // an input that needs no gradient
  const at::Tensor weight = at::randn({6, 4, 1, 1}).requires_grad_();
  kernels::pointwise_conv(x, weight).sum().backward();
  EXPECT_FALSE(x.grad().defined());
  // d Σy / d weight[o][i] = Σ x[., i, ., .], whatever o.
  const at::Tensor expected = x.sum({0, 2, 3}).view({1, 4, 1, 1}).expand({6, 4, 1, 1});
  EXPECT_TRUE(at::allclose(weight.grad(), expected, 1e-5, 1e-5));
}

TEST(PointwiseConv, RunsForTrainingNchwOneByOneLayersOnly) {
  tiny_vit::Conv2d_BN pointwise(8, 12), strided(8, 12, 1, 2), padded(8, 12, 1, 1, 1),
      wide(8, 12, 3, 1, 1);
  const at::Tensor x = at::randn({2, 8, 6, 6});
  EXPECT_NE(node(pointwise->convolve(x)).find("PointwiseConvFunction"), std::string::npos);
  for (auto* other : {&strided, &padded, &wide})
    EXPECT_EQ(node((*other)->convolve(x)).find("PointwiseConvFunction"), std::string::npos);
  const at::Tensor channels_last = x.contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_FALSE(kernels::pointwise_conv_applies(channels_last, pointwise->c->weight, 1, 0, 1));
  EXPECT_FALSE(kernels::pointwise_conv_applies(x.to(at::kDouble), pointwise->c->weight, 1, 0, 1));
}

}  // namespace
}  // namespace sd::models
