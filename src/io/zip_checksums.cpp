#include "io/zip_checksums.h"

#include <algorithm>
#include <fstream>

#include "util/crc32.h"
#include "util/error.h"

// Zip's layout, as far as it is read here (PKWARE APPNOTE 4.3): the file ends with the end
// of central directory record (22 bytes and a comment); with zip64 (which PyTorch always
// writes) a locator right before it points at the zip64 end record and its 64-bit fields.
// The central directory holds one header per entry: CRC-32, name, extra field, comment.
namespace sd::io {
namespace {

constexpr size_t kEndBytes = 22, kLocatorBytes = 20, kZip64EndBytes = 56, kEntryBytes = 46;
constexpr size_t kMaxCommentBytes = 0xFFFF;
const std::string kEndSignature("PK\x05\x06", 4), kLocatorSignature("PK\x06\x07", 4),
    kZip64EndSignature("PK\x06\x06", 4), kEntrySignature("PK\x01\x02", 4);

uint64_t little_endian(const std::string& bytes, size_t at, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(bytes[at + i]);
  return v;
}

class File {
 public:
  explicit File(const std::string& path)
      : path_(path), in_(path, std::ios::binary | std::ios::ate) {
    if (!in_) throw Error(path + ": cannot open");
    size_ = static_cast<uint64_t>(in_.tellg());
  }
  uint64_t size() const { return size_; }
  std::string read(uint64_t offset, uint64_t n) {
    if (offset > size_ || n > size_ - offset) damaged("points past the end of the file");
    std::string bytes(n, '\0');
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(bytes.data(), static_cast<std::streamsize>(n));
    if (!in_) damaged("cannot be read");
    return bytes;
  }
  [[noreturn]] void damaged(const std::string& what) const {
    throw Error(path_ + ": damaged zip file: its central directory " + what);
  }

 private:
  std::string path_;
  std::ifstream in_;
  uint64_t size_ = 0;
};

struct Directory {
  uint64_t entries = 0, size = 0, offset = 0;
};

Directory find_directory(File& file) {
  const uint64_t tail_size =
      std::min<uint64_t>(file.size(), kLocatorBytes + kEndBytes + kMaxCommentBytes);
  const std::string tail = file.read(file.size() - tail_size, tail_size);
  if (tail.size() < kEndBytes) file.damaged("is missing");
  const size_t end = tail.rfind(kEndSignature, tail.size() - kEndBytes);
  if (end == std::string::npos) file.damaged("is missing");
  Directory d{little_endian(tail, end + 10, 2), little_endian(tail, end + 12, 4),
              little_endian(tail, end + 16, 4)};
  if (end >= kLocatorBytes && tail.compare(end - kLocatorBytes, 4, kLocatorSignature) == 0) {
    const std::string zip64 =
        file.read(little_endian(tail, end - kLocatorBytes + 8, 8), kZip64EndBytes);
    if (zip64.compare(0, 4, kZip64EndSignature) != 0) file.damaged("has a broken zip64 record");
    d = {little_endian(zip64, 32, 8), little_endian(zip64, 40, 8), little_endian(zip64, 48, 8)};
  }
  return d;
}

}  // namespace

ZipChecksums::ZipChecksums(const std::string& path) : path_(path) {
  File file(path);
  const Directory d = find_directory(file);
  const std::string dir = file.read(d.offset, d.size);
  size_t at = 0;
  for (uint64_t i = 0; i < d.entries; ++i) {
    if (at + kEntryBytes > dir.size() || dir.compare(at, 4, kEntrySignature) != 0)
      file.damaged("has a broken entry header");
    const size_t name_bytes = little_endian(dir, at + 28, 2);
    if (at + kEntryBytes + name_bytes > dir.size()) file.damaged("has a broken entry name");
    const std::string name = dir.substr(at + kEntryBytes, name_bytes);
    if (i == 0) folder_ = name.substr(0, name.find('/'));
    crc_.emplace(name, static_cast<uint32_t>(little_endian(dir, at + 16, 4)));
    at +=
        kEntryBytes + name_bytes + little_endian(dir, at + 30, 2) + little_endian(dir, at + 32, 2);
  }
}

void ZipChecksums::check(const std::string& record, const void* data, size_t size) const {
  auto it = crc_.find(folder_ + "/" + record);
  if (it == crc_.end())
    throw Error(path_ + ": damaged zip file: no checksum for record '" + record + "'");
  if (it->second != 0 && crc32(data, size) != it->second)
    throw Error(path_ + ": damaged file: record '" + record + "' does not match its CRC-32");
}

}  // namespace sd::io
