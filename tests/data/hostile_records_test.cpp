// Records from strangers: numbers no writer makes are errors naming the field, never
// undefined behaviour (found by fuzz/sa1b_record_fuzz.cpp and fuzz/rle_fuzz.cpp; run under
// UBSan by scripts/sanitize.sh).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "data/records.h"
#include "data/rle.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace sd::data {
namespace {

using sd::testing::contains;
using sd::testing::error_of;

nlohmann::json record() {
  return {{"image", {{"image_id", 7}, {"width", 3}, {"height", 2}, {"file_name", "sa_7.jpg"}}},
          {"annotations",
           {{{"id", 1}, {"segmentation", {{"size", {2, 3}}, {"counts", {0, 6}}}}, {"area", 6}}}}};
}

TEST(HostileRecords, ValidRecordParses) {
  const Record r = parse_sa1b_record(record(), "sa_7.json");
  ASSERT_EQ(r.annotations.size(), 1u);
  EXPECT_EQ(r.annotations[0].area, 6);
}

TEST(HostileRecords, NumbersOutOfRangeAreErrors) {
  auto error_with = [](const nlohmann::json::json_pointer& at, const nlohmann::json& value) {
    nlohmann::json j = record();
    j[at] = value;
    return error_of([&] { parse_sa1b_record(j, "sa_7.json"); });
  };
  using ptr = nlohmann::json::json_pointer;
  EXPECT_PRED2(contains, error_with(ptr("/annotations/0/id"), 1e42),
               "field 'id' = 1e+42 is not a whole number in range");
  EXPECT_PRED2(contains, error_with(ptr("/image/image_id"), 18446744073709551615u),
               "field 'image_id' = 18446744073709551615 is not a whole number in range");
  EXPECT_PRED2(contains, error_with(ptr("/image/width"), 4294967299), "field 'width'");
  EXPECT_PRED2(contains, error_with(ptr("/image/width"), 2.5), "field 'width'");
  EXPECT_PRED2(contains, error_with(ptr("/annotations/0/area"), 1e300), "field 'area'");
  EXPECT_PRED2(contains, error_with(ptr("/annotations/0/segmentation/size/0"), 1e300),
               "mask size [");
  nlohmann::json whole = record();
  whole["image"]["width"] = 3.0;  // a whole number written as a float is fine
  EXPECT_EQ(parse_sa1b_record(whole, "sa_7.json").image.width, 3);
}

TEST(HostileRecords, NumberTooLargeForADoubleNamesTheFile) {
  const std::string dir = sd::testing::make_temp_dir("sd-json");
  write_file_atomic(dir + "/sa_1.json", "{\"image\": {\"width\": 8e888}}");
  EXPECT_PRED2(contains, error_of([&] { read_sa1b_record(dir + "/sa_1.json", dir + "/sa_1.jpg"); }),
               dir + "/sa_1.json: invalid JSON");
  std::filesystem::remove_all(dir);
}

TEST(HostileRecords, EmptyMasksDecode) {
  EXPECT_EQ(rle_decode(rle_from_string("", 0, 2, "x")).sizes(), at::IntArrayRef({0, 2}));
  EXPECT_EQ(rle_decode(rle_from_counts({}, 3, 0, "x")).sizes(), at::IntArrayRef({3, 0}));
  EXPECT_EQ(rle_decode(rle_from_counts({0, 0}, 0, 94, "x")).sizes(), at::IntArrayRef({0, 94}));
}

// Found by fuzz/coco_fuzz.cpp: a repeated polygon point divided 0 by 0 and converted the NaN
// to int. The same polygon without the repeat gives the same mask.
TEST(HostileRecords, RepeatedPolygonPointIsDefined) {
  EXPECT_EQ(rle_from_polygon({1, 1, 8, 1, 8, 1, 1, 6}, 31, 16).counts,
            rle_from_polygon({1, 1, 8, 1, 1, 6}, 31, 16).counts);
}

TEST(HostileRecords, PolygonsFarOutsideTheImageAreErrors) {
  const std::string dir = sd::testing::make_temp_dir("sd-poly");
  auto error_with = [&](const std::vector<double>& polygon) {
    const nlohmann::json coco = {
        {"images", {{{"id", 1}, {"width", 20}, {"height", 10}, {"file_name", "a.jpg"}}}},
        {"annotations", {{{"id", 1}, {"image_id", 1}, {"segmentation", {polygon}}}}}};
    write_file_atomic(dir + "/c.json", coco.dump());
    return error_of([&] { read_coco_instances(dir + "/c.json", dir); });
  };
  EXPECT_PRED2(contains, error_with({1, 1, 1e12, 1, 1, 6}), "is far outside the image");
  std::vector<double> zigzag;
  for (int i = 0; i < 200; ++i) zigzag.insert(zigzag.end(), {0, 0, 59, 29});
  EXPECT_PRED2(contains, error_with(zigzag), "polygon outline far longer than the image's");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::data
