#pragma once
#include <nlohmann/json.hpp>
#include <string>

// JSON configs checked against a table of defaults: the defaults name every key and its
// type (see config_table.h for the tables of the run configs, built on these).
namespace sd::io {

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
