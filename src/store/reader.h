#pragma once
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/format.h"
#include "store/manifest.h"

namespace sd::store {

struct Entry {
  IndexEntry index;
  int part = 0;  // into Reader::parts()
};

// Reads a store: the committed records of all its parts as of opening. Thread-safe after
// construction (reads are pread calls). Opening refuses a damaged index or a shard without
// one; reading refuses a damaged record, each with an sd::Error naming the store, shard, key
// and offset.
class Reader {
 public:
  explicit Reader(const std::string& dir);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const std::string& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  const std::vector<std::string>& parts() const { return parts_; }
  // Every committed record, part by part in file order: a sequential scan reads them in order.
  const std::vector<Entry>& entries() const { return entries_; }
  // The first record of that kind and key (parts in name order), or nullptr.
  const Entry* find(Kind kind, const std::string& key) const;

  Encoded read_encoded(const Entry& entry) const;  // checked payload bytes and header info
  // The stored tensor: fp16 / bf16 / fp32 as stored, int8 decoded to float32, images uint8.
  at::Tensor read(const Entry& entry) const;
  at::Tensor embedding(const std::string& key) const;  // float32 CxHxW
  at::Tensor image(const std::string& key) const;      // uint8 HxWx3

  // Counts, bytes per kind, dtype, manifest, relative MSE of the stored values vs fp32.
  nlohmann::json stats() const;

 private:
  const Entry& require(Kind kind, const std::string& key) const;
  std::string dir_;
  Manifest manifest_;
  std::vector<std::string> parts_;
  std::vector<int> fds_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> lookup_;  // kind + key -> entries_ index
};

}  // namespace sd::store
