#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <mutex>
#include <sstream>

#include "io/state_dict.h"
#include "util/device.h"
#include "util/error.h"

namespace sd::train {
namespace {

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
  return at::globalContext().defaultGenerator(
      at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index)));
}

size_t cuda_devices() { return static_cast<size_t>(cuda_device_count()); }

// One state per CUDA device, as torch.cuda.get_rng_state_all(); empty without CUDA.
std::vector<at::Tensor> cuda_rng_states() {
  std::vector<at::Tensor> states;
  for (size_t i = 0; i < cuda_devices(); ++i) {
    at::Generator generator = cuda_generator(i);
    std::lock_guard<std::mutex> lock(generator.mutex());
    states.push_back(generator.get_state());
  }
  return states;
}

// Restores the devices that were there then and are now.
void restore_cuda_rng_states(const std::vector<at::Tensor>& states) {
  for (size_t i = 0; i < std::min(states.size(), cuda_devices()); ++i) {
    at::Generator generator = cuda_generator(i);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(states[i]);
  }
}

}  // namespace

void save_train_checkpoint(const std::string& path, const torch::nn::Module& model,
                           torch::optim::Optimizer& optimizer, const TrainCheckpoint& meta) {
  io::write_train_checkpoint(path,
                             {meta, io::state_dict(model), optimizer_bytes(optimizer),
                              at::detail::getDefaultCPUGenerator().get_state(), cuda_rng_states()});
}

TrainCheckpoint load_train_checkpoint(const std::string& path, torch::nn::Module& model,
                                      torch::optim::Optimizer& optimizer) {
  const io::TrainCheckpointFile file = io::read_train_checkpoint(path);
  io::load_state_dict(model, file.model, "", path);
  try {
    restore_optimizer(optimizer, file.optimizer);
  } catch (const c10::Error& e) {
    throw Error("optimiser state in '" + path + "' does not fit this model: " + e.msg());
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(file.rng_cpu);
  try {
    restore_cuda_rng_states(file.rng_cuda);
  } catch (const c10::Error& e) {
    throw Error("CUDA generator states in '" + path + "' cannot be restored: " + e.msg());
  }
  return file.meta;
}

}  // namespace sd::train
