#pragma once
#include <cstdint>
#include <string>

namespace sd {

// An 8-bit RGB PNG of width x height pixels (row-major, 3 bytes per pixel), encoded with
// uncompressed deflate blocks: no zlib needed, readable by every viewer.
std::string encode_png_rgb(const uint8_t* rgb, int width, int height);

}  // namespace sd
