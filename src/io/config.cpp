#include "io/config.h"

#include <filesystem>
#include <sstream>

#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::io {
namespace {

using nlohmann::json;

bool same_kind(const json& expected, const json& given) {
  if (expected.is_number_float()) return given.is_number();
  if (expected.is_number_integer()) return given.is_number_integer();
  if (expected.is_array()) return given.is_array();
  return expected.type() == given.type();
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, sep))
    if (!part.empty()) parts.push_back(part);
  return parts;
}

json parse_scalar(const json& like, const std::string& key, const std::string& text) {
  auto bad = [&](const char* type) {
    return Error("option --" + key + ": '" + text + "' is not " + type);
  };
  if (like.is_boolean()) {
    if (text == "true" || text == "1" || text == "on") return true;
    if (text == "false" || text == "0" || text == "off") return false;
    throw bad("a boolean (true/false)");
  }
  if (like.is_number()) {
    size_t used = 0;
    try {
      if (like.is_number_integer()) {
        long long v = std::stoll(text, &used);
        if (used == text.size()) return v;
      } else {
        double v = std::stod(text, &used);
        if (used == text.size()) return v;
      }
    } catch (const std::exception&) {
    }
    throw bad(like.is_number_integer() ? "an integer" : "a number");
  }
  return text;
}

}  // namespace

// What a value of the kind of `expected` is, in words.
std::string kind_in_words(const json& expected) {
  if (expected.is_number_integer()) return "an integer";
  if (expected.is_number()) return "a number";
  if (expected.is_boolean()) return "true or false";
  if (expected.is_array()) return "a list";
  if (expected.is_string()) return "a string";
  return std::string(expected.type_name());
}

json read_json_file(const std::string& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error("malformed JSON in '" + path + "' at byte " + std::to_string(e.byte) + ": " +
                e.what());
  } catch (const json::exception& e) {  // a number out of range (out_of_range 406)
    throw Error("malformed JSON in '" + path + "': " + e.what());
  }
}

json merge_config(const json& defaults, const json& given, const std::string& source) {
  if (!given.is_object()) throw Error(source + ": a config must be a JSON object");
  json out = defaults;
  for (auto it = given.begin(); it != given.end(); ++it) {
    if (!defaults.contains(it.key()))
      throw KeyError(it.key(), source + ": unknown key '" + it.key() + "'");
    const json& expected = defaults.at(it.key());
    if (!same_kind(expected, it.value()))
      throw KeyError(it.key(), source + ": key '" + it.key() + "' must be " +
                                   kind_in_words(expected) + ", got " + it.value().dump());
    out[it.key()] = it.value();
  }
  return out;
}

void refuse(const std::string& key, const json& value, const std::string& rule) {
  throw KeyError(key, "config key '" + key + "' = " + value.dump() + ": " + rule);
}

json absolute_paths(const json& value, PathKind kind, const std::string& base) {
  if (value.is_array()) {
    json out = json::array();
    for (const json& item : value) out.push_back(absolute_paths(item, kind, base));
    return out;
  }
  if (kind == PathKind::none || !value.is_string()) return value;
  const std::string text = value.get<std::string>();
  const fs::path path(text);
  if (text.empty() || path.is_absolute()) return value;
  const fs::path resolved = (fs::absolute(base) / path).lexically_normal();
  const bool a_name = text.find('/') == std::string::npos && !fs::exists(resolved);
  if (kind == PathKind::file_or_name && a_name) return value;
  return resolved.string();
}

json parse_override(const json& default_value, const std::string& key, const std::string& text) {
  if (!default_value.is_array()) return parse_scalar(default_value, key, text);
  json element = default_value.empty() ? json("") : default_value.front();
  json out = json::array();
  for (const auto& part : split(text, ',')) out.push_back(parse_scalar(element, key, part));
  return out;
}

}  // namespace sd::io
