// Data from strangers (issue 31): crafted images, folders, tars and JSON that once hung a run,
// read outside its folder, took gigabytes for a few bytes or lost data silently. Each is now a
// named skip or a clear refusal, in bounded time and memory; the cases keep their numbers.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/image_reader.h"
#include "data/records.h"
#include "data/rle.h"
#include "data/stats.h"
#include "data/tar.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/names.h"

namespace fs = std::filesystem;

namespace sd::data {
namespace {

using sd::testing::contains;
using sd::testing::error_of;

struct TempDir {
  std::string path = sd::testing::make_temp_dir("sd-strangers");
  ~TempDir() { fs::remove_all(path); }
};

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string asset(const std::string& name) {
  return read_file(sd::testing::source_dir() + "/tests/data/assets/formats/" + name);
}

std::string u16be(uint32_t v) { return {char(v >> 8), char(v)}; }
std::string u32le(uint32_t v) { return {char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; }

// A JPEG whose frame header (width x height) comes after a restart marker: SOI, RST0, SOF0.
std::string jpeg_after_restart(uint32_t width, uint32_t height) {
  return std::string("\xFF\xD8\xFF\xD0\xFF\xC0\x00\x11\x08", 9) + u16be(height) + u16be(width) +
         std::string("\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xFF\xD9", 12);
}

// An extended WebP (VP8X) declaring its canvas.
std::string webp_declaring(uint32_t width, uint32_t height) {
  const uint32_t w = width - 1, h = height - 1;
  return "RIFF" + u32le(22) + "WEBPVP8X" + u32le(10) + std::string(4, '\0') +
         std::string{char(w), char(w >> 8), char(w >> 16), char(h), char(h >> 8), char(h >> 16)};
}

// A little-endian TIFF whose first directory gives ImageWidth and ImageLength (LONG).
std::string tiff_declaring(uint32_t width, uint32_t height) {
  auto entry = [](uint16_t tag, uint32_t value) {
    return std::string{char(tag), char(tag >> 8), 4, 0} + u32le(1) + u32le(value);
  };
  return std::string("II*\0", 4) + u32le(8) + std::string("\x02\x00", 2) + entry(256, width) +
         entry(257, height) + u32le(0);
}

// 1. The pixel limit holds for every format, whatever comes before the size in the header.
TEST(Strangers, Case1_SizesOfEveryFormatAreFound) {
  using Size = std::array<int64_t, 2>;
  for (const char* name : {"lossy.webp", "lossless.webp", "little.tif", "plain.bmp"})
    EXPECT_EQ(declared_image_size(asset(name)), (Size{7, 5})) << name;
  EXPECT_EQ(declared_image_size(jpeg_after_restart(30000, 20000)), (Size{30000, 20000}));
  EXPECT_EQ(declared_image_size(webp_declaring(12000, 11000)), (Size{12000, 11000}));
  EXPECT_EQ(declared_image_size(tiff_declaring(12000, 11000)), (Size{12000, 11000}));
  if (!image_decoding_available()) return;
  for (const char* name : {"lossy.webp", "lossless.webp", "little.tif", "plain.bmp"}) {
    const at::Tensor rgb = default_image_decoder()(asset(name), name);
    EXPECT_EQ(rgb.sizes(), (std::vector<int64_t>{5, 7, 3})) << name;
  }
}

TEST(Strangers, Case1_BombsOfEveryFormatAreRefusedBeforeDecoding) {
  const std::map<std::string, std::string> bombs = {
      {"a.jpg", jpeg_after_restart(30000, 30000)},
      {"b.jpg", jpeg_after_restart(65000, 65000)},
      {"c.webp", webp_declaring(12000, 12000)},
      {"d.tif", tiff_declaring(12000, 12000)},
      {"e.bmp", "BM" + std::string(12, '\0') + u32le(40) + u32le(20000) + u32le(uint32_t(-20000)) +
                    std::string(40, '\0')}};
  for (const auto& [name, bytes] : bombs) {
    EXPECT_PRED2(contains, error_of([&] { check_pixel_limit(bytes, name, 100'000'000); }),
                 name + ": image of ")
        << name;
    EXPECT_PRED2(contains, error_of([&] { check_pixel_limit(bytes, name, 100'000'000); }),
                 "pixels is over the limit of 100000000");
  }
  // Other formats (OpenCV would write HDR to a temporary file) and headers without a size.
  EXPECT_PRED2(contains,
               error_of([] { check_pixel_limit("#?RADIANCE\nFORMAT=x\n", "h.png", 100000000); }),
               "h.png: not a JPEG, PNG, BMP, WebP or TIFF image");
  EXPECT_PRED2(contains, error_of([] {
                 check_pixel_limit(std::string("\xFF\xD8\xFF\xD9", 4), "x.jpg", 100000000);
               }),
               "x.jpg: no image size found");
}

// Through the readers: a skip naming the file; a 3 GB sparse file costs one small read.
TEST(Strangers, Case1_BigFilesAreRefusedFromTheirHead) {
  TempDir t;
  write(t.path + "/p/bomb.jpg", jpeg_after_restart(30000, 30000));
  write(t.path + "/p/bomb_w.webp", webp_declaring(12000, 12000));
  write(t.path + "/p/hdr.png", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 2\n");
  for (const auto& [name, head] :
       std::map<std::string, std::string>{{"sparse.png", tiff_declaring(50000, 50000)},
                                          {"sparse_small.tif", tiff_declaring(10, 10)}}) {
    write(t.path + "/p/" + name, head);
    ASSERT_EQ(::truncate((t.path + "/p/" + name).c_str(), off_t(3) << 30), 0);
  }
  const Dataset d = Dataset::open({t.path + "/p"}, "", nullptr);
  const auto start = std::chrono::steady_clock::now();
  const DataStats stats = compute_stats(d, default_image_decoder(), 2, false);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5);
  EXPECT_EQ(stats.images, 0);
  std::map<std::string, std::string> reasons;
  for (const Skip& s : stats.skipped) reasons[fs::path(s.file).filename().string()] = s.reason;
  ASSERT_EQ(reasons.size(), 5u);
  EXPECT_PRED2(contains, reasons["bomb.jpg"], "30000 x 30000 pixels is over the limit");
  EXPECT_PRED2(contains, reasons["bomb_w.webp"], "12000 x 12000 pixels is over the limit");
  EXPECT_PRED2(contains, reasons["hdr.png"], "not a JPEG, PNG, BMP, WebP or TIFF image");
  EXPECT_PRED2(contains, reasons["sparse.png"], "50000 x 50000 pixels is over the limit");
  EXPECT_PRED2(contains, reasons["sparse_small.tif"],
               "3221225472 bytes, more than an image of 10 x 10 pixels can hold");
}

TEST(Strangers, Case1_TheLimitIsSetByTheFlagBeforeTheVariable) {
  setenv("SAMDISTILL_MAX_IMAGE_PIXELS", "5000", 1);
  EXPECT_EQ(max_image_pixels(), 5000);
  set_max_image_pixels(70);
  EXPECT_EQ(max_image_pixels(), 70);
  EXPECT_PRED2(contains, error_of([] { check_image_head(asset("plain.bmp"), 174, "s.bmp", 30); }),
               "s.bmp: image of 7 x 5 pixels is over the limit of 30");
  set_max_image_pixels(0);
  unsetenv("SAMDISTILL_MAX_IMAGE_PIXELS");
  EXPECT_EQ(max_image_pixels(), 100'000'000);
}

nlohmann::json coco_with(const nlohmann::json& images, const nlohmann::json& annotations) {
  return {{"images", images}, {"annotations", annotations}};
}

nlohmann::json image(int id, const std::string& file, int width = 8, int height = 8) {
  return {{"id", id}, {"width", width}, {"height", height}, {"file_name", file}};
}

std::map<std::string, std::string> reasons_by_file(const std::vector<Skip>& skipped,
                                                   const std::string& root) {
  std::map<std::string, std::string> out;
  for (const Skip& s : skipped)
    out[s.file.rfind(root, 0) == 0 ? s.file.substr(root.size()) : s.file] += s.reason + "\n";
  return out;
}

// 2. COCO image paths: a FIFO, a link to a device or out of the folder, a name too long and a
// symlink loop are each skipped, named; the run goes on at once.
TEST(Strangers, Case2_CocoImagePathsThatAreNotFilesOfTheFolderAreSkipped) {
  TempDir t;
  const std::string imgs = t.path + "/imgs";
  write(imgs + "/ok.png", "x");
  ASSERT_EQ(::mkfifo((imgs + "/fifo.jpg").c_str(), 0644), 0);
  fs::create_symlink("/dev/zero", imgs + "/zero.jpg");
  fs::create_directory_symlink("/etc", imgs + "/etcl");
  fs::create_symlink(imgs + "/loop_b.jpg", imgs + "/loop_a.jpg");
  fs::create_symlink(imgs + "/loop_a.jpg", imgs + "/loop_b.jpg");
  const std::string long_name(300, 'n');
  write(t.path + "/coco.json",
        coco_with({image(1, "ok.png"), image(2, "fifo.jpg"), image(3, "zero.jpg"),
                   image(4, "etcl/passwd"), image(5, long_name + ".jpg"), image(6, "loop_a.jpg")},
                  nlohmann::json::array())
            .dump());
  std::vector<Skip> skipped;
  const Dataset d = Dataset::open({t.path + "/coco.json"}, imgs, &skipped);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].id, "ok");
  auto reasons = reasons_by_file(skipped, imgs + "/");
  ASSERT_EQ(reasons.size(), 5u);
  EXPECT_PRED2(contains, reasons["fifo.jpg"], "not a regular file");
  EXPECT_PRED2(contains, reasons["zero.jpg"], "leads to /dev/zero through a symlink, outside");
  EXPECT_PRED2(contains, reasons["etcl/passwd"], "outside the image folder");
  EXPECT_PRED2(contains, reasons[long_name + ".jpg"], "File name too long");
  EXPECT_PRED2(contains, reasons["loop_a.jpg"], "Too many levels of symbolic links");
  // Reading never blocks on a FIFO nor reads a device, whoever named it.
  Entry fifo;
  fifo.image_path = imgs + "/fifo.jpg";
  EXPECT_PRED2(contains, error_of([&] { read_image_bytes(fifo); }), "a FIFO, not a regular file");
  fifo.image_path = "/dev/zero";
  EXPECT_PRED2(contains, error_of([&] { read_image_bytes(fifo); }), "a device, not a regular file");
}

// 3. Declared sizes are held to the pixel limit; polygons are rasterised in time that follows
// them, not the canvas (3000 triangles on a 10000^2 image took minutes).
TEST(Strangers, Case3_CocoDeclaredSizesAreBounded) {
  TempDir t;
  write(t.path + "/a.png", "x");
  write(t.path + "/b.png", "x");
  nlohmann::json annotations = nlohmann::json::array();
  annotations.push_back(
      {{"id", 1}, {"image_id", 1}, {"segmentation", {{1, 1, 60000, 1, 1, 60000}}}});
  for (int i = 0; i < 3000; ++i)
    annotations.push_back(
        {{"id", 10 + i},
         {"image_id", 2},
         {"segmentation", {{3 * i, 10, 3 * i + 90, 20, 3 * i + 40, 200 + i % 97}}}});
  write(t.path + "/coco.json",
        coco_with({image(1, "a.png", 70000, 70000), image(2, "b.png", 10000, 10000)}, annotations)
            .dump());
  std::vector<Skip> skipped;
  const auto start = std::chrono::steady_clock::now();
  const Dataset d = Dataset::open({t.path + "/coco.json"}, t.path, &skipped);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 60);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].record->annotations.size(), 3000u);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_PRED2(contains, skipped[0].reason,
               "images[0]: image size 70000x70000 is over the pixel limit of 100000000");
}

TEST(Strangers, Case3_UnionByRunsIsThePixelUnion) {
  for (int seed = 0; seed < 20; ++seed) {
    at::manual_seed(seed);
    const int h = 5 + seed % 7, w = 3 + seed % 5;
    std::vector<Rle> parts;
    at::Tensor expected = at::zeros({h, w}, at::kByte);
    for (int k = 0; k < 1 + seed % 4; ++k) {
      const at::Tensor mask = at::rand({h, w}).gt(0.6 + 0.05 * k).to(at::kByte);
      parts.push_back(rle_encode(mask));
      expected = expected.logical_or(mask).to(at::kByte);
    }
    const Rle u = rle_union(parts, h, w);
    EXPECT_EQ(u.counts, rle_encode(expected).counts) << seed;  // the canonical runs too
  }
  EXPECT_EQ(rle_union({}, 3, 4).counts, (std::vector<uint32_t>{12}));
}

// 4 and 10. Names are bytes: invalid UTF-8 and newlines are escaped in ids, skip lines and JSON.
TEST(Strangers, Case4_NamesThatAreNotUtf8AreEscaped) {
  EXPECT_EQ(escape_name("caf\xc3\xa9 ok"), "caf\xc3\xa9 ok");
  EXPECT_EQ(escape_name("caf\xe9\nx\xed\xa0\x80"), "caf\\xe9\\x0ax\\xed\\xa0\\x80");
  TempDir t;
  write(t.path + "/p/caf\xe9.png", "not an image");
  write(t.path + "/p/two\nlines.png", "not an image");
  const Dataset d = Dataset::open({t.path + "/p"}, "", nullptr);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].id, "caf\\xe9");
  EXPECT_EQ(d[1].id, "two\\x0alines");
  const DataStats stats = compute_stats(d, default_image_decoder(), 1, false);
  ASSERT_EQ(stats.skipped.size(), 2u);
  for (const Skip& s : stats.skipped) EXPECT_EQ(describe(s).find('\n'), std::string::npos);
  const std::string text = json_text(to_json(stats));
  EXPECT_PRED2(contains, text, "caf\\\\xe9.png");
  nlohmann::json parsed;
  EXPECT_NO_THROW(parsed = nlohmann::json::parse(text));
  EXPECT_NO_THROW(parsed = nlohmann::json::parse(json_text({{"raw", std::string("a\xff")}})));
}

// A ustar header for a regular member (checksum included).
std::string tar_header(const std::string& name, size_t size, char type = '0') {
  std::string h(512, '\0');
  h.replace(0, name.size(), name);
  auto octal = [&](size_t at, size_t width, uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%0*llo", int(width - 1), static_cast<unsigned long long>(v));
    h.replace(at, width - 1, buf);
  };
  octal(100, 8, 0644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 0);
  h[156] = type;
  h.replace(257, 8,
            std::string("ustar\0"
                        "00",
                        8));
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  octal(148, 7, sum);
  return h;
}

std::string tar_of(const std::vector<std::pair<std::string, std::string>>& members,
                   bool end_blocks = true) {
  std::string tar;
  for (const auto& [name, data] : members)
    tar +=
        tar_header(name, data.size()) + data + std::string((512 - data.size() % 512) % 512, '\0');
  return end_blocks ? tar + std::string(1024, '\0') : tar;
}

std::string damage_of(const TarFile& tar) {
  std::string all;
  for (const std::string& d : tar.damage()) all += d + "\n";
  return all;
}

// 5. Tar damage is never silent: a tar cut right after a member, a flipped header byte, members
// named out of the tar, a sparse member.
TEST(Strangers, Case5_TarDamageIsNamed) {
  if (!tar_reading_available()) GTEST_SKIP() << "built without libarchive";
  TempDir t;
  const std::vector<std::pair<std::string, std::string>> three = {
      {"a.png", std::string(700, 'a')}, {"b.png", std::string(700, 'b')}, {"c.png", "c"}};
  write(t.path + "/whole.tar", tar_of(three));
  EXPECT_TRUE(TarFile::open(t.path + "/whole.tar")->damage().empty());
  write(t.path + "/cut.tar", tar_of({three[0], three[1]}, false));
  const auto cut = TarFile::open(t.path + "/cut.tar");
  EXPECT_EQ(cut->members().size(), 2u);
  EXPECT_PRED2(contains, damage_of(*cut), "cut short at byte 3072: no end-of-archive blocks");

  std::string flipped = tar_of(three);
  flipped[1536 + 1] ^= 0x20;  // in b.png's name: its header's checksum no longer holds
  write(t.path + "/flipped.tar", flipped);
  const auto bad = TarFile::open(t.path + "/flipped.tar");
  ASSERT_EQ(bad->members().size(), 2u);
  EXPECT_EQ(bad->members()[1].name, "c.png");
  EXPECT_PRED2(contains, damage_of(*bad), "damaged header at byte 1536: skipped to the next good");

  write(t.path + "/names.tar",
        tar_of({{"../up.png", "u"}, {"/abs/x.png", "x"}, {"ok.png", "o"}, {"in/../ok2.png", "o"}}));
  std::vector<Skip> skipped;
  const Dataset d = Dataset::open({t.path + "/names.tar"}, "", &skipped);
  EXPECT_EQ(d.size(), 2u);
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped[0].file, t.path + "/names.tar:../up.png");
  EXPECT_EQ(skipped[1].file, t.path + "/names.tar:/abs/x.png");
  EXPECT_PRED2(contains, skipped[0].reason, "member named outside the tar");

  write(t.path + "/s/dense.png", "d");
  write(t.path + "/s/holes.png", "x");
  ASSERT_EQ(::truncate((t.path + "/s/holes.png").c_str(), 1 << 20), 0);
  const std::string command = "tar --format=gnu --sparse -cf '" + t.path + "/sparse.tar' -C '" +
                              t.path + "/s' dense.png holes.png";
  ASSERT_EQ(std::system(command.c_str()), 0);
  skipped.clear();
  EXPECT_EQ(Dataset::open({t.path + "/sparse.tar"}, "", &skipped).size(), 1u);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_PRED2(contains, skipped[0].reason, "member 'holes.png' is a sparse file");
}

// 6. SA-1B pairs within one folder; one id twice stops the command, naming both files; COCO
// images sharing an id are left out with their annotations.
TEST(Strangers, Case6_PairingAndIds) {
  TempDir t;
  const std::string json = read_file(sd::testing::data_sample() + "/sa_100003.json");
  write(t.path + "/x/a/sa_1.jpg", "j");
  write(t.path + "/x/b/sa_1.json", json);
  std::vector<Skip> skipped;
  EXPECT_EQ(Dataset::open({t.path + "/x"}, "", &skipped).size(), 0u);
  EXPECT_EQ(skipped.size(), 2u);
  for (const char* sub : {"a", "b"}) {
    write(t.path + "/y/" + sub + "/sa_1.jpg", "j");
    write(t.path + "/y/" + sub + "/sa_1.json", json);
  }
  const std::string two = error_of([&] { Dataset::open({t.path + "/y"}, "", nullptr); });
  EXPECT_PRED2(contains, two, "image id 'sa_1' is given twice");
  EXPECT_PRED2(contains, two, t.path + "/y/a/sa_1.jpg");
  EXPECT_PRED2(contains, two, t.path + "/y/b/sa_1.jpg");
  EXPECT_PRED2(contains, error_of([&] { Dataset::index_sa1b({t.path + "/y"}, nullptr); }),
               "image id 'sa_1' is given twice");

  write(t.path + "/c/a.png", "x");
  write(t.path + "/c/b.png", "x");
  write(t.path + "/c/c.png", "x");
  write(t.path + "/c/coco.json",
        coco_with(
            {image(1, "a.png", 64, 48), image(1, "b.png", 32, 32), image(2, "c.png")},
            nlohmann::json::array({{{"id", 1},
                                    {"image_id", 1},
                                    {"segmentation", {{"size", {48, 64}}, {"counts", {3072}}}}}}))
            .dump());
  skipped.clear();
  const Dataset coco = Dataset::open({t.path + "/c/coco.json"}, "", &skipped);
  ASSERT_EQ(coco.size(), 1u);
  EXPECT_EQ(coco[0].id, "c");
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_PRED2(contains, skipped[0].reason, "images[1]: image id 1 is given to another image");
}

// 9. Prompts no image has are bad annotations, not perfect scores.
TEST(Strangers, Case9_PromptsFarOutsideOrNotFiniteAreBadAnnotations) {
  auto record = [](const nlohmann::json& extra) {
    nlohmann::json a = {{"id", 1}, {"segmentation", {{"size", {2, 3}}, {"counts", {0, 6}}}}};
    a.update(extra);
    return nlohmann::json{{"image", {{"width", 3}, {"height", 2}}}, {"annotations", {a}}};
  };
  EXPECT_NO_THROW(parse_sa1b_record(record({{"bbox", {0, 0, 3, 2}}}), "ok.json"));
  for (const nlohmann::json& bad : {nlohmann::json{{"bbox", {-100, -1e308, -103, 1e308}}},
                                    nlohmann::json{{"bbox", {0, 0, 1e308, 1e308}}},
                                    nlohmann::json{{"point_coords", {{1, 1}, {1e300, 0}}}}})
    EXPECT_PRED2(contains, error_of([&] { parse_sa1b_record(record(bad), "sa_1.json"); }),
                 "is not finite or is far outside the image (3x2)")
        << bad.dump();
  TempDir t;
  write(t.path + "/a.png", "x");
  write(t.path + "/coco.json",
        coco_with(nlohmann::json::array({image(1, "a.png")}),
                  nlohmann::json::array({{{"id", 1},
                                          {"image_id", 1},
                                          {"bbox", {0, 0, 1e308, 4}},
                                          {"segmentation", {{"size", {8, 8}}, {"counts", {64}}}}}}))
            .dump());
  std::vector<Skip> skipped;
  const Dataset d = Dataset::open({t.path + "/coco.json"}, t.path, &skipped);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(d[0].record->annotations.empty());
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_PRED2(contains, skipped[0].reason, "annotations[0]: bbox coordinate");
}

// 10. A count of 2^64 - 1 is named as itself, not as -1.
TEST(Strangers, Case10_HugeRleCountIsNamedAsGiven) {
  const nlohmann::json j = {
      {"image", {{"width", 3}, {"height", 2}}},
      {"annotations",
       {{{"segmentation",
          {{"size", {2, 3}}, {"counts", {uint64_t(18446744073709551615ull), 6}}}}}}}};
  EXPECT_PRED2(contains, error_of([&] { parse_sa1b_record(j, "sa_1.json"); }),
               "RLE count 18446744073709551615 out of range");
}

// Found by fuzz_dataset: a file that starts "RIFF" but is shorter than a WebP header was read
// past its end (std::out_of_range, an unexpected failure) instead of being "not an image".
TEST(Strangers, ARiffShorterThanAWebpHeaderIsNoImage) {
  for (size_t n = 4; n < 12; ++n) {
    const std::string bytes = std::string("RIFF\0\0\0\0WEB", n);
    EXPECT_NO_THROW(EXPECT_FALSE(image_format(bytes).has_value()) << n) << n;
  }
  EXPECT_EQ(image_format(std::string("RIFF\0\0\0\0WEBP", 12)), ImageFormat::webp);
}

}  // namespace
}  // namespace sd::data
