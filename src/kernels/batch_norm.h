#pragma once
#include <torch/nn/modules/batchnorm.h>

#include <utility>

namespace sd::kernels {

// Whether batch_norm_train runs its own function for `x` here: `bn` tracks running statistics
// and is affine, `x` is an fp32 N x C x H x W CPU tensor of more than one value per channel,
// channels-last contiguous on a CPU with AVX-512 or NCHW contiguous on one with AVX2 and FMA
// (kernels/batch_norm_planes.h).
bool fused_batch_norm_applies(const torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x);

// `bn` in training mode on `x`, then GELU (exact) when `gelu`: normalised by the batch's
// per-channel mean and biased variance, scaled and shifted; the running statistics (unbiased
// variance) and num_batches_tracked move as torch's module moves them.
// Where fused_batch_norm_applies, one autograd function does it: two passes over x for the
// statistics (16 channels at a time channels-last, a plane's segment at a time NCHW) and one
// for the output, keeping only x (not the normalised tensor GELU would keep); backward reads x
// and the output's gradient twice and recomputes GELU's input. The statistics are summed in double,
// as ATen's (whose own channels-last kernel sums the variance in float). Elsewhere it is torch's
// module and GELU.
at::Tensor batch_norm_train(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x, bool gelu);

// `bn` in eval mode folded into the bias-free convolution of `weight` (out x ...) before it:
// the weight and bias of one convolution computing both, from their current values.
std::pair<at::Tensor, at::Tensor> fold_batch_norm(const at::Tensor& weight,
                                                  const torch::nn::BatchNorm2dImpl& bn);

}  // namespace sd::kernels
