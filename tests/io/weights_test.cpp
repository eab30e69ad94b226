// Weights from a file or a run folder (io/weights.h), the run folder's checkpoints
// (io/run_folder.h) and the training checkpoint file they are kept in.
#include "io/weights.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "io/run_folder.h"
#include "io/train_checkpoint_file.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::io {
namespace {

using nlohmann::json;
using sd::testing::contains;
using sd::testing::error_of;

class WeightsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = sd::testing::make_temp_dir("sd-weights"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& leaf) const { return dir_ + "/" + leaf; }

  // A run folder `name` with a config.json naming `student_model`.
  RunPaths run(const std::string& name, const std::string& student_model = "vit_t") const {
    RunPaths r{path(name)};
    fs::create_directories(r.checkpoints());
    write_file_atomic(r.config(), json({{"student_model", student_model}, {"lr", 0.001}}).dump());
    return r;
  }

  // A training checkpoint after `step` steps whose model is `model`.
  static void write_step(const RunPaths& r, int64_t step, const StateDict& model) {
    TrainCheckpointFile file;
    file.meta.progress.step = step;
    file.meta.config = {{"lr", 0.001}};
    file.meta.store_id = "store";
    file.model = model;
    file.optimizer = at::zeros({3}, at::kByte);
    file.rng_cpu = at::zeros({5}, at::kByte);
    write_train_checkpoint(r.checkpoints() + "/" + checkpoint_name(step), file);
  }

  std::string dir_;
};

StateDict encoder(float value) {
  return {{"patch_embed.proj.weight", at::full({4, 3, 16, 16}, value)}};
}

void expect_entries(const StateDict& got, const StateDict& expected) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, expected[i].first);
    EXPECT_TRUE(at::equal(got[i].second, expected[i].second)) << got[i].first;
  }
}

TEST_F(WeightsTest, AFileIsTakenAsItIs) {
  write_state_dict(path("encoder.pth"), encoder(1));
  EXPECT_EQ(resolve_weights(path("encoder.pth")), path("encoder.pth"));
  const Weights w = read_weights(path("encoder.pth"));
  EXPECT_EQ(w.file, path("encoder.pth"));
  EXPECT_EQ(w.run_model, "");
  expect_entries(w.entries, encoder(1));
  expect_entries(w.encoder(), encoder(1));  // an encoder alone: its keys as they are
  EXPECT_PRED2(contains, error_of([&] { read_weights(path("absent.pth")); }), "absent.pth");
}

TEST_F(WeightsTest, AFullSamCheckpointGivesItsImageEncoderEntries) {
  StateDict sam = {{"image_encoder.patch_embed.proj.weight", at::full({4, 3, 16, 16}, 2.0f)},
                   {"prompt_encoder.point_embeddings.0.weight", at::ones({1, 4})},
                   {"mask_decoder.iou_token.weight", at::ones({1, 4})}};
  write_state_dict(path("sam.pth"), sam);
  const Weights w = read_weights(path("sam.pth"));
  expect_entries(w.entries, sam);
  expect_entries(w.encoder(), encoder(2));
}

TEST_F(WeightsTest, ARunFolderMeansItsFinalWeights) {
  const RunPaths r = run("run", "student.json");
  write_step(r, 2, encoder(2));
  write_state_dict(r.final_weights(), encoder(9));
  EXPECT_EQ(resolve_weights(r.dir), r.final_weights());
  const Weights w = read_weights(r.dir);
  expect_entries(w.entries, encoder(9));
  EXPECT_EQ(w.run_model, "student.json");
  // A file of the run knows its run too.
  EXPECT_EQ(read_weights(r.final_weights()).run_model, "student.json");
}

TEST_F(WeightsTest, WithoutFinalWeightsTheNewestValidCheckpointPassingOverADamagedOne) {
  const RunPaths r = run("run");
  write_step(r, 1, encoder(1));
  write_step(r, 2, encoder(2));
  write_step(r, 3, encoder(3));
  const std::string newest = r.checkpoints() + "/" + checkpoint_name(3);
  const std::string bytes = read_file(newest);
  write_file_atomic(newest, bytes.substr(0, bytes.size() / 2));  // cut short by a crash

  EXPECT_EQ(list_checkpoints(r).front(), newest);
  EXPECT_EQ(newest_valid_checkpoint(r), r.checkpoints() + "/" + checkpoint_name(2));
  const Weights w = read_weights(r.dir);
  EXPECT_EQ(w.file, r.checkpoints() + "/" + checkpoint_name(2));
  expect_entries(w.entries, encoder(2));  // a training checkpoint's weights: its model
  EXPECT_EQ(w.run_model, "vit_t");
  EXPECT_EQ(read_weights(r.checkpoints() + "/" + checkpoint_name(1)).run_model, "vit_t");
}

TEST_F(WeightsTest, ARunFolderWithNothingUsableIsNamed) {
  const RunPaths r = run("empty");
  write_file_atomic(r.checkpoints() + "/" + checkpoint_name(1), "not a checkpoint");
  EXPECT_FALSE(newest_valid_checkpoint(r));
  EXPECT_PRED2(contains, error_of([&] { resolve_weights(r.dir); }),
               "run folder '" + r.dir + "' has neither final.pth nor a valid checkpoint");
}

TEST_F(WeightsTest, TrainCheckpointFileReadsBackWhatWasWritten) {
  const RunPaths r = run("run");
  write_step(r, 7, encoder(7));
  const TrainCheckpointFile file =
      read_train_checkpoint(r.checkpoints() + "/" + checkpoint_name(7));
  EXPECT_EQ(file.meta.progress.step, 7);
  EXPECT_EQ(file.meta.config, json({{"lr", 0.001}}));
  EXPECT_EQ(file.meta.store_id, "store");
  expect_entries(file.model, encoder(7));
  EXPECT_EQ(peek_train_checkpoint(r.checkpoints() + "/" + checkpoint_name(7)).progress.step, 7);
  write_state_dict(path("plain.pth"), encoder(1));
  EXPECT_PRED2(contains, error_of([&] { peek_train_checkpoint(path("plain.pth")); }),
               "'" + path("plain.pth") + "' is not a samdistill training checkpoint");
}

}  // namespace
}  // namespace sd::io
