#include "util/crc32.h"

#include <cstring>

namespace sd {

Crc32Tables::Crc32Tables(uint32_t reflected_polynomial) {
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ (reflected_polynomial & (0u - (c & 1u)));
    t_[0][b] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (int b = 0; b < 256; ++b) t_[k][b] = (t_[k - 1][b] >> 8) ^ t_[0][t_[k - 1][b] & 0xFF];
}

uint32_t Crc32Tables::update(uint32_t c, const void* data, size_t n) const {
  const auto* p = static_cast<const uint8_t*>(data);
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo, hi;  // little-endian host
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t_[7][lo & 0xFF] ^ t_[6][(lo >> 8) & 0xFF] ^ t_[5][(lo >> 16) & 0xFF] ^ t_[4][lo >> 24] ^
        t_[3][hi & 0xFF] ^ t_[2][(hi >> 8) & 0xFF] ^ t_[1][(hi >> 16) & 0xFF] ^ t_[0][hi >> 24];
  }
  for (; n > 0; --n, ++p) c = (c >> 8) ^ t_[0][(c ^ *p) & 0xFF];
  return c;
}

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  static const Crc32Tables tables(0xEDB88320u);
  return ~tables.update(~crc, data, size);
}

}  // namespace sd
