#pragma once
#include <cstdint>
#include <string>

namespace sd {

// An 8-bit RGB PNG of width x height pixels (row-major, 3 bytes per pixel), deflated by zlib
// with each row's filter chosen as libpng does (the smallest sum of absolute differences).
std::string encode_png_rgb(const uint8_t* rgb, int width, int height);

// A PNG of any colour type and bit depth: `rows` holds `height` rows of packed samples (no
// filter bytes; 16-bit samples big-endian), `palette` the PLTE chunk's RGB triples and
// `transparency` the tRNS chunk's bytes (both left out when empty).
std::string encode_png(const std::string& rows, int width, int height, int bit_depth,
                       int colour_type, const std::string& palette = "",
                       const std::string& transparency = "");

}  // namespace sd
