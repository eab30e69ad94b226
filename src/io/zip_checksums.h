#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace sd::io {

// The CRC-32 that a zip file's central directory records for each of its entries.
// LibTorch builds its zip reader (miniz) without CRC checks, so without these a flipped bit
// in a checkpoint reads silently as another value, or as bytes of a neighbouring record.
class ZipChecksums {
 public:
  // Reads the central directory of `path` (zip64 too); sd::Error naming the file and the
  // entry when it cannot be read or holds what torch.save never writes and a hostile file
  // could: a name twice, a compressed entry, an entry past the records or overlapping
  // another, a local header that names another entry. Reads nothing but the headers.
  explicit ZipChecksums(const std::string& path);

  // sd::Error naming the file and the record unless `data` has the CRC-32 recorded for
  // `record`, a name inside the archive's folder as PyTorchStreamReader takes it
  // (`data.pkl`, `data/0`). A CRC of 0 is one never computed
  // (`torch.serialization.set_crc32_options(False)`) and is not checked.
  void check(const std::string& record, const void* data, size_t size) const;

 private:
  std::string path_;
  std::string folder_;  // the archive's folder: that of its first entry, as in PyTorchStreamReader
  std::unordered_map<std::string, uint32_t> crc_;  // by full name
};

}  // namespace sd::io
