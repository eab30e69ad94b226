#include "data/preprocess.h"

#include "data/pil_resize.h"
#include "models/preprocess.h"
#include "util/error.h"

namespace sd::data {

at::Tensor resize_longest_side(const at::Tensor& rgb, int64_t target_length) {
  auto [h, w] =
      models::ResizeLongestSide::get_preprocess_shape(rgb.size(0), rgb.size(1), target_length);
  return pil_resize_bilinear(rgb, static_cast<int>(h), static_cast<int>(w));
}

// The resize hands its rows straight to the normalisation: the uint8 image is never stored.
PreprocessedImage preprocess(const at::Tensor& rgb) {
  if (rgb.dim() != 3 || rgb.size(2) != 3)
    throw Error("preprocess: expected an HxWx3 RGB image, got " + c10::str(rgb.sizes()));
  auto [h, w] = models::ResizeLongestSide::get_preprocess_shape(rgb.size(0), rgb.size(1), 1024);
  models::NormalizeAndPad out(h, w);
  pil_resize_bilinear_rows(rgb, static_cast<int>(h), static_cast<int>(w),
                           [&](int y, const uint8_t* pixels) { out.set_row(y, pixels); });
  return {out.pixels(), {rgb.size(0), rgb.size(1)}, {h, w}};
}

}  // namespace sd::data
