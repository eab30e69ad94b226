#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

// A run folder: config.json (effective), metrics.jsonl, TensorBoard event files,
// checkpoints/step-N.pth, final.pth, and for an objective with a held-out set (finetune) the
// held-out reports: heldout/index.html (the page of the best validation, final.pth's) and
// heldout/step-N.json (each validation's report).
namespace sd::io {

// `folder`/`leaf`, with one '/' between them whether or not `folder` ends with one.
std::string in_folder(const std::string& folder, const std::string& leaf);

struct RunPaths {
  std::string dir;
  std::string config() const { return in_folder(dir, "config.json"); }
  std::string metrics() const { return in_folder(dir, "metrics.jsonl"); }
  std::string checkpoints() const { return in_folder(dir, "checkpoints"); }
  std::string final_weights() const { return in_folder(dir, "final.pth"); }
  std::string loss_curve() const { return in_folder(dir, "loss.png"); }
  std::string best() const { return checkpoints() + "/best.pth"; }
  std::string heldout() const { return in_folder(dir, "heldout"); }
  std::string heldout_page() const { return heldout() + "/index.html"; }
  // The report of the validation after `step` optimiser steps: heldout/step-00001200.json.
  std::string heldout_report(int64_t step) const;
};

// File name of the checkpoint written after `step` optimiser steps.
std::string checkpoint_name(int64_t step);  // "step-00001200.pth"

// Training checkpoints of a run, newest (highest step) first.
std::vector<std::string> list_checkpoints(const RunPaths& run);

// The files a run writes that are in the folder: config.json, metrics.jsonl, final.pth,
// loss.png, events.out.tfevents.*, checkpoints/*.pth, heldout/index.html, heldout/step-*.json.
// Empty for a folder that holds no run.
std::vector<std::string> run_files(const RunPaths& run);

// The newest checkpoint that reads back completely, passing over damaged or partial ones
// with a warning each; nullopt when there is none.
std::optional<std::string> newest_valid_checkpoint(const RunPaths& run);

}  // namespace sd::io
