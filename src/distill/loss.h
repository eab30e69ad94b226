#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "models/transforms.h"

namespace sd::distill {

// The paper's loss: mean squared error over every element of BxCxHxW embeddings.
at::Tensor embedding_mse(const at::Tensor& student, const at::Tensor& teacher);

// EdgeSAM's variant: the mean over the embedding cells that the image covers (the padded
// bottom-right area left out). `input_sizes` are the (H, W) of the resized images in the
// 1024 frame; a cell of the 64x64 grid is 16 pixels, counted when any of it is image.
at::Tensor masked_embedding_mse(const at::Tensor& student, const at::Tensor& teacher,
                                const std::vector<models::Size2>& input_sizes,
                                int64_t img_size = 1024);

}  // namespace sd::distill
