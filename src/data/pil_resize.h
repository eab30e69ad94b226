#pragma once
#include <ATen/core/Tensor.h>

namespace sd::data {

// PIL's Image.resize(..., Image.BILINEAR) of an 8-bit image, bit for bit (a port of
// libImaging/Resample.c): a triangle filter whose support widens by the downscale factor,
// coefficients normalised per output pixel in 22-bit fixed point, horizontal pass first into
// an 8-bit intermediate that holds only the rows the vertical pass reads.
// `image`: uint8 HxWxC contiguous, C in 1..4. Returns uint8 out_height x out_width x C.
at::Tensor pil_resize_bilinear(const at::Tensor& image, int out_height, int out_width);

}  // namespace sd::data
