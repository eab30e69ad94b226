#pragma once
#include <optional>
#include <string>
#include <vector>

#include "io/state_dict.h"

// A run folder: config.json (effective), metrics.jsonl, checkpoints/step-N.pth, final.pth.
namespace sd::train {

struct RunPaths {
  std::string dir;
  std::string config() const { return dir + "/config.json"; }
  std::string metrics() const { return dir + "/metrics.jsonl"; }
  std::string checkpoints() const { return dir + "/checkpoints"; }
  std::string final_weights() const { return dir + "/final.pth"; }
  std::string loss_curve() const { return dir + "/loss.png"; }
};

// Training checkpoints of a run, newest (highest step) first.
std::vector<std::string> list_checkpoints(const RunPaths& run);

// The newest checkpoint that reads back completely, passing over damaged or partial ones
// with a warning each; nullopt when there is none.
std::optional<std::string> newest_valid_checkpoint(const RunPaths& run);

// A weights argument (`--student`, `--init`, ...): a file as is; a run folder means its
// final.pth, else its newest valid checkpoint. sd::Error when nothing usable is there.
std::string resolve_weights(const std::string& file_or_run);

// Encoder weights (keys relative to the encoder) from a file or run folder holding an
// encoder state dict, a full SAM checkpoint (its `image_encoder.` entries) or a training
// checkpoint (its model).
io::StateDict read_encoder_weights(const std::string& file_or_run);

}  // namespace sd::train
