#include "io/train_checkpoint_file.h"

#include <type_traits>

#include "io/checkpoint.h"
#include "util/error.h"

namespace sd::io {
namespace {

constexpr const char* kFormat = "samdistill-train-v2";

using Dict = c10::impl::GenericDict;

// Each field of the progress under its key, in file order: one list for writing and reading.
template <typename Progress, typename Visit>
void for_each_field(Progress& p, Visit&& visit) {
  visit("step", p.step);
  visit("epoch", p.epoch);
  visit("position", p.position);
  visit("loss_scale", p.loss_scale);
  visit("loss_scale_good_steps", p.loss_scale_good_steps);
  visit("nonfinite_in_row", p.nonfinite_in_row);
  visit("nonfinite_total", p.nonfinite_total);
  visit("validated", p.validated);
  visit("best_score", p.best_score);
  visit("bad_epochs", p.bad_epochs);
  visit("epoch_loss", p.epoch_loss);
  visit("epoch_steps", p.epoch_steps);
}

Dict progress_dict(const TrainProgress& p) {
  Dict d(c10::StringType::get(), c10::AnyType::get());
  for_each_field(p, [&](const char* key, const auto& value) { d.insert(key, value); });
  return d;
}

// By value (a reference count): a reference would outlive the temporary key in GCC 14's eyes.
c10::IValue field(const Dict& d, const std::string& key, const std::string& path) {
  auto it = d.find(key);
  if (it == d.end()) throw Error("training checkpoint '" + path + "' has no '" + key + "'");
  return it->value();
}

// c10::Error when a field has another type (read_meta names the file).
TrainProgress read_progress(const Dict& d, const std::string& path) {
  TrainProgress p;
  for_each_field(p, [&](const char* key, auto& value) {
    value = field(d, key, path).to<std::decay_t<decltype(value)>>();
  });
  return p;
}

Dict top_dict(const c10::IValue& top, const std::string& path) {
  if (!top.isGenericDict()) throw Error("'" + path + "' is not a samdistill training checkpoint");
  auto d = top.toGenericDict();
  auto format = d.find("format");
  if (format == d.end() || !format->value().isString() || format->value().toStringRef() != kFormat)
    throw Error("'" + path + "' is not a samdistill training checkpoint (format '" + kFormat +
                "' expected)");
  return d;
}

TrainCheckpoint read_meta(const Dict& d, const std::string& path) {
  TrainCheckpoint meta;
  try {
    meta.progress = read_progress(field(d, "progress", path).toGenericDict(), path);
    meta.config = nlohmann::json::parse(field(d, "config", path).toStringRef());
    meta.store_id = field(d, "store_id", path).toStringRef();
    auto positions = d.find("rank_positions");  // a data-parallel run's
    if (positions != d.end())
      for (const c10::IValue& p : positions->value().toListRef())
        meta.rank_positions.push_back(p.toInt());
  } catch (const c10::Error& e) {
    throw Error("training checkpoint '" + path + "' has a field of the wrong type");
  }
  return meta;
}

at::Tensor tensor_field(const Dict& d, const std::string& key, const std::string& path) {
  const c10::IValue value = field(d, key, path);
  if (!value.isTensor())
    throw Error("training checkpoint '" + path + "': '" + key + "' is not a tensor");
  return value.toTensor();
}

StateDict read_model(const Dict& d, const std::string& path) {
  const c10::IValue model = field(d, "model", path);
  if (!model.isGenericDict())
    throw Error("training checkpoint '" + path + "': 'model' is not a dict");
  StateDict weights;
  for (const auto& item : model.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor())
      throw Error("training checkpoint '" + path +
                  "': 'model' holds an entry that is not a named tensor");
    weights.emplace_back(item.key().toStringRef(), item.value().toTensor());
  }
  return weights;
}

// One state per CUDA device; none in a checkpoint written before they were saved.
std::vector<at::Tensor> cuda_states(const Dict& d, const std::string& path) {
  std::vector<at::Tensor> states;
  auto saved = d.find("rng_cuda");
  if (saved == d.end()) return states;
  if (!saved->value().isList())
    throw Error("training checkpoint '" + path + "': 'rng_cuda' is not a list");
  for (const c10::IValue& state : saved->value().toListRef()) {
    if (!state.isTensor())
      throw Error("training checkpoint '" + path + "': 'rng_cuda' holds a non-tensor");
    states.push_back(state.toTensor());
  }
  return states;
}

}  // namespace

void write_train_checkpoint(const std::string& path, const TrainCheckpointFile& file) {
  Dict weights(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [key, value] : file.model) weights.insert(key, value);

  Dict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("format", std::string(kFormat));
  d.insert("model", weights);
  d.insert("optimizer", file.optimizer);
  d.insert("progress", progress_dict(file.meta.progress));
  d.insert("rng_cpu", file.rng_cpu);
  c10::impl::GenericList cuda(c10::TensorType::get());
  for (const at::Tensor& state : file.rng_cuda) cuda.push_back(state);
  d.insert("rng_cuda", cuda);
  d.insert("config", file.meta.config.dump());
  d.insert("store_id", file.meta.store_id);
  if (!file.meta.rank_positions.empty())
    d.insert("rank_positions", c10::List<int64_t>(file.meta.rank_positions));
  write_torch_file(path, d);
}

TrainCheckpointFile read_train_checkpoint(const std::string& path) {
  return train_checkpoint_of(read_torch_file(path), path);
}

bool is_train_checkpoint(const c10::IValue& top) {
  if (!top.isGenericDict()) return false;
  const Dict d = top.toGenericDict();
  auto format = d.find("format");
  return format != d.end() && format->value().isString() &&
         format->value().toStringRef() == kFormat;
}

TrainCheckpointFile train_checkpoint_of(const c10::IValue& top, const std::string& path) {
  const Dict d = top_dict(top, path);
  TrainCheckpointFile file;
  file.meta = read_meta(d, path);
  file.model = read_model(d, path);
  file.optimizer = tensor_field(d, "optimizer", path);
  file.rng_cpu = tensor_field(d, "rng_cpu", path);
  file.rng_cuda = cuda_states(d, path);
  return file;
}

TrainCheckpoint peek_train_checkpoint(const std::string& path) {
  return read_meta(top_dict(read_torch_file(path), path), path);
}

}  // namespace sd::io
