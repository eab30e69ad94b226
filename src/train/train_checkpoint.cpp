#include "train/train_checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <sstream>

#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "util/error.h"

namespace sd::train {
namespace {

constexpr const char* kFormat = "samdistill-train-v2";

// The optimiser's own serialisation (per-parameter state by index), kept as bytes.
at::Tensor optimizer_bytes(torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  std::string s = out.str();
  return at::from_blob(s.data(), {static_cast<int64_t>(s.size())}, at::kByte).clone();
}

void restore_optimizer(torch::optim::Optimizer& optimizer, const at::Tensor& bytes) {
  std::string s(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), bytes.numel());
  std::istringstream in(s);
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  optimizer.load(archive);
}

// The default generator of CUDA device `index`, reached through the context, so that this
// compiles against LibTorch without CUDA headers too.
at::Generator cuda_generator(size_t index) {
  return at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index)));
}

size_t cuda_devices() { return at::hasCUDA() ? torch::cuda::device_count() : 0; }

// One state per CUDA device, as torch.cuda.get_rng_state_all(); empty without CUDA.
c10::impl::GenericList cuda_rng_states() {
  c10::impl::GenericList states(c10::TensorType::get());
  for (size_t i = 0; i < cuda_devices(); ++i) {
    at::Generator generator = cuda_generator(i);
    std::lock_guard<std::mutex> lock(generator.mutex());
    states.push_back(generator.get_state());
  }
  return states;
}

// Restores the devices that were there then and are now (a checkpoint written before CUDA
// states were saved has none).
void restore_cuda_rng_states(const c10::impl::GenericDict& d) {
  auto saved = d.find("rng_cuda");
  if (saved == d.end()) return;
  const c10::impl::GenericList states = saved->value().toList();
  for (size_t i = 0; i < std::min(states.size(), cuda_devices()); ++i) {
    at::Generator generator = cuda_generator(i);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(states.get(i).toTensor());
  }
}

c10::impl::GenericDict progress_dict(const TrainProgress& p) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("step", p.step);
  d.insert("epoch", p.epoch);
  d.insert("position", p.position);
  d.insert("loss_scale", p.loss_scale);
  d.insert("loss_scale_good_steps", p.loss_scale_good_steps);
  d.insert("nonfinite_in_row", p.nonfinite_in_row);
  d.insert("nonfinite_total", p.nonfinite_total);
  d.insert("validated", p.validated);
  d.insert("best_score", p.best_score);
  d.insert("bad_epochs", p.bad_epochs);
  d.insert("epoch_loss", p.epoch_loss);
  d.insert("epoch_steps", p.epoch_steps);
  return d;
}

const c10::IValue& field(const c10::impl::GenericDict& d, const std::string& key,
                         const std::string& path) {
  auto it = d.find(key);
  if (it == d.end()) throw Error("training checkpoint '" + path + "' has no '" + key + "'");
  return it->value();
}

TrainProgress read_progress(const c10::impl::GenericDict& d, const std::string& path) {
  TrainProgress p;
  p.step = field(d, "step", path).toInt();
  p.epoch = field(d, "epoch", path).toInt();
  p.position = field(d, "position", path).toInt();
  p.loss_scale = field(d, "loss_scale", path).toDouble();
  p.loss_scale_good_steps = field(d, "loss_scale_good_steps", path).toInt();
  p.nonfinite_in_row = field(d, "nonfinite_in_row", path).toInt();
  p.nonfinite_total = field(d, "nonfinite_total", path).toInt();
  p.validated = field(d, "validated", path).toBool();
  p.best_score = field(d, "best_score", path).toDouble();
  p.bad_epochs = field(d, "bad_epochs", path).toInt();
  p.epoch_loss = field(d, "epoch_loss", path).toDouble();
  p.epoch_steps = field(d, "epoch_steps", path).toInt();
  return p;
}

c10::impl::GenericDict read_top(const std::string& path) {
  c10::IValue top = io::read_torch_file(path);
  if (!top.isGenericDict()) throw Error("'" + path + "' is not a samdistill training checkpoint");
  auto d = top.toGenericDict();
  auto format = d.find("format");
  if (format == d.end() || !format->value().isString() || format->value().toStringRef() != kFormat)
    throw Error("'" + path + "' is not a samdistill training checkpoint (format '" + kFormat +
                "' expected)");
  return d;
}

TrainCheckpoint read_meta(const c10::impl::GenericDict& d, const std::string& path) {
  TrainCheckpoint meta;
  try {
    meta.progress = read_progress(field(d, "progress", path).toGenericDict(), path);
    meta.config = nlohmann::json::parse(field(d, "config", path).toStringRef());
    meta.store_id = field(d, "store_id", path).toStringRef();
  } catch (const c10::Error& e) {
    throw Error("training checkpoint '" + path + "' has a field of the wrong type");
  }
  return meta;
}

}  // namespace

void save_train_checkpoint(const std::string& path, const torch::nn::Module& model,
                           torch::optim::Optimizer& optimizer, const TrainCheckpoint& meta) {
  c10::impl::GenericDict weights(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [key, value] : io::state_dict(model)) weights.insert(key, value);

  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("format", std::string(kFormat));
  d.insert("model", weights);
  d.insert("optimizer", optimizer_bytes(optimizer));
  d.insert("progress", progress_dict(meta.progress));
  d.insert("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  d.insert("rng_cuda", cuda_rng_states());
  d.insert("config", meta.config.dump());
  d.insert("store_id", meta.store_id);
  io::write_torch_file(path, d);
}

TrainCheckpoint load_train_checkpoint(const std::string& path, torch::nn::Module& model,
                                      torch::optim::Optimizer& optimizer) {
  auto d = read_top(path);
  TrainCheckpoint meta = read_meta(d, path);
  io::StateDict weights;
  for (const auto& item : field(d, "model", path).toGenericDict())
    weights.emplace_back(item.key().toStringRef(), item.value().toTensor());
  io::load_state_dict(model, weights, "", path);
  try {
    restore_optimizer(optimizer, field(d, "optimizer", path).toTensor());
  } catch (const c10::Error& e) {
    throw Error("optimiser state in '" + path + "' does not fit this model: " + e.msg());
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(field(d, "rng_cpu", path).toTensor());
  try {
    restore_cuda_rng_states(d);
  } catch (const c10::Error& e) {
    throw Error("CUDA generator states in '" + path + "' cannot be restored: " + e.msg());
  }
  return meta;
}

TrainCheckpoint peek_train_checkpoint(const std::string& path) {
  return read_meta(read_top(path), path);
}

std::string checkpoint_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.pth", static_cast<long long>(step));
  return name;
}

}  // namespace sd::train
