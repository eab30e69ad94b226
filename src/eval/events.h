#pragma once
#include <string>

#include "eval/report.h"

namespace sd::eval {

// An evaluation in TensorBoard: a new event file in `dir` with the mIoU of each prompt kind
// ("eval/miou/<kind>") and the --vis picture of each outcome found in `vis_dir` as an image
// ("eval/<kind>/<image>_<annotation>"), all at step 0.
void write_eval_events(const EvalReport& report, const std::string& vis_dir,
                       const std::string& dir);

}  // namespace sd::eval
