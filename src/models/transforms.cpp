#include "models/transforms.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace sd::models {

Size2 ResizeLongestSide::get_preprocess_shape(int64_t old_h, int64_t old_w,
                                              int64_t long_side_length) {
  double scale = static_cast<double>(long_side_length) / std::max(old_h, old_w);
  return {static_cast<int64_t>(old_h * scale + 0.5), static_cast<int64_t>(old_w * scale + 0.5)};
}

at::Tensor ResizeLongestSide::apply_coords(const at::Tensor& coords, Size2 original_size) const {
  auto [old_h, old_w] = original_size;
  auto [new_h, new_w] = get_preprocess_shape(old_h, old_w, target_length_);
  // Scaled in float64 as the reference does on numpy arrays, then float32 for the model.
  at::Tensor xy = coords.to(at::kDouble);
  at::Tensor x = xy.select(-1, 0) * (static_cast<double>(new_w) / old_w);
  at::Tensor y = xy.select(-1, 1) * (static_cast<double>(new_h) / old_h);
  return at::stack({x, y}, -1).to(at::kFloat);
}

at::Tensor ResizeLongestSide::apply_boxes(const at::Tensor& boxes, Size2 original_size) const {
  return apply_coords(boxes.reshape({-1, 2, 2}), original_size).reshape({-1, 4});
}

}  // namespace sd::models
