#pragma once
#include <cstdint>
#include <string>

namespace sd {

// A file given by a stranger, open for reading: only a regular file is opened, and opening never
// blocks (a FIFO named like a data file would hang the run; a link to /dev/zero would read until
// memory runs out). sd::Error naming the path and what it is otherwise.
class RegularFile {
 public:
  explicit RegularFile(const std::string& path);
  ~RegularFile();
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  uint64_t size() const { return size_; }
  // Up to `count` bytes from `offset`; fewer only at the end of the file.
  std::string read(uint64_t offset, uint64_t count) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole of a regular file (RegularFile); sd::Error naming it when it is not one.
std::string read_regular_file(const std::string& path);

}  // namespace sd
