#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distributed/grad_sync.h"
#include "distributed/group.h"
#include "io/train_checkpoint_file.h"

// What the training loop asks of the other ranks of a data-parallel run; with no group (one
// process) each answer is this process's own.
namespace sd::train {

class Ranks {
 public:
  explicit Ranks(distributed::Group* group) : group_(group) {}

  int size() const { return group_ ? group_->world().size : 1; }
  int rank() const { return group_ ? group_->world().rank : 0; }
  bool writes() const { return rank() == 0; }  // rank 0 alone writes the run's files
  distributed::Group* group() const { return group_; }

  // Rank 0's answer on every rank; when rank 0 throws sd::Error, every rank throws its message.
  std::string from_rank0(const std::function<std::string()>& answer) const;
  // Stops every rank with one message unless the config and the store are the same on all.
  void check_same(const nlohmann::json& config, const std::string& store_id) const;
  // Whether every rank has a batch (a rank whose slice ran out ends the epoch for all).
  bool all(bool mine) const;
  // The signal received by any rank (0: none), so that all stop after the same step.
  int any_signal(int mine) const;
  // The mean of the ranks' values.
  double mean(double mine) const;
  // Each rank's position (on rank 0; the others get their own alone), for the checkpoint.
  std::vector<int64_t> positions(int64_t step, int64_t mine) const;

 private:
  distributed::Group* group_;
  mutable int64_t rounds_ = 0;  // from_rank0 calls, the same sequence on every rank
};

// sync_batchnorm: every BatchNorm of `model` (TinyViT's) trains on the statistics of all ranks'
// batches together (distributed::sync_batch_norm), for as long as `group` lives.
void sync_batchnorms(torch::nn::Module& model, distributed::Group& group);

// Where this rank starts in its slice of the epoch's order when resuming from `meta`: its own
// position when the world size is the same, else the images consumed over all ranks (the
// furthest rank's count) spread over the new ranks.
int64_t resume_position(const io::TrainCheckpoint& meta, int rank, int size);

}  // namespace sd::train
