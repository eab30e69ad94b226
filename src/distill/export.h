#pragma once
#include <string>

#include "io/state_dict.h"
#include "models/config.h"

namespace sd::distill {

// A full SAM state dict under the official key names: the student encoder as
// `image_encoder.*`, the prompt encoder and mask decoder of `decoder_from` (a full SAM
// checkpoint such as sam_vit_h_4b8939.pth). Checked by loading it strictly into a Sam
// built from `student_config`; sd::Error naming the file and key otherwise.
io::StateDict assemble_sam(const io::StateDict& student_encoder,
                           const models::EncoderConfig& student_config,
                           const std::string& decoder_from);

// The student architecture of a weights argument: the run folder's config.json when
// `student` is a run folder (or a file inside one), else `fallback` (a preset or config).
models::EncoderConfig student_config_of(const std::string& student, const std::string& fallback);

}  // namespace sd::distill
