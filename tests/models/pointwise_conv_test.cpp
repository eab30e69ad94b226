// TinyViT's 1 x 1 convolutions in NCHW training (kernels/pointwise_conv.h) against ATen's in
// double.
#include "kernels/pointwise_conv.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "models/tiny_vit.h"

namespace sd::models {
namespace {

double largest(const at::Tensor& t) { return t.abs().max().item<double>(); }

// Output, input gradient and weight gradient within fp32 rounding of the double ones.
void check(at::IntArrayRef shape, int64_t outputs) {
  at::manual_seed(0);
  const at::Tensor x = at::randn(shape).requires_grad_();
  const at::Tensor weight = at::randn({outputs, shape[1], 1, 1}).requires_grad_();
  const at::Tensor x64 = x.detach().to(at::kDouble).requires_grad_();
  const at::Tensor weight64 = weight.detach().to(at::kDouble).requires_grad_();
  ASSERT_TRUE(kernels::pointwise_conv_applies(x, weight, 1, 0, 1));
  const at::Tensor y = kernels::pointwise_conv(x, weight);
  const at::Tensor y64 = at::conv2d(x64, weight64);
  EXPECT_TRUE(y.is_contiguous());
  ASSERT_EQ(y.sizes(), y64.sizes());
  const at::Tensor grad = at::randn(y.sizes());
  y.backward(grad);
  y64.backward(grad.to(at::kDouble));
  EXPECT_LE(largest(y.to(at::kDouble) - y64), 1e-6 * largest(y64)) << shape;
  EXPECT_LE(largest(x.grad().to(at::kDouble) - x64.grad()), 1e-6 * largest(x64.grad())) << shape;
  EXPECT_LE(largest(weight.grad().to(at::kDouble) - weight64.grad()),
            1e-6 * largest(weight64.grad()))
      << shape;
}

TEST(PointwiseConv, MatchesAtensInDouble) {
  check({2, 3, 7, 9}, 5);
  check({1, 16, 5, 6}, 4);
  check({3, 8, 1, 1}, 8);  // one pixel: the samples' weight gradients still add up
  check({2, 64, 32, 32}, 24);
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
  const auto node = [](const at::Tensor& y) { return y.grad_fn()->name(); };
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
