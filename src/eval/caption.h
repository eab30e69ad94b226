#pragma once
#include <ATen/core/Tensor.h>

#include <string>

// Text on pictures without a font library: a built-in 5x7 bitmap font.
namespace sd::eval {

// A white uint8 HxWx3 band `width` pixels wide with `text` in black, each font pixel drawn
// as scale x scale; text beyond the width is clipped.
at::Tensor caption_band(const std::string& text, int64_t width, int64_t scale = 2);

// The band above the picture (uint8 HxWx3).
at::Tensor with_caption(const at::Tensor& picture, const std::string& text, int64_t scale = 2);

}  // namespace sd::eval
