#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace sd {

// File names are bytes, JSON is UTF-8 and a log line is one line: `name` with every byte that
// is not part of a valid UTF-8 character, and every control character (a newline in a file
// name), written as \xNN. Valid UTF-8 without control characters comes back unchanged.
std::string escape_name(std::string_view name);

// `j` as JSON text (indented by `indent`, -1: one line), where invalid UTF-8 left in a string
// (a name that was not escaped) becomes U+FFFD instead of an exception: every JSON output parses.
std::string json_text(const nlohmann::json& j, int indent = 2);

}  // namespace sd
