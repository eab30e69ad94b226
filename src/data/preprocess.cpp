#include "data/preprocess.h"

#include "data/pil_resize.h"
#include "models/preprocess.h"

namespace sd::data {

at::Tensor resize_longest_side(const at::Tensor& rgb, int64_t target_length) {
  auto [h, w] = models::ResizeLongestSide::get_preprocess_shape(rgb.size(0), rgb.size(1), target_length);
  return pil_resize_bilinear(rgb, static_cast<int>(h), static_cast<int>(w));
}

PreprocessedImage preprocess(const at::Tensor& rgb) {
  at::Tensor resized = resize_longest_side(rgb);
  return {models::normalize_and_pad(resized).squeeze(0),
          {rgb.size(0), rgb.size(1)},
          {resized.size(0), resized.size(1)}};
}

}  // namespace sd::data
