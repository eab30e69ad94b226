#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "distill/run_folder.h"
#include "distill/train_config.h"
#include "distill/trainer.h"
#include "io/config.h"
#include "util/error.h"
#include "util/progress.h"

namespace fs = std::filesystem;

namespace sd::cli {
namespace {

struct TrainArgs {
  std::string config, out, resume, teacher, teacher_checkpoint;
  std::map<std::string, std::string> overrides;  // config key -> command-line text
};

std::string flag_of(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return "--" + key;
}

// Base config: --config, else the run's own config.json when resuming, else the defaults;
// then the command-line overrides.
nlohmann::json effective_config(const TrainArgs& a) {
  const auto& defaults = distill::train_config_defaults();
  nlohmann::json merged = defaults;
  std::string run_config = distill::RunPaths{a.out}.config();
  if (!a.config.empty()) merged = io::merge_config(defaults, io::read_json_file(a.config), a.config);
  else if (!a.resume.empty() && fs::exists(run_config))
    merged = io::merge_config(defaults, io::read_json_file(run_config), run_config);
  for (const auto& [key, text] : a.overrides)
    merged[key] = io::parse_override(defaults.at(key), flag_of(key).substr(2), text);
  return merged;
}

void run_train(const TrainArgs& a) {
  distill::TrainRequest request;
  request.config = distill::train_config_from_json(effective_config(a));
  if (request.config.store.empty()) throw Error("train: no embedding store given (--store)");
  request.run_dir = a.out;
  request.resume = a.resume;
  request.teacher = a.teacher;
  request.teacher_checkpoint = a.teacher_checkpoint;
  distill::TrainSummary s = distill::train(request);
  std::cout << "steps        " << s.steps << " (" << s.steps_this_call << " in this call)\n"
            << "loss         " << format_number(s.first_loss) << " -> " << format_number(s.last_loss) << "\n"
            << "images/s     " << format_number(s.images_per_s) << "\n"
            << "data wait    " << format_number(s.data_wait_pct) << "%\n"
            << "non-finite   " << s.nonfinite_total << " steps skipped\n"
            << "weights      " << s.final_weights << "\n";
}

}  // namespace

void add_train_command(CLI::App& app, const Globals&) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Distil a student encoder from stored teacher embeddings (MSE), with exact resume");
  cmd->add_option("--config", a->config, "JSON config (configs/mobilesam_vit_t.json: the paper's recipe)");
  cmd->add_option("--out", a->out, "Run folder (config.json, metrics.jsonl, checkpoints/, final.pth)")
      ->required();
  cmd->add_option("--resume", a->resume,
                  "'auto': continue from the newest valid checkpoint of --out; or a checkpoint file");
  cmd->add_option("--teacher", a->teacher, "Refuse a store not made by this architecture (preset or config)");
  cmd->add_option("--teacher-checkpoint", a->teacher_checkpoint,
                  "Refuse a store not made with these teacher weights");
  // Every config key is also a flag: --student-model, --epochs, --lr, ... (see --config).
  for (auto it = distill::train_config_defaults().begin(); it != distill::train_config_defaults().end(); ++it) {
    const std::string key = it.key();
    cmd->add_option_function<std::string>(
        flag_of(key), [a, key](const std::string& text) { a->overrides[key] = text; },
        distill::train_config_help().at(key) + " (default " + it.value().dump() + ")");
  }
  cmd->callback([a] { run_train(*a); });
}

}  // namespace sd::cli
