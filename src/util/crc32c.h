#pragma once
#include <cstddef>
#include <cstdint>

namespace sd {

// CRC-32C (Castagnoli, as in iSCSI/ext4/RocksDB): crc32c("123456789") == 0xE3069283.
// `crc` continues a previous result, so crc32c(ab) == crc32c(b, crc32c(a)).
// Uses the SSE4.2 instruction when the CPU has it, else slicing-by-8 tables.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

// The table version alone, for tests that compare both paths.
uint32_t crc32c_portable(const void* data, size_t size, uint32_t crc = 0);

}  // namespace sd
