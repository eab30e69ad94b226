#include "util/log.h"

#include <iostream>
#include <mutex>

namespace sd::log {
namespace {

std::mutex& mutex() {
  static std::mutex m;
  return m;
}

Level& min_level() {
  static Level level = Level::info;
  return level;
}

const char* name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warning";
    case Level::error:
      return "error";
  }
  return "?";
}

Sink& sink() {
  static Sink s = [](Level level, const std::string& message) {
    std::cerr << "[" << name(level) << "] " << message << std::endl;
  };
  return s;
}

}  // namespace

void set_sink(Sink s) {
  std::lock_guard<std::mutex> lock(mutex());
  sink() = std::move(s);
}

void set_min_level(Level level) {
  std::lock_guard<std::mutex> lock(mutex());
  min_level() = level;
}

void write(Level level, const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex());
  if (level >= min_level()) sink()(level, message);
}

}  // namespace sd::log
