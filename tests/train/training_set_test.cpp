// The training set's image source over a store: a damaged store record (cached image or
// embedding) is a skipped image for the loader, named once, and counted once per record.
#include "train/training_set.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "data/loader.h"
#include "store/part.h"
#include "store/writer.h"

namespace fs = std::filesystem;

namespace sd::train {
namespace {

// Four keys, each with an 8x4x4 embedding and a cached 16x16 image.
std::string small_store(const std::string& dir) {
  const std::string store = dir + "/store";
  store::Manifest manifest;
  manifest.teacher = {{"embed_dim", 96}};
  manifest.dtype = store::DType::fp16;
  store::Writer writer(store, manifest, "part");
  for (int i = 0; i < 4; ++i) {
    const std::string key = "sa_" + std::to_string(i);
    writer.put(store::encode_embedding(key, at::randn({8, 4, 4}), store::DType::fp16));
    writer.put(store::encode_image(key, at::full({16, 16, 3}, i, at::kByte)));
  }
  writer.commit();
  return store;
}

// Flips a payload byte of the record of `kind` and `key`; its offset, for the message.
uint64_t damage(const std::string& store, store::Kind kind, const std::string& key) {
  uint64_t offset = 0;
  {
    store::Reader reader(store);
    offset = reader.find(kind, key)->index.offset;
  }
  const std::string path = store::records_path(store, "part");
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset + 140));
  char c = 0;
  f.get(c);
  f.seekp(std::streamoff(offset + 140));
  f.put(char(c ^ 0x10));
  return offset;
}

TEST(TrainingSet, DamagedStoreRecordsAreSkippedAndCountedOnce) {
  const std::string dir = testing::make_temp_dir("sd-training-set");
  const std::string store = small_store(dir);
  damage(store, store::Kind::image, "sa_1");
  damage(store, store::Kind::embedding, "sa_2");
  store::Reader reader(store);
  const TrainingSet set = training_set(reader, {});
  ASSERT_TRUE(set.cached_images);
  ASSERT_EQ(set.dataset.size(), 4u);
  data::LoaderOptions options;  // as the training loop reads: batches of images, no records
  options.batch_size = 1;
  options.workers = 2;
  options.shuffle = false;
  options.read_records = false;
  data::Loader loader(set.dataset, image_source(set, reader), options);
  for (int epoch = 0; epoch < 2; ++epoch) {  // each bad record met twice, counted once
    loader.start(epoch);
    std::vector<std::string> good;
    while (std::optional<data::Batch> batch = loader.next()) good.push_back(batch->ids.at(0));
    EXPECT_EQ(good, (std::vector<std::string>{"sa_0", "sa_3"}));
  }
  EXPECT_EQ(loader.skips().size(), 4u);
  EXPECT_EQ(loader.skipped_records(), 2u);
  // Each named by the store's own words (store, shard, key, offset): the file once.
  const std::vector<data::Skip> skips = loader.skips();
  EXPECT_EQ(skips[0].file, "sa_1");
  EXPECT_EQ(data::describe(skips[0]), testing::error_of([&] { reader.image("sa_1"); }));
  EXPECT_EQ(skips[1].file, "sa_2");
  EXPECT_EQ(data::describe(skips[1]), testing::error_of([&] { reader.embedding("sa_2"); }));
  EXPECT_PRED2(testing::contains, data::describe(skips[1]), "key 'sa_2'");
  fs::remove_all(dir);
}

// A store's keys find their images in any source: here a plain folder (nested, ids without
// extension) and a COCO file over it, whose entries come with or without masks.
TEST(TrainingSet, StoreKeysFindImagesOfAnySource) {
  const std::string dir = testing::make_temp_dir("sd-training-sources");
  store::Reader reader(small_store(dir));
  fs::create_directories(dir + "/photos/x");
  for (const std::string name : {"sa_0.jpg", "sa_1.PNG", "x/other.jpg"})
    std::ofstream(dir + "/photos/" + name) << "pixels";
  const TrainingSet plain = training_set(reader, {dir + "/photos"}, /*annotations=*/true);
  ASSERT_EQ(plain.dataset.size(), 2u);
  EXPECT_EQ(plain.dataset[1].image_path, dir + "/photos/sa_1.PNG");
  EXPECT_FALSE(plain.dataset.all_have_masks());
  std::ofstream(dir + "/coco.json") << R"({"images": [{"id": 1, "width": 16, "height": 16,
      "file_name": "sa_1.PNG"}], "annotations": []})";
  const TrainingSet coco =
      training_set(reader, {dir + "/coco.json"}, /*annotations=*/true, dir + "/photos");
  ASSERT_EQ(coco.dataset.size(), 1u);
  EXPECT_EQ(coco.dataset[0].id, "sa_1");
  EXPECT_TRUE(coco.dataset.all_have_masks());

  // An image the COCO file lists but the disk lacks is left out; --strict makes it the error.
  std::ofstream(dir + "/gone.json") << R"({"images": [{"id": 1, "width": 16, "height": 16,
      "file_name": "sa_1.PNG"}, {"id": 2, "width": 16, "height": 16, "file_name": "gone.jpg"}],
      "annotations": []})";
  EXPECT_EQ(training_set(reader, {dir + "/gone.json"}, true, dir + "/photos").dataset.size(), 1u);
  EXPECT_PRED2(testing::contains, testing::error_of([&] {
                 training_set(reader, {dir + "/gone.json"}, true, dir + "/photos", true);
               }),
               dir + "/photos/gone.jpg");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sd::train
