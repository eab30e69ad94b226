#pragma once
#include <nlohmann/json.hpp>
#include <map>
#include <string>
#include <vector>

namespace sd::train {

// Every key a training config may hold, with its default and so its type (io::merge_config).
const nlohmann::json& train_config_defaults();

// One line of help per key, for `train --help`.
const std::map<std::string, std::string>& train_config_help();

// The effective configuration of a distillation run.
struct TrainConfig {
  std::string student_model;   // preset name or JSON config of the student encoder
  std::string init;            // optional initial weights (encoder dict or full SAM checkpoint)
  std::string store;           // embedding store with the teacher's embeddings
  std::vector<std::string> data;  // SA-1B folders, for images the store does not cache
  int64_t epochs = 0;
  int64_t max_steps = 0;       // 0: epochs decide
  int64_t batch_size = 0;
  int64_t grad_accum = 1;      // micro-batches per optimiser step
  double lr = 0, min_lr = 0, weight_decay = 0, layer_decay = 1;
  int64_t warmup_steps = 0;
  double clip_grad = 0;        // max gradient L2 norm; 0: off
  bool loss_ignore_padding = false;
  int64_t seed = 0;
  std::string device;          // auto | cpu | cuda
  std::string amp;             // off | bf16 | fp16 (CUDA only)
  int64_t checkpoint_every = 0;  // optimiser steps; 0: epoch ends only
  int64_t keep_last = 0;
  int64_t max_nonfinite = 0;   // consecutive non-finite losses before the run stops
  int64_t workers = 0;         // loader threads; 0: all cores
  int64_t log_every = 1;

  nlohmann::json json;         // all of the above, as written to RUN/config.json
};

// Builds the config from a merged JSON object (see train_config_defaults; the keys
// student_model, init, layer_decay and loss_ignore_padding may be absent, as in a fine-tuning
// config); sd::Error on values out of range, naming the key.
TrainConfig train_config_from_json(const nlohmann::json& merged);

// sd::Error "config key 'KEY' = VALUE: RULE" unless `ok`.
void require(bool ok, const std::string& key, const nlohmann::json& value, const std::string& rule);

}  // namespace sd::train
