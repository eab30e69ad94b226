#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "io/state_dict.h"

// Weights given as "a file or a run folder" (`--checkpoint`, `--student`, `--init`,
// `--teacher-checkpoint`, ...), and what their keys and shapes show of the image encoder.
// models/sam_weights.h turns that into the encoder's config.
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

// What the key names and shapes of `entries` show of a SAM / MobileSAM image encoder,
// under "image_encoder." (a full model) or at the top level (an encoder alone); null when
// there is none. The keys of an encoder config (models/config.h) that the shapes determine,
// plus "family" ("ViT" or "TinyViT") and "prefix":
//   ViT: embed_dim, depth, in_chans, patch_size, qkv_bias, use_abs_pos, use_rel_pos,
//     img_size (with an absolute position embedding), mlp_ratio, out_chans, and with
//     relative position tables num_heads, global_attn_indexes (the blocks whose tables span
//     the whole grid) and window_size;
//   TinyViT: embed_dims, depths, in_chans, mbconv_expand_ratio, mlp_ratio, local_conv_size,
//     out_chans, num_classes (0 without a classifier head), and num_heads and window_sizes
//     from the attention biases (null for the convolutional first stage, which has none).
// A ratio is hidden width / width, so int(width * ratio) gives the width back.
nlohmann::json observe_encoder(const StateDict& entries);

}  // namespace sd::io
