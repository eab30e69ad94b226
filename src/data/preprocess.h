#pragma once
#include <ATen/core/Tensor.h>

#include "models/transforms.h"

namespace sd::data {

// SAM's ResizeLongestSide(1024).apply_image: uint8 HxWx3 RGB -> the resized uint8 image
// (longest side 1024, sizes as int(x * scale + 0.5)), PIL's antialiased bilinear filter.
at::Tensor resize_longest_side(const at::Tensor& rgb, int64_t target_length = 1024);

// What the encoders take: 3x1024x1024 float, normalised and zero-padded bottom-right.
struct PreprocessedImage {
  at::Tensor pixels;
  models::Size2 original_size{0, 0};  // (H, W) of the decoded image
  models::Size2 input_size{0, 0};     // (H, W) after the resize, before padding
};
PreprocessedImage preprocess(const at::Tensor& rgb);

}  // namespace sd::data
