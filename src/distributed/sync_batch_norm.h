#pragma once
#include <ATen/core/Tensor.h>

#include "distributed/group.h"

namespace sd::distributed {

// torch.nn.SyncBatchNorm's training-mode BatchNorm of `x` (N x C x ...): normalised by the
// per-channel mean and biased variance of every rank's batch together (their sums, sums of
// squares and counts all-reduced), then scaled by `weight` and shifted by `bias`.
// `running_mean` and `running_var` move towards them by `momentum`, the variance unbiased over
// all ranks' elements. Backward all-reduces the per-channel sums of the output's gradient and of
// it times (x - mean); the weight's and bias's gradients are this rank's share, which the
// gradient averaging completes. Every rank calls it in the same order.
at::Tensor sync_batch_norm(Group& group, const at::Tensor& x, const at::Tensor& weight,
                           const at::Tensor& bias, at::Tensor running_mean, at::Tensor running_var,
                           double momentum, double eps);

}  // namespace sd::distributed
