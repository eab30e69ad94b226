#include "util/png.h"

#ifdef SAMDISTILL_WITH_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cstdlib>

#include "util/crc32.h"
#include "util/error.h"

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

#ifdef SAMDISTILL_WITH_ZLIB
// zlib stream of `raw`, deflated.
std::string deflated(const std::string& raw) {
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string out(size, '\0');
  const int status = compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                               reinterpret_cast<const Bytef*>(raw.data()),
                               static_cast<uLong>(raw.size()), Z_DEFAULT_COMPRESSION);
  if (status != Z_OK) throw Error("PNG: zlib compress2 failed (" + std::to_string(status) + ")");
  out.resize(size);
  return out;
}
#else
// Without zlib (a core-only build): a zlib stream of stored deflate blocks of at most 65535
// bytes, valid but uncompressed.
std::string deflated(const std::string& raw) {
  std::string out = "\x78\x01";
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    out.push_back(pos + n == raw.size() ? 1 : 0);
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
#endif

int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// `row` filtered by `type` (PNG filters 0-4) against the row above, `bpp` bytes a pixel.
std::string filtered(const uint8_t* row, const uint8_t* up, size_t n, size_t bpp, int type) {
  std::string out(n + 1, '\0');
  out[0] = static_cast<char>(type);
  for (size_t i = 0; i < n; ++i) {
    const int a = i >= bpp ? row[i - bpp] : 0, b = up ? up[i] : 0,
              c = i >= bpp && up ? up[i - bpp] : 0;
    const int predicted = type == 1   ? a
                          : type == 2 ? b
                          : type == 3 ? (a + b) / 2
                          : type == 4 ? paeth(a, b, c)
                                      : 0;
    out[i + 1] = static_cast<char>(row[i] - predicted);
  }
  return out;
}

// The filtered row whose bytes, read as signed, sum to the least (libpng's heuristic).
std::string best_filtered(const uint8_t* row, const uint8_t* up, size_t n, size_t bpp) {
  std::string best;
  long best_sum = -1;
  for (int type = 0; type <= 4; ++type) {
    std::string f = filtered(row, up, n, bpp, type);
    long sum = 0;
    for (size_t i = 1; i < f.size(); ++i)
      sum += std::abs(static_cast<int>(static_cast<int8_t>(f[i])));
    if (best_sum < 0 || sum < best_sum) {
      best_sum = sum;
      best = std::move(f);
    }
  }
  return best;
}

// Bytes a pixel (at least 1), as the filters count them.
size_t bytes_per_pixel(int bit_depth, int colour_type) {
  const int channels = colour_type == 2 ? 3 : colour_type == 4 ? 2 : colour_type == 6 ? 4 : 1;
  return std::max<size_t>(1, static_cast<size_t>(channels * bit_depth / 8));
}

}  // namespace

std::string encode_png(const std::string& rows, int width, int height, int bit_depth,
                       int colour_type, const std::string& palette,
                       const std::string& transparency) {
  const size_t row_bytes = height > 0 ? rows.size() / static_cast<size_t>(height) : 0;
  const size_t bpp = bytes_per_pixel(bit_depth, colour_type);
  const bool palette_indices = colour_type == 3;  // filters do not help indices (libpng)
  std::string raw;
  raw.reserve(rows.size() + static_cast<size_t>(height));
  const auto* data = reinterpret_cast<const uint8_t*>(rows.data());
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = data + static_cast<size_t>(y) * row_bytes;
    const uint8_t* up = y > 0 ? row - row_bytes : nullptr;
    raw += palette_indices ? filtered(row, up, row_bytes, bpp, 0)
                           : best_filtered(row, up, row_bytes, bpp);
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
  chunk(out, "IDAT", deflated(raw));
  chunk(out, "IEND", "");
  return out;
}

std::string encode_png_rgb(const uint8_t* rgb, int width, int height) {
  return encode_png(
      std::string(reinterpret_cast<const char*>(rgb), static_cast<size_t>(width) * height * 3),
      width, height, 8, 2);
}

}  // namespace sd
