#include "io/checkpoint.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <filesystem>

#include "io/pickle.h"
#include "io/zip_checksums.h"
#include "util/atomic_file.h"
#include "util/error.h"

// The zip layout of `torch.save` (since PyTorch 1.6): <archive>/data.pkl (the pickle),
// <archive>/data/<key> (one raw little-endian record per storage), <archive>/version.
// LibTorch's PyTorchStreamReader/Writer handle the zip (alignment, CRC, zip64, the
// archive folder name) but check no CRC, so every record read is checked here
// (zip_checksums.h); the pickle is ours (pickle.h), because torch::pickle_load before
// LibTorch 2.6 cannot read state dicts (pytorch#100741).
namespace sd::io {
namespace {

using caffe2::serialize::PyTorchStreamReader;
using caffe2::serialize::PyTorchStreamWriter;

// A record's bytes, checked against the CRC-32 the zip recorded for it.
std::tuple<at::DataPtr, size_t> read_record(PyTorchStreamReader& reader,
                                            const ZipChecksums& checksums,
                                            const std::string& record) {
  auto [data, size] = reader.getRecord(record);
  checksums.check(record, data.get(), size);
  return {std::move(data), size};
}

at::Storage load_storage(PyTorchStreamReader& reader, const ZipChecksums& checksums,
                         const std::string& path, const std::string& key, at::ScalarType dtype,
                         int64_t numel) {
  std::string record = "data/" + key;
  if (!reader.hasRecord(record)) throw Error(path + ": storage record '" + record + "' is missing");
  auto [data, size] = read_record(reader, checksums, record);
  size_t item = c10::elementSize(dtype);
  if (static_cast<uint64_t>(numel) > size / item)
    throw Error(path + ": storage record '" + record + "' holds " + std::to_string(size) +
                " bytes, its tensors need " + std::to_string(numel) + " x " + std::to_string(item));
  size_t needed = static_cast<size_t>(numel) * item;
  return at::Storage(at::Storage::use_byte_size_t(), needed, std::move(data), nullptr, false);
}

c10::IValue read_archive(PyTorchStreamReader& reader, const ZipChecksums& checksums,
                         const std::string& path) {
  if (!reader.hasRecord("data.pkl"))
    throw Error(path + ": zip file without data.pkl: not a torch.save file");
  if (reader.hasRecord("byteorder")) {
    auto [order, size] = read_record(reader, checksums, "byteorder");
    if (std::string(static_cast<const char*>(order.get()), size) != "little")
      throw Error(path + ": big-endian checkpoints are not supported");
  }
  auto [pkl, size] = read_record(reader, checksums, "data.pkl");
  std::string_view bytes(static_cast<const char*>(pkl.get()), size);
  return unpickle(
      bytes,
      [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
        return load_storage(reader, checksums, path, key, dtype, numel);
      },
      path);
}

// A trainer's checkpoint (EdgeSAM and others save {"model": state_dict, "optimizer": ...,
// "epoch": ...}) holds the state dict under "model" or "state_dict".
c10::impl::GenericDict unwrap_trainer_checkpoint(const c10::impl::GenericDict& dict) {
  for (const char* key : {"model", "state_dict"}) {
    auto it = dict.find(std::string(key));
    if (it != dict.end() && it->value().isGenericDict()) return it->value().toGenericDict();
  }
  return dict;
}

}  // namespace

c10::IValue read_torch_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error(path + ": no such file");
  const ZipChecksums checksums(path);  // before LibTorch allocates what the zip declares
  try {
    PyTorchStreamReader reader(path);
    return read_archive(reader, checksums, path);
  } catch (const c10::Error& e) {
    throw Error(path + ": not a readable torch.save zip file (" + e.what_without_backtrace() + ")");
  }
}

StateDict read_state_dict(const std::string& path) {
  return state_dict_of(read_torch_file(path), path);
}

StateDict state_dict_of(const c10::IValue& value, const std::string& path) {
  if (!value.isGenericDict())
    throw Error(path + ": holds a " + value.tagKind() + ", not a state dict");
  StateDict out;
  for (const auto& entry : unwrap_trainer_checkpoint(value.toGenericDict())) {
    if (!entry.key().isString()) throw Error(path + ": state dict key that is not a string");
    const std::string& key = entry.key().toStringRef();
    if (!entry.value().isTensor())
      throw Error(path + ": entry '" + key + "' is a " + entry.value().tagKind() +
                  ", not a tensor");
    out.emplace_back(key, entry.value().toTensor());
  }
  return out;
}

void write_torch_file(const std::string& path, const c10::IValue& value) {
  std::vector<at::Tensor> storages;
  std::string pkl;
  try {
    pkl = pickle(value, storages);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  std::string bytes;
  {
    PyTorchStreamWriter writer([&](const void* data, size_t n) {
      bytes.append(static_cast<const char*>(data), n);
      return n;
    });
    writer.writeRecord("data.pkl", pkl.data(), pkl.size());
    for (size_t i = 0; i < storages.size(); ++i) {
      const at::Tensor& t =
          storages[i];  // contiguous, on the CPU; may be a slice of a larger storage
      writer.writeRecord("data/" + std::to_string(i), t.data_ptr(), t.numel() * t.element_size());
    }
    writer.writeEndOfFile();
  }
  write_file_atomic(path, bytes);
}

void write_state_dict(const std::string& path, const StateDict& entries) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [key, tensor] : entries) {
    if (!dict.insert(key, tensor).second)
      throw Error(path + ": state dict key '" + key + "' appears twice");
  }
  write_torch_file(path, dict);
}

}  // namespace sd::io
