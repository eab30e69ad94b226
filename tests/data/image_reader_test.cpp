#include "data/image_reader.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/fixtures.h"
#include "data/loader.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace sd::data {
namespace {

using Clock = std::chrono::steady_clock;

// `n` entries "sa_<i>" held in memory; the test sources paint image i with the value i.
std::vector<Entry> entries(int n) {
  std::vector<Entry> out;
  for (int i = 0; i < n; ++i)
    out.push_back(Entry{"sa_" + std::to_string(i), "", "/data/sa_" + std::to_string(i) + ".jpg", "",
                        nullptr});
  return out;
}

std::vector<const Entry*> pointers(const std::vector<Entry>& all) {
  std::vector<const Entry*> out;
  for (const Entry& e : all) out.push_back(&e);
  return out;
}

int number(const Entry& entry) { return std::stoi(entry.id.substr(3)); }

at::Tensor painted(const Entry& entry) { return at::full({30, 40, 3}, number(entry), at::kByte); }

// Waits (at most two seconds) until `done` holds.
bool eventually(const std::function<bool()>& done) {
  const auto until = Clock::now() + std::chrono::seconds(2);
  while (!done() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return done();
}

ReadOptions with(int workers, int ahead) {
  ReadOptions o;
  o.workers = workers;
  o.ahead = ahead;
  return o;
}

TEST(ImageReader, HandsImagesOverInTheOrderAsked) {
  const std::vector<Entry> all = entries(24);
  std::vector<const Entry*> order = pointers(all);
  std::reverse(order.begin(), order.end());
  // Even images take longer: with four workers the odd ones after them are ready first.
  auto slow_evens = [](const Entry& e, const Record*) {
    if (number(e) % 2 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return painted(e);
  };
  ImageReader reader(order, slow_evens, with(4, 6));
  for (const Entry* expected : order) {
    std::optional<ImageItem> item = reader.next();
    ASSERT_TRUE(item);
    EXPECT_EQ(item->entry, expected);
    EXPECT_FALSE(item->skip);
    // SAM's input of the painted image: normalised red = (i - 123.675) / 58.395.
    EXPECT_NEAR(item->input.pixels[0][0][0].item<float>(), (number(*expected) - 123.675) / 58.395,
                1e-5);
    EXPECT_EQ(item->input.original_size, (models::Size2{30, 40}));
  }
  EXPECT_FALSE(reader.next());
  EXPECT_FALSE(reader.next());
}

TEST(ImageReader, ReadsAtMostAheadOfTheConsumer) {
  const std::vector<Entry> all = entries(20);
  std::atomic<int> reads{0};
  auto counted = [&](const Entry& e, const Record*) {
    ++reads;
    return painted(e);
  };
  ImageReader reader(pointers(all), counted, with(4, 3));
  ASSERT_TRUE(eventually([&] { return reads == 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(reads, 3);  // the queue is full: nobody reads on
  ASSERT_TRUE(reader.next());
  ASSERT_TRUE(eventually([&] { return reads == 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(reads, 4);
}

TEST(ImageReader, RunsTheWorkersAsked) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (auto [asked, expected] : {std::pair{1, 1}, std::pair{3, 3}, std::pair{0, cores}}) {
    SCOPED_TRACE("workers " + std::to_string(asked));
    const std::vector<Entry> all = entries(4 * expected);
    std::mutex mutex;
    std::set<std::thread::id> threads;
    // Each read waits (a while) for the others, so that every worker gets to read one.
    auto together = [&](const Entry& e, const Record*) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        threads.insert(std::this_thread::get_id());
      }
      eventually([&] {
        std::lock_guard<std::mutex> lock(mutex);
        return threads.size() >= static_cast<size_t>(expected);
      });
      return painted(e);
    };
    ImageReader reader(pointers(all), together, with(asked, 4 * expected));
    while (reader.next()) {
    }
    EXPECT_EQ(threads.size(), static_cast<size_t>(expected));
  }
}

// Images 3 and 8 are bad: the decoder refuses 3, and 8 is not an image at all.
at::Tensor two_bad(const Entry& e, const Record*) {
  if (number(e) == 3) throw Error(e.image_path + ": cannot decode image (test)");
  if (number(e) == 8) return at::zeros({5}, at::kByte);
  return painted(e);
}

struct Outcome {
  std::string id;
  std::optional<std::string> file, reason;
  bool operator==(const Outcome& o) const {
    return id == o.id && file == o.file && reason == o.reason;
  }
};

std::vector<Outcome> outcomes(const std::vector<Entry>& all, int workers) {
  std::vector<Outcome> out;
  ImageReader reader(pointers(all), two_bad, with(workers, 5));
  while (std::optional<ImageItem> item = reader.next()) {
    Outcome o{item->entry->id, std::nullopt, std::nullopt};
    if (item->skip) o.file = item->skip->file, o.reason = item->skip->reason;
    EXPECT_EQ(item->input.pixels.defined(), !item->skip);
    out.push_back(o);
  }
  return out;
}

TEST(ImageReader, BadImagesAreReportedIdenticallyInOrder) {
  const std::vector<Entry> all = entries(12);
  const std::vector<Outcome> one = outcomes(all, 1);
  ASSERT_EQ(one.size(), 12u);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(one[i].id, "sa_" + std::to_string(i));
    EXPECT_EQ(one[i].file.has_value(), i == 3 || i == 8) << i;
  }
  EXPECT_EQ(*one[3].file, "/data/sa_3.jpg");
  EXPECT_EQ(*one[3].reason, "cannot decode image (test)");  // the file is not repeated
  EXPECT_PRED2(testing::contains, *one[8].reason, "HxWx3");
  for (int run = 0; run < 3; ++run) EXPECT_EQ(outcomes(all, 4), one);

  // Strict: the images before the first bad one, then its error, naming the file.
  ReadOptions strict = with(4, 5);
  strict.strict = true;
  ImageReader reader(pointers(all), two_bad, strict);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(reader.next()->entry->id, "sa_" + std::to_string(i));
  EXPECT_EQ(testing::error_of([&] { reader.next(); }),
            "/data/sa_3.jpg: cannot decode image (test)");
  EXPECT_EQ(reader.next()->entry->id, "sa_4");
  ReadOptions strict8 = strict;
  ImageReader reader8(std::vector<const Entry*>{&all[8]}, two_bad, strict8);
  EXPECT_EQ(testing::error_of([&] { reader8.next(); }), "/data/sa_8.jpg: " + *one[8].reason);
}

// With records, a bad JSON is the file at fault, named once; the image is not read.
TEST(ImageReader, ABadRecordNamesItsJson) {
  const std::string dir = testing::make_temp_dir("sd-reader-json");
  std::vector<Entry> all = entries(3);
  for (Entry& e : all) e.json_path = dir + "/" + e.id + ".json";
  for (const char* id : {"sa_0", "sa_2"})
    write_file_atomic(dir + "/" + id + ".json",
                      R"({"image": {"width": 40, "height": 30}, "annotations": []})");
  write_file_atomic(dir + "/sa_1.json", R"({"image": {"width": 40, "height": 30}})");
  std::atomic<int> decoded{0};
  auto count = [&](const Entry& e, const Record*) {
    ++decoded;
    return painted(e);
  };
  ReadOptions records = with(2, 3);
  records.records = true;
  ImageReader reader(pointers(all), count, records);
  std::vector<std::optional<Skip>> skips;
  while (std::optional<ImageItem> item = reader.next()) skips.push_back(item->skip);
  ASSERT_EQ(skips.size(), 3u);
  EXPECT_FALSE(skips[0] || skips[2]);
  ASSERT_TRUE(skips[1]);
  EXPECT_EQ(skips[1]->file, dir + "/sa_1.json");
  EXPECT_EQ(skips[1]->reason, "missing field 'annotations'");
  EXPECT_EQ(describe(*skips[1]), dir + "/sa_1.json: missing field 'annotations'");
  EXPECT_EQ(decoded, 2);

  records.strict = true;
  ImageReader strict(std::vector<const Entry*>{&all[1]}, count, records);
  EXPECT_EQ(testing::error_of([&] { strict.next(); }),
            dir + "/sa_1.json: missing field 'annotations'");
  std::filesystem::remove_all(dir);
}

// One line per skipped record, naming the file once.
TEST(Skip, DescribeNamesTheFileOnce) {
  EXPECT_EQ(skip_of("/d/sa_1.jpg", "/d/sa_1.jpg: truncated JPEG").reason, "truncated JPEG");
  EXPECT_EQ(describe(skip_of("/d/sa_1.jpg", "/d/sa_1.jpg: truncated JPEG")),
            "/d/sa_1.jpg: truncated JPEG");
  EXPECT_EQ(describe(skip_of("/d/sa_1.jpg", "cannot read '/d/sa_1.jpg': No such file")),
            "cannot read '/d/sa_1.jpg': No such file");
  EXPECT_EQ(describe({"/d/sa_1.jpg", "image without its JSON"}),
            "/d/sa_1.jpg: image without its JSON");
  EXPECT_EQ(skips_json({{"a.jpg", "why"}}),
            nlohmann::json::parse(R"([{"file": "a.jpg", "reason": "why"}])"));
}

TEST(ImageReader, DestroyedEarlyStopsAfterTheImagesBeingRead) {
  const std::vector<Entry> all = entries(200);
  auto slow = [](const Entry& e, const Record*) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return painted(e);
  };
  for (int taken : {0, 2}) {
    auto reader = std::make_unique<ImageReader>(pointers(all), slow, with(4, 50));
    for (int i = 0; i < taken; ++i) ASSERT_TRUE(reader->next());
    const auto start = Clock::now();
    reader.reset();
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 1.0);
  }
  ImageReader nothing(std::vector<const Entry*>{}, slow, with(4, 2));
  EXPECT_FALSE(nothing.next());
}

TEST(ImageReader, RefusesImpossibleOptions) {
  EXPECT_THROW(ImageReader(std::vector<const Entry*>{}, two_bad, with(-1, 2)), Error);
  EXPECT_THROW(ImageReader(std::vector<const Entry*>{}, two_bad, with(2, 0)), Error);
}

// The loader reports a bad file with the reader's words.
TEST(ImageReader, TheLoaderSkipsWithTheReadersReason) {
  const std::vector<Entry> all = entries(6);
  LoaderOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  o.read_records = false;
  Loader loader(Dataset::from_entries(all), two_bad, o);
  loader.start(0);
  while (loader.next()) {
  }
  const std::vector<Outcome> read = outcomes(all, 2);
  ASSERT_EQ(loader.skips().size(), 1u);
  EXPECT_EQ(loader.skips()[0].file, *read[3].file);
  EXPECT_EQ(loader.skips()[0].reason, *read[3].reason);
}

// SAM's input made in one pass (resize rows straight into the normalisation) and from the
// kept resized image: the same bits, as are the resized image and data::resize_longest_side.
TEST(ImageReader, ResizedImageAndInputAgreeWithPreprocessing) {
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV: no image decoder";
  const Dataset sample = Dataset::index_sa1b({testing::data_sample()}, nullptr).head(2);
  ASSERT_EQ(sample.size(), 2u);
  ReadOptions both = with(2, 2), input_only = with(2, 2);
  both.resized = true;
  both.records = true;
  ImageReader a(sample, decoded_images(default_image_decoder()), both);
  ImageReader b(sample, decoded_images(default_image_decoder()), input_only);
  for (size_t i = 0; i < sample.size(); ++i) {
    const ImageItem x = *a.next(), y = *b.next();
    ASSERT_FALSE(x.skip || y.skip);
    EXPECT_EQ(x.record.image.height, x.input.original_size[0]);
    EXPECT_TRUE(x.input.pixels.equal(y.input.pixels));
    EXPECT_EQ(x.input.input_size, y.input.input_size);
    EXPECT_EQ(x.input.original_size, y.input.original_size);
    EXPECT_TRUE(x.resized.equal(
        resize_longest_side(read_image(sample[i], default_image_decoder(), nullptr))));
    EXPECT_FALSE(y.resized.defined());
  }
}

}  // namespace
}  // namespace sd::data
