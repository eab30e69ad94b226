// The pieces of the automatic mask generator and its outputs, each against what SAM's
// utils/amg.py gives for the same input (values printed by the Python reference).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/config_table_testing.h"
#include "common/fixtures.h"
#include "segment/amg_config.h"
#include "segment/box_prompts.h"
#include "segment/mask_ops.h"
#include "segment/outputs.h"
#include "util/atomic_file.h"

namespace sd::segment {
namespace {

using namespace sd::testing;

TEST(Segment, AmgConfigsInitialValuesAreTheTablesDefaults) {
  sd::testing::expect_well_formed(amg_config_table());
  sd::testing::expect_initial_values_are_defaults(amg_config_table());
}

TEST(Segment, CropBoxesAreSams) {
  // generate_crop_boxes((1200, 1800), 2, 512 / 1500) in Python.
  const std::vector<Box> expected = {
      {0, 0, 1800, 1200},     {0, 0, 1105, 805},    {0, 396, 1105, 1200},   {696, 0, 1800, 805},
      {696, 396, 1800, 1200}, {0, 0, 603, 453},     {0, 249, 603, 702},     {0, 498, 603, 951},
      {0, 747, 603, 1200},    {399, 0, 1002, 453},  {399, 249, 1002, 702},  {399, 498, 1002, 951},
      {399, 747, 1002, 1200}, {798, 0, 1401, 453},  {798, 249, 1401, 702},  {798, 498, 1401, 951},
      {798, 747, 1401, 1200}, {1197, 0, 1800, 453}, {1197, 249, 1800, 702}, {1197, 498, 1800, 951},
      {1197, 747, 1800, 1200}};
  const std::vector<CropBox> crops = generate_crop_boxes(1200, 1800, 2, 512.0 / 1500);
  ASSERT_EQ(crops.size(), expected.size());
  for (size_t i = 0; i < crops.size(); ++i) {
    EXPECT_EQ(crops[i].box, expected[i]) << i;
    EXPECT_EQ(crops[i].layer, i == 0 ? 0 : i < 5 ? 1 : 2) << i;
  }
}

TEST(Segment, PointGridIsSams) {
  const PointGrid grid = build_point_grid(3);  // build_point_grid(3)
  const double a = 0.16666666666666666, b = 0.5, c = 0.8333333333333334;
  const PointGrid expected = {{a, a}, {b, a}, {c, a}, {a, b}, {b, b},
                              {c, b}, {a, c}, {b, c}, {c, c}};
  EXPECT_EQ(grid, expected);
  const std::vector<PointGrid> layers = build_all_layer_point_grids(32, 2, 2);
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[1].size(), 16u * 16u);
  EXPECT_EQ(layers[2].size(), 8u * 8u);
}

TEST(Segment, RemoveSmallRegionsIsSams) {
  // A 6x8 block with a one-pixel hole and a pixel touching it diagonally (8-connected).
  std::vector<uint8_t> mask(48, 0);
  for (int y = 1; y < 5; ++y)
    for (int x = 1; x < 7; ++x) mask[size_t(y * 8 + x)] = 1;
  mask[2 * 8 + 3] = 0;
  mask[0] = 1;
  std::vector<uint8_t> holes = mask, islands = mask;
  EXPECT_TRUE(remove_small_regions(holes, 6, 8, 2, true));
  std::vector<uint8_t> filled = mask;
  filled[2 * 8 + 3] = 1;
  EXPECT_EQ(holes, filled);
  EXPECT_FALSE(remove_small_regions(islands, 6, 8, 2, false));  // one island of 24 + 1 pixels
  EXPECT_EQ(islands, mask);
  // Islands all small: the largest stays.
  std::vector<uint8_t> specks(48, 0);
  specks[0] = 1;
  specks[10] = specks[11] = 1;
  EXPECT_TRUE(remove_small_regions(specks, 6, 8, 5, false));
  std::vector<uint8_t> largest(48, 0);
  largest[10] = largest[11] = 1;
  EXPECT_EQ(specks, largest);
}

TEST(Segment, MaskRleAndIou) {
  std::vector<uint8_t> mask = {0, 1, 1, 1};                             // 2x2, row-major
  const data::Rle placed = mask_to_rle(mask.data(), 2, 2, 1, 1, 3, 4);  // in a 3x4 image
  EXPECT_EQ(placed.counts, (std::vector<uint32_t>{5, 1, 1, 2, 3}));
  const at::Tensor decoded = data::rle_decode(placed);
  EXPECT_EQ(decoded.sum().item<int64_t>(), 3);
  EXPECT_EQ(decoded[1][2].item<uint8_t>(), 1);
  EXPECT_EQ(decoded[1][1].item<uint8_t>(), 0);
  EXPECT_EQ(mask_to_box(mask.data(), 2, 2), (Box{0, 0, 1, 1}));
  const data::Rle other = data::rle_encode(at::ones({3, 4}, at::kByte));
  EXPECT_DOUBLE_EQ(rle_iou(placed, other), 3.0 / 12);
  EXPECT_DOUBLE_EQ(rle_iou(placed, placed), 1.0);
  const data::Rle empty{3, 4, {12}};
  EXPECT_DOUBLE_EQ(rle_iou(empty, empty), 1.0);
  EXPECT_PRED2(contains, error_of([&] { rle_iou(placed, data::Rle{4, 3, {12}}); }), "3x4 and 4x3");
}

TEST(Segment, NumbersAsPythonPrintsThem) {
  EXPECT_EQ(python_float(0.1), "0.1");
  EXPECT_EQ(python_float(1e-5), "1e-05");
  EXPECT_EQ(python_float(28.125), "28.125");
  EXPECT_EQ(python_float(3.0), "3.0");
  EXPECT_EQ(python_float(double(0.9f)), "0.8999999761581421");
}

TEST(Segment, MetadataCsvIsAmgPys) {
  MaskRecord m;
  m.rle = data::Rle{3, 4, {5, 1, 1, 2, 3}};
  m.box = {1, 1, 2, 2};
  m.predicted_iou = 0.9f;
  m.point = {1.5, 2.0};
  m.stability_score = 1.0f;
  m.crop_box = {0, 0, 4, 3};
  EXPECT_EQ(metadata_csv({m}),
            "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,"
            "stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h\n"
            "0,3,1,1,1,1,1.5,2.0,0.8999999761581421,1.0,0,0,4,3");
  const nlohmann::json j = record_json(m);
  EXPECT_EQ(j["segmentation"]["size"], (std::vector<int>{3, 4}));
  EXPECT_EQ(j["bbox"], (std::vector<int>{1, 1, 1, 1}));
  EXPECT_EQ(j["area"], 3);
  EXPECT_EQ(j["crop_box"], (std::vector<int>{0, 0, 4, 3}));
}

TEST(Segment, PromptFileErrorsNameTheRecord) {
  const std::string dir = make_temp_dir("samdistill-segment");
  auto error_for = [&](const std::string& text) {
    write_file_atomic(dir + "/p.json", text);
    return error_of([&] { read_prompt_file(dir + "/p.json"); });
  };
  EXPECT_PRED2(contains, error_for("{}"), "expected a list of detections");
  EXPECT_PRED2(contains, error_for(R"([{"image_id": 1, "bbox": [1, 2, 3]}])"),
               "record 0: 'bbox' must be [x, y, width, height]");
  EXPECT_PRED2(contains,
               error_for(R"([{"image_id": 1, "bbox": [1, 2, 3, 4]}, {"bbox": [1, 2, 3, 4]}])"),
               "record 1: needs an integer 'image_id' or a string 'file_name'");
  EXPECT_PRED2(contains, error_for(R"([{"file_name": "a.jpg"}])"),
               "has neither 'bbox' nor 'point_coords'");
  EXPECT_PRED2(contains, error_for(R"([{"file_name": "a.jpg", "bbox": [0, 0, -1, 2]}])"),
               "negative width or height");
  write_file_atomic(dir + "/p.json",
                    R"([{"image_id": 7, "bbox": [1, 2, 3, 4], "score": 0.5, "category_id": 3},
                        {"file_name": "a.jpg", "point_coords": [[1, 2]], "point_labels": [0]}])");
  const PromptFile file = read_prompt_file(dir + "/p.json");
  ASSERT_EQ(file.by_image_id.at(7).size(), 1u);
  EXPECT_EQ(file.by_image_id.at(7)[0].category_id, 3);
  EXPECT_EQ(file.by_file_name.at("a.jpg")[0].labels, std::vector<int>{0});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::segment
