#include "cli/shared_options.h"

#include <algorithm>
#include <filesystem>

#include "io/config.h"
#include "io/run_folder.h"

namespace fs = std::filesystem;

namespace sd::cli {

const io::ConfigTable<data::SubsetSpec>& subset_table() {
  using S = data::SubsetSpec;
  static const io::ConfigTable<S> table({
      io::field("subset", &S::list_file, "", io::any_value(),
                "File listing image ids or folder (tar) names to keep"),
      // Dataset::subset checks the fractions, for every caller.
      io::field("fraction", &S::fraction, 1.0, io::any_value(),
                "Keep this fraction of images, chosen by hashing their ids"),
      io::field("subset_seed", &S::seed, 0, io::any_value(),
                "Seed of the hashed --fraction selection"),
      io::field("val_fraction", &S::val_fraction, 0.0, io::any_value(),
                "Fraction set aside as the validation split"),
      io::field("validation", &S::validation, false, io::any_value(),
                "Use the validation split instead"),
  });
  return table;
}

namespace {

std::string flag_of(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return "--" + key;
}

// " (default VALUE)", or "" for an empty default (nothing given).
std::string default_text(const nlohmann::json& value) {
  const bool empty = value == "" || value == nlohmann::json::array();
  return empty ? "" : " (default " + value.dump() + ")";
}

CLI::Option* add_key_flag(CLI::App* cmd, KeyFlags& given, const io::KeyInfo& k,
                          const FlagSpec& spec) {
  const std::string key = k.key, name = flag_of(key) + (spec.also.empty() ? "" : "," + spec.also);
  const std::string help = k.help + default_text(k.default_value);
  if (k.type == "BOOL")  // a flag, as --strict elsewhere; --key=false turns it off
    return cmd->add_flag(name, given.flags[key],  // "true" when given without a value
                         help + "; " + flag_of(key) + "=false turns it off");
  if (k.type == "LIST") {  // space- or comma-separated, as --data everywhere
    CLI::Option* o = cmd->add_option_function<std::vector<std::string>>(
        name, [&given, key](const std::vector<std::string>& items) { given.lists[key] = items; },
        help);
    if (!spec.keep_commas) o->delimiter(',');
    return o->type_name("LIST");
  }
  return cmd
      ->add_option_function<std::string>(
          name, [&given, key](const std::string& text) { given.overrides[key] = text; }, help)
      ->type_name(k.type);
}

}  // namespace

void add_run_config_options(CLI::App* cmd, RunConfigArgs& a, const std::vector<io::KeyInfo>& keys) {
  cmd->add_option("--out", a.out,
                  "Run folder (config.json, metrics.jsonl, checkpoints/, final.pth)")
      ->required();
  cmd->add_option(
      "--resume", a.resume,
      "'auto': continue from the newest valid checkpoint of --out; or a checkpoint file");
  cmd->add_flag("--overwrite", a.overwrite,
                "Start afresh in an --out that holds a previous run, replacing its files");
  add_config_options(cmd, a, keys);
}

void add_config_options(CLI::App* cmd, RunConfigArgs& a, const std::vector<io::KeyInfo>& keys) {
  cmd->add_option("--config", a.config, "JSON config; every key is also a flag below");
  add_key_flags(cmd, a, keys);
}

void add_key_flags(CLI::App* cmd, KeyFlags& given, const std::vector<io::KeyInfo>& keys,
                   const std::map<std::string, FlagSpec>& specs) {
  for (const io::KeyInfo& k : keys) {
    auto it = specs.find(k.key);
    const FlagSpec spec = it == specs.end() ? FlagSpec{} : it->second;
    add_key_flag(cmd, given, k, spec)->required(spec.required);
  }
}

std::string EffectiveConfig::from(const std::string& key) const {
  auto it = source.find(key);
  return it == source.end() ? "" : " (from " + it->second + ")";
}

EffectiveConfig effective_config(const RunConfigArgs& a, const std::vector<io::KeyInfo>& keys,
                                 const nlohmann::json& defaults) {
  std::map<std::string, io::PathKind> path_of;
  for (const io::KeyInfo& k : keys) path_of[k.key] = k.path;
  EffectiveConfig e{defaults, {}};
  std::string file = a.config;
  const std::string run_config = io::RunPaths{a.out}.config();
  if (file.empty() && !a.resume.empty() && fs::exists(run_config)) file = run_config;
  if (!file.empty()) {
    const nlohmann::json given = io::read_json_file(file);
    e.values = io::merge_config(defaults, given, file);
    const fs::path folder = fs::path(file).parent_path();
    const std::string shown = fs::absolute(file).lexically_normal().string();
    for (auto it = given.begin(); it != given.end(); ++it) {
      const std::string& key = it.key();
      e.values[key] =
          io::absolute_paths(e.values[key], path_of[key], folder.empty() ? "." : folder.string());
      e.source[key] = shown;
    }
  }
  for (const auto& [key, text] : a.overrides) {
    const nlohmann::json value = io::parse_override(defaults.at(key), flag_of(key).substr(2), text);
    e.values[key] = io::absolute_paths(value, path_of[key], ".");
    e.source[key] = flag_of(key);
  }
  for (const auto& [key, items] : a.lists) {
    e.values[key] = io::absolute_paths(items, path_of[key], ".");
    e.source[key] = flag_of(key);
  }
  for (const auto& [key, text] : a.flags) {
    if (text.empty()) continue;
    e.values[key] = io::parse_override(defaults.at(key), flag_of(key).substr(2), text);
    e.source[key] = flag_of(key);
  }
  return e;
}

void check_paths_exist(const EffectiveConfig& e, const std::vector<io::KeyInfo>& keys) {
  for (const io::KeyInfo& k : keys) {
    if (k.path == io::PathKind::none || !e.values.contains(k.key)) continue;
    const nlohmann::json& value = e.values.at(k.key);
    for (const nlohmann::json& item : value.is_array() ? value : nlohmann::json::array({value})) {
      const std::string path = item.is_string() ? item.get<std::string>() : "";
      const bool a_name = k.path == io::PathKind::file_or_name && !fs::path(path).is_absolute();
      if (path.empty() || a_name || fs::exists(path)) continue;
      throw io::KeyError(k.key, k.key + " '" + path + "' does not exist");
    }
  }
}

train::RunStart run_start(const RunConfigArgs& a) {
  if (fs::exists(a.out) && !fs::is_directory(a.out))
    throw Error("--out '" + a.out +
                "' is a file: a run's --out is a folder (new, or holding a run)");
  return {a.out, a.resume, a.overwrite};
}

}  // namespace sd::cli
