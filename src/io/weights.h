#pragma once
#include <string>

#include "io/state_dict.h"

// Weights given as "a file or a run folder" (`--checkpoint`, `--student`, `--init`,
// `--teacher-checkpoint`, ...). What their keys and shapes show of the image encoder is
// models/sam_weights.h's.
namespace sd::io {

// The file a weights argument names: a file as is; a run folder means its final.pth, else
// its newest valid checkpoint. sd::Error when nothing usable is there.
std::string resolve_weights(const std::string& file_or_run);

struct Weights {
  std::string file;  // the file read (resolve_weights)
  StateDict
      entries;  // an encoder state dict, a full SAM checkpoint, or a training checkpoint's model
  std::string run_model;   // the `student_model` of the run the weights come from; "" when none
  std::string run_config;  // the config.json that names run_model
  // The image encoder's entries, keys relative to the encoder (see encoder_entries).
  StateDict encoder() const { return encoder_entries(entries); }
};

// Reads a weights argument (resolve_weights, read_state_dict); `run_model` comes from the
// config.json of the run folder given, or of the run holding the file given (its final.pth
// or one of its checkpoints).
Weights read_weights(const std::string& file_or_run);

}  // namespace sd::io
