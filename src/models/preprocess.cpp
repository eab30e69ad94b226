#include "models/preprocess.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <sstream>

#include "util/error.h"

namespace sd::models {

constexpr int64_t kImageSize = 1024;

at::Tensor normalize_and_pad(const at::Tensor& image) {
  if (image.scalar_type() != at::kByte || image.dim() != 3 || image.size(2) != 3 ||
      image.size(0) > kImageSize || image.size(1) > kImageSize) {
    std::ostringstream shape;
    shape << image.sizes();
    throw Error("normalize_and_pad: expected a uint8 HxWx3 image with sides <= 1024, got " +
                std::string(at::toString(image.scalar_type())) + " " + shape.str());
  }
  const float mean[3] = {123.675f, 116.28f, 103.53f};
  const float std[3] = {58.395f, 57.12f, 57.375f};
  if (!image.is_cpu()) {
    auto options = at::TensorOptions().dtype(at::kFloat).device(image.device());
    at::Tensor x = (image.permute({2, 0, 1}).unsqueeze(0) - at::tensor({mean[0], mean[1], mean[2]}, options).view({3, 1, 1})) /
                   at::tensor({std[0], std[1], std[2]}, options).view({3, 1, 1});
    return at::constant_pad_nd(x, {0, kImageSize - image.size(1), 0, kImageSize - image.size(0)});
  }
  // On the CPU, one pass through a table of the 256 values per channel: the same float
  // arithmetic as the expression above (so the same bits), several times faster.
  float table[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) table[c][v] = (static_cast<float>(v) - mean[c]) / std[c];
  const at::Tensor in = image.contiguous();
  const uint8_t* src = in.data_ptr<uint8_t>();
  const int64_t h = in.size(0), w = in.size(1), plane = kImageSize * kImageSize;
  at::Tensor out = at::empty({1, 3, kImageSize, kImageSize}, at::kFloat);
  float* dst = out.data_ptr<float>();
  for (int64_t y = 0; y < kImageSize; ++y) {
    for (int c = 0; c < 3; ++c) {
      float* row = dst + c * plane + y * kImageSize;
      const int64_t filled = y < h ? w : 0;
      for (int64_t x = 0; x < filled; ++x) row[x] = table[c][src[(y * w + x) * 3 + c]];
      std::fill(row + filled, row + kImageSize, 0.0f);
    }
  }
  return out;
}

}  // namespace sd::models
