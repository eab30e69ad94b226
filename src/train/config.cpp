#include "train/config.h"

#include "models/config.h"

namespace sd::train {

using io::any_value;
using io::field;
using io::non_negative;
using io::path;
using io::positive;
using C = TrainConfig;

const io::ConfigTable<TrainConfig>& train_config_table() {
  static const io::ConfigTable<TrainConfig> table({
      path(
          field("student_model", &C::student_model, "vit_t", any_value(),
                "student architecture: a preset (" + models::encoder_presets_in_words() +
                    ") or a JSON config of a family (" + models::encoder_families_in_words() + ")"),
          io::PathKind::file_or_name),
      path(field("init", &C::init, "", any_value(),
                 "initial student weights: encoder state dict, full SAM checkpoint or run folder")),
      path(field("store", &C::store, "", any_value(),
                 "embedding store with the teacher's embeddings (samdistill embed)")),
      path(field("data", &C::data, {}, any_value(),
                 "images the store does not cache: SA-1B folders or .tar files, image folders, "
                 "COCO .json files (space- or comma-separated)")),
      path(field("images", &C::images, "", any_value(),
                 "folder of the images of the COCO files in data (default: each JSON's folder)")),
      field("epochs", &C::epochs, 8,
            io::Check{[](int64_t v, const C& c) { return v >= 0 && (v > 0 || c.max_steps > 0); },
                      "must be >= 0; epochs or max_steps must be > 0"},
            "passes over the store's images"),
      field("max_steps", &C::max_steps, 0, non_negative(),
            "stop after this many optimiser steps (0: epochs decide)"),
      field("batch_size", &C::batch_size, 8, positive(), "images per micro-batch"),
      field("grad_accum", &C::grad_accum, 1, positive(), "micro-batches per optimiser step"),
      field("lr", &C::lr, 1e-3, positive(), "peak learning rate (AdamW)"),
      field(
          "min_lr", &C::min_lr, 1e-5,
          io::Check{[](double v, const C& c) { return v >= 0 && v <= c.lr; }, "must be in [0, lr]"},
          "learning rate at the end of the cosine decay"),
      field("weight_decay", &C::weight_decay, 0.01, non_negative(),
            "AdamW weight decay (never on norms, biases, attention biases)"),
      field("layer_decay", &C::layer_decay, 1.0,
            io::Check{[](double v, const C&) { return v > 0 && v <= 1; }, "must be in (0, 1]"},
            "layer-wise learning-rate decay (TinyViT uses 0.8; 1: off)"),
      field("warmup_steps", &C::warmup_steps, 1000, non_negative(), "linear warm-up steps"),
      field("clip_grad", &C::clip_grad, 0.0, non_negative(),
            "clip the gradient's L2 norm to this (0: off)"),
      field("loss", &C::loss, EmbeddingLoss::mse, any_value(),
            "loss between student and teacher embeddings: mse (the paper's), huber (smooth L1, "
            "delta 1) or l1 (NanoSAM's)"),
      field("loss_ignore_padding", &C::loss_ignore_padding, false, any_value(),
            "leave the padded area out of the loss (EdgeSAM)"),
      field("seed", &C::seed, 0, any_value(),
            "seed of the student's initial weights and the data order"),
      // An enum's words are its check.
      field("device", &C::device, DeviceChoice::automatic, any_value(),
            "where to train (auto: CUDA when available, else the CPU)"),
      field(
          "amp", &C::amp, models::Amp::off, any_value(),
          "mixed precision of the forward: bf16 (CPUs and CUDA) or fp16 (CUDA, with loss scaling)"),
      field("checkpoint_every", &C::checkpoint_every, 1000, non_negative(),
            "write a checkpoint every N steps (and at each epoch end; 0: epochs only)"),
      field("keep_last", &C::keep_last, 3, positive(),
            "step checkpoints kept (best.pth is kept apart)"),
      field("max_nonfinite", &C::max_nonfinite, 20, positive(),
            "stop after this many non-finite losses in a row"),
      field("workers", &C::workers, 0, non_negative(), "image decoding threads (0: one per core)"),
      field("sync_batchnorm", &C::sync_batchnorm, false, any_value(),
            "with several processes, BatchNorm (TinyViT) normalises by the statistics of the "
            "global batch, as torch.nn.SyncBatchNorm (default: each process's own; one process: "
            "plain BatchNorm)"),
      field("recompute_stages", &C::recompute_stages, 0, non_negative(),
            "TinyViT students: the first N stages (the patch embedding with the first) keep "
            "only their inputs and are run again in backward: a lower peak memory for more "
            "time (0: off)"),
      field("log_every", &C::log_every, 10, positive(), "progress line every N steps"),
      field("strict", &C::strict, false, any_value(),
            "stop at the first bad record (damaged store record, unreadable image) instead of "
            "skipping it"),
  });
  return table;
}

const nlohmann::json& train_config_defaults() { return train_config_table().defaults(); }

TrainConfig train_config_from_json(const nlohmann::json& given, const std::string& source) {
  TrainConfig c = train_config_table().read(given, source);
  c.json = train_config_table().write(c);
  return c;
}

}  // namespace sd::train
