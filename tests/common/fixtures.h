#pragma once
#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
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

// Where the model tests run: $SAMDISTILL_TEST_DEVICE (cpu, the default, or cuda; on CUDA
// without TF32, so that the reference tolerances hold). sd::Error when CUDA is asked for
// and absent.
at::Device test_device();

std::string source_dir();   // the repository root
std::string binary_path();  // the samdistill program
std::string data_sample();  // <repo>/data/sample
// A new folder under the system's temporary folder, removed when the test program exits with
// every test passed (kept, and named on stderr, when one failed or SAMDISTILL_KEEP_TEST_FILES is
// set).
std::string make_temp_dir(const std::string& prefix);

// The tensors of a torch.save dict (weights.pth, cases.pth, train_step.pth) by key,
// read with our own reader (io/checkpoint.h).
std::map<std::string, at::Tensor> load_tensors(const std::string& path);

// The message of the sd::Error that `fn` throws; fails the test when it throws none.
std::string error_of(const std::function<void()>& fn);
// Runs `fn` in a forked child (for limits such as setrlimit that must not touch the test
// program, and for code that may crash): what `fn` returned, or how the child died. `fn` must
// not start LibTorch's parallel work (OpenMP's threads do not survive a fork and it hangs):
// make large tensors before.
std::string in_child(const std::function<std::string()>& fn);

// For EXPECT_PRED2(contains, message, "part"), which prints both on failure.
bool contains(const std::string& text, const std::string& part);

// The messages logged at `level` ("error", "warning", "info") in a program's output: the
// text after "[level] " of each such line, in order (the same with or without spdlog).
std::vector<std::string> logged(const std::string& output, const std::string& level);

// Runs `samdistill <args>` through the shell; its exit status and stdout + stderr.
struct ProgramRun {
  int status = -1;
  std::string output;
};
ProgramRun run_program(const std::string& args);
// The same, run from the folder `cwd`.
ProgramRun run_program_in(const std::string& cwd, const std::string& args);
// The same for any shell command.
ProgramRun run_command(const std::string& shell_command);

// The malloc the program was built with: "glibc", "jemalloc" or "mimalloc" (CMake's choice).
std::string program_allocator();

}  // namespace sd::testing

// Skips (with a message that says why) when the reference fixtures are absent.
#define SD_REQUIRE_FIXTURES()                                                               \
  do {                                                                                      \
    if (!::sd::testing::fixtures_present())                                                 \
      GTEST_SKIP() << "reference fixtures not found at '" << ::sd::testing::fixtures_root() \
                   << "' (set SAMDISTILL_FIXTURES); reference test skipped";                \
  } while (0)
