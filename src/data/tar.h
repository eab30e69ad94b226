#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

// A tar file read in place: one pass over its headers indexes the members (name, where the
// data starts, its size), then any member is read with one pread at its offset, so that
// hashed subsets and shuffled epochs have random access and nothing is extracted or held
// whole. Built on libarchive (optional: without it, opening a tar is an sd::Error).
namespace sd::data {

struct TarMember {
  std::string name;     // path inside the tar, e.g. "sa_1.jpg" or "images/a.png"
  uint64_t offset = 0;  // of the first data byte in the tar file
  uint64_t size = 0;    // bytes
};

class TarFile {
 public:
  // Indexes every regular member. A tar cut short or damaged keeps the members before the
  // damage, a bad header is skipped to the next good one, a sparse member is left out; each
  // says where in damage(). A compressed tar (no random access) or a file that is not a tar is
  // an sd::Error naming it.
  static std::shared_ptr<const TarFile> open(const std::string& path);
  ~TarFile();
  TarFile(const TarFile&) = delete;
  TarFile& operator=(const TarFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TarMember>& members() const { return members_; }
  // Empty for a whole tar, else one line for each thing lost ("cut short at byte N ...",
  // "damaged header at byte N ...", "member '...' is a sparse file ...").
  const std::vector<std::string>& damage() const { return damage_; }

  // The member's bytes (one pread; safe from many threads). sd::Error naming the tar and the
  // member when the file cannot give them.
  std::string read(const TarMember& member) const;
  // Up to `count` of its bytes from `from` (fewer at its end).
  std::string read(const TarMember& member, uint64_t from, uint64_t count) const;

 private:
  explicit TarFile(std::string path);
  void index();

  std::string path_;
  int fd_ = -1;
  uint64_t file_bytes_ = 0;
  std::vector<TarMember> members_;
  std::vector<std::string> damage_;
};

// Whether this build reads tars (libarchive found at configure time).
bool tar_reading_available();

// Writes a plain (uncompressed, pax) tar at `path` holding each file of `files` (name in the
// tar -> file on disk), streamed a block at a time. sd::Error naming the file at fault.
void write_tar(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace sd::data
