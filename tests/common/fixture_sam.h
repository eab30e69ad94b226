#pragma once
#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/config.h"
#include "models/sam.h"

namespace sd::testing {

// The encoder config of a fixture model folder (its config.json).
inline models::EncoderConfig fixture_config(const ModelFolder& folder) {
  return models::encoder_config_from_json(folder.config, folder.file("config.json"));
}

// The whole SAM of a fixture model folder (its config.json and weights.pth), in eval mode, on
// the CPU.
inline models::Sam fixture_sam(const ModelFolder& folder) {
  models::Sam sam = models::build_sam(fixture_config(folder));
  io::load_state_dict(*sam, io::read_state_dict(folder.file("weights.pth")), "",
                      folder.file("weights.pth"));
  sam->eval();
  return sam;
}

}  // namespace sd::testing
