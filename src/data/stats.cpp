#include "data/stats.h"

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "data/loader.h"
#include "util/error.h"

namespace sd::data {

DataStats compute_stats(const Dataset& dataset, const ImageDecoder& decoder, int threads,
                        bool strict, const std::function<void(size_t, size_t)>& progress) {
  // Per-record results, summed in dataset order so that the skip list is deterministic.
  struct Result {
    int64_t annotations = 0, mask_pixels = 0;
    std::optional<Skip> skip;
  };
  std::vector<Result> results(dataset.size());
  std::atomic<size_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::mutex progress_mutex;
  auto work = [&] {
    for (size_t i; !failed && (i = next++) < dataset.size();) {
      const Entry& entry = dataset[i];
      Result& r = results[i];
      try {
        const Record record = load_record(entry);
        read_image(entry, decoder, &record);
        r.annotations = static_cast<int64_t>(record.annotations.size());
        for (const Annotation& a : record.annotations) r.mask_pixels += rle_area(a.segmentation);
      } catch (const std::exception& e) {
        r.skip = Skip{entry.image_path, e.what()};
        if (strict) failed = true;
      }
      const size_t finished = ++done;
      if (progress) {
        std::lock_guard<std::mutex> lock(progress_mutex);
        progress(finished, dataset.size());
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();

  DataStats stats;
  for (Result& r : results) {
    if (r.skip) {
      if (strict) throw Error(r.skip->reason);
      stats.skipped.push_back(std::move(*r.skip));
      continue;
    }
    ++stats.images;
    stats.annotations += r.annotations;
    stats.mask_pixels += r.mask_pixels;
  }
  return stats;
}

nlohmann::json to_json(const DataStats& stats) {
  nlohmann::json skipped = nlohmann::json::array();
  for (const Skip& s : stats.skipped) skipped.push_back({{"file", s.file}, {"reason", s.reason}});
  return {{"images", stats.images},
          {"annotations", stats.annotations},
          {"mask_pixels", stats.mask_pixels},
          {"skipped", skipped}};
}

}  // namespace sd::data
