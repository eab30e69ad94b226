// One image's embedding is the same bit for bit whichever --data source it comes from.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "data/image.h"
#include "data/tar.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/config.h"
#include "models/image_encoder.h"
#include "store/embed.h"
#include "store/reader.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::store {
namespace {

// A TinyViT small enough to run on a 1024 x 1024 image in a second, random weights.
const char* const kTinyTeacher =
    R"({"embed_dims": [16, 32, 64, 320], "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 5],
        "window_sizes": [7, 7, 14, 7]})";

TEST(EmbedSources, FolderTarAndCocoGiveBitIdenticalEmbeddings) {
  if (!data::image_decoding_available()) GTEST_SKIP() << "built without OpenCV";
  const std::string dir = testing::make_temp_dir("sd-embed-sources");
  std::ofstream(dir + "/teacher.json") << kTinyTeacher;
  at::manual_seed(3);
  auto teacher = models::make_image_encoder(models::resolve_encoder(dir + "/teacher.json"));
  io::write_state_dict(dir + "/teacher.pth", io::state_dict(*teacher));

  const std::string image = testing::data_sample() + "/sa_100002.jpg";
  fs::create_directories(dir + "/folder/street");
  fs::copy_file(image, dir + "/folder/street/cam.JPG");
  const nlohmann::json coco = {
      {"images", {{{"id", 1}, {"width", 800}, {"height", 534}, {"file_name", "street/cam.JPG"}}}},
      {"annotations",
       {{{"id", 1}, {"image_id", 1}, {"segmentation", {{10, 10, 200, 10, 200, 300}}}}}}};
  write_file_atomic(dir + "/coco.json", coco.dump());

  auto embed_from = [&](const std::string& source, const std::string& images,
                        const std::string& store) {
    EmbedOptions o;
    o.teacher = dir + "/teacher.json";
    o.teacher_checkpoint = dir + "/teacher.pth";
    o.data = {source};
    o.images = images;
    o.store = dir + "/" + store;
    o.device = sd::DeviceChoice::cpu;
    o.dtype = DType::fp32;
    o.strict = true;
    EXPECT_EQ(embed(o).embedded, 1u) << source;
    return Reader(o.store).embedding("street/cam");
  };
  const at::Tensor from_folder = embed_from(dir + "/folder", "", "s_folder");
  const at::Tensor from_coco = embed_from(dir + "/coco.json", dir + "/folder", "s_coco");
  EXPECT_TRUE(at::equal(from_folder, from_coco));
  EXPECT_GT(from_folder.abs().sum().item<double>(), 0);
  if (data::tar_reading_available()) {
    ASSERT_EQ(
        std::system(("tar -cf '" + dir + "/plain.tar' -C '" + dir + "/folder' street").c_str()), 0);
    EXPECT_TRUE(at::equal(from_folder, embed_from(dir + "/plain.tar", "", "s_tar")));
  }
  fs::remove_all(dir);
}

// An id longer than a store key (a deep plain folder) is skipped naming the file; the rest of
// the run goes on.
TEST(EmbedSources, IdsTooLongForAStoreKeyAreSkippedNamed) {
  if (!data::image_decoding_available()) GTEST_SKIP() << "built without OpenCV";
  const std::string dir = testing::make_temp_dir("sd-embed-long");
  std::ofstream(dir + "/teacher.json") << kTinyTeacher;
  auto teacher = models::make_image_encoder(models::resolve_encoder(dir + "/teacher.json"));
  io::write_state_dict(dir + "/teacher.pth", io::state_dict(*teacher));
  const std::string deep = dir + "/photos/" + std::string(80, 'd') + "/x.jpg";
  fs::create_directories(fs::path(deep).parent_path());
  fs::copy_file(testing::data_sample() + "/sa_100003.jpg", deep);
  EmbedOptions o;
  o.teacher = dir + "/teacher.json";
  o.teacher_checkpoint = dir + "/teacher.pth";
  o.data = {dir + "/photos"};
  o.store = dir + "/store";
  o.device = sd::DeviceChoice::cpu;
  const EmbedSummary summary = embed(o);
  EXPECT_EQ(summary.embedded, 0u);
  ASSERT_EQ(summary.skipped.size(), 1u);
  EXPECT_EQ(summary.skipped[0].file, deep);
  EXPECT_PRED2(testing::contains, summary.skipped[0].reason,
               "is longer than a store key (76 bytes)");
  o.strict = true;
  EXPECT_PRED2(testing::contains, testing::error_of([&] { embed(o); }), deep + ": its id '");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sd::store
