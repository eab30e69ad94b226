#include "util/png.h"

#include "util/crc32.h"

namespace sd {
namespace {

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

void chunk(std::string& out, const char* type, const std::string& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  size_t start = out.size();
  out.append(type, 4);
  out += data;
  put_be32(out, crc32(out.data() + start, out.size() - start));
}

// zlib stream of `raw` in stored (uncompressed) deflate blocks of at most 65535 bytes.
std::string zlib_stored(const std::string& raw) {
  std::string out = "\x78\x01";
  size_t pos = 0;
  do {
    size_t n = std::min<size_t>(65535, raw.size() - pos);
    bool last = pos + n == raw.size();
    out.push_back(last ? 1 : 0);
    out.push_back(static_cast<char>(n & 0xFF));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(~n & 0xFF));
    out.push_back(static_cast<char>((~n >> 8) & 0xFF));
    out.append(raw, pos, n);
    pos += n;
  } while (pos < raw.size());
  uint32_t a = 1, b = 0;  // Adler-32
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(out, (b << 16) | a);
  return out;
}

}  // namespace

std::string encode_png(const std::string& rows, int width, int height, int bit_depth,
                       int colour_type, const std::string& palette,
                       const std::string& transparency) {
  const size_t row_bytes = height > 0 ? rows.size() / static_cast<size_t>(height) : 0;
  std::string raw;
  raw.reserve(rows.size() + static_cast<size_t>(height));
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);  // filter: none
    raw.append(rows, static_cast<size_t>(y) * row_bytes, row_bytes);
  }
  std::string header;
  put_be32(header, static_cast<uint32_t>(width));
  put_be32(header, static_cast<uint32_t>(height));
  header.push_back(static_cast<char>(bit_depth));
  header.push_back(static_cast<char>(colour_type));
  header += std::string("\x00\x00\x00", 3);  // deflate, no filter, no interlace
  std::string out = "\x89PNG\r\n\x1a\n";
  chunk(out, "IHDR", header);
  if (!palette.empty()) chunk(out, "PLTE", palette);
  if (!transparency.empty()) chunk(out, "tRNS", transparency);
  chunk(out, "IDAT", zlib_stored(raw));
  chunk(out, "IEND", "");
  return out;
}

std::string encode_png_rgb(const uint8_t* rgb, int width, int height) {
  return encode_png(
      std::string(reinterpret_cast<const char*>(rgb), static_cast<size_t>(width) * height * 3),
      width, height, 8, 2);
}

}  // namespace sd
