// build_sam of every preset holds exactly the official checkpoint's entries (manifests/*.json:
// [key, shape, dtype] in state-dict order), so official checkpoints load strictly.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "io/state_dict.h"
#include "models/sam.h"

namespace sd::models {
namespace {

using namespace sd::testing;

std::string dtype_name(at::ScalarType t) {  // as the manifests spell it (numpy style)
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kLong:
      return "int64";
    default:
      return c10::toString(t);
  }
}

TEST(SamManifestRef, EveryPresetHasTheOfficialKeysShapesAndDtypesInOrder) {
  SD_REQUIRE_FIXTURES();
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(fixtures_root() + "/manifests")) {
    std::string preset = entry.path().stem().string();  // vit_h, vit_l, vit_b, vit_t
    SCOPED_TRACE(entry.path().string());
    std::ifstream in(entry.path());
    nlohmann::json manifest = nlohmann::json::parse(in);
    io::StateDict entries = io::state_dict(*build_sam(encoder_preset(preset)));
    ASSERT_EQ(entries.size(), manifest.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& [key, tensor] = entries[i];
      ASSERT_EQ(key, manifest[i][0].get<std::string>()) << "entry " << i;
      EXPECT_EQ(tensor.sizes(), at::IntArrayRef(manifest[i][1].get<std::vector<int64_t>>())) << key;
      EXPECT_EQ(dtype_name(tensor.scalar_type()), manifest[i][2].get<std::string>()) << key;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

}  // namespace
}  // namespace sd::models
