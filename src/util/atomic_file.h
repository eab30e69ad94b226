#pragma once
#include <string>
#include <string_view>

namespace sd {

// A file written in pieces that replaces `path` only once commit() is called: a temp file in
// the same folder, fsync, rename, fsync of the folder. So a crash, kill -9 or full disk leaves
// either the old file or the complete new one; destroyed uncommitted, the temp file goes.
// Throws sd::Error naming the path and the system's reason.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view bytes);
  void commit();

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& path);
  std::string path_, tmp_;
  int fd_;
};

// `bytes` written to `path` at once, as AtomicFile does.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; throws sd::Error naming the path when it cannot.
std::string read_file(const std::string& path);

}  // namespace sd
