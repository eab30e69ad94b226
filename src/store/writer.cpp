#include "store/writer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "store/part.h"
#include "store/reader.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace sd::store {
namespace {

[[noreturn]] void system_error(const std::string& what, const std::string& path) {
  throw Error(what + " '" + path + "': " + std::strerror(errno));
}

// A store is a folder of regular files that its writers create: a symlink (to a file elsewhere,
// which the writer would truncate and fill) or a FIFO or device in its place is refused before
// anything is written.
[[noreturn]] void refuse_foreign(const std::string& path, const std::string& what) {
  throw Error("store file '" + path + "' is " + what +
              ", not a file a store writer made: nothing written (remove it, or give another "
              "store folder)");
}

void check_own_file(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // absent: ours to create
  if (S_ISLNK(st.st_mode)) refuse_foreign(path, "a symlink");
  if (!S_ISREG(st.st_mode)) refuse_foreign(path, "not a regular file");
}

int open_file(const std::string& path) {
  check_own_file(path);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd < 0 && errno == ELOOP) refuse_foreign(path, "a symlink");
  if (fd < 0) system_error("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    refuse_foreign(path, "not a regular file");
  }
  return fd;
}

void sync(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) system_error("cannot sync", path);
}

void sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) system_error("cannot open", dir);
  ::fsync(fd);
  ::close(fd);
}

void truncate_to(int fd, uint64_t size, const std::string& path) {
  if (::ftruncate(fd, off_t(size)) != 0) system_error("cannot truncate", path);
  sync(fd, path);
}

// Writes manifest.json unless one exists (link() never replaces, so concurrent writers agree
// on one manifest), then checks the store's manifest against ours.
void create_or_check_manifest(const std::string& dir, const Manifest& manifest) {
  std::string path = manifest_path(dir);
  check_own_file(path);
  if (!fs::exists(path)) {
    std::string tmp = path + ".new." + std::to_string(::getpid());
    write_file_atomic(tmp, manifest.to_json().dump(2) + "\n");
    bool linked = ::link(tmp.c_str(), path.c_str()) == 0;
    int link_errno = errno;
    ::unlink(tmp.c_str());
    if (!linked && link_errno != EEXIST) {
      errno = link_errno;
      system_error("cannot create", path);
    }
    sync_dir(dir);
  }
  check_compatible(manifest, read_manifest(dir), dir);
}

}  // namespace

Writer::Writer(const std::string& dir, const Manifest& manifest, const std::string& part)
    : dir_(dir),
      part_(part),
      records_path_(records_path(dir, part)),
      index_path_(index_path(dir, part)) {
  if (!manifest.dtype) throw Error("store '" + dir + "': a writer needs the manifest's dtype");
  dtype_ = *manifest.dtype;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create store folder '" + dir + "': " + ec.message());
  check_own_file(index_path_);
  check_own_file(records_path_);
  create_or_check_manifest(dir, manifest);

  index_fd_ = open_file(index_path_);
  if (::flock(index_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(index_fd_);
    throw Error("part '" + part + "' of store '" + dir + "' is being written by another process");
  }
  try {
    records_fd_ = open_file(records_path_);
  } catch (...) {
    ::close(index_fd_);
    throw;
  }
  sync_dir(dir);

  LoadedIndex index = load_index(index_path_, false);
  committed_ = index.entries.size();
  index_end_ = committed_ * kIndexEntryBytes;
  if (index.torn_bytes > 0) truncate_to(index_fd_, index_end_, index_path_);
  records_end_ = index.records_end();
  uint64_t size = file_size(records_fd_, records_path_);
  if (size < records_end_)
    throw Error("store '" + dir + "': shard '" + records_path_ + "' is truncated (" +
                std::to_string(size) + " bytes, committed records end at " +
                std::to_string(records_end_) + "); run `samdistill store verify`");
  dropped_ = size - records_end_;
  if (dropped_ > 0) truncate_to(records_fd_, records_end_, records_path_);
}

Writer::~Writer() {
  try {
    commit();
  } catch (const std::exception& e) {
    log::error(std::string("store: records not committed: ") + e.what());
  }
  ::close(records_fd_);
  ::close(index_fd_);
}

void Writer::put(const Encoded& record) {
  const RecordInfo& info = record.info;
  if (info.kind == Kind::embedding && info.dtype != dtype_)
    throw Error("store '" + dir_ + "' holds " + word(dtype_) + " embeddings, record '" + info.key +
                "' is " + word(info.dtype));
  std::string header = encode_header(info);
  uint64_t total = record_bytes(info.key.size(), info.payload_bytes);
  try {
    write_at(records_fd_, records_end_, header.data(), header.size(), records_path_);
    write_at(records_fd_, records_end_ + header.size(),
             static_cast<const char*>(record.payload.data_ptr()), info.payload_bytes,
             records_path_);
    uint64_t padding = total - header.size() - info.payload_bytes;
    if (padding > 0)
      write_at(records_fd_, records_end_ + total - padding, std::string(padding, '\0').data(),
               padding, records_path_);
  } catch (const Error& e) {
    throw_keeping(e);
  }
  IndexEntry entry;
  entry.info = info;
  entry.offset = records_end_;
  entry.header_crc = header_crc(header.data());
  pending_ += encode_index_entry(entry);
  records_end_ += total;
}

void Writer::commit() {
  if (pending_.empty()) return;
  try {
    sync(records_fd_, records_path_);
    write_at(index_fd_, index_end_, pending_.data(), pending_.size(), index_path_);
    sync(index_fd_, index_path_);
  } catch (const Error& e) {
    throw_keeping(e);
  }
  index_end_ += pending_.size();
  committed_ += pending_.size() / kIndexEntryBytes;
  pending_.clear();
}

void Writer::throw_keeping(const Error& e) const {
  throw Error(std::string(e.what()) + "; part '" + part_ + "' of store '" + dir_ + "' keeps its " +
              std::to_string(committed_) +
              " committed records (the same command continues from them)");
}

std::string shard_part_name(int index, int count) {
  return "shard-" + std::to_string(index) + "-of-" + std::to_string(count);
}

size_t merge_store(const std::string& dst, const std::string& src) {
  Reader from(src);
  Writer writer(dst, from.manifest(), "merged");
  Reader existing(dst);
  size_t copied = 0;
  for (const Entry& entry : from.entries()) {
    const RecordInfo& info = entry.index.info;
    if (from.find(info.kind, info.key) != &entry || existing.find(info.kind, info.key)) continue;
    writer.put(from.read_encoded(entry));
    if (++copied % 64 == 0) writer.commit();
  }
  writer.commit();
  return copied;
}

}  // namespace sd::store
