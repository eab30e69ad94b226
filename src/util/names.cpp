#include "util/names.h"

#include <cstdint>
#include <nlohmann/json.hpp>

namespace sd {
namespace {

// The length of the valid UTF-8 character at `s[i]` (RFC 3629: no overlong forms, no
// surrogates, at most U+10FFFF), 0 when the bytes there are not one.
size_t utf8_length(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = at(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return n;
}

}  // namespace

std::string escape_name(std::string_view name) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(name.size());
  for (size_t i = 0; i < name.size();) {
    const uint8_t c = static_cast<uint8_t>(name[i]);
    const size_t n = utf8_length(name, i);
    if (n == 0 || c < 0x20 || c == 0x7F) {
      out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
      ++i;
    } else {
      out.append(name, i, n);
      i += n;
    }
  }
  return out;
}

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sd
