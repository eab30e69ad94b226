#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace sd {
namespace {

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

Progress::Progress(std::string label, int64_t total, int64_t start)
    : label_(std::move(label)),
      total_(total),
      start_(start),
      last_done_(start),
      began_(std::chrono::steady_clock::now()),
      printed_(began_),
      tty_(isatty(STDERR_FILENO)) {}

std::string Progress::line(int64_t done, const std::string& extra) const {
  double elapsed = seconds(std::chrono::steady_clock::now() - began_);
  double rate = elapsed > 0 ? static_cast<double>(done - start_) / elapsed : 0;
  std::string out = label_ + " " + std::to_string(done) + "/" + std::to_string(total_);
  if (total_ > 0) out += " (" + std::to_string(100 * done / total_) + "%)";
  out += " " + format_number(rate) + "/s";
  if (rate > 0 && done < total_) out += " ETA " + format_duration((total_ - done) / rate);
  if (!extra.empty()) out += " | " + extra;
  return out;
}

void Progress::update(int64_t done, const std::string& extra) {
  last_done_ = done;
  auto now = std::chrono::steady_clock::now();
  double since = seconds(now - printed_);
  if (since < (tty_ ? 0.25 : 10.0) && done < total_) return;
  printed_ = now;
  printed_done_ = done;
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s", line(done, extra).c_str());
  else
    std::fprintf(stderr, "%s\n", line(done, extra).c_str());
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  if (!tty_ && printed_done_ == last_done_ && extra.empty()) return;  // a log has that line
  std::fprintf(stderr, "%s%s\n", tty_ ? "\r\033[K" : "", line(last_done_, extra).c_str());
  std::fflush(stderr);
}

std::string format_number(double value) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", value);
  return buf;
}

std::string format_duration(double s) {
  long total = static_cast<long>(s + 0.5);
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", total / 3600, total / 60 % 60);
  else if (total >= 60)
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", total / 60, total % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lds", total);
  return buf;
}

}  // namespace sd
