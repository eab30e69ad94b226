// BatchNorm2d's training function (models/batch_norm.h) against torch's module and GELU in
// double precision: output, running statistics and gradients.
#include "kernels/batch_norm.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/avx2.h"
#include "kernels/avx512_math.h"
#include "models/tiny_vit.h"

namespace sd::models {
namespace {

double largest(const at::Tensor& t) { return t.abs().max().item<double>(); }

void expect_close(const at::Tensor& got, const at::Tensor& expected, double tolerance,
                  const char* what) {
  EXPECT_LE(largest(got.to(at::kDouble) - expected), tolerance * std::max(1.0, largest(expected)))
      << what;
}

// Both modules start from the same weights and statistics; the input is shifted and scaled
// away from mean 0 and variance 1 so that the statistics matter.
void check(at::IntArrayRef shape, bool gelu, c10::optional<double> momentum,
           at::MemoryFormat format) {
  at::manual_seed(0);
  const int64_t channels = shape[1];
  torch::nn::BatchNorm2d ours(torch::nn::BatchNorm2dOptions(channels).momentum(momentum));
  torch::nn::BatchNorm2d torch_bn(torch::nn::BatchNorm2dOptions(channels).momentum(momentum));
  {
    at::NoGradGuard no_grad;
    ours->weight.uniform_(0.5, 1.5);
    ours->bias.uniform_(-0.5, 0.5);
    ours->running_mean.uniform_(-1, 1);
    ours->running_var.uniform_(0.5, 2);
  }
  torch_bn->to(at::kDouble);
  {
    at::NoGradGuard no_grad;
    for (const auto& item : ours->named_parameters())
      torch_bn->named_parameters()[item.key()].copy_(item.value());
    for (const auto& item : ours->named_buffers())
      torch_bn->named_buffers()[item.key()].copy_(item.value());
  }
  ours->train();
  torch_bn->train();
  ASSERT_TRUE(kernels::fused_batch_norm_applies(*ours, at::empty(shape).contiguous(format)));
  for (int step = 0; step < 2; ++step) {
    const at::Tensor x = (at::randn(shape) * 3 + 2).contiguous(format).requires_grad_();
    const at::Tensor x64 = x.detach().to(at::kDouble).requires_grad_();
    const at::Tensor grad = at::randn(shape);
    const at::Tensor y = kernels::batch_norm_train(*ours, x, gelu);
    EXPECT_NE(y.grad_fn()->name().find("BatchNormFunction"), std::string::npos);
    at::Tensor y64 = torch_bn->forward(x64);
    if (gelu) y64 = at::gelu(y64);
    y.backward(grad);
    y64.backward(grad.to(at::kDouble));
    expect_close(y, y64, 2e-6, "output");
    expect_close(x.grad(), x64.grad(), 2e-5, "input's gradient");
    expect_close(ours->weight.grad(), torch_bn->weight.grad(), 2e-5, "weight's gradient");
    expect_close(ours->bias.grad(), torch_bn->bias.grad(), 2e-5, "bias's gradient");
    expect_close(ours->running_mean, torch_bn->running_mean, 1e-6, "running mean");
    expect_close(ours->running_var, torch_bn->running_var, 1e-6, "running variance");
    EXPECT_EQ(ours->num_batches_tracked.item<int64_t>(),
              torch_bn->num_batches_tracked.item<int64_t>());
    ours->zero_grad();
    torch_bn->zero_grad();
  }
}

TEST(BatchNormTrain, MatchesTorchsModuleAndGeluInDoubleChannelsLast) {
  if (!kernels::avx512::cpu_has_avx512()) GTEST_SKIP() << "the channels-last passes need AVX-512";
  const auto format = at::MemoryFormat::ChannelsLast;
  for (bool gelu : {false, true}) {
    check({2, 5, 7, 9}, gelu, 0.1, format);           // 5 channels: a masked block
    check({1, 16, 4, 4}, gelu, 0.1, format);          // whole registers only
    check({2, 37, 5, 6}, gelu, 0.1, format);          // two blocks and a tail; samples of 30 rows
    check({3, 4, 5, 5}, gelu, c10::nullopt, format);  // no momentum: the cumulative average
  }
}

TEST(BatchNormTrain, MatchesTorchsModuleAndGeluInDoubleNchw) {
  if (!kernels::cpu_has_avx2_fma()) GTEST_SKIP() << "the NCHW passes need AVX2 and FMA";
  const auto format = at::MemoryFormat::Contiguous;
  for (bool gelu : {false, true}) {
    check({2, 5, 7, 9}, gelu, 0.1, format);           // planes of 63: a masked tail
    check({1, 16, 4, 4}, gelu, 0.1, format);          // whole registers only
    check({2, 3, 150, 130}, gelu, 0.1, format);       // planes of two segments, the second short
    check({3, 4, 5, 5}, gelu, c10::nullopt, format);  // no momentum: the cumulative average
  }
}

TEST(BatchNormTrain, RunsWhereItAppliesAndTorchsModuleElsewhere) {
  tiny_vit::Conv2d_BN layer(4, 8);
  layer->train();
  const at::Tensor nchw = at::randn({2, 4, 6, 6});
  const at::Tensor channels_last = nchw.contiguous(at::MemoryFormat::ChannelsLast);
  const auto ours = [&](const at::Tensor& x, bool gelu) {
    const at::Tensor y = gelu ? layer->forward_gelu(x) : layer->forward(x);
    return y.grad_fn()->name().find("BatchNormFunction") != std::string::npos;
  };
  for (bool gelu : {false, true}) {
    EXPECT_EQ(ours(channels_last, gelu), kernels::avx512::cpu_has_avx512());
    EXPECT_EQ(ours(nchw, gelu), kernels::cpu_has_avx2_fma());
  }
  const at::Tensor strided = at::randn({2, 8, 6, 12}).slice(3, 0, 12, 2);  // neither layout
  EXPECT_FALSE(kernels::fused_batch_norm_applies(*layer->bn, strided));
  torch::nn::BatchNorm2d untracked(torch::nn::BatchNorm2dOptions(4).track_running_stats(false));
  EXPECT_FALSE(kernels::fused_batch_norm_applies(*untracked, nchw));
  EXPECT_FALSE(
      kernels::fused_batch_norm_applies(*layer->bn, at::randn({1, 8, 1, 1})));  // one value
}

}  // namespace
}  // namespace sd::models
