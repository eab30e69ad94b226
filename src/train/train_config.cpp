#include "train/train_config.h"

#include "util/error.h"

#include <map>

namespace sd::train {
using nlohmann::json;

void require(bool ok, const std::string& key, const json& value, const std::string& rule) {
  if (!ok) throw Error("config key '" + key + "' = " + value.dump() + ": " + rule);
}

const json& train_config_defaults() {
  static const json defaults = {
      {"student_model", "vit_t"}, {"init", ""},        {"store", ""},
      {"data", json::array()},    {"epochs", 8},       {"max_steps", 0},
      {"batch_size", 8},          {"grad_accum", 1},   {"lr", 1e-3},
      {"min_lr", 1e-5},           {"weight_decay", 0.01}, {"layer_decay", 1.0},
      {"warmup_steps", 1000},     {"clip_grad", 0.0},  {"loss_ignore_padding", false},
      {"seed", 0},                {"device", "auto"},  {"amp", "off"},
      {"checkpoint_every", 1000}, {"keep_last", 3},    {"max_nonfinite", 20},
      {"workers", 0},             {"log_every", 10},
  };
  return defaults;
}

const std::map<std::string, std::string>& train_config_help() {
  static const std::map<std::string, std::string> help = {
      {"student_model", "student architecture: vit_t or a TinyViT/ViT JSON config"},
      {"init", "initial student weights: encoder state dict, full SAM checkpoint or run folder"},
      {"store", "embedding store with the teacher's embeddings (samdistill embed)"},
      {"data", "SA-1B folder(s) for images the store does not cache (comma-separated)"},
      {"epochs", "passes over the store's images"},
      {"max_steps", "stop after this many optimiser steps (0: epochs decide)"},
      {"batch_size", "images per micro-batch"},
      {"grad_accum", "micro-batches per optimiser step"},
      {"lr", "peak learning rate (AdamW)"},
      {"min_lr", "learning rate at the end of the cosine decay"},
      {"weight_decay", "AdamW weight decay (never on norms, biases, attention biases)"},
      {"layer_decay", "layer-wise learning-rate decay (TinyViT uses 0.8; 1: off)"},
      {"warmup_steps", "linear warm-up steps"},
      {"clip_grad", "clip the gradient's L2 norm to this (0: off)"},
      {"loss_ignore_padding", "leave the padded area out of the MSE (EdgeSAM)"},
      {"seed", "seed of the student's initial weights and the data order"},
      {"device", "auto, cpu or cuda"},
      {"amp", "mixed precision on CUDA: off, bf16, or fp16 with loss scaling"},
      {"checkpoint_every", "write a checkpoint every N steps (and at each epoch end; 0: epochs only)"},
      {"keep_last", "step checkpoints kept (best.pth is kept apart)"},
      {"max_nonfinite", "stop after this many non-finite losses in a row"},
      {"workers", "image loading threads (0: 2)"},
      {"log_every", "progress line every N steps"},
  };
  return help;
}

TrainConfig train_config_from_json(const json& j) {
  TrainConfig c;
  c.student_model = j.at("student_model").get<std::string>();
  // The distillation's own keys; a fine-tuning config (finetune_config.h) has none of them.
  const json& d = train_config_defaults();
  c.init = j.value("init", d.at("init").get<std::string>());
  c.store = j.at("store").get<std::string>();
  c.data = j.at("data").get<std::vector<std::string>>();
  c.epochs = j.at("epochs").get<int64_t>();
  c.max_steps = j.at("max_steps").get<int64_t>();
  c.batch_size = j.at("batch_size").get<int64_t>();
  c.grad_accum = j.at("grad_accum").get<int64_t>();
  c.lr = j.at("lr").get<double>();
  c.min_lr = j.at("min_lr").get<double>();
  c.weight_decay = j.at("weight_decay").get<double>();
  c.layer_decay = j.value("layer_decay", d.at("layer_decay").get<double>());
  c.warmup_steps = j.at("warmup_steps").get<int64_t>();
  c.clip_grad = j.at("clip_grad").get<double>();
  c.loss_ignore_padding = j.value("loss_ignore_padding", d.at("loss_ignore_padding").get<bool>());
  c.seed = j.at("seed").get<int64_t>();
  c.device = j.at("device").get<std::string>();
  c.amp = j.at("amp").get<std::string>();
  c.checkpoint_every = j.at("checkpoint_every").get<int64_t>();
  c.keep_last = j.at("keep_last").get<int64_t>();
  c.max_nonfinite = j.at("max_nonfinite").get<int64_t>();
  c.workers = j.at("workers").get<int64_t>();
  c.log_every = j.at("log_every").get<int64_t>();
  c.json = j;

  require(c.epochs > 0 || c.max_steps > 0, "epochs", j["epochs"], "epochs or max_steps must be > 0");
  require(c.batch_size > 0, "batch_size", j["batch_size"], "must be > 0");
  require(c.grad_accum > 0, "grad_accum", j["grad_accum"], "must be > 0");
  require(c.lr > 0, "lr", j["lr"], "must be > 0");
  require(c.min_lr >= 0 && c.min_lr <= c.lr, "min_lr", j["min_lr"], "must be in [0, lr]");
  require(c.layer_decay > 0 && c.layer_decay <= 1, "layer_decay", json(c.layer_decay),
          "must be in (0, 1]");
  require(c.device == "auto" || c.device == "cpu" || c.device == "cuda", "device", j["device"],
          "must be auto, cpu or cuda");
  require(c.amp == "off" || c.amp == "bf16" || c.amp == "fp16", "amp", j["amp"],
          "must be off, bf16 or fp16");
  require(c.keep_last > 0, "keep_last", j["keep_last"], "must be > 0");
  require(c.max_nonfinite > 0, "max_nonfinite", j["max_nonfinite"], "must be > 0");
  require(c.log_every > 0, "log_every", j["log_every"], "must be > 0");
  return c;
}

}  // namespace sd::train
