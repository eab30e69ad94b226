#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "io/state_dict.h"
#include "io/weights.h"
#include "models/config.h"
#include "models/image_encoder.h"
#include "models/sam.h"

// Which encoder architecture weights hold, loading them, and assembling a full SAM
// checkpoint under the official key names.
namespace sd::models {

// The architecture of the image encoder in `weights`: `model` (a preset or JSON config,
// given by the flag `flag`) when not empty, else the student_model of the run they come
// from, else what their shapes show (observe_encoder; what no weight shows is the family's
// default's). sd::Error naming both when the architecture given does not fit the weights;
// naming `flag` when the weights hold no encoder or do not show what it needs
// (EncoderFamily::unshown: a ViT without relative position tables shows no heads).
EncoderConfig encoder_config_of(const io::Weights& weights, const std::string& model,
                                const std::string& flag);

// A full SAM (image encoder, prompt encoder, mask decoder) from a checkpoint or run folder,
// its encoder's architecture as encoder_config_of tells it; in eval mode, on the CPU. The
// prompt encoder and mask decoder come from `decoder_from` when given (a full SAM checkpoint
// or run folder), else from `checkpoint`; sd::Error saying what to do when they hold none
// (a train run's weights are an image encoder alone).
Sam load_sam(const std::string& checkpoint, const std::string& model, const std::string& flag,
             const std::string& decoder_from = "");

// sd::Error naming `what` (e.g. "--model 'vit_b'") and the weights, with every size that
// differs, when `config` does not have the sizes the weights show.
void check_fits(const EncoderConfig& config, const std::string& what, const io::Weights& weights);

// The preset (vit_h, vit_l, vit_b, vit_t, ...) with every size in `observed` (what
// observe_encoder gives, or part of it), else "custom".
std::string preset_matching(const nlohmann::json& observed);

// What the key names and shapes of `entries` show of an image encoder of a registered
// family, under "image_encoder." (a full model) or at the top level (an encoder alone);
// null when there is none: the config keys the shapes determine (EncoderFamily::observe:
// a key absent, or a null list element, is one no weight shows), plus "family" ("ViT",
// "TinyViT", ...) and "prefix". A ratio is hidden width / width, so int(width * ratio)
// gives the width back.
nlohmann::json observe_encoder(const io::StateDict& entries);

// What `samdistill checkpoint` shows of the encoder in `entries`: {"family", "prefix",
// "preset" (preset_matching), and the family's summary_keys} or null.
nlohmann::json encoder_summary(const io::StateDict& entries);

// `base` with every value the weights show (`observed`) put in; what they cannot show
// stays base's. sd::Error naming `source` when the weights hold another family.
EncoderConfig config_shown(const nlohmann::json& observed, const EncoderConfig& base,
                           const std::string& source);

// An encoder of `config` holding the encoder entries of `weights`; strict (sd::Error
// naming the key and the file).
std::shared_ptr<ImageEncoder> load_image_encoder(const EncoderConfig& config,
                                                 const io::Weights& weights);

// A full SAM built from `student_config` holding the student encoder and the prompt encoder
// and mask decoder of `decoder_source`: the entries of `decoder_from`, a full SAM checkpoint
// such as sam_vit_h_4b8939.pth (or the student's own file, when it is one). Loaded strictly;
// sd::Error naming the file and key otherwise. io::state_dict of it is the checkpoint under
// the official key names.
Sam assemble_sam(const io::StateDict& student_encoder, const EncoderConfig& student_config,
                 const io::StateDict& decoder_source, const std::string& decoder_from);

}  // namespace sd::models
