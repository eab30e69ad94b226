#include "data/loader.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::data {
namespace {

// A folder of `n` tiny records whose image bytes are just the id, and a decoder that paints
// the image with that number: the loader's bookkeeping is tested without JPEG costs.
struct Fake {
  std::string dir;
  explicit Fake(int n, std::vector<int> bad = {}) : dir(testing::make_temp_dir("sd-loader")) {
    for (int i = 0; i < n; ++i) {
      const std::string stem = dir + "/sa_" + std::to_string(1000 + i);
      const bool is_bad = std::find(bad.begin(), bad.end(), i) != bad.end();
      std::ofstream(stem + ".jpg") << (is_bad ? "bad" : std::to_string(i));
      std::ofstream(stem + ".json") << R"({"image": {"image_id": )" << i
                                    << R"(, "width": 40, "height": 30}, "annotations": []})";
    }
  }
  ~Fake() { fs::remove_all(dir); }
  Dataset dataset() const { return Dataset::index_sa1b({dir}, nullptr); }
};

at::Tensor paint(std::string_view bytes, const std::string& where) {
  if (bytes == "bad") throw Error(where + ": cannot decode image (test)");
  return at::full({30, 40, 3}, std::stoi(std::string(bytes)) % 256, at::kByte);
}

struct Seen {
  std::vector<std::vector<std::string>> ids;
  std::vector<at::Tensor> images;
  std::vector<int64_t> ends;
};

Seen run(Loader& loader, int64_t epoch, int64_t position = 0) {
  Seen seen;
  loader.start(epoch, position);
  while (auto batch = loader.next()) {
    seen.ids.push_back(batch->ids);
    seen.images.push_back(batch->images);
    seen.ends.push_back(batch->end_position);
  }
  return seen;
}

LoaderOptions options(int workers, int batch = 3) {
  LoaderOptions o;
  o.batch_size = batch;
  o.workers = workers;
  o.prefetch = 2;
  o.seed = 11;
  return o;
}

TEST(Loader, OrderIsAFunctionOfSeedAndEpoch) {
  EXPECT_EQ(epoch_order(50, 1, 0, true), epoch_order(50, 1, 0, true));
  EXPECT_NE(epoch_order(50, 1, 0, true), epoch_order(50, 1, 1, true));
  EXPECT_NE(epoch_order(50, 1, 0, true), epoch_order(50, 2, 0, true));
  auto order = epoch_order(50, 1, 0, true);
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, epoch_order(50, 0, 0, false));
  // The shuffle stream's permutation, pinned: another order would change every run's batches.
  EXPECT_EQ(epoch_order(10, 5, 1, true), (std::vector<int64_t>{4, 8, 2, 9, 0, 7, 1, 5, 6, 3}));
}

TEST(Loader, SameBatchesWhateverTheThreadCount) {
  Fake fake(20, {4, 13});
  Loader one(fake.dataset(), paint, options(1));
  Loader four(fake.dataset(), paint, options(4));
  for (int64_t epoch : {0, 1}) {
    Seen a = run(one, epoch), b = run(four, epoch);
    EXPECT_EQ(a.ids, b.ids);
    ASSERT_EQ(a.ids.size(), 6u);  // 18 usable records in batches of 3
    for (size_t i = 0; i < a.images.size(); ++i) EXPECT_TRUE(a.images[i].equal(b.images[i]));
  }
  EXPECT_EQ(one.skips().size(), 4u);  // 2 bad records x 2 epochs
  EXPECT_NE(one.skips()[0].reason.find("cannot decode image (test)"), std::string::npos);
  EXPECT_NE(run(one, 0).ids, run(one, 1).ids);
}

TEST(Loader, ResumesMidEpoch) {
  Fake fake(17, {6});
  Loader loader(fake.dataset(), paint, options(3, 4));
  Seen full = run(loader, 2);
  for (size_t k = 0; k < full.ends.size(); ++k) {
    Seen rest = run(loader, 2, full.ends[k]);
    ASSERT_EQ(rest.ids.size(), full.ids.size() - k - 1);
    for (size_t i = 0; i < rest.ids.size(); ++i) EXPECT_EQ(rest.ids[i], full.ids[k + 1 + i]);
  }
  // Pixels follow ids: sa_<1000 + i> is painted i; normalised red = (i - 123.675) / 58.395.
  const int i = std::stoi(full.ids[0][0].substr(3)) - 1000;
  EXPECT_NEAR(full.images[0][0][0][0][0].item<float>(), (i - 123.675) / 58.395, 1e-5);
}

TEST(Loader, StrictStopsAtFirstBadRecord) {
  Fake fake(6, {2});
  LoaderOptions o = options(2, 2);
  o.shuffle = false;
  o.strict = true;
  Loader loader(fake.dataset(), paint, o);
  loader.start(0);
  EXPECT_TRUE(loader.next().has_value());
  EXPECT_THROW(loader.next(), Error);
}

TEST(Loader, DropLastAndSizes) {
  Fake fake(7);
  LoaderOptions o = options(2, 3);
  o.drop_last = true;
  Loader loader(fake.dataset(), paint, o);
  Seen seen = run(loader, 0);
  ASSERT_EQ(seen.ids.size(), 2u);
  EXPECT_EQ(seen.images[0].sizes(), (at::IntArrayRef{3, 3, 1024, 1024}));
}

// Data-parallel ranks: rank r of 3 reads every third image of the epoch's order from the r-th,
// so that their k-th batches together are the k-th batch of one loader with 3x the batch.
TEST(Loader, ShardsSplitTheEpochsOrderDisjointly) {
  Fake fake(13);
  LoaderOptions whole = options(1, 6);
  whole.drop_last = true;
  Loader one(fake.dataset(), paint, whole);
  const Seen all = run(one, 1);
  ASSERT_EQ(all.ids.size(), 2u);
  std::vector<Seen> ranks;
  for (int r = 0; r < 3; ++r) {
    LoaderOptions o = options(2, 2);
    o.drop_last = true;
    o.shard = r;
    o.shards = 3;
    Loader loader(fake.dataset(), paint, o);
    EXPECT_EQ(loader.shard_size(), r == 0 ? 5u : 4u);
    ranks.push_back(run(loader, 1));
    ASSERT_EQ(ranks.back().ids.size(), 2u) << "13 images: 5, 4, 4 per rank, batches of 2";
    EXPECT_EQ(ranks.back().ends, (std::vector<int64_t>{2, 4})) << "positions within the slice";
  }
  for (size_t k = 0; k < 2; ++k) {
    std::vector<std::string> together, expected = all.ids[k];
    for (const Seen& r : ranks) together.insert(together.end(), r.ids[k].begin(), r.ids[k].end());
    std::sort(together.begin(), together.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(together, expected) << "batch " << k;
  }
  LoaderOptions bad = options(1);
  bad.shard = 3;
  bad.shards = 3;
  EXPECT_THROW(Loader(fake.dataset(), paint, bad), Error);
}

}  // namespace
}  // namespace sd::data
