#pragma once
#include <array>
#include <cstdint>
#include <string>

// Text on pictures without a font library: a built-in 5x7 bitmap font of upper-case letters
// (lower case is drawn as upper case), digits and the punctuation captions and plots use; a
// space is blank, any other character is drawn as '?'.
namespace sd {

constexpr int64_t kGlyphWidth = 5, kGlyphHeight = 7;

// Draws `text` on an RGB image (row-major, 3 bytes a pixel) with its top-left corner at (x, y):
// each font pixel a scale x scale square in `colour`, characters (kGlyphWidth + 1) * scale
// apart. Pixels outside the image are left out.
void draw_text(uint8_t* rgb, int64_t width, int64_t height, int64_t x, int64_t y,
               const std::string& text, int64_t scale, std::array<uint8_t, 3> colour = {0, 0, 0});

// The width in pixels of `chars` characters drawn at `scale`, from the first's left edge to
// the last's right edge.
int64_t text_width(size_t chars, int64_t scale);

}  // namespace sd
