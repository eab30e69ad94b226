#pragma once
#include <functional>
#include <string>

// A minimal logging facade: the core logs through it without depending on spdlog;
// the program routes it to spdlog when that is available.
namespace sd::log {

enum class Level { debug, info, warn, error };
using Sink = std::function<void(Level, const std::string&)>;

void set_sink(Sink sink);
void set_min_level(Level level);
void write(Level level, const std::string& message);

inline void debug(const std::string& m) { write(Level::debug, m); }
inline void info(const std::string& m) { write(Level::info, m); }
inline void warn(const std::string& m) { write(Level::warn, m); }
inline void error(const std::string& m) { write(Level::error, m); }

}  // namespace sd::log
