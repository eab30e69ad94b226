#include "store/part.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "util/atomic_file.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/regular_file.h"

namespace fs = std::filesystem;

namespace sd::store {
namespace {

const std::string kRecords = ".records";
const std::string kIndex = ".index";

[[noreturn]] void system_error(const std::string& what, const std::string& path) {
  throw Error(what + " '" + path + "': " + std::strerror(errno));
}

std::string describe(const std::string& store, const std::string& path, const std::string& key,
                     uint64_t offset) {
  return "store '" + store + "', shard '" + fs::path(path).filename().string() + "', key '" + key +
         "', offset " + std::to_string(offset);
}

}  // namespace

std::string records_path(const std::string& dir, const std::string& part) {
  return dir + "/" + part + kRecords;
}
std::string index_path(const std::string& dir, const std::string& part) {
  return dir + "/" + part + kIndex;
}

StoreFiles list_store_files(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error("store '" + dir + "' is not a folder");
  std::set<std::string> records, indexes;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    auto strip = [&](const std::string& ext) { return name.substr(0, name.size() - ext.size()); };
    if (entry.path().extension() == kRecords) records.insert(strip(kRecords));
    if (entry.path().extension() == kIndex) indexes.insert(strip(kIndex));
  }
  StoreFiles files;
  // An empty file alone is a writer creating its part (index first, then records).
  auto empty = [&](const std::string& name) {
    std::error_code ec;
    return fs::file_size(dir + "/" + name, ec) == 0 && !ec;
  };
  for (const auto& part : records) {
    if (indexes.count(part))
      files.parts.push_back(part);
    else if (!empty(part + kRecords))
      files.orphans.push_back("shard '" + part + kRecords + "' has no index '" + part + kIndex +
                              "'");
  }
  for (const auto& part : indexes)
    if (!records.count(part) && !empty(part + kIndex))
      files.orphans.push_back("index '" + part + kIndex + "' has no shard '" + part + kRecords +
                              "'");
  return files;
}

uint64_t LoadedIndex::records_end() const {
  if (entries.empty()) return 0;
  const IndexEntry& last = entries.back();
  return last.offset + record_bytes(last.info.key.size(), last.info.payload_bytes);
}

LoadedIndex load_index(const std::string& path, bool collect_damage) {
  std::string bytes = read_regular_file(path);
  LoadedIndex out;
  size_t count = bytes.size() / kIndexEntryBytes;
  out.torn_bytes = bytes.size() % kIndexEntryBytes;
  uint64_t expected_offset = 0;
  bool resync = false;  // after a damaged entry, the next offset cannot be predicted
  for (size_t i = 0; i < count; ++i) {
    IndexEntry entry;
    std::string why = decode_index_entry(bytes.data() + i * kIndexEntryBytes, entry);
    if (why.empty() && !resync && entry.offset != expected_offset)
      why = "offset " + std::to_string(entry.offset) +
            " does not follow the previous record (expected " + std::to_string(expected_offset) +
            ")";
    if (!why.empty()) {
      std::string message = "store index '" + path + "' is damaged: entry " + std::to_string(i) +
                            " at byte " + std::to_string(i * kIndexEntryBytes) + ": " + why;
      if (!collect_damage) throw Error(message);
      out.damage.push_back(message);
      resync = true;
      continue;
    }
    resync = false;
    expected_offset = entry.offset + record_bytes(entry.info.key.size(), entry.info.payload_bytes);
    out.entries.push_back(std::move(entry));
  }
  return out;
}

at::Tensor read_record(int fd, const std::string& store, const std::string& path,
                       const IndexEntry& entry, RecordInfo& info) {
  const RecordInfo& want = entry.info;
  auto damaged = [&](const std::string& why) {
    return Error("damaged record (" + describe(store, path, want.key, entry.offset) + "): " + why);
  };
  std::string header(payload_offset(want.key.size()), '\0');
  const uint64_t needed = header.size() + want.payload_bytes, size = file_size(fd, path);
  if (entry.offset > size || needed > size - entry.offset)  // before allocating the payload
    throw damaged("the shard is truncated or the index lies: the index gives the record " +
                  std::to_string(needed) + " bytes from offset " + std::to_string(entry.offset) +
                  ", past the end of the shard (" + std::to_string(size) + " bytes)");
  at::Tensor payload = at::empty({int64_t(want.payload_bytes)}, at::kByte);
  size_t got = read_at(fd, entry.offset, header.data(), header.size(), path);
  if (got == header.size())
    got += read_at(fd, entry.offset + header.size(), static_cast<char*>(payload.data_ptr()),
                   want.payload_bytes, path);
  if (got < header.size() + want.payload_bytes)
    throw damaged("the shard is truncated (record needs " +
                  std::to_string(header.size() + want.payload_bytes) + " bytes, " +
                  std::to_string(got) + " present)");
  std::string why = decode_header(header.data(), header.size(), info);
  if (!why.empty()) throw damaged(why);
  if (info.key != want.key || info.kind != want.kind || info.dtype != want.dtype ||
      info.payload_bytes != want.payload_bytes || info.payload_crc != want.payload_crc ||
      header_crc(header.data()) != entry.header_crc)
    throw damaged("record header (key '" + info.key + "') does not match the index");
  if (crc32c(payload.data_ptr(), want.payload_bytes) != want.payload_crc)
    throw damaged("payload checksum mismatch");
  return payload;
}

int open_for_reading(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) system_error("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("store file '" + path + "' is not a regular file: not read");
  }
  return fd;
}

size_t read_at(int fd, uint64_t offset, char* data, size_t size, const std::string& path) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, data + done, size - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) system_error("cannot read", path);
    if (n == 0) break;
    done += size_t(n);
  }
  return done;
}

void write_at(int fd, uint64_t offset, const char* data, size_t size, const std::string& path) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, data + done, size - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) system_error("cannot write", path);
    done += size_t(n);
  }
}

uint64_t file_size(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) system_error("cannot stat", path);
  return uint64_t(st.st_size);
}

}  // namespace sd::store
