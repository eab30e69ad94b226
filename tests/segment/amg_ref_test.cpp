// SAM's automatic mask generator against the Python reference's masks on the same weights and
// image (tests/segment/fixtures/<model folder>.json, made by make_amg_fixtures.py from every
// model folder of the reference fixtures).
#include <ATen/ATen.h>

#include <filesystem>

#include "common/fixture_sam.h"
#include "common/fixtures.h"
#include "common/reference_masks.h"
#include "data/image.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/state_dict.h"
#include "models/config.h"
#include "segment/amg.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace sd::segment {
namespace {

using namespace sd::testing;

models::Sam load_sam(const ModelFolder& folder) {
  models::Sam sam = fixture_sam(folder);
  sam->to(test_device());
  return sam;
}

// Ours against the reference's records: the masks as reference_masks.h says, and each matched
// record's fields; area and box are the reference's where the masks are identical.
void compare(const nlohmann::json& reference, const std::vector<MaskRecord>& ours,
             const std::string& what) {
  std::vector<data::Rle> rles;
  for (const MaskRecord& m : ours) rles.push_back(m.rle);
  const std::vector<MaskMatch> matches = match_reference_masks(reference, rles, what);
  for (size_t i = 0; i < matches.size(); ++i) {
    const nlohmann::json& r = reference[i];
    const MaskRecord& m = ours[matches[i].ours];
    EXPECT_NEAR(m.predicted_iou, r["predicted_iou"].get<double>(), kIouTolerance)
        << what << " mask " << i;
    EXPECT_NEAR(m.stability_score, r["stability_score"].get<double>(), 1e-3)
        << what << " mask " << i;
    const nlohmann::json& expected =
        matches[i].identical
            ? r
            : nlohmann::json{{"area", data::rle_area(m.rle)}, {"bbox", sam_bbox(m.rle)}};
    EXPECT_EQ(data::rle_area(m.rle), expected["area"].get<int64_t>()) << what << " mask " << i;
    const Box& b = m.box;
    EXPECT_EQ((std::vector<int64_t>{b[0], b[1], b[2] - b[0], b[3] - b[1]}),
              expected["bbox"].get<std::vector<int64_t>>())
        << what << " mask " << i;
    EXPECT_DOUBLE_EQ(m.point[0], r["point_coords"][0][0].get<double>()) << what << " mask " << i;
    EXPECT_DOUBLE_EQ(m.point[1], r["point_coords"][0][1].get<double>()) << what << " mask " << i;
    const Box& c = m.crop_box;
    EXPECT_EQ((std::vector<int64_t>{c[0], c[1], c[2] - c[0], c[3] - c[1]}),
              r["crop_box"].get<std::vector<int64_t>>())
        << what << " mask " << i;
  }
}

TEST(AmgRef, MatchesThePythonGenerator) {
  SD_REQUIRE_FIXTURES();
  for (const ModelFolder& folder : model_folders()) {
    SCOPED_TRACE(folder.name);
    const std::string path = source_dir() + "/tests/segment/fixtures/" + folder.name + ".json";
    if (!std::filesystem::exists(path)) {
      ADD_FAILURE() << "no automatic-mask fixture for model folder '" << folder.path
                    << "': run tests/segment/make_amg_fixtures.py";
      continue;
    }
    const nlohmann::json fixture = io::read_json_file(path);
    ASSERT_EQ(fixture.value("undecided", 0.0), kUndecidedTolerance)
        << path << " marks undecided pixels otherwise: run tests/segment/make_amg_fixtures.py";
    ASSERT_EQ(fixture["weights_sha256"], sha256_file(folder.file("weights.pth")))
        << path << " was made from other weights: run tests/segment/make_amg_fixtures.py";
    const std::string image =
        source_dir() + "/tests/segment/fixtures/" + fixture["image"].get<std::string>();
    const at::Tensor rgb = data::default_image_decoder()(read_file(image), image);
    models::Sam sam = load_sam(folder);
    for (const auto& [name, c] : fixture["cases"].items()) {
      const AmgConfig config = amg_config_table().read(c["params"], path);
      AutomaticMaskGenerator generator(sam, config);
      compare(c["masks"], generator.generate(rgb), folder.name + " " + name);
    }
  }
}

// torchvision's batched_nms (as SAM calls it: one category) on random boxes with tied scores.
TEST(AmgRef, BoxNmsIsTorchvisions) {
  const nlohmann::json j = io::read_json_file(source_dir() + "/tests/segment/fixtures/nms.json");
  std::vector<Box> boxes;
  for (const nlohmann::json& b : j["boxes"]) boxes.push_back(b.get<Box>());
  const std::vector<float> scores = j["scores"].get<std::vector<float>>();
  for (const nlohmann::json& c : j["cases"])
    EXPECT_EQ(box_nms(boxes, scores, c["thresh"].get<double>()),
              c["keep"].get<std::vector<int64_t>>())
        << "threshold " << c["thresh"];
}

}  // namespace
}  // namespace sd::segment
