#include "util/temp_folder.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "util/error.h"

namespace sd {

TempFolder::TempFolder(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (!mkdtemp(pattern.data()))
    throw Error("cannot create a temporary folder '" + pattern + "': " + std::strerror(errno));
  path_ = pattern;
}

TempFolder::~TempFolder() {
  std::error_code ignored;  // a destructor must not throw; what stays is in the temporary folder
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace sd
