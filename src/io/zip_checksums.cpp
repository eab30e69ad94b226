#include "io/zip_checksums.h"

#include <algorithm>
#include <fstream>
#include <vector>

#include "util/crc32.h"
#include "util/error.h"

// Zip's layout, as far as it is read here (PKWARE APPNOTE 4.3): the file ends with the end
// of central directory record (22 bytes and a comment); with zip64 (which PyTorch always
// writes) a locator right before it points at the zip64 end record and its 64-bit fields.
// The central directory holds one header per entry: CRC-32, name, extra field, comment.
namespace sd::io {
namespace {

constexpr size_t kEndBytes = 22, kLocatorBytes = 20, kZip64EndBytes = 56, kEntryBytes = 46,
                 kLocalBytes = 30;
constexpr size_t kMaxCommentBytes = 0xFFFF;
const std::string kEndSignature("PK\x05\x06", 4), kLocatorSignature("PK\x06\x07", 4),
    kZip64EndSignature("PK\x06\x06", 4), kEntrySignature("PK\x01\x02", 4),
    kLocalSignature("PK\x03\x04", 4);

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
  [[noreturn]] void not_a_zip() const {
    throw Error(path_ + ": not a readable torch.save zip file (no zip central directory)");
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
  if (tail.size() < kEndBytes) file.not_a_zip();
  const size_t end = tail.rfind(kEndSignature, tail.size() - kEndBytes);
  if (end == std::string::npos) file.not_a_zip();
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

// One central directory header, its zip64 extra field applied.
struct Entry {
  std::string name;
  uint32_t crc = 0;
  uint16_t method = 0;
  uint64_t compressed = 0, size = 0, offset = 0;
};

// The zip64 extra field (id 1) holds, in this order, each of size, compressed size and
// offset whose 32-bit field is 0xFFFFFFFF.
void apply_zip64(File& file, const std::string& extra, Entry& e) {
  for (size_t at = 0; at + 4 <= extra.size();) {
    const uint64_t id = little_endian(extra, at, 2), bytes = little_endian(extra, at + 2, 2);
    if (at + 4 + bytes > extra.size()) file.damaged("has a broken extra field");
    if (id == 1) {
      size_t field = at + 4;
      for (uint64_t* v : {&e.size, &e.compressed, &e.offset}) {
        if (*v != 0xFFFFFFFF) continue;
        if (field + 8 > at + 4 + bytes) file.damaged("has a broken zip64 field");
        *v = little_endian(extra, field, 8);
        field += 8;
      }
    }
    at += 4 + bytes;
  }
}

Entry read_entry(File& file, const std::string& dir, size_t& at) {
  if (at + kEntryBytes > dir.size() || dir.compare(at, 4, kEntrySignature) != 0)
    file.damaged("has a broken entry header");
  const size_t name_bytes = little_endian(dir, at + 28, 2),
               extra_bytes = little_endian(dir, at + 30, 2),
               comment_bytes = little_endian(dir, at + 32, 2);
  if (at + kEntryBytes + name_bytes + extra_bytes > dir.size())
    file.damaged("has a broken entry name");
  Entry e;
  e.name = dir.substr(at + kEntryBytes, name_bytes);
  e.method = static_cast<uint16_t>(little_endian(dir, at + 10, 2));
  e.crc = static_cast<uint32_t>(little_endian(dir, at + 16, 4));
  e.compressed = little_endian(dir, at + 20, 4);
  e.size = little_endian(dir, at + 24, 4);
  e.offset = little_endian(dir, at + 42, 4);
  apply_zip64(file, dir.substr(at + kEntryBytes + name_bytes, extra_bytes), e);
  at += kEntryBytes + name_bytes + extra_bytes + comment_bytes;
  return e;
}

// The bytes an entry occupies, its local header included.
struct Span {
  uint64_t begin = 0, end = 0;
  std::string name;
};

// torch.save stores every record uncompressed, inside the file, where the central
// directory says: anything else is refused before a byte of it is allocated or inflated.
Span check_entry(File& file, const Entry& e, uint64_t directory_offset) {
  const std::string what = "entry '" + e.name + "' ";
  if (e.method != 0 || e.compressed != e.size) file.damaged(what + "is compressed");
  if (e.offset > directory_offset || directory_offset - e.offset < kLocalBytes)
    file.damaged(what + "lies outside the file's records");
  const std::string local = file.read(e.offset, kLocalBytes);
  if (local.compare(0, 4, kLocalSignature) != 0) file.damaged(what + "has no local header");
  const uint64_t name_bytes = little_endian(local, 26, 2);
  const uint64_t data = e.offset + kLocalBytes + name_bytes + little_endian(local, 28, 2);
  if (file.read(e.offset + kLocalBytes, name_bytes) != e.name)
    file.damaged(what + "has another name in its local header");
  if (data > directory_offset || e.size > directory_offset - data)
    file.damaged(what + "declares " + std::to_string(e.size) + " bytes past the file's records");
  return {e.offset, data + e.size, e.name};
}

void check_no_overlap(File& file, std::vector<Span>& spans) {
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      file.damaged("has overlapping entries '" + spans[i - 1].name + "' and '" + spans[i].name +
                   "'");
}

}  // namespace

ZipChecksums::ZipChecksums(const std::string& path) : path_(path) {
  File file(path);
  const Directory d = find_directory(file);
  const std::string dir = file.read(d.offset, d.size);
  std::vector<Span> spans;
  size_t at = 0;
  for (uint64_t i = 0; i < d.entries; ++i) {
    const Entry e = read_entry(file, dir, at);
    if (i == 0) folder_ = e.name.substr(0, e.name.find('/'));
    if (!crc_.emplace(e.name, e.crc).second) file.damaged("names '" + e.name + "' twice");
    spans.push_back(check_entry(file, e, d.offset));
  }
  check_no_overlap(file, spans);
}

void ZipChecksums::check(const std::string& record, const void* data, size_t size) const {
  auto it = crc_.find(folder_ + "/" + record);
  if (it == crc_.end())
    throw Error(path_ + ": damaged zip file: no checksum for record '" + record + "'");
  if (it->second != 0 && crc32(data, size) != it->second)
    throw Error(path_ + ": damaged file: record '" + record + "' does not match its CRC-32");
}

}  // namespace sd::io
