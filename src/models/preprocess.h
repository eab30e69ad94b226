#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace sd::models {

// SAM's pixel_mean and pixel_std (RGB, of 0-255 values).
inline constexpr double kPixelMean[3] = {123.675, 116.28, 103.53};
inline constexpr double kPixelStd[3] = {58.395, 57.12, 57.375};

// SAM's pixel normalisation and padding: a uint8 HxWx3 RGB image already resized so that its
// longest side is 1024 -> 1x3x1024x1024 float, (x - kPixelMean) / kPixelStd in float,
// zero-padded bottom-right. sd::Error when the image is not uint8 HxWx3 or a side exceeds 1024.
at::Tensor normalize_and_pad(const at::Tensor& image);

// normalize_and_pad on the CPU one image row at a time (the same bits), for a producer of rows
// that never stores the uint8 image: the constructor allocates the 3x1024x1024 result and
// zeroes only its padding; set_row fills row y < height from `width` RGB pixels.
class NormalizeAndPad {
 public:
  NormalizeAndPad(int64_t height, int64_t width);
  void set_row(int64_t y, const uint8_t* rgb);
  const at::Tensor& pixels() const { return pixels_; }  // 3x1024x1024 float

 private:
  int64_t width_;
  at::Tensor pixels_;
  float* data_;
};

}  // namespace sd::models
