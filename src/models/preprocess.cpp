#include "models/preprocess.h"

#include <ATen/ATen.h>

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
  auto options = at::TensorOptions().dtype(at::kFloat).device(image.device());
  at::Tensor mean = at::tensor({123.675f, 116.28f, 103.53f}, options).view({3, 1, 1});
  at::Tensor std = at::tensor({58.395f, 57.12f, 57.375f}, options).view({3, 1, 1});
  at::Tensor x = (image.permute({2, 0, 1}).unsqueeze(0) - mean) / std;
  return at::constant_pad_nd(x, {0, kImageSize - image.size(1), 0, kImageSize - image.size(0)});
}

}  // namespace sd::models
