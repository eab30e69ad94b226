#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace sd::models {

// Image size as (H, W), the order of SAM's `original_size` / `input_size`.
using Size2 = std::array<int64_t, 2>;

// SAM's ResizeLongestSide: the size of an image resized so that its longest side is
// `target_length`, and the same scaling for prompts given in original pixels.
class ResizeLongestSide {
 public:
  explicit ResizeLongestSide(int64_t target_length) : target_length_(target_length) {}

  // Sizes round as Python's int(x * scale + 0.5).
  static Size2 get_preprocess_shape(int64_t old_h, int64_t old_w, int64_t long_side_length);

  // ...x2 (x, y) coordinates in original pixels -> resized pixels, float32, same device.
  at::Tensor apply_coords(const at::Tensor& coords, Size2 original_size) const;
  // ...x4 (x0, y0, x1, y1) boxes -> Bx4.
  at::Tensor apply_boxes(const at::Tensor& boxes, Size2 original_size) const;

  int64_t target_length() const { return target_length_; }

 private:
  int64_t target_length_;
};

}  // namespace sd::models
