#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/run_folder.h"

namespace sd::io {
class EventWriter;
}

namespace sd::train {

// A run's metrics, written twice: one JSON line per step or score in metrics.jsonl, and the
// same numbers as TensorBoard scalars in the run folder's event files, at the line's step.
class MetricsLog {
 public:
  explicit MetricsLog(io::RunPaths paths);
  ~MetricsLog();

  // Keeps the metrics lines `keep` accepts (a resumed run drops those past its checkpoint) and
  // drops the scalars of the others from the event files, so that each step is written once.
  void trim(const std::function<bool(const nlohmann::json&)>& keep);
  // Appends a line; this call's first line opens a new event file.
  void append(const nlohmann::json& line);

 private:
  io::RunPaths paths_;
  std::unique_ptr<io::EventWriter> events_;
};

// The scalars of a metrics line, as TensorBoard tags: every number but step and epoch, the keys
// of nested objects and the indices of arrays joined by "/" ("lr_groups/1"); null is NaN.
std::vector<std::pair<std::string, double>> line_scalars(const nlohmann::json& line);

}  // namespace sd::train
