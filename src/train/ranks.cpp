#include "train/ranks.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "distributed/sync_batch_norm.h"
#include "models/tiny_vit.h"
#include "util/error.h"
#include "util/text.h"

namespace sd::train {

std::string Ranks::from_rank0(const std::function<std::string()>& answer) const {
  if (!group_) return answer();
  const std::string key = "from_rank0/" + std::to_string(++rounds_);
  if (rank() == 0) {
    try {
      std::string value = answer();
      group_->set(key, "ok:" + value);
      return value;
    } catch (const Error& e) {
      group_->set(key, std::string("error:") + e.what());
      throw;
    }
  }
  const std::string value = group_->get(key);
  if (starts_with(value, "error:")) throw Error(value.substr(6));
  return value.substr(3);
}

void Ranks::check_same(const nlohmann::json& config, const std::string& store_id) const {
  if (!group_) return;
  nlohmann::json shared = config;  // the same store may sit in another folder on each machine
  shared.erase("store");
  shared.erase("data");
  distributed::check_same_run(*group_, shared, store_id);
}

bool Ranks::all(bool mine) const {
  return !group_ || distributed::max_over_ranks(*group_, mine ? 0 : 1) == 0;
}

int Ranks::any_signal(int mine) const {
  return group_ ? static_cast<int>(distributed::max_over_ranks(*group_, mine)) : mine;
}

double Ranks::mean(double mine) const {
  if (!group_) return mine;
  at::Tensor t = at::full({1}, mine, at::TensorOptions(at::kDouble).device(group_->device()));
  group_->all_reduce(t).wait();
  return t.cpu().item<double>() / size();
}

std::vector<int64_t> Ranks::positions(int64_t step, int64_t mine) const {
  if (!group_) return {};
  const std::string key = "position/" + std::to_string(step) + "/";
  if (rank() != 0) {
    group_->set(key + std::to_string(rank()), std::to_string(mine));
    return {};
  }
  std::vector<int64_t> all{mine};
  for (int r = 1; r < size(); ++r) {
    all.push_back(std::stoll(group_->get(key + std::to_string(r))));
    group_->erase(key + std::to_string(r));
  }
  return all;
}

int64_t resume_position(const io::TrainCheckpoint& meta, int rank, int size) {
  const std::vector<int64_t>& saved = meta.rank_positions;
  const int64_t saved_size = saved.empty() ? 1 : static_cast<int64_t>(saved.size());
  if (saved_size == size) return saved.empty() ? meta.progress.position : saved[size_t(rank)];
  const int64_t furthest =
      saved.empty() ? meta.progress.position : *std::max_element(saved.begin(), saved.end());
  const int64_t consumed = furthest * saved_size;
  return (consumed + size - 1) / size;
}

void sync_batchnorms(torch::nn::Module& model, distributed::Group& group) {
  const int64_t synced = models::tiny_vit::set_batchnorm_forward(
      model, [&group](torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x) {
        // What torch::nn::BatchNorm2d's forward does besides normalising: count the batch;
        // without a momentum, a cumulative average.
        bn.num_batches_tracked += 1;
        const double momentum =
            bn.options.momentum().value_or(1.0 / bn.num_batches_tracked.item<double>());
        return distributed::sync_batch_norm(group, x, bn.weight, bn.bias, bn.running_mean,
                                            bn.running_var, momentum, bn.options.eps());
      });
  // Other families' batch norms (a ResNet's) would quietly keep per-rank statistics.
  for (const std::shared_ptr<torch::nn::Module>& m : model.modules())
    if (synced == 0 && dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get()))
      throw Error(
          "sync_batchnorm: only TinyViT's batch norms are synchronised across ranks; "
          "this student's are not (leave sync_batchnorm off)");
}

}  // namespace sd::train
