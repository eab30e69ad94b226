#include "util/font.h"

#include <gtest/gtest.h>

#include <vector>

namespace sd {
namespace {

struct Image {
  int64_t width, height;
  std::vector<uint8_t> rgb;
  Image(int64_t w, int64_t h) : width(w), height(h), rgb(size_t(w * h * 3), 255) {}
  void text(int64_t x, int64_t y, const std::string& s, int64_t scale) {
    draw_text(rgb.data(), width, height, x, y, s, scale, {10, 20, 30});
  }
  int64_t ink() const {  // pixels in the text colour
    int64_t n = 0;
    for (size_t i = 0; i < rgb.size(); i += 3)
      n += rgb[i] == 10 && rgb[i + 1] == 20 && rgb[i + 2] == 30;
    return n;
  }
};

TEST(Font, DrawsTheGlyphs) {
  Image a(20, 10);
  a.text(1, 1, "I", 1);
  EXPECT_EQ(a.ink(), 11);  // the 5x7 'I': 3 + 5 + 3 pixels
  Image b(20, 20);
  b.text(1, 1, "I", 2);
  EXPECT_EQ(b.ink(), 44);  // scale 2: 2x2 per font pixel
  Image c(20, 10), d(20, 10), e(20, 10);
  c.text(1, 1, "e", 1);
  d.text(1, 1, "E", 1);
  EXPECT_EQ(c.rgb, d.rgb) << "lower case as upper case";
  e.text(1, 1, " ", 1);
  EXPECT_EQ(e.ink(), 0);
  Image f(20, 10), g(20, 10);
  f.text(1, 1, "~", 1);
  g.text(1, 1, "?", 1);
  EXPECT_EQ(f.rgb, g.rgb) << "unknown characters as '?'";
}

TEST(Font, ClipsAtTheImageEdges) {
  Image a(8, 7);  // the 'I' at (-1, -1): its top row (the bar: 3 pixels) is outside
  a.text(-1, -1, "I", 1);
  EXPECT_EQ(a.ink(), 11 - 3);
  Image b(6, 10);
  b.text(1, 1, "II", 1);  // the second glyph starts at x = 7, outside
  EXPECT_EQ(b.ink(), 11);
}

TEST(Font, TextWidth) {
  EXPECT_EQ(text_width(0, 2), 0);
  EXPECT_EQ(text_width(1, 1), kGlyphWidth);
  EXPECT_EQ(text_width(3, 2), 3 * (kGlyphWidth + 1) * 2 - 2);
}

}  // namespace
}  // namespace sd
