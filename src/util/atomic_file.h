#pragma once
#include <string>
#include <string_view>

namespace sd {

// Writes `bytes` to `path` so that a crash, kill -9 or full disk leaves either the old
// file or the complete new one: temp file in the same folder, fsync, rename, fsync folder.
// Throws sd::Error naming the path and the system's reason.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; throws sd::Error naming the path when it cannot.
std::string read_file(const std::string& path);

}  // namespace sd
