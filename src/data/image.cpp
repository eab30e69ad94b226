#include "data/image.h"

#include <cstring>

#include "util/error.h"

namespace sd::data {

#ifdef SAMDISTILL_WITH_OPENCV
at::Tensor decode_image_opencv(std::string_view bytes,
                               const std::string& where);  // image_opencv.cpp
#endif

ImageDecoder default_image_decoder() {
#ifdef SAMDISTILL_WITH_OPENCV
  return decode_image_opencv;
#else
  return [](std::string_view, const std::string& where) -> at::Tensor {
    throw Error(where + ": this build of samdistill has no image decoder (built without OpenCV)");
  };
#endif
}

bool image_decoding_available() {
#ifdef SAMDISTILL_WITH_OPENCV
  return true;
#else
  return false;
#endif
}

void check_jpeg_complete(std::string_view b, const std::string& where) {
  const size_t n = b.size();
  auto byte = [&](size_t i) { return static_cast<uint8_t>(b[i]); };
  if (n < 2 || byte(0) != 0xFF || byte(1) != 0xD8) return;
  const std::string truncated =
      where + ": truncated JPEG (no end-of-image marker before the data ends)";
  size_t p = 2;
  while (true) {
    // Stray bytes before a marker: libjpeg skips them with a warning, and so do we.
    const void* ff = p < n ? std::memchr(b.data() + p, 0xFF, n - p) : nullptr;
    if (!ff) throw Error(truncated);
    p = static_cast<const char*>(ff) - b.data();
    while (p < n && byte(p) == 0xFF) ++p;  // fill bytes
    if (p >= n) throw Error(truncated);
    const uint8_t marker = byte(p++);
    if (marker == 0xD9) return;                                          // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length
    if (p + 2 > n) throw Error(truncated);
    const size_t length = (size_t{byte(p)} << 8) | byte(p + 1);
    if (length < 2)
      throw Error(where + ": corrupt JPEG (segment length " + std::to_string(length) + ")");
    p += length;
    if (p > n) throw Error(truncated);
    if (marker != 0xDA) continue;
    // Entropy-coded data after SOS runs to the next marker that is not a stuffed 0xFF00
    // or a restart marker.
    while (true) {
      const void* ff = p < n ? std::memchr(b.data() + p, 0xFF, n - p) : nullptr;
      if (!ff) throw Error(truncated);
      p = static_cast<const char*>(ff) - b.data();
      if (p + 1 >= n) throw Error(truncated);
      const uint8_t next = byte(p + 1);
      if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
        p += 2;
        continue;
      }
      if (next == 0xFF) {  // fill before a marker
        ++p;
        continue;
      }
      break;
    }
  }
}

}  // namespace sd::data
