#include "distill/bench.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "data/dataset.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "distill/trainer.h"
#include "io/checkpoint.h"
#include "store/embed.h"
#include "store/writer.h"

namespace fs = std::filesystem;

namespace sd::distill {
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

}  // namespace

nlohmann::json bench_train(const TrainBench& b) {
  fs::path dir =
      fs::temp_directory_path() / ("samdistill-bench-train-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // Random pixels when there is no decoder (an accelerator machine) or too few images.
  const bool real = data::image_decoding_available() && fs::is_directory(b.folder) &&
                    data::Dataset::index_sa1b({b.folder}, nullptr).size() >= size_t(b.batch_size);
  TrainBench run = b;
  if (!real) run.folder.clear();
  nlohmann::json out;
  try {
    std::string teacher_file = (dir / "teacher.pth").string();
    io::write_state_dict(teacher_file, {{"bench", at::zeros({1})}});
    make_store((dir / "cached").string(), run.folder, b.batch_size * (b.steps + 1), teacher_file,
               true);
    train::TrainSummary cached =
        timed_run((dir / "run-cached").string(), (dir / "cached").string(), run);
    out = {
        {"train_img_per_s", cached.images_per_s},
        {"train_data_wait_pct", cached.data_wait_pct},
        {"train_steps", b.steps},
        {"train_setting", b.device + ", amp " + b.amp + ", batch " + std::to_string(b.batch_size) +
                              (real ? ", " + b.folder : ", random pixels")}};
    if (real) {
      make_store((dir / "jpeg").string(), run.folder, 0, teacher_file, false);
      train::TrainSummary jpeg =
          timed_run((dir / "run-jpeg").string(), (dir / "jpeg").string(), run);
      out["train_jpeg_img_per_s"] = jpeg.images_per_s;
      out["train_jpeg_data_wait_pct"] = jpeg.data_wait_pct;
    }
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
  fs::remove_all(dir);
  return out;
}

}  // namespace sd::distill
