// --data's sources: SA-1B folders and tars (read in place), plain image folders, COCO files.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/image_reader.h"
#include "data/stats.h"
#include "data/tar.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/png.h"

namespace fs = std::filesystem;

namespace sd::data {
namespace {

using testing::contains;
using testing::error_of;

#define SD_REQUIRE_TAR() \
  if (!tar_reading_available()) GTEST_SKIP() << "built without libarchive: no tars"

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// `tar` of the folder's contents (relative names), in `format` (gnu, pax, ustar).
void make_tar(const std::string& tar, const std::string& folder,
              const std::string& format = "gnu") {
  const std::string command = "tar --format=" + format + " -cf '" + tar + "' -C '" + folder + "' .";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

// The first `bytes` of a file, as a new file (a download cut short).
void cut(const std::string& from, const std::string& to, uint64_t bytes) {
  write(to, read_file(from).substr(0, bytes));
}

std::vector<std::string> ids(const Dataset& d) {
  std::vector<std::string> out;
  for (const Entry& e : d.entries()) out.push_back(e.id);
  return out;
}

struct TempDir {
  std::string path = testing::make_temp_dir("sd-sources");
  ~TempDir() { fs::remove_all(path); }
};

// Every member of a tar reads back the bytes of its file, whatever the header format (pax and
// GNU long names put extra headers before the data).
TEST(Tar, MembersReadBackTheirFilesInEveryFormat) {
  SD_REQUIRE_TAR();
  TempDir t;
  const std::string long_name = "deep/" + std::string(150, 'n') + ".bin";
  std::map<std::string, std::string> files = {
      {"a.bin", std::string(1000, 'a')}, {"sub/b.bin", ""}, {long_name, std::string(3001, 'c')}};
  files["sub/b.bin"] = read_file(testing::data_sample() + "/sa_100001.jpg");
  for (const auto& [name, bytes] : files) write(t.path + "/in/" + name, bytes);
  for (const std::string format : {"gnu", "pax"}) {
    const std::string tar = t.path + "/" + format + ".tar";
    make_tar(tar, t.path + "/in", format);
    const auto index = TarFile::open(tar);
    EXPECT_TRUE(index->damage().empty());
    std::map<std::string, std::string> read;
    for (const TarMember& m : index->members())
      read[fs::path(m.name).lexically_normal().generic_string()] = index->read(m);
    EXPECT_EQ(read, files) << format;
  }
}

// A tar cut in the middle of a member's data keeps the members before it and says where the
// damage is; so does one cut inside a header.
TEST(Tar, TruncatedTarKeepsTheMembersBeforeTheDamage) {
  SD_REQUIRE_TAR();
  TempDir t;
  for (int i = 1; i <= 3; ++i)
    write(t.path + "/in/m" + std::to_string(i) + ".bin", std::string(5000, 'x'));
  make_tar(t.path + "/whole.tar", t.path + "/in");
  const auto whole = TarFile::open(t.path + "/whole.tar");
  ASSERT_EQ(whole->members().size(), 3u);
  const TarMember third = whole->members()[2];

  cut(t.path + "/whole.tar", t.path + "/data.tar", third.offset + 100);  // in m3's data
  const auto in_data = TarFile::open(t.path + "/data.tar");
  EXPECT_EQ(in_data->members().size(), 2u);
  ASSERT_EQ(in_data->damage().size(), 1u);
  EXPECT_PRED2(contains, in_data->damage()[0],
               "cut short at byte " + std::to_string(third.offset + 100));
  EXPECT_PRED2(contains, in_data->damage()[0], third.name);
  EXPECT_EQ(in_data->read(in_data->members()[1]), std::string(5000, 'x'));

  cut(t.path + "/whole.tar", t.path + "/header.tar", third.offset - 300);  // in m3's header
  const auto in_header = TarFile::open(t.path + "/header.tar");
  EXPECT_EQ(in_header->members().size(), 2u);
  ASSERT_EQ(in_header->damage().size(), 1u);
  EXPECT_PRED2(contains, in_header->damage()[0], "at byte " + std::to_string(third.offset - 512));
}

TEST(Tar, CompressedOrNotATarIsRefusedNamingTheFile) {
  SD_REQUIRE_TAR();
  TempDir t;
  write(t.path + "/in/a.bin", std::string(10, 'a'));
  make_tar(t.path + "/a.tar", t.path + "/in");
  ASSERT_EQ(std::system(("gzip -c '" + t.path + "/a.tar' > '" + t.path + "/gz.tar'").c_str()), 0);
  EXPECT_PRED2(contains, error_of([&] { TarFile::open(t.path + "/gz.tar"); }),
               t.path + "/gz.tar: a compressed tar (gzip)");
  write(t.path + "/text.tar", std::string(2000, 'z'));
  EXPECT_PRED2(contains, error_of([&] { TarFile::open(t.path + "/text.tar"); }),
               t.path + "/text.tar: not a tar");
}

// The tars the fuzzer found crashing the index (a header libarchive gives no error text
// for): refused or indexed, never a crash.
TEST(Tar, FuzzRegressionsAreRefusedOrIndexed) {
  SD_REQUIRE_TAR();
  const std::string dir = testing::source_dir() + "/fuzz/regressions/tar";
  for (const auto& f : fs::directory_iterator(dir)) {
    try {
      const auto tar = TarFile::open(f.path().string());
      for (const TarMember& m : tar->members()) tar->read(m);
    } catch (const Error& e) {
      EXPECT_PRED2(contains, e.what(), f.path().string());
    }
  }
}

// A plain folder: every image file, recursively, any letter case of its extension; the id is
// the path less the extension. Other files are not images.
TEST(Sources, PlainFolderIdsAreRelativePathsLessExtension) {
  TempDir t;
  const std::string jpg = read_file(testing::data_sample() + "/sa_100002.jpg");
  for (const std::string name : {"b.JPG", "a/x.jpeg", "a/y.Png", "a/deep/z.TIFF", "c.webp", "d.bmp",
                                 "e.tif", "notes.txt", "f.json", "g.jpg.bak"})
    write(t.path + "/photos/" + name, jpg);
  const Dataset d = Dataset::open({t.path + "/photos"}, "", nullptr);
  EXPECT_EQ(ids(d), (std::vector<std::string>{"a/deep/z", "a/x", "a/y", "b", "c", "d", "e"}));
  EXPECT_FALSE(d.all_have_masks());
  EXPECT_EQ(d[3].image_path, t.path + "/photos/b.JPG");
  EXPECT_EQ(d[3].group, "photos");
  const Record r = load_record(d[3]);
  EXPECT_TRUE(r.annotations.empty());
  EXPECT_EQ(r.image.width, 0);  // known once read

  // Hashed subsets and list files select plain ids as SA-1B ones.
  write(t.path + "/list.txt", "a/x.jpeg\nb\n");
  SubsetSpec spec;
  spec.list_file = t.path + "/list.txt";
  EXPECT_EQ(ids(d.subset(spec)), (std::vector<std::string>{"a/x", "b"}));
}

TEST(Sources, OneIdFromTwoFilesIsAnErrorNamingBoth) {
  TempDir t;
  write(t.path + "/p/a.jpg", "1");
  write(t.path + "/p/a.PNG", "2");
  const std::string message = error_of([&] { Dataset::open({t.path + "/p"}, "", nullptr); });
  EXPECT_PRED2(contains, message, "image id 'a' is given twice");
  EXPECT_PRED2(contains, message, t.path + "/p/a.jpg");
  EXPECT_PRED2(contains, message, t.path + "/p/a.PNG");
  // The same SA-1B image in a folder and in a tar.
  if (!tar_reading_available()) return;
  make_tar(t.path + "/sample.tar", testing::data_sample());
  const std::string both = error_of([&] {
    Dataset::open({testing::data_sample(), t.path + "/sample.tar"}, "", nullptr);
  });
  EXPECT_PRED2(contains, both, "image id 'sa_100001' is given twice");
  EXPECT_PRED2(contains, both, t.path + "/sample.tar:./sa_100001.jpg");
}

TEST(Sources, WhatIsNoSourceIsNamed) {
  TempDir t;
  write(t.path + "/notes.txt", "x");
  EXPECT_PRED2(contains, error_of([&] { Dataset::open({t.path + "/notes.txt"}, "", nullptr); }),
               t.path + "/notes.txt: not a folder, .tar or .json");
  EXPECT_PRED2(contains, error_of([&] { Dataset::open({t.path + "/none"}, "", nullptr); }),
               t.path + "/none: no such file or folder");
}

// An SA-1B tar gives the folder's entries, ids and records, read in place.
TEST(Sources, Sa1bTarReadsAsItsFolder) {
  SD_REQUIRE_TAR();
  TempDir t;
  make_tar(t.path + "/sa_000020.tar", testing::data_sample());
  std::vector<Skip> skipped;
  const Dataset folder = Dataset::open({testing::data_sample()}, "", &skipped);
  const Dataset tar = Dataset::open({t.path + "/sa_000020.tar"}, "", &skipped);
  EXPECT_TRUE(skipped.empty());
  ASSERT_EQ(ids(tar), ids(folder));
  ASSERT_EQ(tar.size(), 5u);
  EXPECT_TRUE(tar.all_have_masks());
  for (size_t i = 0; i < tar.size(); ++i) {
    EXPECT_EQ(tar[i].group, "sa_000020");
    EXPECT_EQ(read_image_bytes(tar[i]), read_image_bytes(folder[i]));
    const Record a = load_record(tar[i]), b = load_record(folder[i]);
    ASSERT_EQ(a.annotations.size(), b.annotations.size());
    EXPECT_EQ(a.annotations.back().segmentation.counts, b.annotations.back().segmentation.counts);
  }
  // A subset list naming the tar keeps its images.
  write(t.path + "/list.txt", "sa_000020.tar\n");
  SubsetSpec spec;
  spec.list_file = t.path + "/list.txt";
  EXPECT_EQ(tar.subset(spec).size(), 5u);
}

// A tar cut in the middle: the images before the damage, and one skip naming the tar and
// where; with strict readers that is the first error.
TEST(Sources, TruncatedSa1bTarYieldsTheImagesBeforeTheDamage) {
  SD_REQUIRE_TAR();
  TempDir t;
  make_tar(t.path + "/whole.tar", testing::data_sample());
  const auto whole = TarFile::open(t.path + "/whole.tar");
  uint64_t cut_at = 0;  // in the middle of the last member's data
  for (const TarMember& m : whole->members()) cut_at = std::max(cut_at, m.offset + m.size / 2);
  cut(t.path + "/whole.tar", t.path + "/cut.tar", cut_at);
  std::vector<Skip> skipped;
  const Dataset d = Dataset::open({t.path + "/cut.tar"}, "", &skipped);
  EXPECT_EQ(d.size(), 4u);  // the last member's pair lost one half: an orphan
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped[0].file, t.path + "/cut.tar");
  EXPECT_PRED2(contains, skipped[0].reason, "cut short at byte " + std::to_string(cut_at));
  for (const Entry& e : d.entries()) EXPECT_NO_THROW(load_record(e));
}

nlohmann::json coco_with(const nlohmann::json& images, const nlohmann::json& annotations) {
  return {
      {"images", images}, {"annotations", annotations}, {"categories", nlohmann::json::array()}};
}

// COCO: an image listed but missing, a bad polygon, an annotation of an unknown image: each
// skipped with its file and reason; the rest is kept.
TEST(Sources, CocoBadAnnotationsAndMissingImagesAreSkippedNamed) {
  TempDir t;
  write(t.path + "/imgs/sub/a.jpg", "x");
  const nlohmann::json coco = coco_with(
      {{{"id", 1}, {"width", 6}, {"height", 6}, {"file_name", "sub/a.jpg"}},
       {{"id", 2}, {"width", 6}, {"height", 6}, {"file_name", "gone.jpg"}}},
      {{{"id", 10}, {"image_id", 1}, {"segmentation", {{1, 1, 4, 1, 4, 4, 1, 4}}}},
       {{"id", 11}, {"image_id", 1}, {"segmentation", {{1, 1, 4}}}},
       {{"id", 12}, {"image_id", 7}, {"segmentation", {{"size", {6, 6}}, {"counts", {36}}}}},
       {{"id", 13},
        {"image_id", 1},
        {"segmentation", {{"size", {6, 6}}, {"counts", {7, 2, 27}}}},
        {"iscrowd", 1}}});
  write(t.path + "/ann/instances.json", coco.dump());
  std::vector<Skip> skipped;
  const Dataset d = Dataset::open({t.path + "/ann/instances.json"}, t.path + "/imgs", &skipped);
  ASSERT_EQ(ids(d), (std::vector<std::string>{"sub/a"}));
  EXPECT_TRUE(d.all_have_masks());
  const Record r = load_record(d[0]);
  ASSERT_EQ(r.annotations.size(), 2u);  // the polygon and the RLE (iscrowd)
  EXPECT_EQ(r.annotations[1].area, 2);
  ASSERT_EQ(skipped.size(), 3u);
  EXPECT_EQ(skipped[0].file, t.path + "/ann/instances.json");
  EXPECT_PRED2(contains, skipped[0].reason, "annotations[1]: polygon needs at least 3");
  EXPECT_PRED2(contains, skipped[1].reason, "annotations[2]: image_id 7 is not in 'images'");
  EXPECT_EQ(skipped[2].file, t.path + "/imgs/gone.jpg");
  EXPECT_PRED2(contains, skipped[2].reason, "listed in " + t.path + "/ann/instances.json");
  // --images defaults to the JSON's folder: none of the images there is an error naming it.
  EXPECT_PRED2(
      contains,
      testing::error_of([&] { Dataset::open({t.path + "/ann/instances.json"}, "", &skipped); }),
      "none of the 2 images listed in " + t.path + "/ann/instances.json is in the folder '" +
          t.path + "/ann' (e.g. " + t.path + "/ann/sub/a.jpg): give --images");
}

// Plain images of every kind through the one reader: grey and palette become RGB, bad files
// are skipped with their file and reason, counted as data stats counts them.
TEST(Sources, BadPlainImagesAreSkippedNamedAndCounted) {
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV";
  TempDir t;
  const std::string jpg = read_file(testing::data_sample() + "/sa_100003.jpg");
  write(t.path + "/p/good.jpg", jpg);
  write(t.path + "/p/empty.png", "");
  write(t.path + "/p/text.jpg", "this is not an image\n");
  write(t.path + "/p/cut.jpg", jpg.substr(0, jpg.size() / 2));
  write(t.path + "/p/big.png", encode_png(std::string(1200 * 1000, '\x80'), 1200, 1000, 8, 0));
  const Dataset d = Dataset::open({t.path + "/p"}, "", nullptr);
  ASSERT_EQ(d.size(), 5u);
  const DataStats stats = compute_stats(d, default_image_decoder(1'000'000), 2, false);
  EXPECT_EQ(stats.images, 1);
  std::map<std::string, std::string> reasons;
  for (const Skip& s : stats.skipped) reasons[fs::path(s.file).filename().string()] = s.reason;
  ASSERT_EQ(reasons.size(), 4u);
  EXPECT_PRED2(contains, reasons["big.png"], "image of 1200 x 1000 pixels is over the limit");
  EXPECT_PRED2(contains, reasons["cut.jpg"], "truncated JPEG");
  EXPECT_PRED2(contains, reasons["text.jpg"], "not a JPEG, PNG, BMP, WebP or TIFF image");
  EXPECT_PRED2(contains, reasons["empty.png"], "empty file");
  EXPECT_PRED2(contains, error_of([&] { compute_stats(d, default_image_decoder(), 1, true); }),
               t.path + "/p/cut.jpg: truncated JPEG");
}

// PNGs of every colour type become RGB as PIL's convert("RGB") makes them: grey repeated, the
// palette looked up, alpha dropped (not blended), 16-bit samples by their high byte.
TEST(Sources, PngColourTypesBecomeRgb) {
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV";
  const ImageDecoder decode = default_image_decoder();
  auto pixels = [&](const std::string& png) {
    const at::Tensor rgb = decode(png, "test.png");
    EXPECT_EQ(rgb.sizes(), (at::IntArrayRef{1, 2, 3}));
    return std::vector<int>(rgb.data_ptr<uint8_t>(), rgb.data_ptr<uint8_t>() + 6);
  };
  using V = std::vector<int>;
  EXPECT_EQ(pixels(encode_png("\x10\xf0", 2, 1, 8, 0)), (V{16, 16, 16, 240, 240, 240}));  // grey
  EXPECT_EQ(pixels(encode_png(std::string("\x00\x01", 2), 2, 1, 8, 3,
                              std::string("\x0a\x14\x1e\xc8\x64\x32", 6), "\x00")),
            (V{10, 20, 30, 200, 100, 50}));  // palette (with tRNS)
  EXPECT_EQ(pixels(encode_png(std::string("\x0a\x14\x1e\x00\x28\x32\x3c\x80", 8), 2, 1, 8, 6)),
            (V{10, 20, 30, 40, 50, 60}));  // RGBA: alpha 0 and 128 dropped
  EXPECT_EQ(pixels(encode_png(std::string("\x05\x00\x07\xff", 4), 2, 1, 8, 4)),
            (V{5, 5, 5, 7, 7, 7}));  // grey + alpha
  EXPECT_EQ(pixels(encode_png(std::string("\x12\x34\xab\xcd", 4), 2, 1, 16, 0)),
            (V{0x12, 0x12, 0x12, 0xab, 0xab, 0xab}));  // 16-bit grey: high byte
  EXPECT_EQ(pixels(encode_png(std::string("\x01\xff\x02\xff\x03\xff\xfe\x01\xfd\x01\xfc\x01", 12),
                              2, 1, 16, 2)),
            (V{1, 2, 3, 254, 253, 252}));  // 16-bit RGB: high byte
}

// An image from the store's cache comes resized; its input keeps the original size of its
// record, the frame its annotations' prompts are in (finetune places them with it).
TEST(Sources, CachedImagesKeepTheirRecordsOriginalSize) {
  Record record;
  record.image.height = 2048;
  record.image.width = 1536;
  const Dataset d =
      Dataset::from_entries({Entry{"a", "", "a.jpg", "", std::make_shared<const Record>(record)}});
  ReadOptions read;
  read.records = true;
  ImageReader reader(
      d,
      [](const Entry&, const Record*) {
        return at::zeros({1024, 768, 3}, at::kByte);
      },
      read);
  const ImageItem item = *reader.next();
  ASSERT_FALSE(item.skip) << describe(*item.skip);
  EXPECT_EQ(item.input.original_size, (models::Size2{2048, 1536}));
  EXPECT_EQ(item.input.input_size, (models::Size2{1024, 768}));
}

// A plain image's record takes its size from its pixels (eval and finetune place their grid
// and random points with it).
TEST(Sources, PlainImageRecordGetsTheDecodedSize) {
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV";
  TempDir t;
  write(t.path + "/p/one.jpg", read_file(testing::data_sample() + "/sa_100003.jpg"));
  const Dataset d = Dataset::open({t.path + "/p"}, "", nullptr);
  ReadOptions read;
  read.records = true;
  read.input = false;
  ImageReader reader(d, decoded_images(default_image_decoder()), read);
  const ImageItem item = *reader.next();
  ASSERT_FALSE(item.skip) << describe(*item.skip);
  const at::Tensor rgb = read_image(d[0], default_image_decoder(), nullptr);
  EXPECT_EQ(item.record.image.height, rgb.size(0));
  EXPECT_EQ(item.record.image.width, rgb.size(1));
}

}  // namespace
}  // namespace sd::data
