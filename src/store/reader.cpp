#include "store/reader.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "store/part.h"
#include "util/error.h"

namespace sd::store {
namespace {

std::string lookup_key(Kind kind, const std::string& key) { return char('0' + int(kind)) + key; }

}  // namespace

Reader::Reader(const std::string& dir) : dir_(dir) {
  StoreFiles files = list_store_files(dir);
  manifest_ = read_manifest(dir);
  if (!files.orphans.empty())
    throw Error("store '" + dir + "' is damaged: " + files.orphans.front());
  parts_ = files.parts;
  for (size_t p = 0; p < parts_.size(); ++p) {
    std::string path = records_path(dir, parts_[p]);
    fds_.push_back(open_for_reading(path));
    for (IndexEntry& e : load_index(index_path(dir, parts_[p]), false).entries) {
      lookup_.emplace(lookup_key(e.info.kind, e.info.key), entries_.size());
      entries_.push_back({std::move(e), int(p)});
    }
  }
}

Reader::~Reader() {
  for (int fd : fds_) ::close(fd);
}

const Entry* Reader::find(Kind kind, const std::string& key) const {
  auto it = lookup_.find(lookup_key(kind, key));
  return it == lookup_.end() ? nullptr : &entries_[it->second];
}

const Entry& Reader::require(Kind kind, const std::string& key) const {
  const Entry* e = find(kind, key);
  if (!e) throw Error("store '" + dir_ + "' has no " + kind_name(kind) + " for key '" + key + "'");
  return *e;
}

Encoded Reader::read_encoded(const Entry& entry) const {
  Encoded out;
  out.payload = read_record(fds_.at(entry.part), dir_, records_path(dir_, parts_[entry.part]),
                            entry.index, out.info);
  return out;
}

at::Tensor Reader::read(const Entry& entry) const {
  Encoded record = read_encoded(entry);
  return decode_payload(record.info, record.payload);
}

at::Tensor Reader::embedding(const std::string& key) const {
  Encoded record = read_encoded(require(Kind::embedding, key));
  return decode_embedding(record.info, record.payload);
}

at::Tensor Reader::image(const std::string& key) const { return read(require(Kind::image, key)); }

nlohmann::json Reader::stats() const {
  struct Totals {
    size_t count = 0;
    uint64_t bytes = 0;
    double err_sq = 0, ref_sq = 0;
  } kinds[2];
  size_t duplicates = 0, past_end = 0;
  std::vector<uint64_t> sizes;
  for (size_t p = 0; p < fds_.size(); ++p)
    sizes.push_back(file_size(fds_[p], records_path(dir_, parts_[p])));
  for (size_t i = 0; i < entries_.size(); ++i) {
    const RecordInfo& info = entries_[i].index.info;
    // An entry past the end of its shard (a cut file, or a size no record has) is damage, not
    // bytes: counted apart, never added in.
    if (entries_[i].index.offset + record_bytes(info.key.size(), info.payload_bytes) >
        sizes[entries_[i].part]) {
      ++past_end;
      continue;
    }
    if (find(info.kind, info.key) != &entries_[i]) {
      ++duplicates;
      continue;
    }
    Totals& t = kinds[int(info.kind)];
    ++t.count;
    t.bytes += record_bytes(info.key.size(), info.payload_bytes);
    t.err_sq += info.err_sq;
    t.ref_sq += info.ref_sq;
  }
  const Totals& emb = kinds[0];
  const Totals& img = kinds[1];
  nlohmann::json j = {{"store", dir_},
                      {"parts", parts_},
                      {"embeddings", emb.count},
                      {"embedding_bytes", emb.bytes},
                      {"bytes_per_embedding", emb.count ? emb.bytes / emb.count : 0},
                      {"images", img.count},
                      {"image_bytes", img.bytes},
                      {"bytes_per_image", img.count ? img.bytes / img.count : 0},
                      {"duplicates", duplicates},
                      {"records_past_end", past_end},  // damage: `store verify` names them
                      {"manifest", manifest_.to_json()}};
  // Exactly 0 for fp32; computed at write time from the float32 embeddings.
  j["relative_mse_vs_fp32"] =
      emb.ref_sq > 0 ? nlohmann::json(emb.err_sq / emb.ref_sq) : nlohmann::json();
  return j;
}

}  // namespace sd::store
