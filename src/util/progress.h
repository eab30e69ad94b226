#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace sd {

// A progress line on stderr for long work: "train 120/1000 (12%) 1.52/s ETA 9m39s | extra".
// On a terminal it redraws one line; in a log it prints a line at most every 10 seconds.
// The rate counts only the units done since this object was made.
class Progress {
 public:
  Progress(std::string label, int64_t total, int64_t start = 0);
  void update(int64_t done, const std::string& extra = "");
  // The last line, printed unconditionally, ending with a newline.
  void finish(const std::string& extra = "");

 private:
  std::string line(int64_t done, const std::string& extra) const;
  std::string label_;
  int64_t total_, start_, last_done_;
  int64_t printed_done_ = -1;  // the units of the last line printed in a log
  std::chrono::steady_clock::time_point began_, printed_;
  bool tty_;
};

std::string format_number(double value);      // 4 significant digits
std::string format_duration(double seconds);  // "2h05m", "3m09s", "42s"

}  // namespace sd
