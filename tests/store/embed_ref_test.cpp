#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "data/image.h"
#include "io/checkpoint.h"
#include "models/config.h"
#include "store/embed.h"
#include "store/reader.h"
#include "store/verify.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::store {
namespace {

double relative_l2(const at::Tensor& got, const at::Tensor& want) {
  return ((got - want).norm() / want.norm()).item<double>();
}

// The ViT fixture's image.jpg as a one-image SA-1B folder: sa_1.jpg + a minimal sa_1.json (its
// size: embed checks the record as every reader does).
std::string sa1b_folder(const sd::testing::ModelFolder& folder) {
  std::string dir = sd::testing::make_temp_dir("embed-data");
  fs::copy_file(folder.file("image.jpg"), dir + "/sa_1.jpg");
  const at::Tensor rgb =
      data::default_image_decoder()(read_file(dir + "/sa_1.jpg"), dir + "/sa_1.jpg");
  std::ofstream(dir + "/sa_1.json") << nlohmann::json{
      {"image",
       {{"image_id", 1},
        {"file_name", "sa_1.jpg"},
        {"width", rgb.size(1)},
        {"height", rgb.size(0)}}},
      {"annotations",
       nlohmann::json::array()}}.dump();
  return dir;
}

// README tolerance for the embedding is 1e-4 in fp32; 1e-2 allows for the <= 1 grey level
// resize differences and fp16 storage.
TEST(EmbedReference, StoredEmbeddingMatchesFixture) {
  SD_REQUIRE_FIXTURES();
  if (!data::image_decoding_available()) GTEST_SKIP() << "built without OpenCV: no image decoder";
  auto folder = sd::testing::first_folder(/*tiny_vit=*/false);
  ASSERT_TRUE(folder) << "no ViT model folder (config with embed_dim) under "
                      << sd::testing::fixtures_root();
  const c10::impl::GenericDict cases =
      io::read_torch_file(folder->file("cases.pth")).toGenericDict();
  const at::Tensor expected = cases.at("embedding").toTensor();

  EmbedOptions options;
  options.teacher = folder->file("config.json");
  options.teacher_checkpoint = folder->file("weights.pth");
  options.data = {sa1b_folder(*folder)};
  options.store = sd::testing::make_temp_dir("embed-store") + "/store";
  options.cache_images = true;
  EmbedSummary first = embed(options);
  EXPECT_EQ(first.embedded, 1u);
  EXPECT_TRUE(first.skipped.empty());
  std::cout << "fixture teacher on CPU: " << first.to_json()["images_per_s"]
            << " images/s (including load)\n";

  Reader reader(options.store);
  at::Tensor got = reader.embedding("sa_1");
  EXPECT_EQ(got.sizes(), expected[0].sizes());
  double error = relative_l2(got, expected[0]);
  RecordProperty("relative_l2", std::to_string(error));
  EXPECT_LE(error, 1e-2);
  at::Tensor resized = cases.at("image_resized").toTensor();
  at::Tensor cached = reader.image("sa_1");
  ASSERT_EQ(cached.sizes(), resized.sizes());
  EXPECT_LE((cached.to(at::kInt) - resized.to(at::kInt)).abs().max().item<int>(), 1);
  EXPECT_EQ(reader.manifest().teacher,
            models::to_json(models::encoder_config_from_json(folder->config, "config")));

  EmbedSummary again = embed(options);  // resume: nothing left to do
  EXPECT_EQ(again.already_done, 1u);
  EXPECT_EQ(again.embedded, 0u);
  EXPECT_TRUE(verify_store(options.store).ok());

  options.dtype = DType::int8;  // a store made with other settings is refused
  EXPECT_THROW(embed(options), Error);
  fs::remove_all(options.data[0]);
  fs::remove_all(fs::path(options.store).parent_path());
}

}  // namespace
}  // namespace sd::store
