#pragma once
#include <filesystem>
#include <string>

namespace sd {

// A new folder of the system's temporary folder, made by mkdtemp (a name nobody else holds,
// readable by its owner alone), removed with all it holds when the object goes, on an error
// too.
class TempFolder {
 public:
  // "/tmp/<prefix>XXXXXX"; sd::Error naming it when it cannot be made.
  explicit TempFolder(const std::string& prefix);
  ~TempFolder();
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` in the folder.
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace sd
