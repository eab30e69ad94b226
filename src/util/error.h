#pragma once
#include <stdexcept>
#include <string>

namespace sd {

// Every error a user can cause (bad file, bad key, bad value) is an sd::Error whose
// message names the file, key or value at fault. The CLI prints it and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace sd
