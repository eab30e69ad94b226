#include "data/image.h"

#include <cstdlib>
#include <cstring>
#include <optional>

#include "data/image_decoders.h"
#include "util/error.h"

namespace sd::data {

int64_t max_image_pixels() {
  const char* env = std::getenv("SAMDISTILL_MAX_IMAGE_PIXELS");
  if (!env || !*env) return 100'000'000;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  if (*end || v <= 0)
    throw Error(std::string("SAMDISTILL_MAX_IMAGE_PIXELS=") + env + ": not a positive integer");
  return v;
}

ImageDecoder default_image_decoder(int64_t max_pixels) {
#ifdef SAMDISTILL_WITH_OPENCV
  return [max_pixels](std::string_view bytes, const std::string& where) {
    if (bytes.empty()) throw Error(where + ": empty file (0 bytes), not an image");
    check_pixel_limit(bytes, where, max_pixels);
    check_jpeg_complete(bytes, where);
#ifdef SAMDISTILL_WITH_TURBOJPEG
    if (std::optional<at::Tensor> rgb = decode_jpeg_turbojpeg(bytes)) return *rgb;
#endif
    return decode_image_opencv(bytes, where);
  };
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

namespace {

uint32_t big_endian(std::string_view b, size_t at, int width) {
  uint32_t v = 0;
  for (int i = 0; i < width; ++i) v = v << 8 | static_cast<uint8_t>(b[at + i]);
  return v;
}

// The frame header (SOF0-SOF15 but DHT, JPG and DAC): precision, height, width.
bool is_frame_marker(uint8_t m) {
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

std::optional<std::array<int64_t, 2>> jpeg_size(std::string_view b) {
  size_t p = 2;
  while (p + 4 <= b.size()) {
    if (static_cast<uint8_t>(b[p]) != 0xFF) return std::nullopt;
    const uint8_t marker = static_cast<uint8_t>(b[p + 1]);
    if (marker == 0xFF) {  // fill byte
      ++p;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return std::nullopt;  // image data, no frame yet
    const size_t length = big_endian(b, p + 2, 2);
    if (is_frame_marker(marker)) {
      if (length < 7 || p + 9 > b.size()) return std::nullopt;
      return std::array<int64_t, 2>{big_endian(b, p + 7, 2), big_endian(b, p + 5, 2)};
    }
    p += 2 + length;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::array<int64_t, 2>> declared_image_size(std::string_view b) {
  static const std::string_view png("\x89PNG\r\n\x1a\n", 8);
  if (b.size() >= 24 && b.substr(0, 8) == png && b.substr(12, 4) == "IHDR")
    return std::array<int64_t, 2>{big_endian(b, 16, 4), big_endian(b, 20, 4)};
  if (b.size() >= 4 && static_cast<uint8_t>(b[0]) == 0xFF && static_cast<uint8_t>(b[1]) == 0xD8)
    return jpeg_size(b);
  return std::nullopt;
}

void check_pixel_limit(std::string_view bytes, const std::string& where, int64_t max_pixels) {
  const auto size = declared_image_size(bytes);
  if (size && (*size)[0] * (*size)[1] > max_pixels)
    throw Error(where + ": image of " + std::to_string((*size)[0]) + " x " +
                std::to_string((*size)[1]) + " pixels is over the limit of " +
                std::to_string(max_pixels) + " (SAMDISTILL_MAX_IMAGE_PIXELS)");
}

}  // namespace sd::data
