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
#include "util/device.h"
#include "util/error.h"

// Every command declares its options as a config table (io/config_table.h): each key once,
// with its type, default, check and help; the flags come from the table (student_model ->
// --student-model, shown with its type and default) and their values are read and checked by
// it. The keys shared by several commands are declared here, so that flags mean the same
// everywhere.
namespace sd::cli {

// --subset, --fraction, --subset-seed, --val-fraction, --validation (see data::SubsetSpec).
const io::ConfigTable<data::SubsetSpec>& subset_table();

// --data (image sources, data::Dataset::open) and --images (the COCO files' images) of an
// options struct with members `data` and `images`.
template <class T>
std::vector<io::Field<T>> data_fields() {
  return {
      io::field("data", &T::data, {}, io::any_value(),
                "Images, several in any mix (space- or comma-separated): SA-1B folders or .tar "
                "files (sa_<id>.jpg + sa_<id>.json, a tar read in place), plain image folders "
                "(searched recursively; id = path less extension), COCO instance .json files"),
      io::field("images", &T::images, "", io::any_value(),
                "Folder of the images of the COCO files in --data (default: each JSON's folder)")};
}

// --device auto|cpu|cuda and --amp off|bf16|fp16 (the precision of the model's forward).
template <class T>
io::Field<T> device_field(DeviceChoice T::*member) {
  return io::field("device", member, DeviceChoice::automatic, io::any_value(),
                   "Where to run: cpu, cuda or auto (cuda when present)");
}
template <class T>
io::Field<T> amp_field(models::Amp T::*member) {
  return io::field("amp", member, models::Amp::off, io::any_value(),
                   "Mixed precision of the model's forward: off, bf16 (CPUs and CUDA; fastest on "
                   "CPUs with AVX512-BF16 or AMX) or fp16 (CUDA)");
}

// What the flags of a table's keys were given.
struct KeyFlags {
  std::map<std::string, std::string> overrides;  // config key -> command-line text
  std::map<std::string, std::string> flags;      // yes/no key -> "true", "false" or "" (not given)
  std::map<std::string, std::vector<std::string>> lists;  // LIST key -> the items given
};

// How a command shows a key beyond what its table says.
struct FlagSpec {
  std::string also;          // other names of the flag, e.g. "--checkpoint"
  bool required = false;     // the command line must give it
  bool keep_commas = false;  // a LIST whose items hold commas (--point x,y): one item a value
};

// One flag per key: a BOOL key is a flag (--key=false turns it off), a LIST key takes several
// values (space- or comma-separated), any other one value of the key's type.
void add_key_flags(CLI::App* command, KeyFlags& given, const std::vector<io::KeyInfo>& keys,
                   const std::map<std::string, FlagSpec>& specs = {});

// A config-driven run command (train, finetune): --config, --out, --resume and one flag per
// config key, whose text takes the key's type.
struct RunConfigArgs : KeyFlags {
  std::string config, out, resume;
  bool overwrite = false;
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

// The table's defaults overlaid with the flags given, read and checked by the table; sd::Error
// naming the key, the value and the flag it came from.
template <class T>
T read_flags(const KeyFlags& given, const io::ConfigTable<T>& table) {
  RunConfigArgs args;
  static_cast<KeyFlags&>(args) = given;
  const EffectiveConfig e = effective_config(args, table.keys(), table.defaults());
  try {
    return table.read(e.values, "the command line");
  } catch (const io::KeyError& error) {
    throw Error(error.what() + e.from(error.key()));
  }
}

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
