#pragma once
#include <string_view>

namespace sd {

// Whether `text` begins with `prefix` (C++20's std::string::starts_with).
inline bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

}  // namespace sd
