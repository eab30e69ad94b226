#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sd {

// SHA-256 (FIPS 180-4), the digest `sha256sum` prints: 64 lowercase hex digits.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex_digest();  // finishes the hash; the object is spent afterwards

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const void* data, size_t size);
// Digest of a file's bytes (checkpoints: records which weights produced a store or run).
// sd::Error naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace sd
