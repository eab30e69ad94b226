#include "cli/shared_options.h"

#include <algorithm>
#include <filesystem>

#include "io/config.h"
#include "io/run_folder.h"

namespace fs = std::filesystem;

namespace sd::cli {

void add_amp_option(CLI::App* command, models::Amp& amp) {
  command
      ->add_option_function<std::string>(
          "--amp",
          [&amp](const std::string& text) { amp = parse_word<models::Amp>(text, "--amp"); },
          "Mixed precision of the model's forward: off, bf16 (CPUs and CUDA; fastest on CPUs "
          "with AVX512-BF16 or AMX) or fp16 (CUDA)")
      ->default_str(word(amp));
}

void add_subset_options(CLI::App* command, data::SubsetSpec& subset) {
  command->add_option("--subset", subset.list_file,
                      "File listing image ids or folder (tar) names to keep");
  command
      ->add_option("--fraction", subset.fraction,
                   "Keep this fraction of images, chosen by hashing their ids")
      ->capture_default_str();
  command->add_option("--subset-seed", subset.seed, "Seed of the hashed --fraction selection")
      ->capture_default_str();
  command
      ->add_option("--val-fraction", subset.val_fraction,
                   "Fraction set aside as the validation split")
      ->capture_default_str();
  command->add_flag("--validation", subset.validation, "Use the validation split instead");
}

CLI::Option* add_data_options(CLI::App* command, std::vector<std::string>& data,
                              std::string& images) {
  command->add_option("--images", images,
                      "Folder of the images of the COCO files in --data (default: each JSON's "
                      "folder)");
  return command
      ->add_option("--data", data,
                   "Images, several in any mix (space- or comma-separated): SA-1B folders or "
                   ".tar files (sa_<id>.jpg + sa_<id>.json, a tar read in place), plain image "
                   "folders (searched recursively; id = path less extension), COCO instance "
                   ".json files")
      ->delimiter(',');
}

namespace {

std::string flag_of(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return "--" + key;
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
  for (const io::KeyInfo& k : keys) {
    const std::string key = k.key, help = k.help + " (default " + k.default_value.dump() + ")";
    if (k.type == "BOOL") {  // a flag, as --strict elsewhere; --key=false turns it off
      cmd->add_flag(flag_of(key) + "{true}", a.flags[key],
                    help + "; " + flag_of(key) + "=false turns it off");
      continue;
    }
    if (k.type == "LIST") {  // space- or comma-separated, as --data everywhere
      cmd->add_option_function<std::vector<std::string>>(
             flag_of(key),
             [&a, key](const std::vector<std::string>& items) {
               std::string text;
               for (const std::string& item : items) text += (text.empty() ? "" : ",") + item;
               a.overrides[key] = text;
             },
             help)
          ->type_name("LIST");
      continue;
    }
    cmd->add_option_function<std::string>(
           flag_of(key), [&a, key](const std::string& text) { a.overrides[key] = text; }, help)
        ->type_name(k.type);
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
