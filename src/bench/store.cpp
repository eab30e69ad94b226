#include "bench/store.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>

#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/image_encoder.h"
#include "store/embed.h"
#include "store/reader.h"
#include "store/writer.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/temp_folder.h"

namespace fs = std::filesystem;

namespace sd::bench {
using namespace store;
namespace {

constexpr int kRecords = 64;
constexpr int kCommitEvery = 8;

uint64_t bytes_per_record(const Encoded& e) {
  return record_bytes(e.info.key.size(), e.info.payload_bytes) + kIndexEntryBytes;
}

// Reads `order` of the store's entries, returns seconds; `decode` also converts to float32.
double time_reads(const Reader& reader, const std::vector<size_t>& order, bool decode) {
  auto start = std::chrono::steady_clock::now();
  for (size_t i : order) {
    const Entry& e = reader.entries()[i];
    if (decode)
      reader.embedding(e.index.info.key);
    else
      reader.read_encoded(e);
  }
  return seconds_since(start);
}

}  // namespace

nlohmann::json bench_store() {
  const TempFolder temp("samdistill-store-bench-");
  const std::string dir = temp.path().string();
  at::Tensor values = at::randn({256, 64, 64});
  nlohmann::json out;
  for (DType d : {DType::fp16, DType::bf16, DType::fp32, DType::int8})
    out[std::string("store_bytes_per_record_") + word(d)] =
        bytes_per_record(encode_embedding("sa_1", values, d));
  // One payload written under 64 keys: 64 records on disk without encoding 64 embeddings.
  std::vector<Encoded> records(kRecords, encode_embedding("sa_0", values, DType::fp16));
  for (int i = 0; i < kRecords; ++i) records[i].info.key = "sa_" + std::to_string(i);
  double total_bytes = double(records[0].info.payload_bytes) * kRecords;

  Manifest manifest;
  manifest.teacher = {{"bench", true}};
  manifest.dtype = DType::fp16;
  auto start = std::chrono::steady_clock::now();
  {
    Writer writer(dir, manifest, "bench");
    for (int i = 0; i < kRecords; ++i) {
      writer.put(records[i]);
      if ((i + 1) % kCommitEvery == 0) writer.commit();
    }
  }
  double write_s = seconds_since(start);

  Reader reader(dir);
  std::vector<size_t> order(kRecords);
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  time_reads(reader, order, false);  // warm the page cache
  double sequential_s = time_reads(reader, order, false);
  double decode_s = time_reads(reader, order, true);
  std::shuffle(order.begin(), order.end(), std::mt19937(0));
  double random_s = time_reads(reader, order, false);

  out["store_write_gbps"] = total_bytes / write_s / 1e9;
  out["store_read_gbps"] = total_bytes / sequential_s / 1e9;
  out["store_read_random_gbps"] = total_bytes / random_s / 1e9;
  out["store_read_float32_gbps"] = total_bytes / decode_s / 1e9;
  out["store_records_per_s"] = kRecords / sequential_s;
  out["store_bench_threads"] = at::get_num_threads();
  return out;
}

nlohmann::json bench_embed(const std::string& teacher, const std::string& folder) {
  const TempFolder dir("samdistill-embed-bench-");
  EmbedOptions options;
  options.teacher = teacher;
  options.teacher_checkpoint = dir / "teacher.pth";
  options.data = {folder};
  options.store = dir / "store";
  at::manual_seed(0);
  auto encoder = models::make_image_encoder(models::resolve_encoder(teacher));
  io::write_state_dict(options.teacher_checkpoint, io::state_dict(*encoder));
  const EmbedSummary summary = embed(options);
  const double images = double(summary.embedded);
  const double pipeline = summary.seconds - summary.startup_seconds;
  return {{"embed_img_per_s", images / summary.seconds},
          {"embed_startup_s", summary.startup_seconds},
          {"embed_pipeline_img_per_s", images / pipeline},
          {"embed_teacher_img_per_s", images / summary.teacher_seconds},
          {"embed_of_teacher_rate", summary.teacher_seconds / pipeline},
          {"embed_teacher", models::preset_name(models::resolve_encoder(teacher))}};
}

}  // namespace sd::bench
