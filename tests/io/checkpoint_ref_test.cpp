// Reads the reference fixtures written by Python's torch.save (PyTorch 1.13): state dicts
// as OrderedDicts with `_metadata` (which torch::pickle_load before 2.6 cannot read) and
// plain dicts, and checks them against the manifests and the values Python recorded.
#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "io/checkpoint_summary.h"

namespace sd::io {
namespace {

using namespace sd::testing;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Every key of a fixture state dict exists in some official checkpoint (manifests).
TEST(CheckpointRef, WeightKeysAreOfficialKeys) {
  SD_REQUIRE_FIXTURES();
  std::set<std::string> official;
  for (const char* name : {"vit_t", "vit_b", "vit_l", "vit_h"})
    for (const auto& e : read_json(fixtures_root() + "/manifests/" + name + ".json"))
      official.insert(e[0].get<std::string>());
  ASSERT_FALSE(model_folders().empty());
  for (const auto& folder : model_folders()) {
    StateDict sd = read_state_dict(folder.file("weights.pth"));
    ASSERT_FALSE(sd.empty()) << folder.path;
    for (const auto& [key, t] : sd) {
      EXPECT_TRUE(official.count(key)) << folder.path << ": " << key;
      EXPECT_TRUE(t.is_contiguous()) << key;
    }
  }
}

// A TinyViT with vit_t's config holds exactly the vit_t manifest: keys in order, shapes, dtypes.
TEST(CheckpointRef, VitTWeightsMatchManifestInOrder) {
  SD_REQUIRE_FIXTURES();
  auto manifest = read_json(fixtures_root() + "/manifests/vit_t.json");
  int checked = 0;
  for (const auto& folder : model_folders()) {
    if (!folder.tiny_vit || folder.config["embed_dims"] != nlohmann::json({64, 128, 160, 320}) ||
        folder.config["depths"] != nlohmann::json({2, 2, 6, 2}))
      continue;
    StateDict sd = read_state_dict(folder.file("weights.pth"));
    ASSERT_EQ(sd.size(), manifest.size()) << folder.path;
    for (size_t i = 0; i < sd.size(); ++i) {
      EXPECT_EQ(sd[i].first, manifest[i][0].get<std::string>()) << i;
      EXPECT_EQ(sd[i].second.sizes().vec(), manifest[i][1].get<std::vector<int64_t>>())
          << sd[i].first;
      EXPECT_EQ(dtype_name(sd[i].second.scalar_type()), manifest[i][2].get<std::string>())
          << sd[i].first;
    }
    int64_t integers = 0;
    for (const auto& [key, t] : sd)
      if (!t.is_floating_point()) integers += t.numel();
    auto summary = read_json(fixtures_root() + "/summary.json");
    EXPECT_EQ(count_parameters(sd) + integers, summary["manifest.vit_t.params"].get<int64_t>());
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no fixture folder with vit_t's config";
}

// The summary of a full model and of its encoder alone.
TEST(CheckpointRef, SummaryCountsKeysAndPrefixes) {
  SD_REQUIRE_FIXTURES();
  for (const auto& folder : model_folders()) {
    StateDict sd = read_state_dict(folder.file("weights.pth"));
    nlohmann::json full = summarize_checkpoint(folder.file("weights.pth"), true);
    nlohmann::json alone = summarize_state_dict(strip_prefix(sd, "image_encoder."), false);
    EXPECT_EQ(full["keys"], sd.size());
    EXPECT_EQ(full["entries"].size(), sd.size());
    EXPECT_EQ(full["entries"][0][0], sd[0].first);
    std::vector<std::string> prefixes;
    for (const auto& p : full["prefixes"]) prefixes.push_back(p["prefix"]);
    EXPECT_EQ(prefixes,
              (std::vector<std::string>{"image_encoder", "prompt_encoder", "mask_decoder"}));
    EXPECT_EQ(alone["keys"], full["prefixes"][0]["keys"]);
  }
}

// cases.pth: uint8 image, int64 sizes, int32 labels, fp32 outputs, consistent with
// cases.json and with the embedding statistics of summary.json.
TEST(CheckpointRef, CasesAgreeWithJsonAndSummary) {
  SD_REQUIRE_FIXTURES();
  auto summary = read_json(fixtures_root() + "/summary.json");
  for (const auto& folder : model_folders()) {
    auto c = load_tensors(folder.file("cases.pth"));
    at::Tensor image = c.at("image_resized");
    ASSERT_EQ(image.scalar_type(), at::kByte);
    ASSERT_EQ(image.dim(), 3);
    EXPECT_EQ(std::max(image.size(0), image.size(1)), 1024);
    ASSERT_EQ(c.at("input_size").scalar_type(), at::kLong);
    EXPECT_EQ(c.at("input_size")[0].item<int64_t>(), image.size(0));
    EXPECT_EQ(c.at("input_size")[1].item<int64_t>(), image.size(1));
    EXPECT_EQ(c.at("embedding").sizes(), at::IntArrayRef({1, 256, 64, 64}));

    for (const auto& info : read_json(folder.file("cases.json"))) {
      std::string prefix = "case" + std::to_string(info["case"].get<int>()) + ".";
      int64_t pixels = 1;
      for (int64_t s : info["masks_shape"]) pixels *= s;
      EXPECT_EQ(c.at(prefix + "masks_packed").numel(), (pixels + 7) / 8) << prefix;
      if (info.contains("point_labels")) {
        EXPECT_EQ(c.at(prefix + "point_labels").scalar_type(), at::kInt);
        EXPECT_EQ(c.at(prefix + "point_labels").sizes().vec(),
                  info["point_labels"].get<std::vector<int64_t>>());
      }
    }
    std::string key = folder.name + ".embedding_std";
    if (summary.contains(key)) {
      EXPECT_NEAR(c.at("embedding").std().item<double>(), summary[key].get<double>(), 1e-6);
    }
  }
}

// train_step.pth: float64 sums and norms, the float32 output, one int64. summary.json gives
// its entry count and the float64 sum of student_out (Python: torch.load(...)["student_out"]
// .double().sum()): another fixture set of this layout holds another student.
TEST(CheckpointRef, TrainStepValues) {
  SD_REQUIRE_FIXTURES();
  std::string path = fixtures_root() + "/train_step.pth";
  StateDict sd = read_state_dict(path);
  auto summary = read_json(fixtures_root() + "/summary.json");
  EXPECT_EQ(sd.size(), summary["train_step.entries"].get<size_t>());
  EXPECT_EQ(sd.front().first, "loss");
  auto t = load_tensors(path);
  EXPECT_EQ(t.at("loss").scalar_type(), at::kDouble);
  EXPECT_EQ(t.at("loss").item<double>(), summary["train_step.loss"].get<double>());
  EXPECT_EQ(t.at("loss_after_eval_mode").item<double>(),
            summary["train_step.loss_after_eval_mode"].get<double>());
  EXPECT_EQ(t.at("student_out").sizes(), at::IntArrayRef({2, 256, 64, 64}));
  EXPECT_NEAR(t.at("student_out").to(at::kDouble).sum().item<double>(),
              summary["train_step.student_out_sum"].get<double>(), 1e-6);
}

// What we write reads back identical (same keys in order, dtypes, values).
TEST(CheckpointRef, RewrittenCopyIsIdentical) {
  SD_REQUIRE_FIXTURES();
  std::string dir = make_temp_dir("sd-io-ref");
  for (const auto& folder : model_folders()) {
    StateDict original = read_state_dict(folder.file("weights.pth"));
    std::string copy = dir + "/" + folder.name + ".pth";
    write_state_dict(copy, original);
    StateDict again = read_state_dict(copy);
    ASSERT_EQ(again.size(), original.size());
    for (size_t i = 0; i < again.size(); ++i) {
      EXPECT_EQ(again[i].first, original[i].first);
      EXPECT_EQ(again[i].second.scalar_type(), original[i].second.scalar_type());
      EXPECT_TRUE(at::equal(again[i].second, original[i].second)) << again[i].first;
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::io
