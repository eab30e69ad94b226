#include "data/rle.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "util/error.h"

namespace sd::data {
namespace {

// Expected strings below are worked out by hand from the format (../shared/data/README.md and
// pycocotools' rleToString): count x -> 5-bit groups, low first, +48, 0x20 = more, and from
// the fourth count on x is the difference from the count two places before.

at::Tensor mask_from(std::vector<uint8_t> values, int h, int w) {
  return at::tensor(std::vector<int64_t>(values.begin(), values.end())).to(at::kByte).view({h, w});
}

void expect_encodes(const at::Tensor& mask, const std::vector<uint32_t>& counts,
                    const std::string& s) {
  Rle rle = rle_encode(mask);
  EXPECT_EQ(rle.counts, counts);
  EXPECT_EQ(rle_to_string(rle), s);
  Rle back =
      rle_from_string(s, static_cast<int>(mask.size(0)), static_cast<int>(mask.size(1)), "test");
  EXPECT_EQ(back.counts, counts);
  EXPECT_TRUE(rle_decode(back).equal(mask));
}

TEST(Rle, EmptyMask) { expect_encodes(at::zeros({2, 3}, at::kByte), {6}, "6"); }

TEST(Rle, FullMask) { expect_encodes(at::ones({2, 3}, at::kByte), {0, 6}, "06"); }

TEST(Rle, OneRow) {
  // 1x5: column-major order is the row itself; runs 0:1 1:2 0:1 1:1; 4th count 1-2 = -1 -> 31+48
  // 'O'.
  expect_encodes(mask_from({0, 1, 1, 0, 1}, 1, 5), {1, 2, 1, 1}, "121O");
}

TEST(Rle, OneColumn) { expect_encodes(mask_from({1, 1, 0, 0, 1}, 5, 1), {0, 2, 2, 1}, "022O"); }

TEST(Rle, SinglePixel) {
  // 3x4, pixel (row 1, col 2): column-major index 2 * 3 + 1 = 7.
  at::Tensor m = at::zeros({3, 4}, at::kByte);
  m[1][2] = 1;
  expect_encodes(m, {7, 1, 4}, "714");
  Rle rle = rle_encode(m);
  EXPECT_EQ(rle_area(rle), 1);
  EXPECT_EQ(rle_bbox(rle), (std::array<int, 4>{2, 1, 1, 1}));
}

TEST(Rle, MultiGroupCounts) {
  // 100 = 4 + 3*32: groups 4|0x20 -> 'T', 3 -> '3'. A 4th count of 1 after 100: 1 - 100 = -99
  // = 29 + (-4)*32: 29|0x20 -> 'm', then -4 & 31 = 28 with the sign bit -> 'L'.
  expect_encodes(at::zeros({10, 10}, at::kByte), {100}, "T3");
  Rle rle = rle_from_string("0T30mL", 101, 1, "test");
  EXPECT_EQ(rle.counts, (std::vector<uint32_t>{0, 100, 0, 1}));
  EXPECT_EQ(rle_area(rle), 101);
  EXPECT_TRUE(rle_decode(rle).equal(at::ones({101, 1}, at::kByte)));
}

TEST(Rle, RandomRoundTripsAndBoxes) {
  at::manual_seed(3);
  for (int trial = 0; trial < 20; ++trial) {
    const int h = 1 + trial % 7 * 5, w = 1 + trial % 5 * 9;
    at::Tensor m = at::rand({h, w}) < (trial % 4) * 0.3;
    Rle rle = rle_encode(m);
    EXPECT_TRUE(rle_decode(rle).equal(m.to(at::kByte)));
    Rle parsed = rle_from_string(rle_to_string(rle), h, w, "test");
    EXPECT_EQ(parsed.counts, rle.counts);
    EXPECT_EQ(rle_area(rle), m.sum().item<int64_t>());
    // Brute-force box from the pixels.
    at::Tensor nz = m.nonzero();
    std::array<int, 4> box{0, 0, 0, 0};
    if (nz.size(0) > 0) {
      int y0 = nz.select(1, 0).min().item<int>(), y1 = nz.select(1, 0).max().item<int>();
      int x0 = nz.select(1, 1).min().item<int>(), x1 = nz.select(1, 1).max().item<int>();
      box = {x0, y0, x1 - x0 + 1, y1 - y0 + 1};
    }
    EXPECT_EQ(rle_bbox(rle), box) << "trial " << trial;
  }
}

TEST(Rle, UncompressedCounts) {
  Rle rle = rle_from_counts({7, 1, 4}, 3, 4, "test");
  EXPECT_EQ(rle_to_string(rle), "714");
  EXPECT_THROW(rle_from_counts({7, 1, 3}, 3, 4, "test"), Error);
  EXPECT_THROW(rle_from_counts({7, -1, 6}, 3, 4, "test"), Error);
}

TEST(Rle, BadStringsAreErrors) {
  auto message = [](const std::string& s, int h, int w) {
    try {
      rle_from_string(s, h, w, "sa_1.json: annotations[0]");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("5", 2, 3).find("add up to 5, not height x width = 6"), std::string::npos);
  EXPECT_NE(message("5", 2, 3).find("sa_1.json: annotations[0]"), std::string::npos);
  EXPECT_NE(message("T", 10, 10).find("ends inside a count"), std::string::npos);
  EXPECT_NE(message("6 ", 2, 3).find("invalid character"), std::string::npos);
  // 4th count: counts[1] + (-2) (30 with the sign bit: 'N') = -1.
  EXPECT_NE(message("111N", 1, 3).find("out of range"), std::string::npos);
}

TEST(Rle, PolygonAsPycocotools) {
  // The square with corners (1,1) and (4,4) covers pixels 1..3 in x and y in pycocotools
  // (traced by hand through rleFrPoly: crossings at columns 1..3, rows ceil(0.6)=1 to ceil(3.6)=4).
  Rle rle = rle_from_polygon({1, 1, 4, 1, 4, 4, 1, 4}, 6, 6);
  EXPECT_EQ(rle.counts, (std::vector<uint32_t>{7, 3, 3, 3, 3, 3, 14}));
  EXPECT_EQ(rle_bbox(rle), (std::array<int, 4>{1, 1, 3, 3}));
  Rle two = rle_union({rle, rle_from_polygon({4, 4, 6, 4, 6, 6, 4, 6}, 6, 6)}, 6, 6);
  EXPECT_EQ(rle_area(two), 9 + 4);
}

// Every mask of data/sample: the string round-trips exactly, and bbox / area recorded in the
// JSON agree with the mask.
TEST(Rle, SampleStringsRoundTripAndAgreeWithBoxes) {
  int checked = 0;
  for (const auto& file : std::filesystem::directory_iterator(testing::data_sample())) {
    if (file.path().extension() != ".json") continue;
    std::ifstream in(file.path());
    const nlohmann::json j = nlohmann::json::parse(in);
    for (const auto& a : j["annotations"]) {
      const std::string s = a["segmentation"]["counts"];
      const int h = a["segmentation"]["size"][0], w = a["segmentation"]["size"][1];
      Rle rle = rle_from_string(s, h, w, file.path().string());
      EXPECT_EQ(rle_to_string(rle), s);
      EXPECT_EQ(rle_area(rle), a["area"].get<int64_t>());
      auto box = rle_bbox(rle);
      for (int k = 0; k < 4; ++k) EXPECT_EQ(box[k], a["bbox"][k].get<double>());
      ++checked;
    }
  }
  EXPECT_EQ(checked, 339);  // annotations in data/sample (Python json count)
}

}  // namespace
}  // namespace sd::data
