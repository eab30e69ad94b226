#include "io/run_folder.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/tensorboard.h"
#include "io/train_checkpoint_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/text.h"

namespace fs = std::filesystem;

namespace sd::io {
namespace {

// step-<digits><suffix>
bool is_step_file(const std::string& name, const std::string& suffix) {
  return starts_with(name, "step-") && name.size() > 5 + suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string step_name(int64_t step, const char* suffix) {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld%s", static_cast<long long>(step), suffix);
  return name;
}

}  // namespace

std::string in_folder(const std::string& folder, const std::string& leaf) {
  if (folder.empty()) return leaf;
  return folder + (folder.back() == '/' ? "" : "/") + leaf;
}

std::string RunPaths::heldout_report(int64_t step) const {
  return heldout() + "/" + step_name(step, ".json");
}

std::string checkpoint_name(int64_t step) { return step_name(step, ".pth"); }

std::vector<std::string> list_checkpoints(const RunPaths& run) {
  std::vector<std::string> out;
  if (!fs::is_directory(run.checkpoints())) return out;
  for (const auto& entry : fs::directory_iterator(run.checkpoints()))
    if (entry.is_regular_file() && is_step_file(entry.path().filename().string(), ".pth"))
      out.push_back(entry.path().string());
  // Zero-padded step numbers: the name order is the step order.
  std::sort(out.rbegin(), out.rend());
  return out;
}

std::vector<std::string> run_files(const RunPaths& run) {
  std::vector<std::string> out;
  for (const std::string& file :
       {run.config(), run.metrics(), run.final_weights(), run.loss_curve(), run.best()})
    if (fs::exists(file)) out.push_back(file);
  for (const std::string& file : event_files(run.dir)) out.push_back(file);
  for (const std::string& file : list_checkpoints(run)) out.push_back(file);
  if (fs::exists(run.heldout_page())) out.push_back(run.heldout_page());
  if (fs::is_directory(run.heldout())) {
    std::vector<std::string> reports;
    for (const auto& entry : fs::directory_iterator(run.heldout()))
      if (entry.is_regular_file() && is_step_file(entry.path().filename().string(), ".json"))
        reports.push_back(entry.path().string());
    std::sort(reports.begin(), reports.end());
    out.insert(out.end(), reports.begin(), reports.end());
  }
  return out;
}

std::optional<std::string> newest_valid_checkpoint(const RunPaths& run) {
  for (const auto& path : list_checkpoints(run)) {
    try {
      peek_train_checkpoint(path);
      return path;
    } catch (const Error& e) {
      log::warn("passing over damaged checkpoint: " + std::string(e.what()));
    }
  }
  return std::nullopt;
}

}  // namespace sd::io
