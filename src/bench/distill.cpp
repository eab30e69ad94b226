#include "bench/distill.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "data/dataset.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "distill/distillation.h"
#include "io/checkpoint.h"
#include "store/embed.h"
#include "store/writer.h"
#include "util/error.h"
#include "util/temp_folder.h"

namespace fs = std::filesystem;

namespace sd::bench {
using namespace distill;
namespace {

// A store of random fp16 "teacher" embeddings for every image of `folder`, with or
// without the resized images cached; without a folder, `synthetic` random 1024x768 images
// (cached).
void make_store(const std::string& dir, const std::string& folder, int synthetic,
                const std::string& teacher_file, bool cache_images) {
  store::Manifest manifest =
      store::teacher_manifest(models::encoder_preset("vit_h"), teacher_file, store::DType::fp16);
  store::Writer writer(dir, manifest, "bench");
  if (folder.empty()) {
    for (int i = 0; i < synthetic; ++i) {
      const std::string id = "sa_" + std::to_string(i + 1);
      writer.put(store::encode_embedding(id, at::randn({256, 64, 64}), store::DType::fp16));
      writer.put(store::encode_image(id, at::randint(0, 256, {768, 1024, 3}, at::kByte)));
    }
    writer.commit();
    return;
  }
  data::ImageDecoder decode = data::default_image_decoder();
  const data::Dataset images = data::Dataset::index_sa1b({folder}, nullptr);
  for (const auto& entry : images.entries()) {
    writer.put(store::encode_embedding(entry.id, at::randn({256, 64, 64}), store::DType::fp16));
    if (cache_images)
      writer.put(store::encode_image(
          entry.id, data::resize_longest_side(data::read_image(entry, decode, nullptr))));
  }
  writer.commit();
}

train::TrainSummary timed_run(const std::string& dir, const std::string& store,
                              const TrainBench& b) {
  nlohmann::json overrides = {
      {"store", store},    {"batch_size", b.batch_size}, {"max_steps", b.steps},
      {"warmup_steps", 1}, {"checkpoint_every", 0},      {"log_every", 1000},
      {"workers", 2},      {"device", b.device},         {"amp", b.amp}};
  if (!b.folder.empty()) overrides["data"] = {b.folder};
  TrainRequest request;
  request.config = train::train_config_from_json(overrides, "bench");
  request.run.dir = dir;
  return run_distillation(request);
}

// Means over the step lines of RUN/metrics.jsonl after the first (warm-up).
struct StepMeans {
  double step_s = 0, allreduce_s = 0, hidden_s = 0;
};

StepMeans step_means(const std::string& run) {
  std::ifstream in(run + "/metrics.jsonl");
  StepMeans m;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (!j.contains("step_s") || j["step"].get<int64_t>() == 1) continue;
    m.step_s += j["step_s"].get<double>();
    m.allreduce_s += j.value("allreduce_s", 0.0);
    m.hidden_s += j.value("allreduce_hidden_s", 0.0);
    ++n;
  }
  if (n == 0) throw Error("bench: no timed step in '" + run + "/metrics.jsonl'");
  return {m.step_s / n, m.allreduce_s / n, m.hidden_s / n};
}

}  // namespace

nlohmann::json bench_data_parallel(const TrainBench& b, const RunWorkers& run) {
  const TempFolder temp("samdistill-dist-bench-");
  const fs::path& dir = temp.path();
  const bool real = data::image_decoding_available() && fs::is_directory(b.folder) &&
                    data::Dataset::index_sa1b({b.folder}, nullptr).size() >= size_t(b.batch_size);
  const std::string teacher_file = (dir / "teacher.pth").string();
  io::write_state_dict(teacher_file, {{"bench", at::zeros({1})}});
  const std::string store = (dir / "store").string();
  make_store(store, real ? b.folder : "", b.batch_size * (b.steps + 2), teacher_file, true);
  auto args = [&](const std::string& out_dir) {
    return std::vector<std::string>{"--threads",
                                    "1",
                                    "train",
                                    "--store",
                                    store,
                                    "--out",
                                    out_dir,
                                    "--batch-size",
                                    std::to_string(b.batch_size),
                                    "--max-steps",
                                    std::to_string(b.steps + 1),
                                    "--warmup-steps",
                                    "1",
                                    "--checkpoint-every",
                                    "0",
                                    "--log-every",
                                    "1000",
                                    "--workers",
                                    "1",
                                    "--device",
                                    b.device,
                                    "--amp",
                                    b.amp};
  };
  run(args((dir / "one").string()), 1);
  run(args((dir / "two").string()), 2);
  const StepMeans one = step_means((dir / "one").string()),
                  two = step_means((dir / "two").string());
  return {{"dist_img_per_s_1x1", b.batch_size / one.step_s},
          {"dist_img_per_s_2x1", b.batch_size / two.step_s},
          {"dist_speedup", one.step_s / two.step_s},
          {"dist_allreduce_s", two.allreduce_s},
          {"dist_allreduce_hidden_pct",
           two.allreduce_s > 0 ? 100.0 * two.hidden_s / two.allreduce_s : 0.0},
          {"dist_setting", "vit_t, " + b.device + ", amp " + b.amp +
                               (b.device == "cuda" ? ", NCCL" : ", Gloo") +
                               " on loopback, global batch " + std::to_string(b.batch_size) + ", " +
                               std::to_string(b.steps) + " timed steps" +
                               (real ? ", " + b.folder : ", random pixels")}};
}

nlohmann::json bench_train(const TrainBench& b) {
  const TempFolder temp("samdistill-train-bench-");
  const fs::path& dir = temp.path();
  // Random pixels when there is no decoder (an accelerator machine) or too few images.
  const bool real = data::image_decoding_available() && fs::is_directory(b.folder) &&
                    data::Dataset::index_sa1b({b.folder}, nullptr).size() >= size_t(b.batch_size);
  TrainBench run = b;
  if (!real) run.folder.clear();
  std::string teacher_file = (dir / "teacher.pth").string();
  io::write_state_dict(teacher_file, {{"bench", at::zeros({1})}});
  make_store((dir / "cached").string(), run.folder, b.batch_size * (b.steps + 1), teacher_file,
             true);
  train::TrainSummary cached =
      timed_run((dir / "run-cached").string(), (dir / "cached").string(), run);
  nlohmann::json out = {
      {"train_img_per_s", cached.images_per_s},
      {"train_data_wait_pct", cached.data_wait_pct},
      {"train_steps", b.steps},
      {"train_setting", b.device + ", amp " + b.amp + ", batch " + std::to_string(b.batch_size) +
                            (real ? ", " + b.folder : ", random pixels")}};
  if (real) {
    make_store((dir / "jpeg").string(), run.folder, 0, teacher_file, false);
    train::TrainSummary jpeg = timed_run((dir / "run-jpeg").string(), (dir / "jpeg").string(), run);
    out["train_jpeg_img_per_s"] = jpeg.images_per_s;
    out["train_jpeg_data_wait_pct"] = jpeg.data_wait_pct;
  }
  return out;
}

}  // namespace sd::bench
