#include "train/metrics_log.h"

#include <cmath>
#include <fstream>
#include <set>

#include "io/tensorboard.h"
#include "util/atomic_file.h"

namespace sd::train {
namespace {

void add_scalars(const std::string& tag, const nlohmann::json& value,
                 std::vector<std::pair<std::string, double>>& out) {
  if (value.is_number()) {
    out.emplace_back(tag, value.get<double>());
  } else if (value.is_null()) {
    out.emplace_back(tag, NAN);  // JSON has no NaN: a non-finite number is written as null
  } else if (value.is_object()) {
    for (const auto& [key, v] : value.items()) add_scalars(tag + "/" + key, v, out);
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i)
      add_scalars(tag + "/" + std::to_string(i), value[i], out);
  }
}

}  // namespace

std::vector<std::pair<std::string, double>> line_scalars(const nlohmann::json& line) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [key, value] : line.items())
    if (key != "step" && key != "epoch") add_scalars(key, value, out);
  return out;
}

MetricsLog::MetricsLog(io::RunPaths paths) : paths_(std::move(paths)) {}
MetricsLog::~MetricsLog() = default;

void MetricsLog::trim(const std::function<bool(const nlohmann::json&)>& keep) {
  std::ifstream in(paths_.metrics());
  std::string kept, line;
  std::set<std::pair<std::string, int64_t>> scalars;  // (tag, step) of the kept lines
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !keep(j)) continue;  // a line torn by the kill, or one to redo
    kept += line + "\n";
    for (const auto& [tag, value] : line_scalars(j))
      scalars.emplace(tag, j.value("step", int64_t{0}));
  }
  write_file_atomic(paths_.metrics(), kept);
  for (const std::string& file : io::event_files(paths_.dir))
    io::keep_scalars(file, [&](const io::ScalarEvent& s) {
      return scalars.count({s.tag, s.step}) > 0;
    });
}

void MetricsLog::append(const nlohmann::json& line) {
  std::ofstream(paths_.metrics(), std::ios::app) << line.dump() << "\n";
  if (!events_) events_ = std::make_unique<io::EventWriter>(paths_.dir);
  const int64_t step = line.value("step", int64_t{0});
  for (const auto& [tag, value] : line_scalars(line)) events_->scalar(tag, step, value);
}

}  // namespace sd::train
