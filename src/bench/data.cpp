#include "bench/data.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "data/tar.h"
#include "util/atomic_file.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/temp_folder.h"

namespace fs = std::filesystem;

namespace sd::bench {
using namespace data;
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

// Images per second reading each entry's bytes (and decoding them with `decode`), one thread,
// the best of `rounds` passes.
double read_rate(const Dataset& dataset, bool decode, int rounds) {
  const ImageDecoder decoder = default_image_decoder();
  double best = 0;
  for (int r = 0; r < rounds; ++r) {
    const auto start = clock::now();
    for (const Entry& e : dataset.entries()) {
      const std::string bytes = read_image_bytes(e);
      if (decode) decoder(bytes, e.image_path);
    }
    best = std::max(best, dataset.size() / seconds_since(start));
  }
  return best;
}

// The same images read from the folder and from a tar of them (written to a temporary folder
// and removed): {"folder_read_img_per_s", "tar_read_img_per_s" (bytes + decode, one thread),
// "tar_vs_folder" (their ratio), "folder_bytes_img_per_s", "tar_bytes_img_per_s" (bytes only),
// "tar_index_s_per_gb", "tar_bytes"}; {} in a build without libarchive.
nlohmann::json tar_vs_folder(const Dataset& folder) {
  if (!tar_reading_available()) return nlohmann::json::object();
  const TempFolder dir("samdistill-tar-bench-");
  const std::string tar = dir / "bench.tar";
  std::vector<std::pair<std::string, std::string>> files;
  for (const Entry& e : folder.entries()) {
    files.emplace_back(e.id + ".jpg", e.image_path);
    files.emplace_back(e.id + ".json", e.json_path);
  }
  write_tar(tar, files);
  const auto start = clock::now();
  const Dataset in_tar = Dataset::open({tar}, "", nullptr);
  const double index_s = seconds_since(start);
  const double bytes = double(fs::file_size(tar));
  read_rate(in_tar, true, 1);  // warm-up: page cache
  nlohmann::json out = {{"folder_read_img_per_s", read_rate(folder, true, 3)},
                        {"tar_read_img_per_s", read_rate(in_tar, true, 3)},
                        {"folder_bytes_img_per_s", read_rate(folder, false, 5)},
                        {"tar_bytes_img_per_s", read_rate(in_tar, false, 5)},
                        {"tar_index_s_per_gb", index_s / (bytes / 1e9)},
                        {"tar_bytes", bytes}};
  out["tar_vs_folder"] =
      out["tar_read_img_per_s"].get<double>() / out["folder_read_img_per_s"].get<double>();
  return out;
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

  nlohmann::json out = {{"preprocess_img_per_s", preprocess_rate(files, threads, 4)},
                        {"preprocess_img_per_s_1thread", preprocess_rate(files, 1, 2)},
                        {"rle_masks_per_s", rle_rate},
                        {"threads", threads}};
  out.update(tar_vs_folder(dataset));
  return out;
}

}  // namespace sd::bench
