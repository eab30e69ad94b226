#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "util/error.h"

// JSON configs checked against a table of defaults: the defaults name every key and its
// type (see config_table.h for the tables of the run configs, built on these).
namespace sd::io {

// What a string value of a config names, so that it can be read relative to where it was
// written: a config file's relative paths are relative to the file's folder, the command
// line's to the working directory.
enum class PathKind {
  none,          // not a path
  file,          // a file or folder (a list: each item)
  file_or_name,  // a file, or a name such as a preset when it has no '/' and names no file
};

// `value` (a string or a list of strings of kind `kind`) with each relative path made
// absolute against `base`, so that what is written into a run folder works from anywhere.
nlohmann::json absolute_paths(const nlohmann::json& value, PathKind kind, const std::string& base);

// An sd::Error about one key of a config, so that its caller can name where the value came from.
class KeyError : public Error {
 public:
  KeyError(const std::string& key, const std::string& what) : Error(what), key_(key) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// Parses a JSON file; sd::Error names the file and, for syntax errors, the byte offset.
nlohmann::json read_json_file(const std::string& path);

// `given` laid over `defaults`: an unknown key or a value whose type differs from the
// default's is an sd::Error naming `source`, the key, the expected and the given type.
// Integers are accepted where a float is expected.
nlohmann::json merge_config(const nlohmann::json& defaults, const nlohmann::json& given,
                            const std::string& source);

// Converts a command-line string into the type of `default_value` (number, bool, string,
// list of strings or numbers given comma-separated); sd::Error names the key and the text.
nlohmann::json parse_override(const nlohmann::json& default_value, const std::string& key,
                              const std::string& text);

// sd::Error "config key 'KEY' = VALUE: RULE": a value of the right type that a config refuses.
[[noreturn]] void refuse(const std::string& key, const nlohmann::json& value,
                         const std::string& rule);

}  // namespace sd::io
