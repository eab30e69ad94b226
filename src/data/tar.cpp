#include "data/tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "util/error.h"

#ifdef SAMDISTILL_WITH_LIBARCHIVE
#include <archive.h>
#include <archive_entry.h>
#endif

namespace sd::data {

#ifdef SAMDISTILL_WITH_LIBARCHIVE
namespace {

constexpr uint64_t kNone = ~uint64_t{0};

// libarchive's words for what went wrong, or for a name it does not have (it may give none).
std::string text(const char* words) { return words ? words : "no reason given"; }

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct ArchiveWriterCloser {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

}  // namespace
#endif

bool tar_reading_available() {
#ifdef SAMDISTILL_WITH_LIBARCHIVE
  return true;
#else
  return false;
#endif
}

TarFile::TarFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error("cannot read '" + path_ + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int e = errno;
    ::close(fd_);
    throw Error("cannot read '" + path_ + "': " + std::strerror(e));
  }
  file_bytes_ = static_cast<uint64_t>(st.st_size);
}

TarFile::~TarFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<const TarFile> TarFile::open(const std::string& path) {
  if (!tar_reading_available())
    throw Error(path + ": this build of samdistill reads no tars (built without libarchive); " +
                "extract it and give the folder to --data");
  std::shared_ptr<TarFile> tar(new TarFile(path));
  tar->index();
  return tar;
}

#ifdef SAMDISTILL_WITH_LIBARCHIVE
void TarFile::index() {
  std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
  archive_read_support_format_tar(a.get());
  archive_read_support_filter_all(a.get());  // to name a compressed tar, not to read one
  if (archive_read_open_filename(a.get(), path_.c_str(), 1 << 16) != ARCHIVE_OK)
    throw Error(path_ + ": not a tar (" + text(archive_error_string(a.get())) + ")");
  archive_entry* entry = nullptr;
  uint64_t data_end = 0;  // of the last member, padded to the 512-byte block: its next header
  uint64_t damaged_from = kNone;  // where a run of bad headers libarchive is skipping began
  while (true) {
    const uint64_t at = std::max(uint64_t(archive_filter_bytes(a.get(), 0)), data_end);
    const int status = archive_read_next_header(a.get(), &entry);
    if (status == ARCHIVE_RETRY) {  // a bad header: skipped block by block, as GNU tar does
      if (damaged_from == kNone) damaged_from = at;
      if (uint64_t(archive_filter_bytes(a.get(), 0)) <= at) break;  // no progress: give up
      continue;
    }
    if (damaged_from != kNone) {
      damage_.push_back("damaged header at byte " + std::to_string(damaged_from) +
                        ": skipped to the next good header at byte " + std::to_string(at) +
                        " (what lay between, a member at least, is lost)");
      damaged_from = kNone;
    }
    if (status == ARCHIVE_EOF) {
      // A tar ends with zero blocks. Without them it was cut, perhaps right after a member,
      // and would otherwise read as a shorter whole tar.
      if (file_bytes_ <= at)
        damage_.push_back("cut short at byte " + std::to_string(file_bytes_) +
                          ": no end-of-archive blocks after the last member (members after it, " +
                          "if any, are lost)");
      break;
    }
    if (archive_filter_code(a.get(), 0) != ARCHIVE_FILTER_NONE)
      throw Error(path_ + ": a compressed tar (" + text(archive_filter_name(a.get(), 0)) +
                  ") has no random access; decompress it to a plain .tar");
    if (status < ARCHIVE_WARN) {
      if (members_.empty() && at == 0)
        throw Error(path_ + ": not a tar (" + text(archive_error_string(a.get())) + ")");
      damage_.push_back("damaged or cut short at byte " + std::to_string(at) + " (" +
                        text(archive_error_string(a.get())) + "): members from there on are lost");
      break;
    }
    const char* name = archive_entry_pathname(entry);
    if (archive_entry_filetype(entry) != AE_IFREG || !name) continue;
    // Right after the headers (pax and GNU extensions included), the stream stands at the data.
    const int64_t offset = archive_filter_bytes(a.get(), 0), size = archive_entry_size(entry);
    if (offset < 0 || size < 0 || uint64_t(offset) > file_bytes_) {
      damage_.push_back("damaged at byte " + std::to_string(at) + " (member '" + name + "' of " +
                        std::to_string(size) + " bytes): members from there on are lost");
      break;
    }
    TarMember m{name, uint64_t(offset), uint64_t(size)};
    if (archive_entry_sparse_count(entry) > 0) {
      damage_.push_back("member '" + m.name + "' is a sparse file, which cannot be read in " +
                        "place: skipped");
      continue;
    }
    if (m.size > file_bytes_ - m.offset) {
      damage_.push_back("cut short at byte " + std::to_string(file_bytes_) + " inside member '" +
                        m.name + "' (its data runs from byte " + std::to_string(m.offset) + " to " +
                        std::to_string(m.offset + m.size) + "): members from there on are lost");
      break;
    }
    data_end = m.offset + (m.size + 511) / 512 * 512;
    members_.push_back(std::move(m));
  }
}
void write_tar(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& files) {
  std::unique_ptr<archive, ArchiveWriterCloser> a(archive_write_new());
  archive_write_set_format_pax_restricted(a.get());
  if (archive_write_open_filename(a.get(), path.c_str()) != ARCHIVE_OK)
    throw Error("cannot write '" + path + "': " + archive_error_string(a.get()));
  std::string block(1 << 20, '\0');
  for (const auto& [name, file] : files) {
    std::ifstream in(file, std::ios::binary | std::ios::ate);
    if (!in) throw Error("cannot read '" + file + "'");
    std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_size(e.get(), int64_t(in.tellg()));
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    in.seekg(0);
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK)
      throw Error("cannot write '" + path + "': " + archive_error_string(a.get()));
    while (in.read(&block[0], std::streamsize(block.size())) || in.gcount() > 0)
      if (archive_write_data(a.get(), block.data(), size_t(in.gcount())) < 0)
        throw Error("cannot write '" + path + "': " + archive_error_string(a.get()));
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK)
    throw Error("cannot write '" + path + "': " + archive_error_string(a.get()));
}
#else
void TarFile::index() {}

void write_tar(const std::string& path, const std::vector<std::pair<std::string, std::string>>&) {
  throw Error(path + ": this build of samdistill writes no tars (built without libarchive)");
}
#endif

std::string TarFile::read(const TarMember& m) const { return read(m, 0, m.size); }

std::string TarFile::read(const TarMember& m, uint64_t from, uint64_t count) const {
  std::string bytes(from >= m.size ? 0 : std::min(count, m.size - from), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const uint64_t at = m.offset + from + done;
    const ssize_t n = ::pread(fd_, &bytes[done], bytes.size() - done, off_t(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw Error("cannot read '" + m.name + "' from '" + path_ + "' at byte " +
                  std::to_string(at) + ": " +
                  (n == 0 ? std::string("the tar ends there") : std::strerror(errno)));
    done += size_t(n);
  }
  return bytes;
}

}  // namespace sd::data
