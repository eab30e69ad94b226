#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "models/transforms.h"
#include "train/config.h"

namespace sd::distill {

// The mean of `kind`'s loss over every element of BxCxHxW embeddings: mse (the paper's),
// huber (PyTorch's huber_loss, delta 1: 0.5 d^2 where |d| < 1, else |d| - 0.5) or l1.
at::Tensor embedding_loss(const at::Tensor& student, const at::Tensor& teacher,
                          train::EmbeddingLoss kind);

// EdgeSAM's variant: the mean over the embedding cells that the image covers (the padded
// bottom-right area left out). `input_sizes` are the (H, W) of the resized images in the
// 1024 frame; a cell of the 64x64 grid is 16 pixels, counted when any of it is image.
at::Tensor masked_embedding_loss(const at::Tensor& student, const at::Tensor& teacher,
                                 const std::vector<models::Size2>& input_sizes,
                                 train::EmbeddingLoss kind, int64_t img_size = 1024);

}  // namespace sd::distill
