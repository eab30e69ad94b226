#pragma once
#include <ATen/core/Tensor.h>

namespace sd::models {

// SAM's pixel normalisation and padding: a uint8 HxWx3 RGB image already resized so that its
// longest side is 1024 -> 1x3x1024x1024 float, (x - mean) / std with mean (123.675, 116.28,
// 103.53) and std (58.395, 57.12, 57.375), zero-padded bottom-right. sd::Error when the
// image is not uint8 HxWx3 or a side exceeds 1024.
at::Tensor normalize_and_pad(const at::Tensor& image);

}  // namespace sd::models
