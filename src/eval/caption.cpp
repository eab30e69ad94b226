#include "eval/caption.h"

#include <ATen/ATen.h>

#include "util/font.h"

namespace sd::eval {

at::Tensor caption_band(const std::string& text, int64_t width, int64_t scale) {
  const int64_t margin = 2 * scale, height = kGlyphHeight * scale + 2 * margin;
  size_t fitting = 0;  // the glyphs that fit whole: text beyond them is clipped
  while (fitting < text.size() && margin + text_width(fitting + 1, scale) <= width) ++fitting;
  at::Tensor band = at::full({height, width, 3}, 255, at::kByte);
  draw_text(band.data_ptr<uint8_t>(), width, height, margin, margin, text.substr(0, fitting),
            scale);
  return band;
}

at::Tensor with_caption(const at::Tensor& picture, const std::string& text, int64_t scale) {
  return at::cat({caption_band(text, picture.size(1), scale), picture}, 0);
}

}  // namespace sd::eval
