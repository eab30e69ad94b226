#include "io/weights.h"

#include <filesystem>
#include <optional>

#include "io/checkpoint.h"
#include "io/config.h"
#include "io/run_folder.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::io {
namespace {

using nlohmann::json;

// The `student_model` of the run config in `dir`, when there is one; a relative path there is
// relative to the run folder.
std::optional<std::string> student_model_in(const fs::path& dir) {
  const fs::path config = dir / "config.json";
  if (dir.empty() || !fs::is_regular_file(config)) return std::nullopt;
  const json j = read_json_file(config.string());
  if (!j.contains("student_model") || !j["student_model"].is_string()) return std::nullopt;
  return absolute_paths(j["student_model"], PathKind::file_or_name, dir.string());
}

}  // namespace

std::string resolve_weights(const std::string& file_or_run) {
  if (!fs::is_directory(file_or_run)) {
    if (!fs::exists(file_or_run)) throw Error("weights '" + file_or_run + "' do not exist");
    return file_or_run;
  }
  RunPaths run{file_or_run};
  if (fs::exists(run.final_weights())) return run.final_weights();
  if (auto newest = newest_valid_checkpoint(run)) return *newest;
  throw Error("run folder '" + file_or_run + "' has neither final.pth nor a valid checkpoint");
}

Weights read_weights(const std::string& file_or_run) {
  Weights w;
  w.file = resolve_weights(file_or_run);
  w.entries = read_state_dict(w.file);  // a training checkpoint's weights: its "model" entry
  const fs::path p(file_or_run);
  for (const fs::path& dir : {p, p.parent_path(), p.parent_path().parent_path()}) {
    if (auto model = student_model_in(dir)) {
      w.run_model = *model;
      w.run_config = fs::absolute(dir / "config.json").lexically_normal().string();
      break;
    }
  }
  return w;
}

}  // namespace sd::io
