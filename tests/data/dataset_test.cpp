#include "data/dataset.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/fixtures.h"
#include "data/image.h"
#include "data/stats.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/random.h"

namespace fs = std::filesystem;

namespace sd::data {
namespace {

void write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

Dataset sample() { return Dataset::index_sa1b({testing::data_sample()}, nullptr); }

TEST(Dataset, IndexesSample) {
  std::vector<Skip> orphans;
  Dataset d = Dataset::index_sa1b({testing::data_sample()}, &orphans);
  ASSERT_EQ(d.size(), 5u);
  EXPECT_TRUE(orphans.empty());
  EXPECT_EQ(d[0].id, "sa_100001");
  EXPECT_EQ(d[4].id, "sa_100007");
  EXPECT_EQ(d[0].group, "sample");
  Record r = load_record(d[0]);
  EXPECT_EQ(r.image.image_id, 100001);
  EXPECT_EQ(r.image.width, 1800);
  EXPECT_EQ(r.image.height, 1200);
  ASSERT_EQ(r.annotations.size(), 42u);
  // First annotation of sa_100001.json as written there.
  EXPECT_EQ(r.annotations[0].id, 100001000);
  EXPECT_EQ(r.annotations[0].area, 638653);
  EXPECT_EQ(r.annotations[0].bbox, (std::array<double, 4>{0, 711, 1800, 489}));
  EXPECT_EQ(r.annotations[0].point_coords.at(0), (std::array<double, 2>{1602.5, 1001.5}));
  EXPECT_DOUBLE_EQ(r.annotations[0].predicted_iou, 1.000388);
}

// Expected values: a Python script (json + a hand-written RLE decoder, summing the 1 runs)
// over data/sample: 5 images, 339 annotations, 10838719 mask pixels.
TEST(Dataset, StatsOfSample) {
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV: no image decoder";
  for (int threads : {1, 3}) {
    DataStats s = compute_stats(sample(), default_image_decoder(), threads, true);
    EXPECT_EQ(s.images, 5);
    EXPECT_EQ(s.annotations, 339);
    EXPECT_EQ(s.mask_pixels, 10838719);
    EXPECT_TRUE(s.skipped.empty());
  }
}

TEST(Dataset, HashedSubsetsAreStableAndDisjoint) {
  // 2000 synthetic ids in a temp folder of empty pairs (indexing only looks at names).
  const std::string dir = testing::make_temp_dir("sd-subset");
  for (int i = 0; i < 2000; ++i) {
    write(dir + "/sa_" + std::to_string(i) + ".jpg", "");
    write(dir + "/sa_" + std::to_string(i) + ".json", "");
  }
  Dataset all = Dataset::index_sa1b({dir}, nullptr);
  ASSERT_EQ(all.size(), 2000u);
  auto ids = [](const Dataset& d) {
    std::set<std::string> out;
    for (const Entry& e : d.entries()) out.insert(e.id);
    return out;
  };
  SubsetSpec spec;
  spec.fraction = 0.1;
  spec.seed = 7;
  spec.val_fraction = 0.05;
  const auto train = ids(all.subset(spec));
  EXPECT_EQ(train, ids(all.subset(spec)));  // same selection again
  EXPECT_NEAR(train.size(), 2000 * 0.95 * 0.1, 40);
  spec.validation = true;
  const auto val = ids(all.subset(spec));
  EXPECT_NEAR(val.size(), 2000 * 0.05, 30);
  for (const auto& id : val) EXPECT_EQ(train.count(id), 0u) << id;
  // A larger fraction keeps every id of the smaller one; another seed picks others.
  spec.validation = false;
  spec.fraction = 0.3;
  const auto bigger = ids(all.subset(spec));
  for (const auto& id : train) EXPECT_EQ(bigger.count(id), 1u) << id;
  spec.fraction = 0.1;
  spec.seed = 8;
  EXPECT_NE(ids(all.subset(spec)), train);
  // The selection is the named streams' (pinned in tests/util/random_test.cpp): an id is in
  // the training part when its subset draw is under the fraction and it is not in validation.
  for (const Entry& e : all.entries())
    EXPECT_EQ(train.count(e.id) == 1,
              rng::subset_draw(7, e.id) < 0.1 && !(rng::validation_draw(7, e.id) < 0.05))
        << e.id;
  fs::remove_all(dir);
}

TEST(Dataset, ListFileSelectsIdsAndFolders) {
  const std::string dir = testing::make_temp_dir("sd-list");
  for (const char* tar : {"sa_000000", "sa_000001"}) {
    fs::create_directories(dir + "/" + tar);
    for (int i = 0; i < 3; ++i) {
      const std::string stem = dir + "/" + tar + "/sa_" + tar[8] + std::to_string(i);
      write(stem + ".jpg", "");
      write(stem + ".json", "");
    }
  }
  write(dir + "/list.txt", "# EdgeSAM-style list\nsa_000001\nsa_01.jpg\n\n");
  SubsetSpec spec;
  spec.list_file = dir + "/list.txt";
  Dataset d = Dataset::index_sa1b({dir}, nullptr).subset(spec);
  std::vector<std::string> got;
  for (const Entry& e : d.entries()) got.push_back(e.id);
  EXPECT_EQ(got, (std::vector<std::string>{"sa_01", "sa_10", "sa_11", "sa_12"}));
  spec.list_file = dir + "/missing.txt";
  EXPECT_THROW(Dataset::index_sa1b({dir}, nullptr).subset(spec), Error);
  fs::remove_all(dir);
}

// Every kind of bad input: skipped with its file and reason, counted; strict throws.
TEST(Dataset, BadInputIsSkippedWithReason) {
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV: no image decoder";
  const std::string src = testing::data_sample();
  const std::string dir = testing::make_temp_dir("sd-bad");
  const std::string jpg = read_file(src + "/sa_100003.jpg");  // 800x534
  const std::string json_text = read_file(src + "/sa_100003.json");
  const nlohmann::json good = nlohmann::json::parse(json_text);
  auto put = [&](const std::string& stem, const std::string& image, const nlohmann::json& j) {
    if (!image.empty()) write(dir + "/" + stem + ".jpg", image);
    if (!j.is_null()) write(dir + "/" + stem + ".json", j.dump());
  };
  put("sa_1", jpg, good);                            // the one good record
  put("sa_2", jpg.substr(0, jpg.size() / 2), good);  // truncated JPEG
  put("sa_3", std::string(5000, '\x42'), good);      // garbage JPEG
  write(dir + "/sa_4.jpg", jpg);
  write(dir + "/sa_4.json", json_text.substr(0, 100));  // invalid JSON
  nlohmann::json j = good;
  j.erase("annotations");
  put("sa_5", jpg, j);  // missing field
  j = good;
  j["annotations"][3]["segmentation"].erase("counts");
  put("sa_6", jpg, j);  // missing nested field
  j = good;
  j["annotations"][2]["segmentation"]["counts"] = {100, 200};
  put("sa_7", jpg, j);  // RLE not summing to h*w
  j = good;
  j["annotations"][0]["segmentation"]["size"] = {534, 801};
  put("sa_8", jpg, j);                                   // mask size != image size
  put("sa_9", read_file(src + "/sa_100004.jpg"), good);  // image size != JSON size
  put("sa_10", jpg, nullptr);                            // image without JSON
  put("sa_11", "", good);                                // JSON without image

  std::vector<Skip> orphans;
  Dataset d = Dataset::index_sa1b({dir}, &orphans);
  ASSERT_EQ(orphans.size(), 2u);
  EXPECT_NE(orphans[0].file.find("sa_10.jpg"), std::string::npos);
  EXPECT_EQ(orphans[0].reason, "image without its JSON");
  EXPECT_NE(orphans[1].file.find("sa_11.json"), std::string::npos);
  EXPECT_EQ(orphans[1].reason, "JSON without its image");

  DataStats s = compute_stats(d, default_image_decoder(), 2, false);
  EXPECT_EQ(s.images, 1);
  EXPECT_EQ(s.annotations, static_cast<int64_t>(good["annotations"].size()));
  // The file at fault (the JSON when the record is bad) and the reason, which does not repeat it.
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"sa_2.jpg", "truncated JPEG (no end-of-image marker before the data ends)"},
      {"sa_3.jpg", "not a JPEG, PNG, BMP, WebP or TIFF image (by its first bytes)"},
      {"sa_4.json", "invalid JSON ([json.exception.parse_error.101] parse error"},  // and where
      {"sa_5.json", "missing field 'annotations'"},
      {"sa_6.json", "annotations[3]: missing field 'counts'"},
      {"sa_7.json", "annotations[2]: RLE counts add up to 300, not height x width = 427200"},
      {"sa_8.json", "annotations[0]: mask size [534, 801] differs from image size [534, 800]"},
      {"sa_9.jpg", "image is 770x769 (HxW) but its JSON says 534x800"},
  };
  ASSERT_EQ(s.skipped.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(s.skipped[i].file, dir + "/" + expected[i].first);
    if (expected[i].first == "sa_4.json")  // the parser's own words follow
      EXPECT_EQ(s.skipped[i].reason.substr(0, expected[i].second.size()), expected[i].second);
    else
      EXPECT_EQ(s.skipped[i].reason, expected[i].second);
  }
  // Strict: the first bad record's one line, naming the file once.
  EXPECT_EQ(testing::error_of([&] { compute_stats(d, default_image_decoder(), 2, true); }),
            dir + "/sa_2.jpg: truncated JPEG (no end-of-image marker before the data ends)");
  fs::remove_all(dir);
}

TEST(Dataset, CocoInstances) {
  const std::string dir = testing::make_temp_dir("sd-coco");
  nlohmann::json coco = {
      {"images",
       {{{"id", 5}, {"width", 6}, {"height", 6}, {"file_name", "a.jpg"}},
        {{"id", 9}, {"width", 4}, {"height", 3}, {"file_name", "b.png"}}}},
      {"annotations",
       {{{"id", 1}, {"image_id", 5}, {"segmentation", {{1, 1, 4, 1, 4, 4, 1, 4}}}, {"iscrowd", 0}},
        {{"id", 2}, {"image_id", 9}, {"segmentation", {{"size", {3, 4}}, {"counts", "714"}}}},
        {{"id", 3}, {"image_id", 9}, {"segmentation", {{"size", {3, 4}}, {"counts", {7, 1, 4}}}}}}},
      {"categories", nlohmann::json::array()}};
  write(dir + "/instances.json", coco.dump());
  Dataset d = Dataset::from_coco(dir + "/instances.json", dir + "/images");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].image_path, dir + "/images/a.jpg");
  Record a = load_record(d[0]);
  ASSERT_EQ(a.annotations.size(), 1u);
  EXPECT_EQ(a.annotations[0].area, 9);  // the polygon's 3x3 pixels (see rle_test)
  EXPECT_EQ(a.annotations[0].bbox, (std::array<double, 4>{1, 1, 3, 3}));
  Record b = load_record(d[1]);
  ASSERT_EQ(b.annotations.size(), 2u);
  EXPECT_EQ(b.annotations[0].segmentation.counts, b.annotations[1].segmentation.counts);
  coco["annotations"][1]["image_id"] = 77;
  write(dir + "/bad.json", coco.dump());
  EXPECT_THROW(Dataset::from_coco(dir + "/bad.json", dir), Error);
  fs::remove_all(dir);
}

// A COCO file from a stranger names its images: never one outside the image folder.
TEST(Dataset, CocoFileNamesThatLeaveTheImageFolderAreRefused) {
  const std::string dir = testing::make_temp_dir("sd-coco");
  for (const std::string name : {"../../etc/passwd", "/etc/passwd", "a/../../b.jpg"}) {
    const nlohmann::json coco = {
        {"images", {{{"id", 1}, {"width", 2}, {"height", 2}, {"file_name", name}}}},
        {"annotations", nlohmann::json::array()}};
    write(dir + "/instances.json", coco.dump());
    EXPECT_PRED2(testing::contains,
                 testing::error_of([&] { Dataset::from_coco(dir + "/instances.json", dir); }),
                 "file_name '" + name + "' leaves the image folder");
  }
  fs::remove_all(dir);
}

// Symlinks in an SA-1B folder: a link to a file in the folder is read; one that leaves the
// folder, loops or leads to a folder is reported and never followed.
TEST(Dataset, SymlinksThatLeaveTheFolderAreNotFollowed) {
  const std::string src = testing::data_sample();
  const std::string dir = testing::make_temp_dir("sd-links");
  const std::string outside = testing::make_temp_dir("sd-outside");
  fs::create_directories(dir + "/shard");
  for (const char* ext : {".jpg", ".json"}) {
    fs::copy_file(src + "/sa_100001" + ext, dir + "/shard/sa_1" + ext);
    fs::copy_file(src + "/sa_100002" + ext, outside + "/sa_2" + ext);
    fs::create_symlink(dir + "/shard/sa_1" + std::string(ext), dir + "/sa_4" + ext);  // inside
  }
  fs::create_directory_symlink(dir, dir + "/shard/loop");          // a loop
  fs::create_directory_symlink(outside, dir + "/escape");          // a folder outside
  fs::create_symlink(outside + "/sa_2.json", dir + "/sa_2.json");  // a file outside
  fs::copy_file(src + "/sa_100002.jpg", dir + "/sa_2.jpg");
  fs::create_symlink(dir + "/sa_3.jpg", dir + "/sa_3.json");  // links to each other
  fs::create_symlink(dir + "/sa_3.json", dir + "/sa_3.jpg");

  std::vector<Skip> skipped;
  const Dataset d = Dataset::index_sa1b({dir}, &skipped);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].id, "sa_1");
  EXPECT_EQ(d[1].id, "sa_4");
  std::map<std::string, std::string> reasons;
  for (const Skip& s : skipped) reasons[fs::path(s.file).filename().string()] = s.reason;
  const std::string root = fs::canonical(dir).string();
  EXPECT_PRED2(testing::contains, reasons["loop"], "symlink to a folder: not followed");
  EXPECT_PRED2(testing::contains, reasons["escape"], ", outside " + root + ": not followed");
  EXPECT_PRED2(testing::contains, reasons["sa_2.json"], ", outside " + root + ": not followed");
  EXPECT_EQ(reasons["sa_2.jpg"], "image without its JSON");
  EXPECT_EQ(reasons["sa_3.jpg"], "symlink that loops or leads nowhere: not followed");
  EXPECT_EQ(reasons["sa_3.json"], "symlink that loops or leads nowhere: not followed");
  fs::remove_all(dir);
  fs::remove_all(outside);
}

}  // namespace
}  // namespace sd::data
