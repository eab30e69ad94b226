#include "data/bench.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "util/atomic_file.h"
#include "util/clock.h"
#include "util/error.h"

namespace sd::data {
namespace {

using clock = std::chrono::steady_clock;

// Images per second over `rounds` passes through `files` (encoded bytes), `threads` workers
// each preprocessing whole images on one intra-op thread.
double preprocess_rate(const std::vector<std::string>& files, int threads, int rounds) {
  const ImageDecoder decode = default_image_decoder();
  const size_t total = files.size() * rounds;
  std::atomic<size_t> next{0};
  const int intra_op = at::get_num_threads();
  at::set_num_threads(1);
  const auto start = clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < total;) preprocess(decode(files[i % files.size()], "bench"));
    });
  for (auto& t : pool) t.join();
  const double rate = total / seconds_since(start);
  at::set_num_threads(intra_op);
  return rate;
}

}  // namespace

nlohmann::json bench_data(const std::string& folder) {
  const Dataset dataset = Dataset::index_sa1b({folder}, nullptr);
  if (dataset.size() == 0) throw Error(folder + ": no SA-1B records to benchmark");
  std::vector<std::string> files;
  std::vector<Annotation> masks;
  for (const Entry& entry : dataset.entries()) {
    files.push_back(read_file(entry.image_path));
    for (Annotation& a : load_record(entry).annotations) masks.push_back(std::move(a));
  }
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  preprocess_rate(files, 1, 1);  // warm-up: page cache, allocator

  // RLE: parse the compressed string and materialise the mask, as the loader does.
  std::vector<std::string> strings;
  for (const Annotation& a : masks) strings.push_back(rle_to_string(a.segmentation));
  const auto start = clock::now();
  for (size_t i = 0; i < masks.size(); ++i) {
    const Rle& m = masks[i].segmentation;
    rle_decode(rle_from_string(strings[i], m.height, m.width, "bench"));
  }
  const double rle_rate = masks.size() / seconds_since(start);

  return {{"preprocess_img_per_s", preprocess_rate(files, threads, 4)},
          {"preprocess_img_per_s_1thread", preprocess_rate(files, 1, 2)},
          {"rle_masks_per_s", rle_rate},
          {"threads", threads}};
}

}  // namespace sd::data
