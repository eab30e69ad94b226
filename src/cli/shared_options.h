#pragma once
#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "io/config_table.h"
#include "models/autocast.h"
#include "train/loop.h"
#include "util/error.h"

// Options shared by several subcommands, so that flags mean the same everywhere.
namespace sd::cli {

// --subset, --fraction, --subset-seed, --val-fraction, --validation (see data::SubsetSpec).
void add_subset_options(CLI::App* command, data::SubsetSpec& subset);

// --amp off|bf16|fp16: the precision of the model's forward passes.
void add_amp_option(CLI::App* command, models::Amp& amp);

// --data (image sources, data::Dataset::open) and --images (the COCO files' images).
CLI::Option* add_data_options(CLI::App* command, std::vector<std::string>& data,
                              std::string& images);

// A config-driven run command (train, finetune): --config, --out, --resume and one flag per
// config key (student_model -> --student-model, shown with its type), whose text takes the
// key's type.
struct RunConfigArgs {
  std::string config, out, resume;
  bool overwrite = false;
  std::map<std::string, std::string> overrides;  // config key -> command-line text
  std::map<std::string, std::string> flags;      // yes/no key -> "true", "false" or "" (not given)
};
void add_run_config_options(CLI::App* command, RunConfigArgs& args,
                            const std::vector<io::KeyInfo>& keys);
// Of those, --config and the flag per key alone (a command with a config but no run folder;
// effective_config reads them).
void add_config_options(CLI::App* command, RunConfigArgs& args,
                        const std::vector<io::KeyInfo>& keys);

// A run's config and where each value came from.
struct EffectiveConfig {
  nlohmann::json values;
  std::map<std::string, std::string> source;  // key -> config file or --flag; absent: a default
  // " (from SOURCE)" for a key that was given, "" for a default.
  std::string from(const std::string& key) const;
};

// The defaults, merged with --config, else with the run folder's own config.json when
// resuming, then with the command-line overrides; sd::Error naming a bad key or value. The
// paths among `keys` are made absolute: a file's relative to its folder, a flag's to the
// working directory.
EffectiveConfig effective_config(const RunConfigArgs& args, const std::vector<io::KeyInfo>& keys,
                                 const nlohmann::json& defaults);

// sd::io::KeyError for a path among `keys` that names nothing on disk.
void check_paths_exist(const EffectiveConfig& config, const std::vector<io::KeyInfo>& keys);

// The effective config read by `read` (a config table's from_json): its errors about a key
// name where the value came from, and every path it names must exist.
template <class Config>
Config read_run_config(const RunConfigArgs& args, const std::vector<io::KeyInfo>& keys,
                       const nlohmann::json& defaults,
                       Config (*read)(const nlohmann::json&, const std::string&)) {
  const EffectiveConfig e = effective_config(args, keys, defaults);
  try {
    Config c = read(e.values, "config");
    check_paths_exist(e, keys);
    return c;
  } catch (const io::KeyError& error) {
    throw Error(error.what() + e.from(error.key()));
  }
}

// --out, --resume and --overwrite.
train::RunStart run_start(const RunConfigArgs& args);

}  // namespace sd::cli
