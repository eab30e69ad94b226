#pragma once
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sd::testing {

// The reference folder: $SAMDISTILL_FIXTURES, else ../shared/fixtures/reference.
std::string fixtures_root();
bool fixtures_present();

// A model folder of the reference set: any subfolder holding a config.json.
// TinyViT when the config has `embed_dims`, ViT when it has `embed_dim`.
struct ModelFolder {
  std::string path;
  std::string name;
  bool tiny_vit = false;
  nlohmann::json config;
  std::string file(const std::string& leaf) const { return path + "/" + leaf; }
};
std::vector<ModelFolder> model_folders();
std::optional<ModelFolder> first_folder(bool tiny_vit);

std::string source_dir();   // the repository root
std::string binary_path();  // the samdistill program
std::string data_sample();  // <repo>/data/sample
std::string make_temp_dir(const std::string& prefix);

}  // namespace sd::testing

// Skips (with a message that says why) when the reference fixtures are absent.
#define SD_REQUIRE_FIXTURES()                                                           \
  do {                                                                                  \
    if (!::sd::testing::fixtures_present())                                             \
      GTEST_SKIP() << "reference fixtures not found at '" << ::sd::testing::fixtures_root() \
                   << "' (set SAMDISTILL_FIXTURES); reference test skipped";            \
  } while (0)
