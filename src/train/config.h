#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/config_table.h"
#include "models/autocast.h"
#include "util/device.h"

namespace sd::train {

// The distillation's loss between student and teacher embeddings (distill/loss.h):
// mean squared error (the paper's), Huber with delta 1 (smooth L1) or mean absolute error
// (NanoSAM's).
enum class EmbeddingLoss { mse, huber, l1 };

// The effective configuration of a distillation run (train_config_table: keys, defaults, checks).
// The initial values below are the table's defaults (a test holds them to it); a fine-tuning
// config has no init, layer_decay, loss or loss_ignore_padding: those members keep them.
struct TrainConfig {
  std::string student_model = "vit_t";  // preset name or JSON config of the student encoder
  std::string init;               // optional initial weights (encoder dict or full SAM checkpoint)
  std::string store;              // embedding store with the teacher's embeddings
  std::vector<std::string> data;  // image sources (data::Dataset::open), for images the store
                                  // does not cache
  std::string images;             // the images of COCO files in `data` ("": each JSON's folder)
  int64_t epochs = 8;
  int64_t max_steps = 0;  // 0: epochs decide
  int64_t batch_size = 8;
  int64_t grad_accum = 1;  // micro-batches per optimiser step
  double lr = 1e-3, min_lr = 1e-5, weight_decay = 0.01;
  double layer_decay = 1;  // 1: off
  int64_t warmup_steps = 1000;
  double clip_grad = 0;  // max gradient L2 norm; 0: off
  EmbeddingLoss loss = EmbeddingLoss::mse;
  bool loss_ignore_padding = false;
  int64_t seed = 0;
  DeviceChoice device = DeviceChoice::automatic;
  models::Amp amp = models::Amp::off;
  int64_t checkpoint_every = 1000;  // optimiser steps; 0: epoch ends only
  int64_t keep_last = 3;
  int64_t max_nonfinite = 20;    // consecutive non-finite losses before the run stops
  int64_t workers = 0;           // loader threads; 0: one per core
  bool sync_batchnorm = false;   // several processes: BatchNorm over the global batch
  int64_t recompute_stages = 0;  // TinyViT stages recomputed in backward (memory for time)
  int64_t log_every = 10;
  bool strict = false;

  nlohmann::json json;  // the whole run's config, as written to RUN/config.json
};

// Every key of a distillation config; a fine-tuning config reuses them (finetune/config.h).
const io::ConfigTable<TrainConfig>& train_config_table();

// Every key with its default (train_config_table().defaults()).
const nlohmann::json& train_config_defaults();

// `given` (any of the keys; the others take their defaults) read and checked; sd::Error
// naming `source` and the key for an unknown key or a wrong type, naming the key and the
// value for a value out of range. `json` is the config written back.
TrainConfig train_config_from_json(const nlohmann::json& given,
                                   const std::string& source = "config");

}  // namespace sd::train

namespace sd {
template <>
struct WordsOf<train::EmbeddingLoss> {
  static constexpr std::pair<train::EmbeddingLoss, const char*> list[] = {
      {train::EmbeddingLoss::mse, "mse"},
      {train::EmbeddingLoss::huber, "huber"},
      {train::EmbeddingLoss::l1, "l1"}};
};
}  // namespace sd
