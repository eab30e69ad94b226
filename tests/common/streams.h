#pragma once
#include <string>

namespace sd::testing {

// A shell command's exit status with its stdout and stderr apart (run_command of
// common/fixtures.h gives them together), for outputs that must parse with the logs elsewhere.
struct Streams {
  int status = -1;
  std::string out, err;
};
Streams run_command_apart(const std::string& shell_command);

}  // namespace sd::testing
