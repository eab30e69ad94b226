#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

namespace sd::data {

// PIL's Image.resize(..., Image.BILINEAR) of an 8-bit image, bit for bit (a port of
// libImaging/Resample.c): a triangle filter whose support widens by the downscale factor,
// coefficients normalised per output pixel in 22-bit fixed point, horizontal pass first into
// an 8-bit intermediate. `image`: uint8 HxWxC contiguous, C in 1..4. Returns uint8
// out_height x out_width x C.
at::Tensor pil_resize_bilinear(const at::Tensor& image, int out_height, int out_width);

// The same resize handing each output row (out_width x C uint8) to `row`, top to bottom,
// instead of storing the image.
using ResizedRow = std::function<void(int y, const uint8_t* pixels)>;
void pil_resize_bilinear_rows(const at::Tensor& image, int out_height, int out_width,
                              const ResizedRow& row);

}  // namespace sd::data
