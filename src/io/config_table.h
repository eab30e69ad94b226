#pragma once
#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "io/config.h"
#include "util/error.h"
#include "util/words.h"

// One table per config: each key written once, with the struct member it fills, its default
// (whose C++ type is the key's type), the check its value must pass and its help. The
// defaults, the command-line flags and their help, reading and checking a config and
// writing it back (RUN/config.json) all come from the table:
//
//   io::field("batch_size", &TrainConfig::batch_size, 8, io::positive(), "images per micro-batch")
//
// A member is an integer, a float, a bool, a string, a list of strings or of integers, or an
// enum with WordsOf (util/words.h), which a config spells as one of its words.
namespace sd::io {

// A key as the command line shows it.
struct KeyInfo {
  std::string key;
  // INT, FLOAT, BOOL, TEXT, LIST (of strings), INTS, or an enum's words: off|bf16|fp16
  std::string type;
  nlohmann::json default_value;
  std::string help;
  PathKind path = PathKind::none;  // a path: read relative to the config file that holds it
};

// What a value must pass: `ok(value, whole config)` (which may also throw an sd::Error
// saying why not), and the rule in words for the error message.
template <class Ok>
struct Check {
  Ok ok;
  std::string rule;
};
template <class Ok, class Rule>
Check(Ok, Rule) -> Check<Ok>;

inline auto any_value() {
  return Check{[](const auto&, const auto&) { return true; }, ""};
}
inline auto positive() {
  return Check{[](const auto& v, const auto&) { return v > 0; }, "must be > 0"};
}
inline auto non_negative() {
  return Check{[](const auto& v, const auto&) { return v >= 0; }, "must be >= 0"};
}

// For a Check on a list: sd::Error "must list 4 stages" unless `list` has `size` items.
template <class List>
void require_size(const List& list, size_t size, const std::string& items) {
  if (list.size() != size) throw Error("must list " + std::to_string(size) + " " + items);
}

// A list whose every item passes `item` ("each item must be > 0") and, when `size` is not 0,
// of `size` `items`.
template <class Ok>
auto each(Check<Ok> item, size_t size = 0, const std::string& items = "items") {
  return Check{[ok = item.ok, size, items](const auto& list, const auto& c) {
                 if (size > 0) require_size(list, size, items);
                 return std::all_of(list.begin(), list.end(),
                                    [&](const auto& v) { return bool(ok(v, c)); });
               },
               "each item " + item.rule};
}

// One key of a config T, type-erased so that tables of different members line up.
template <class T>
struct Field {
  KeyInfo info;
  std::function<void(const nlohmann::json&, T&)> read;  // a value of the key's JSON type
  std::function<nlohmann::json(const T&)> write;
  std::function<bool(const T&)> ok;
  std::string rule;
};

namespace detail {

template <class M>
constexpr bool is_int_list =
    std::is_same_v<M, std::vector<int>> || std::is_same_v<M, std::vector<int64_t>>;

template <class M>
std::string type_of() {
  if constexpr (std::is_enum_v<M>)
    return word_list<M>("|");
  else if constexpr (std::is_same_v<M, bool>)
    return "BOOL";
  else if constexpr (std::is_integral_v<M>)
    return "INT";
  else if constexpr (std::is_floating_point_v<M>)
    return "FLOAT";
  else if constexpr (std::is_same_v<M, std::string>)
    return "TEXT";
  else if constexpr (is_int_list<M>)
    return "INTS";
  else {
    static_assert(std::is_same_v<M, std::vector<std::string>>,
                  "a config key holds a number, a bool, a string, a list of strings or of "
                  "integers, or an enum with WordsOf");
    return "LIST";
  }
}

template <class M>
nlohmann::json to_json(const M& value) {
  if constexpr (std::is_enum_v<M>)
    return word(value);
  else
    return value;
}

template <class M>
M from_json(const std::string& key, const nlohmann::json& value) {
  if constexpr (std::is_enum_v<M>) {
    if (std::optional<M> v = from_word<M>(value.get<std::string>())) return *v;
    refuse(key, value, "must be " + word_list<M>());
  } else if constexpr (is_int_list<M> || std::is_same_v<M, std::vector<std::string>>) {
    for (const nlohmann::json& item : value)  // merge_config saw a list, not its items
      if (is_int_list<M> ? !item.is_number_integer() : !item.is_string())
        refuse(key, value, is_int_list<M> ? "must list integers" : "must list strings");
    return value.get<M>();
  } else {
    return value.get<M>();
  }
}

template <class X>
struct Same {
  using type = X;
};

}  // namespace detail

// The key `key` filling `member`, with its default, check and help.
template <class T, class M, class Ok>
Field<T> field(const std::string& key, M T::*member,
               const typename detail::Same<M>::type& default_value, Check<Ok> check,
               const std::string& help) {
  Field<T> f;
  f.info = KeyInfo{key, detail::type_of<M>(), detail::to_json(default_value), help};
  f.read = [key, member](const nlohmann::json& j, T& c) {
    c.*member = detail::from_json<M>(key, j);
  };
  f.write = [member](const T& c) { return detail::to_json(c.*member); };
  f.ok = [member, ok = check.ok](const T& c) { return bool(ok(c.*member, c)); };
  f.rule = check.rule;
  return f;
}

// `f` as a key whose value is a path (of `kind`).
template <class T>
Field<T> path(Field<T> f, PathKind kind = PathKind::file) {
  f.info.path = kind;
  return f;
}

template <class T>
class ConfigTable {
 public:
  explicit ConfigTable(std::vector<Field<T>> fields) : fields_(std::move(fields)) {
    defaults_ = nlohmann::json::object();
    for (const Field<T>& f : fields_) defaults_[f.info.key] = f.info.default_value;
  }

  const std::vector<Field<T>>& fields() const { return fields_; }
  // In table order, for the command line.
  std::vector<KeyInfo> keys() const {
    std::vector<KeyInfo> out;
    for (const Field<T>& f : fields_) out.push_back(f.info);
    return out;
  }
  // Every key with its default: the config of a run nobody configured.
  const nlohmann::json& defaults() const { return defaults_; }

  // `given` laid over the defaults (merge_config: an unknown key or a wrong type is an
  // sd::Error naming `source` and the key), read into a T and checked: sd::Error
  // "config key 'KEY' = VALUE: RULE" at the first value a check refuses.
  T read(const nlohmann::json& given, const std::string& source) const {
    const nlohmann::json merged = merge_config(defaults_, given, source);
    T c{};
    for (const Field<T>& f : fields_) f.read(merged.at(f.info.key), c);
    for (const Field<T>& f : fields_) check(f, c, merged.at(f.info.key));
    return c;
  }

  // Every key of `c`: what read() turns back into `c`.
  nlohmann::json write(const T& c) const {
    nlohmann::json out = nlohmann::json::object();
    for (const Field<T>& f : fields_) out[f.info.key] = f.write(c);
    return out;
  }

  // The table less `keys`.
  ConfigTable without(const std::vector<std::string>& keys) const {
    std::vector<Field<T>> kept;
    for (const Field<T>& f : fields_)
      if (std::find(keys.begin(), keys.end(), f.info.key) == keys.end()) kept.push_back(f);
    return ConfigTable(std::move(kept));
  }

  // The same keys filling the member `part` of an Outer config.
  template <class Outer>
  ConfigTable<Outer> as_part_of(T Outer::*part) const {
    std::vector<Field<Outer>> out;
    for (const Field<T>& f : fields_) {
      Field<Outer> g;
      g.info = f.info;
      g.read = [read = f.read, part](const nlohmann::json& j, Outer& o) { read(j, o.*part); };
      g.write = [write = f.write, part](const Outer& o) { return write(o.*part); };
      g.ok = [ok = f.ok, part](const Outer& o) { return ok(o.*part); };
      g.rule = f.rule;
      out.push_back(std::move(g));
    }
    return ConfigTable<Outer>(std::move(out));
  }

  // Other defaults for some keys (of the keys' types: an int is stored as a float for a FLOAT).
  ConfigTable with_defaults(const nlohmann::json& changes) const {
    const nlohmann::json merged = merge_config(defaults_, changes, "defaults");
    std::vector<Field<T>> out = fields_;
    for (Field<T>& f : out) {
      T c{};
      f.read(merged.at(f.info.key), c);
      f.info.default_value = f.write(c);
    }
    return ConfigTable(std::move(out));
  }

  // Other help for some keys.
  ConfigTable with_help(const std::map<std::string, std::string>& changes) const {
    std::vector<Field<T>> out = fields_;
    for (const auto& [key, help] : changes) find(out, key).info.help = help;
    return ConfigTable(std::move(out));
  }

  // The table followed by `more` keys.
  ConfigTable plus(std::vector<Field<T>> more) const {
    std::vector<Field<T>> out = fields_;
    for (Field<T>& f : more) out.push_back(std::move(f));
    return ConfigTable(std::move(out));
  }

 private:
  static void check(const Field<T>& f, const T& c, const nlohmann::json& value) {
    bool ok = false;
    try {
      ok = f.ok(c);
    } catch (const Error& e) {
      refuse(f.info.key, value, e.what());
    }
    if (!ok) refuse(f.info.key, value, f.rule);
  }

  static Field<T>& find(std::vector<Field<T>>& fields, const std::string& key) {
    for (Field<T>& f : fields)
      if (f.info.key == key) return f;
    throw std::logic_error("config table: no key '" + key + "'");
  }

  std::vector<Field<T>> fields_;
  nlohmann::json defaults_;
};

// `table`, once a default-initialised T is seen to hold the table's defaults (a struct's
// initialisers serve the library's callers, the table configs and the command line):
// std::logic_error naming the keys that differ, when the table is first made.
template <class T>
ConfigTable<T> agreeing(ConfigTable<T> table) {
  static T initialised;  // default-initialised, as T{} (which GCC 12 wrongly warns about)
  const nlohmann::json initial = table.write(initialised);
  std::string differ;
  for (const KeyInfo& k : table.keys())
    if (initial.at(k.key) != k.default_value)
      differ +=
          " " + k.key + " (" + initial.at(k.key).dump() + " vs " + k.default_value.dump() + ")";
  if (!differ.empty())
    throw std::logic_error("initialisers differ from the table's defaults:" + differ);
  return table;
}

}  // namespace sd::io
