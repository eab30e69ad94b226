#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/crc32.h"

// A zip writer for tests that must write what no zip library would: every field of the
// central directory can be set to lie about the bytes before it (PKWARE APPNOTE 4.3).
namespace sd::testing {

inline std::string little_endian(uint64_t v, int width) {
  std::string out;
  for (int i = 0; i < width; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

// A local header and the bytes after it, as stored (method 0) entries have them.
inline std::string local_entry(const std::string& name, const std::string& data,
                               uint16_t method = 0) {
  const uint32_t crc = crc32(data.data(), data.size());
  return "PK\x03\x04" + little_endian(20, 2) + little_endian(0, 2) + little_endian(method, 2) +
         little_endian(0, 4) + little_endian(crc, 4) + little_endian(data.size(), 4) +
         little_endian(data.size(), 4) + little_endian(name.size(), 2) + little_endian(0, 2) +
         name + data;
}

// A central directory header: what the reader believes about an entry.
struct CentralEntry {
  std::string name;
  uint32_t crc = 0;
  uint16_t method = 0;
  uint64_t size = 0;    // both sizes: a stored entry's are equal
  uint64_t offset = 0;  // of its local header
  bool zip64 = false;   // sizes in a zip64 extra field
};

class ZipBuilder {
 public:
  // Appends an entry (local header and data) and its central header.
  CentralEntry& add(const std::string& name, const std::string& data, uint16_t method = 0) {
    entries.push_back({name, crc32(data.data(), data.size()), method, data.size(), body.size()});
    body += local_entry(name, data, method);
    return entries.back();
  }

  std::string file() const {
    std::string dir;
    for (const CentralEntry& e : entries) dir += central(e);
    return body + dir + "PK\x05\x06" + little_endian(0, 4) + little_endian(entries.size(), 2) +
           little_endian(entries.size(), 2) + little_endian(dir.size(), 4) +
           little_endian(body.size(), 4) + little_endian(0, 2);
  }

  std::string body;  // the local entries, in order
  std::vector<CentralEntry> entries;

 private:
  static std::string central(const CentralEntry& e) {
    const uint64_t size32 = e.zip64 ? 0xFFFFFFFF : e.size;
    const std::string extra = e.zip64 ? little_endian(1, 2) + little_endian(16, 2) +
                                            little_endian(e.size, 8) + little_endian(e.size, 8)
                                      : "";
    return "PK\x01\x02" + little_endian(20, 2) + little_endian(20, 2) + little_endian(0, 2) +
           little_endian(e.method, 2) + little_endian(0, 4) + little_endian(e.crc, 4) +
           little_endian(size32, 4) + little_endian(size32, 4) + little_endian(e.name.size(), 2) +
           little_endian(extra.size(), 2) + little_endian(0, 2) + little_endian(0, 2) +
           little_endian(0, 2) + little_endian(0, 4) + little_endian(e.offset, 4) + e.name + extra;
  }
};

}  // namespace sd::testing
