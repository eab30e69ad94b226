#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "distributed/group.h"

// Data-parallel training as PyTorch's DistributedDataParallel does it, on our own buckets
// (c10d's Reducer is not usable from C++ in LibTorch 1.13): every rank starts from rank 0's
// weights, and each step's gradients are averaged over the ranks by bucketed all-reduce,
// launched during backward as soon as a bucket's gradients are all there.
namespace sd::distributed {

// DDP's bucket sizes: a small first bucket so that communication starts early in backward,
// then ~25 MiB buckets.
constexpr int64_t kFirstBucketBytes = int64_t{1} << 20;
constexpr int64_t kBucketBytes = int64_t{25} << 20;

// Rank 0's parameters and buffers into every rank's `model`.
void broadcast_module(Group& group, torch::nn::Module& model);

class GradientSync {
 public:
  // Buckets over `params` in reverse order (backward produces the last layers' gradients
  // first); a bucket holds one dtype and device and closes once it reaches its size.
  GradientSync(Group& group, std::vector<at::Tensor> params,
               int64_t first_bucket_bytes = kFirstBucketBytes, int64_t bucket_bytes = kBucketBytes);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // The next backward pass is the step's last (with gradient accumulation, the earlier ones
  // only accumulate locally): its gradients go out bucket by bucket as they become ready.
  void arm();
  // After that backward pass: launches the buckets not yet sent (a parameter without a
  // gradient counts as zero), waits, and leaves each parameter's .grad the mean over the
  // ranks; one no rank had a gradient for keeps no .grad (the optimiser skips it, as with one
  // process). PeerLost when a rank failed.
  void finish();

  // With overlap off every bucket goes out in finish(), after backward: bench's baseline.
  void set_overlap(bool on) { overlap_ = on; }
  size_t buckets() const { return buckets_.size(); }
  std::vector<size_t> bucket_sizes() const;  // parameters per bucket, in launch order
  // The last step's all-reduce: seconds the buckets' all-reduces were running (one after the
  // other, each from its launch or the previous one's end to its own end), and how much of
  // that was before backward ended (hidden by it).
  struct Timing {
    double allreduce_s = 0, hidden_s = 0;
  };
  const Timing& last_timing() const { return timing_; }
  size_t launched_in_backward() const { return launched_in_backward_; }  // last step's buckets

 private:
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;  // in the bucket's flat buffer, in elements
    bool ready = false;
  };
  struct Bucket {
    std::vector<size_t> params;
    at::Tensor flat;
    size_t pending = 0;  // parameters whose gradient has not arrived
    Pending work;
    Pending::Clock::time_point launched;
  };

  void on_gradient(size_t param, const at::Tensor& grad);
  at::Tensor step_gradient(size_t param, const at::Tensor& grad) const;
  std::vector<bool> used_anywhere();
  void average_late(const std::vector<bool>& used, double ranks);
  void assign(size_t param, const at::Tensor& mean);
  at::Tensor view_of(size_t param);
  void launch_ready();  // buckets go out in order, as DDP's: every rank launches the same sequence
  void reset();
  void measure(Pending::Clock::time_point backward_end);

  Group& group_;
  std::vector<at::Tensor> params_;
  std::vector<unsigned> hooks_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<bool> used_;             // this rank had a gradient for the parameter this step
  std::vector<bool> unused_;           // no rank had one in the last step: ready from the start
  std::map<size_t, at::Tensor> late_;  // gradients of those that came after all
  size_t next_ = 0;                    // first bucket not launched
  bool armed_ = false, overlap_ = true;
  Timing timing_;
  size_t launched_in_backward_ = 0;
  std::mutex mutex_;  // hooks run on autograd's threads
};

}  // namespace sd::distributed
