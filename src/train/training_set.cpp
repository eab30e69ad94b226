#include "train/training_set.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <unordered_set>

#include "data/image.h"
#include "util/error.h"
#include "util/log.h"

namespace sd::train {

TrainingSet training_set(const store::Reader& reader, const std::vector<std::string>& data,
                         bool annotations, const std::string& coco_images, bool strict) {
  std::vector<std::string> keys;
  std::unordered_set<std::string> with_image;
  for (const auto& e : reader.entries()) {
    if (e.index.info.kind == store::Kind::embedding) keys.push_back(e.index.info.key);
    if (e.index.info.kind == store::Kind::image) with_image.insert(e.index.info.key);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  if (keys.empty()) throw Error("store '" + reader.dir() + "' holds no embeddings");

  bool all_cached = std::all_of(keys.begin(), keys.end(),
                                [&](const std::string& k) { return with_image.count(k) > 0; });
  if (all_cached && !annotations) {
    std::vector<data::Entry> entries;
    for (const auto& k : keys) entries.push_back(data::Entry{k, "", "", "", nullptr});
    return {data::Dataset::from_entries(std::move(entries)), true};
  }
  if (data.empty())
    throw Error(annotations
                    ? "the images and their annotations are needed: give their sources "
                      "(--data: SA-1B folders or tars, COCO files, image folders)"
                    : "store '" + reader.dir() +
                          "' does not cache every image: give the images' sources (--data)");
  std::vector<data::Skip> skipped;
  data::Dataset all = data::Dataset::open(data, coco_images, &skipped);
  if (strict && !skipped.empty()) throw Error(data::describe(skipped.front()));
  for (const data::Skip& s : skipped) log::warn("skipping " + data::describe(s));
  std::unordered_set<std::string> wanted(keys.begin(), keys.end());
  data::Dataset found = all.filter([&](const data::Entry& e) { return wanted.count(e.id) > 0; });
  if (found.size() < keys.size())
    log::warn(std::to_string(keys.size() - found.size()) + " of " + std::to_string(keys.size()) +
              " stored embeddings have no image under --data; they are left out");
  if (found.size() == 0) throw Error("no image under --data matches the store's keys");
  return {std::move(found), all_cached};
}

data::ImageSource image_source(const TrainingSet& set, const store::Reader& reader) {
  data::ImageDecoder decoder;
  if (!set.cached_images) decoder = data::default_image_decoder();
  return
      [&reader, cached = set.cached_images, decoder](const data::Entry& e, const data::Record* r) {
        const store::Entry* target = reader.find(store::Kind::embedding, e.id);
        if (!target)
          throw Error("store '" + reader.dir() + "' has no embedding for key '" + e.id + "'");
        reader.read_encoded(*target);  // sd::Error naming the store, shard, key and offset
        return cached ? reader.image(e.id) : data::read_image(e, decoder, r);
      };
}

at::Tensor stack_targets(const store::Reader& reader, const std::vector<std::string>& ids,
                         at::Device device) {
  std::vector<at::Tensor> targets;
  for (const auto& id : ids) targets.push_back(reader.embedding(id));
  return at::stack(targets).to(device, /*non_blocking=*/true);
}

}  // namespace sd::train
