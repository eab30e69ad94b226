#include "io/tensorboard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/events.h"
#include "common/fixtures.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::io {
namespace {

class EventFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::can_decode_events())
      GTEST_SKIP() << "built without protobuf and protoc (libprotobuf-dev, protobuf-compiler): "
                      "event files cannot be decoded";
    dir_ = testing::make_temp_dir("samdistill-events");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string dir_;
};

TEST_F(EventFiles, ScalarsAndImagesDecodeWithTensorBoardsDefinitions) {
  std::string path;
  {
    EventWriter w(dir_);
    path = w.path();
    w.scalar("loss", 3, 0.25);
    w.scalar("lr_groups/1", 4, 1e-4);
    w.scalar("grad_norm", 5, NAN);
    w.image("eval/box", 0, "\x89PNG fake", 40, 30);
  }
  EXPECT_TRUE(is_event_file(fs::path(path).filename().string()));
  EXPECT_EQ(event_files(dir_), std::vector<std::string>{path});
  const std::vector<testing::DecodedEvent> e = testing::decode_events(path);
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0].file_version, "brain.Event:2");
  EXPECT_GT(e[0].wall_time, 1.6e9);
  EXPECT_EQ(e[1].tag, "loss");
  EXPECT_EQ(e[1].step, 3);
  EXPECT_TRUE(e[1].has_scalar);
  EXPECT_FLOAT_EQ(e[1].scalar, 0.25f);
  EXPECT_EQ(e[2].tag, "lr_groups/1");
  EXPECT_FLOAT_EQ(e[2].scalar, 1e-4f);
  EXPECT_TRUE(std::isnan(e[3].scalar));
  EXPECT_TRUE(e[4].has_image);
  EXPECT_FALSE(e[4].has_scalar);
  EXPECT_EQ(e[4].tag, "eval/box");
  EXPECT_EQ(e[4].width, 40);
  EXPECT_EQ(e[4].height, 30);
  EXPECT_EQ(e[4].colorspace, 3) << "RGB";
  EXPECT_EQ(e[4].png, "\x89PNG fake");
}

TEST_F(EventFiles, EachWriterStartsItsOwnFile) {
  const std::string first = EventWriter(dir_).path(), second = EventWriter(dir_).path();
  EXPECT_NE(first, second);
  EXPECT_EQ(event_files(dir_), (std::vector<std::string>{first, second}));
}

TEST_F(EventFiles, KeepScalarsDropsTheRejectedAndATornTail) {
  std::string path;
  {
    EventWriter w(dir_);
    path = w.path();
    for (int step = 1; step <= 4; ++step) w.scalar("loss", step, step);
    w.image("picture", 9, "png", 1, 1);
  }
  std::ofstream(path, std::ios::app) << std::string("\x20\0\0\0", 4);  // a kill mid-record
  keep_scalars(path, [](const ScalarEvent& s) { return s.tag == "loss" && s.step <= 2; });
  const std::vector<testing::DecodedEvent> e = testing::decode_events(path);
  ASSERT_EQ(e.size(), 4u) << "version, loss at 1 and 2, the image";
  EXPECT_EQ(e[0].file_version, "brain.Event:2");
  EXPECT_EQ(e[1].step, 1);
  EXPECT_EQ(e[2].step, 2);
  EXPECT_FLOAT_EQ(e[2].scalar, 2.0f);
  EXPECT_TRUE(e[3].has_image);
}

}  // namespace
}  // namespace sd::io
