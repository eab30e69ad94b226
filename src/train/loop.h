#pragma once
#include <string>
#include <vector>

#include "distributed/group.h"
#include "train/config.h"
#include "train/objective.h"

namespace sd::train {

// Where a run goes and how it starts.
struct RunStart {
  std::string dir;
  std::string resume;      // "": new run; "auto": newest valid checkpoint of dir; else a file
  bool overwrite = false;  // a new run replaces the files of a previous run in dir
};

struct LoopRequest {
  TrainConfig config;  // the loop's keys: epochs, batch_size, lr, checkpoint_every, ...
  RunStart run;
  int64_t patience = 0;        // epochs without a better validation score before stopping; 0: never
  std::string name = "train";  // the command, for the progress line
  // Data-parallel ranks (null: one process). config.batch_size is then the global batch: each
  // rank takes batch_size / ranks images of every step from its slice of the epoch's order,
  // gradients are averaged, and rank 0 alone writes the run folder.
  distributed::Group* group = nullptr;
};

struct TrainSummary {
  int64_t steps = 0;  // optimiser steps done in the whole run
  int64_t steps_this_call = 0;
  double first_loss = 0, last_loss = 0;  // mean loss of the first / last logged step
  double images_per_s = 0;
  double data_wait_pct = 0;  // share of wall time spent waiting for batches
  int64_t nonfinite_total = 0;
  // Records skipped in this call because they could not be read (damaged store records, bad
  // images or records), each counted once (data::Loader::skipped_records).
  int64_t skipped_records = 0;
  std::vector<double> scores;  // validation scores of this call: before training, each epoch
  double best_score = 0;       // validating objectives: the score final.pth has
  int64_t best_step = 0;       // ... and the step of its weights
  bool stopped_early = false;
  bool already_complete = false;  // a resumed run with all its steps done: nothing trained
  std::string final_weights;      // RUN/final.pth
};

// Trains `objective` into the run folder: RUN/config.json, metrics.jsonl, checkpoints/
// (step-N.pth, best.pth), final.pth, loss.png. Checkpoints carry the store's identity, so a
// resume on another store is refused. sd::Error on bad input, naming the file, key or value.
TrainSummary run_training(const LoopRequest& request, Objective& objective);

}  // namespace sd::train
