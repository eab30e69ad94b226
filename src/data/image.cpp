#include "data/image.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "data/image_decoders.h"
#include "util/error.h"

namespace sd::data {

namespace {

std::atomic<int64_t> pixel_limit_override{0};

}  // namespace

int64_t max_image_pixels() {
  if (const int64_t set = pixel_limit_override.load()) return set;
  const char* env = std::getenv("SAMDISTILL_MAX_IMAGE_PIXELS");
  if (!env || !*env) return 100'000'000;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(env, &end, 10);
  if (*end || v <= 0 || errno == ERANGE)
    throw Error(std::string("SAMDISTILL_MAX_IMAGE_PIXELS=") + env + ": not a positive integer");
  return v;
}

void set_max_image_pixels(int64_t pixels) {
  if (pixels < 0) throw Error("--max-image-pixels must be positive, got " + std::to_string(pixels));
  pixel_limit_override = pixels;
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

uint64_t unsigned_at(std::string_view b, size_t at, int width, bool little) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i)
    v |= uint64_t(static_cast<uint8_t>(b[at + (little ? i : width - 1 - i)])) << (8 * i);
  return v;
}
uint64_t big_endian(std::string_view b, size_t at, int width) {
  return unsigned_at(b, at, width, false);
}
uint64_t little_endian(std::string_view b, size_t at, int width) {
  return unsigned_at(b, at, width, true);
}

using Size = std::optional<std::array<int64_t, 2>>;

// The frame header (SOF0-SOF15 but DHT, JPG and DAC): precision, height, width.
bool is_frame_marker(uint8_t m) {
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

// The first frame header, found as libjpeg finds it: bytes before a marker are skipped, 0xFF
// fill bytes too, and restart or TEM markers carry no length.
Size jpeg_size(std::string_view b) {
  const size_t n = b.size();
  size_t p = 2;
  while (true) {
    while (p < n && static_cast<uint8_t>(b[p]) != 0xFF) ++p;
    while (p < n && static_cast<uint8_t>(b[p]) == 0xFF) ++p;
    if (p >= n) return std::nullopt;
    const uint8_t marker = static_cast<uint8_t>(b[p++]);
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (marker == 0xDA || marker == 0xD9 || marker == 0xD8) return std::nullopt;  // no frame
    if (p + 2 > n) return std::nullopt;
    const size_t length = big_endian(b, p, 2);
    if (is_frame_marker(marker)) {
      if (length < 7 || p + 7 > n) return std::nullopt;
      return std::array<int64_t, 2>{int64_t(big_endian(b, p + 5, 2)),
                                    int64_t(big_endian(b, p + 3, 2))};
    }
    p += length;
  }
}

// RIFF WebP: the canvas of an extended file (VP8X), else the lossy (VP8) or lossless (VP8L)
// bitstream's own size.
Size webp_size(std::string_view b) {
  if (b.size() < 30) return std::nullopt;
  const std::string_view chunk = b.substr(12, 4);
  if (chunk == "VP8X")
    return std::array<int64_t, 2>{int64_t(little_endian(b, 24, 3)) + 1,
                                  int64_t(little_endian(b, 27, 3)) + 1};
  if (chunk == "VP8 " && b.substr(23, 3) == "\x9d\x01\x2a")
    return std::array<int64_t, 2>{int64_t(little_endian(b, 26, 2) & 0x3FFF),
                                  int64_t(little_endian(b, 28, 2) & 0x3FFF)};
  if (chunk == "VP8L" && static_cast<uint8_t>(b[20]) == 0x2F) {
    const uint64_t bits = little_endian(b, 21, 4);
    return std::array<int64_t, 2>{int64_t(bits & 0x3FFF) + 1, int64_t((bits >> 14) & 0x3FFF) + 1};
  }
  return std::nullopt;
}

// TIFF and BigTIFF: ImageWidth and ImageLength of the first directory (the page decoded).
Size tiff_size(std::string_view b) {
  const bool little = b[0] == 'I', big_tiff = unsigned_at(b, 2, 2, little) == 43;
  auto get = [&](uint64_t at, int width) -> std::optional<uint64_t> {
    if (at > b.size() || uint64_t(width) > b.size() - at) return std::nullopt;
    return unsigned_at(b, size_t(at), width, little);
  };
  const auto ifd = big_tiff ? get(8, 8) : get(4, 4);
  const auto count = ifd ? get(*ifd, big_tiff ? 8 : 2) : std::nullopt;
  if (!count) return std::nullopt;
  const uint64_t first = *ifd + (big_tiff ? 8 : 2), entry = big_tiff ? 20 : 12;
  int64_t width = -1, height = -1;
  for (uint64_t i = 0; i < *count && first + i * entry + entry <= b.size(); ++i) {
    const uint64_t at = first + i * entry;
    const uint64_t tag = *get(at, 2), type = *get(at + 2, 2);
    const uint64_t value_at = at + (big_tiff ? 12 : 8);
    std::optional<uint64_t> value;
    if (type == 3) value = get(value_at, 2);               // SHORT
    if (type == 4) value = get(value_at, 4);               // LONG
    if (type == 16 && big_tiff) value = get(value_at, 8);  // LONG8
    if (!value) continue;
    if (tag == 256) width = int64_t(std::min<uint64_t>(*value, INT64_MAX / 2));
    if (tag == 257) height = int64_t(std::min<uint64_t>(*value, INT64_MAX / 2));
  }
  if (width < 0 || height < 0) return std::nullopt;
  return std::array<int64_t, 2>{width, height};
}

// BMP: the DIB header's width and height (negative for top-down rows).
Size bmp_size(std::string_view b) {
  if (b.size() < 26) return std::nullopt;
  if (little_endian(b, 14, 4) == 12)  // OS/2 BITMAPCOREHEADER: 16-bit sizes
    return std::array<int64_t, 2>{int64_t(little_endian(b, 18, 2)),
                                  int64_t(little_endian(b, 20, 2))};
  const int64_t width = int32_t(little_endian(b, 18, 4)), height = int32_t(little_endian(b, 22, 4));
  return std::array<int64_t, 2>{std::abs(width), std::abs(height)};
}

// width x height, saturating (a PNG may declare 2^32 x 2^32).
int64_t pixels_of(const std::array<int64_t, 2>& size) {
  int64_t pixels = 0;
  return __builtin_mul_overflow(size[0], size[1], &pixels) ? INT64_MAX : pixels;
}

std::string size_text(const std::array<int64_t, 2>& size) {
  return std::to_string(size[0]) + " x " + std::to_string(size[1]);
}

// More bytes than any image of `pixels` pixels holds: 16 per pixel (four 32-bit channels,
// uncompressed) and 64 MiB of metadata.
uint64_t most_bytes(int64_t pixels) {
  return uint64_t(std::min<int64_t>(pixels, INT64_MAX / 32)) * 16 + (uint64_t(64) << 20);
}

}  // namespace

std::optional<ImageFormat> image_format(std::string_view b) {
  auto starts = [&](std::string_view magic) { return b.substr(0, magic.size()) == magic; };
  if (starts("\xFF\xD8")) return ImageFormat::jpeg;
  if (starts(std::string_view("\x89PNG\r\n\x1a\n", 8))) return ImageFormat::png;
  if (starts("BM")) return ImageFormat::bmp;
  if (starts("RIFF") && b.size() >= 12 && b.substr(8, 4) == "WEBP") return ImageFormat::webp;
  if (starts(std::string_view("II*\0", 4)) || starts(std::string_view("MM\0*", 4)) ||
      starts(std::string_view("II+\0", 4)) || starts(std::string_view("MM\0+", 4)))
    return ImageFormat::tiff;
  return std::nullopt;
}

std::optional<std::array<int64_t, 2>> declared_image_size(std::string_view b) {
  const auto format = image_format(b);
  if (!format) return std::nullopt;
  switch (*format) {
    case ImageFormat::png:
      if (b.size() < 24 || b.substr(12, 4) != "IHDR") return std::nullopt;
      return std::array<int64_t, 2>{int64_t(big_endian(b, 16, 4)), int64_t(big_endian(b, 20, 4))};
    case ImageFormat::jpeg:
      return jpeg_size(b);
    case ImageFormat::webp:
      return webp_size(b);
    case ImageFormat::tiff:
      return tiff_size(b);
    case ImageFormat::bmp:
      return bmp_size(b);
  }
  return std::nullopt;
}

void check_image_head(std::string_view head, uint64_t file_bytes, const std::string& where,
                      int64_t max_pixels) {
  const auto size = declared_image_size(head);
  if (size) {
    if (pixels_of(*size) > max_pixels)
      throw Error(where + ": image of " + size_text(*size) + " pixels is over the limit of " +
                  std::to_string(max_pixels) +
                  " (--max-image-pixels, SAMDISTILL_MAX_IMAGE_PIXELS)");
    if (file_bytes > most_bytes(pixels_of(*size)))
      throw Error(where + ": " + std::to_string(file_bytes) + " bytes, more than an image of " +
                  size_text(*size) + " pixels can hold");
  } else if (file_bytes > most_bytes(max_pixels)) {
    throw Error(where + ": " + std::to_string(file_bytes) +
                " bytes, more than an image under the pixel limit of " +
                std::to_string(max_pixels) + " can hold");
  }
}

void check_pixel_limit(std::string_view bytes, const std::string& where, int64_t max_pixels) {
  if (!image_format(bytes))
    throw Error(where + ": not a JPEG, PNG, BMP, WebP or TIFF image (by its first bytes)");
  check_image_head(bytes, bytes.size(), where, max_pixels);
  if (!declared_image_size(bytes))
    throw Error(where + ": no image size found in its header (damaged or not an image)");
}

}  // namespace sd::data
