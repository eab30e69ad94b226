// TinyViT's depthwise 3x3 convolution (kernels/depthwise_conv.h) against ATen's in double, in
// both of its layouts: channels-last (AVX-512) and NCHW (AVX2).
#include "kernels/depthwise_conv.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/avx2.h"
#include "kernels/avx512_math.h"
#include "models/tiny_vit.h"

namespace sd::models {
namespace {

double largest(const at::Tensor& t) { return t.abs().max().item<double>(); }

// Output, input gradient and weight gradient within fp32 rounding of the double ones.
void check(at::IntArrayRef shape, at::MemoryFormat layout = at::MemoryFormat::ChannelsLast) {
  at::manual_seed(0);
  const int64_t channels = shape[1];
  const at::Tensor x = at::randn(shape).contiguous(layout).requires_grad_();
  const at::Tensor weight = at::randn({channels, 1, 3, 3}).requires_grad_();
  const at::Tensor grad = at::randn(shape).contiguous(layout);
  const at::Tensor x64 = x.detach().to(at::kDouble).requires_grad_();
  const at::Tensor weight64 = weight.detach().to(at::kDouble).requires_grad_();
  ASSERT_TRUE(kernels::depthwise_conv3x3_applies(x, weight, 1, 1, channels));
  const at::Tensor y = kernels::depthwise_conv3x3(x, weight);
  const at::Tensor y64 = at::conv2d(x64, weight64, {}, 1, 1, 1, channels);
  EXPECT_TRUE(y.is_contiguous(layout));
  y.backward(grad);
  y64.backward(grad.to(at::kDouble));
  EXPECT_LE(largest(y.to(at::kDouble) - y64), 1e-6 * largest(y64)) << shape;
  EXPECT_LE(largest(x.grad().to(at::kDouble) - x64.grad()), 1e-6 * largest(x64.grad())) << shape;
  EXPECT_LE(largest(weight.grad().to(at::kDouble) - weight64.grad()),
            1e-6 * largest(weight64.grad()))
      << shape;
}

TEST(DepthwiseConv, MatchesAtensInDouble) {
  if (!kernels::avx512::cpu_has_avx512()) GTEST_SKIP() << "the function needs AVX-512";
  check({2, 3, 7, 9});   // fewer channels than a register
  check({1, 16, 5, 6});  // whole registers
  check({2, 37, 9, 8});  // two registers and a tail of 5
  check({1, 1, 1, 1});   // every tap but the centre is padding
}

TEST(DepthwiseConv, MatchesAtensInDoubleNchw) {
  if (!kernels::cpu_has_avx2_fma()) GTEST_SKIP() << "the NCHW passes need AVX2 and FMA";
  const auto nchw = at::MemoryFormat::Contiguous;
  check({2, 3, 7, 9}, nchw);    // rows of a register and a tail
  check({1, 4, 5, 16}, nchw);   // rows of whole registers
  check({2, 5, 11, 21}, nchw);  // two registers and a tail of 5
  check({1, 2, 1, 1}, nchw);    // every tap but the centre is padding
  check({2, 3, 40, 3}, nchw);   // rows narrower than a register
}

TEST(DepthwiseConv, RunsForTrainingDepthwiseLayersOnly) {
  if (!kernels::avx512::cpu_has_avx512()) GTEST_SKIP() << "the function needs AVX-512";
  const auto node = [](const at::Tensor& y) { return y.grad_fn()->name(); };
  tiny_vit::Conv2d_BN depthwise(8, 8, 3, 1, 1, 8), strided(8, 8, 3, 2, 1, 8), dense(8, 8, 3, 1, 1);
  const at::Tensor x = at::randn({2, 8, 6, 6}).contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_NE(node(depthwise->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_EQ(node(strided->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_EQ(node(dense->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_FALSE(
      kernels::depthwise_conv3x3_applies(x.to(at::kDouble), depthwise->c->weight, 1, 1, 8));
}

TEST(DepthwiseConv, RunsForTrainingDepthwiseLayersOnlyNchw) {
  if (!kernels::cpu_has_avx2_fma()) GTEST_SKIP() << "the NCHW passes need AVX2 and FMA";
  const auto node = [](const at::Tensor& y) { return y.grad_fn()->name(); };
  tiny_vit::Conv2d_BN depthwise(8, 8, 3, 1, 1, 8), strided(8, 8, 3, 2, 1, 8), dense(8, 8, 3, 1, 1);
  const at::Tensor x = at::randn({2, 8, 6, 6});
  EXPECT_NE(node(depthwise->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_EQ(node(strided->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_EQ(node(dense->convolve(x)).find("DepthwiseConvFunction"), std::string::npos);
  EXPECT_FALSE(
      kernels::depthwise_conv3x3_applies(x.transpose(2, 3), depthwise->c->weight, 1, 1, 8));
}

}  // namespace
}  // namespace sd::models
