#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "io/state_dict.h"

namespace sd::io {

// What a state dict holds, from its keys and shapes alone:
//   "keys", "parameters" (floating-point values), "bytes",
//   "dtypes": {"float32": 412, ...},
//   "prefixes": [{"prefix": "image_encoder", "keys": n, "parameters": p}, ...] in file order,
//   "encoder": `describe_encoder(entries)` when given (models::encoder_summary: the image
//     encoder's family and sizes),
// plus "entries": [[key, shape, dtype], ...] (the format of the reference manifests)
// when `with_entries`.
using DescribeEncoder = std::function<nlohmann::json(const StateDict&)>;
nlohmann::json summarize_state_dict(const StateDict& entries, bool with_entries,
                                    const DescribeEncoder& describe_encoder = {});

// The same for a checkpoint file (read_state_dict), with "file" added, and for a samdistill
// training checkpoint (its "model"), "training": {"step", "epoch", "position" (images of the
// epoch consumed), "optimizer_bytes", "nonfinite_total", "best_score" (when there is one),
// "store_id", "config" (the run's effective config), "run" (the run folder, "" when the file
// is not in RUN/checkpoints/), "resume" (the command line that continues from it)}.
nlohmann::json summarize_checkpoint(const std::string& path, bool with_entries,
                                    const DescribeEncoder& describe_encoder = {});

// Python's name of a dtype: "float32", "int64", "bfloat16", ...
std::string dtype_name(at::ScalarType dtype);

}  // namespace sd::io
