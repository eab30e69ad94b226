#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace sd {

// CRC-32 of zip, gzip and PNG (reflected IEEE 802.3 polynomial): crc32("123456789") ==
// 0xCBF43926. `crc` continues a previous result, so crc32(ab) == crc32(b, crc32(a)).
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

// Slicing-by-8 tables of one reflected 32-bit CRC polynomial: crc32 above and the portable
// path of crc32c.h (Castagnoli) both run on them.
class Crc32Tables {
 public:
  explicit Crc32Tables(uint32_t reflected_polynomial);
  // Advances the raw register (no initial or final inversion) over `size` bytes.
  uint32_t update(uint32_t reg, const void* data, size_t size) const;

 private:
  std::array<std::array<uint32_t, 256>, 8> t_{};  // t_[k][b]: byte b followed by k zero bytes
};

}  // namespace sd
