#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "common/fixtures.h"
#include "store/part.h"
#include "store/reader.h"
#include "store/store_testing.h"
#include "store/verify.h"
#include "store/writer.h"
#include "util/error.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace sd::store {
namespace {

using namespace sd::store::testing;

std::string write_store(int count, DType dtype = DType::fp16, int commit_every = 4) {
  std::string dir = sd::testing::make_temp_dir("store") + "/store";
  Writer writer(dir, test_manifest(dtype), "part");
  for (int i = 0; i < count; ++i) {
    writer.put(encode_embedding(key_of(i), values_of(i), dtype));
    if ((i + 1) % commit_every == 0) writer.commit();
  }
  return dir;
}

TEST(Store, RoundTripPerDtype) {
  for (DType d : {DType::fp16, DType::bf16, DType::fp32, DType::int8}) {
    std::string dir = write_store(6, d);
    Reader reader(dir);
    ASSERT_EQ(reader.entries().size(), 6u);
    EXPECT_EQ(reader.manifest().dtype, d);
    for (int i = 0; i < 6; ++i) {
      at::Tensor want = decode_payload(encode_embedding(key_of(i), values_of(i), d).info,
                                       encode_embedding(key_of(i), values_of(i), d).payload)
                            .to(at::kFloat);
      at::Tensor got = reader.embedding(key_of(i));
      EXPECT_EQ(got.scalar_type(), at::kFloat);
      EXPECT_TRUE(at::equal(got, want)) << sd::word(d) << " " << key_of(i);
    }
    nlohmann::json stats = reader.stats();
    EXPECT_EQ(stats["embeddings"], 6);
    EXPECT_EQ(stats["manifest"]["dtype"], sd::word(d));
    double rel = stats["relative_mse_vs_fp32"].get<double>();
    if (d == DType::fp32)
      EXPECT_EQ(rel, 0.0);
    else
      EXPECT_GT(rel, 0.0);
    EXPECT_LT(rel, d == DType::int8 ? 1e-3 : 1e-4) << sd::word(d);
    EXPECT_TRUE(verify_store(dir).ok());
  }
}

TEST(Store, RandomAndSequentialAccess) {
  std::string dir = write_store(20);
  Reader reader(dir);
  for (size_t i = 0; i < reader.entries().size(); ++i)  // sequential: file order is write order
    EXPECT_EQ(reader.entries()[i].index.info.key, key_of(int(i)));
  std::vector<int> order(20);
  for (int i = 0; i < 20; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(1));
  for (int i : order)
    EXPECT_TRUE(at::allclose(reader.embedding(key_of(i)), values_of(i), 1e-3, 1e-2)) << key_of(i);
  EXPECT_EQ(reader.find(Kind::embedding, "sa_missing"), nullptr);
  EXPECT_THROW(reader.embedding("sa_missing"), Error);
}

TEST(Store, CachedImagesLiveBesideEmbeddings) {
  std::string dir = write_store(2);
  at::Tensor img = at::randint(0, 256, {6, 4, 3}, at::kByte);
  {
    Writer writer(dir, test_manifest(), "part");
    writer.put(encode_image(key_of(0), img));
  }
  Reader reader(dir);
  EXPECT_TRUE(at::equal(reader.image(key_of(0)), img));
  EXPECT_THROW(reader.image(key_of(1)), Error);
  EXPECT_EQ(reader.stats()["images"], 1);
  EXPECT_EQ(reader.stats()["embeddings"], 2);
}

TEST(Store, UncommittedRecordsAreInvisibleAndDropped) {
  std::string dir = write_store(4);
  {
    Writer writer(dir, test_manifest(), "part");
    writer.put(encode_embedding(key_of(4), values_of(4), DType::fp16));
    Reader reader(dir);  // before commit: not there
    EXPECT_EQ(reader.find(Kind::embedding, key_of(4)), nullptr);
    writer.commit();
  }
  EXPECT_NE(Reader(dir).find(Kind::embedding, key_of(4)), nullptr);
}

TEST(Store, OneWriterPerPart) {
  std::string dir = write_store(1);
  Writer first(dir, test_manifest(), "part");
  EXPECT_THROW(Writer(dir, test_manifest(), "part"), Error);
  Writer other_part(dir, test_manifest(), "part2");
}

TEST(Store, ManifestMismatchNamesTheField) {
  std::string dir = write_store(1);
  auto message = [&](Manifest m) {
    try {
      Writer writer(dir, m, "other");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Manifest m = test_manifest();
  m.teacher["depth"] = 32;
  EXPECT_NE(message(m).find("teacher.depth is 4 in the store, expected 32"), std::string::npos)
      << message(m);
  m = test_manifest();
  m.teacher.erase("depth");
  EXPECT_NE(message(m).find("teacher.depth"), std::string::npos) << message(m);
  m = test_manifest();
  m.checkpoint_sha256 = "ffff";
  EXPECT_NE(message(m).find("was made by another teacher"), std::string::npos) << message(m);
  EXPECT_NE(message(m).find("(the same architecture, other weights)"), std::string::npos);
  m = test_manifest();
  m.preprocess["img_size"] = 512;
  EXPECT_NE(message(m).find("preprocess.img_size"), std::string::npos);
  EXPECT_NE(message(test_manifest(DType::int8)).find("dtype is fp16 in the store, expected int8"),
            std::string::npos);

  Manifest any = test_manifest();
  any.dtype.reset();  // training accepts any dtype
  EXPECT_NO_THROW(check_compatible(any, read_manifest(dir), dir));
  any.checkpoint_name = "renamed.pth";  // names are for people, never compared
  EXPECT_NO_THROW(check_compatible(any, read_manifest(dir), dir));
}

// A store made with other weights: the refusal names the checkpoint that made the store (its
// manifest's name) and the one given, each with its checksum.
TEST(Store, OtherWeightsAreRefusedNamingBothCheckpoints) {
  const std::string dir = sd::testing::make_temp_dir("store-made-by");
  write_bytes(dir + "/teacher.pth", "the teacher's weights");
  write_bytes(dir + "/other.pth", "other weights");
  Manifest made = test_manifest();
  made.checkpoint_sha256 = sha256_file(dir + "/teacher.pth");
  made.checkpoint_name = "teacher.pth";
  const std::string made_by = "custom ViT";  // test_manifest's teacher
  EXPECT_NO_THROW(check_made_by(made, "", dir + "/teacher.pth", dir + "/store"));
  EXPECT_EQ(
      sd::testing::error_of([&] { check_made_by(made, "", dir + "/other.pth", dir + "/store"); }),
      "store '" + dir + "/store' was made by another teacher: a " + made_by +
          " encoder with weights 'teacher.pth' (sha256 " + made.checkpoint_sha256.substr(0, 12) +
          "...), not the one given, a " + made_by + " encoder with weights '" + dir +
          "/other.pth' (sha256 " + sha256_file(dir + "/other.pth").substr(0, 12) +
          "...) (the same architecture, other weights). Give the teacher that made the store, or "
          "make a store of this teacher's embeddings with `samdistill embed` (another --store)");
  fs::remove_all(dir);
}

// manifest.json is checksummed like the rest: an edited dtype is damage for verify and refused
// by readers, naming the file; a manifest from before the checksum is read, with a note.
TEST(Store, EditedManifestIsDamage) {
  const std::string dir = write_store(2);
  const std::string path = manifest_path(dir);
  nlohmann::json j = nlohmann::json::parse(read_bytes(path));
  ASSERT_TRUE(j.contains("sha256"));
  const std::string recorded = j["sha256"];
  EXPECT_EQ(recorded.size(), 64u);
  VerifyReport clean = verify_store(dir);
  EXPECT_TRUE(clean.ok());
  EXPECT_TRUE(clean.notes.empty());

  j["dtype"] = "fp32";
  write_bytes(path, j.dump(2) + "\n");
  nlohmann::json content = j;
  content.erase("sha256");
  const std::string expected = path + ": does not match its checksum (sha256 " + recorded +
                               " recorded, " +
                               sha256_hex(content.dump().data(), content.dump().size()) +
                               " computed): it was edited or damaged after the store was made";
  VerifyReport report = verify_store(dir);
  EXPECT_EQ(report.damage, std::vector<std::string>{expected});
  EXPECT_EQ(report.records_ok, 2u);
  EXPECT_EQ(sd::testing::error_of([&] { Reader reader(dir); }), expected);
  EXPECT_EQ(sd::testing::error_of([&] { Writer writer(dir, test_manifest(), "more"); }), expected);

  // Older stores: no checksum at all. Read as they are; verify says so.
  j["dtype"] = "fp16";
  j.erase("sha256");
  write_bytes(path, j.dump(2) + "\n");
  report = verify_store(dir);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.notes, std::vector<std::string>{
                              path + ": has no checksum (written before manifests had one): its "
                                     "fields are trusted as they are"});
  EXPECT_EQ(Reader(dir).manifest().dtype, DType::fp16);
}

// Damage: each case must be reported by verify and refused by readers.
class Damage : public ::testing::Test {
 protected:
  void SetUp() override { dir = write_store(6); }
  std::string records() const { return records_path(dir, "part"); }
  std::string index() const { return index_path(dir, "part"); }
  uint64_t offset_of(int i) const { return Reader(dir).entries()[i].index.offset; }
  void flip(const std::string& path, uint64_t at) {
    std::string bytes = read_bytes(path);
    bytes[at] ^= 0x04;
    write_bytes(path, bytes);
  }
  std::string verify_damage() {
    VerifyReport r = verify_store(dir);
    EXPECT_FALSE(r.ok());
    std::string all;
    for (auto& d : r.damage) all += d + "\n";
    return all;
  }
  std::string dir;
};

TEST_F(Damage, FlippedPayloadByte) {
  uint64_t offset = offset_of(3);
  flip(records(), offset + 200);
  std::string report = verify_damage();
  EXPECT_NE(report.find("key '" + key_of(3) + "', offset " + std::to_string(offset)),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("payload checksum mismatch"), std::string::npos);
  EXPECT_NE(report.find("shard 'part.records'"), std::string::npos);
  EXPECT_EQ(verify_store(dir).records_ok, 5u);
  Reader reader(dir);
  try {
    reader.embedding(key_of(3));
    FAIL() << "damaged record was returned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(key_of(3)), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos);
  }
  EXPECT_NO_THROW(reader.embedding(key_of(2)));
}

TEST_F(Damage, FlippedHeaderByte) {
  flip(records(), offset_of(1) + 30);
  EXPECT_NE(verify_damage().find("record header checksum mismatch"), std::string::npos);
  EXPECT_THROW(Reader(dir).embedding(key_of(1)), Error);
}

TEST_F(Damage, TruncatedShard) {
  fs::resize_file(records(), fs::file_size(records()) - 100);
  std::string report = verify_damage();
  EXPECT_NE(report.find("key '" + key_of(5) + "'"), std::string::npos) << report;
  EXPECT_NE(report.find("truncated"), std::string::npos) << report;
  EXPECT_EQ(verify_store(dir).records_ok, 5u);
  EXPECT_THROW(Reader(dir).embedding(key_of(5)), Error);
  EXPECT_NO_THROW(Reader(dir).embedding(key_of(4)));
  EXPECT_THROW(Writer(dir, test_manifest(), "part"), Error);  // never appends over a hole
}

TEST_F(Damage, DamagedIndexEntry) {
  flip(index(), 2 * kIndexEntryBytes + 50);
  std::string report = verify_damage();
  EXPECT_NE(report.find("part.index' is damaged: entry 2 at byte 256"), std::string::npos)
      << report;
  EXPECT_EQ(verify_store(dir).records_ok, 5u);
  EXPECT_THROW(Reader{dir}, Error);
  EXPECT_THROW(Writer(dir, test_manifest(), "part"), Error);
}

TEST_F(Damage, IndexNamingAnotherKey) {
  // A well-formed entry whose record holds another key: caught by the header cross-check.
  std::string bytes = read_bytes(index());
  IndexEntry e;
  ASSERT_EQ(decode_index_entry(bytes.data() + 2 * kIndexEntryBytes, e), "");
  e.info.key = key_of(9);
  bytes.replace(2 * kIndexEntryBytes, kIndexEntryBytes, encode_index_entry(e));
  write_bytes(index(), bytes);
  EXPECT_NE(verify_damage().find("does not match the index"), std::string::npos);
  EXPECT_THROW(Reader(dir).embedding(key_of(9)), Error);
}

TEST_F(Damage, MissingIndex) {
  fs::remove(index());
  EXPECT_NE(verify_damage().find("has no index 'part.index'"), std::string::npos);
  EXPECT_THROW(Reader{dir}, Error);
}

TEST_F(Damage, PartBeingCreatedIsNotDamage) {
  write_bytes(index_path(dir, "new"), "");  // a writer between creating its two files
  EXPECT_TRUE(verify_store(dir).ok());
  EXPECT_EQ(Reader(dir).parts(), std::vector<std::string>{"part"});
  write_bytes(index_path(dir, "new"), read_bytes(index()));
  EXPECT_NE(verify_damage().find("index 'new.index' has no shard 'new.records'"),
            std::string::npos);
}

TEST_F(Damage, TornTailsAreNotDamage) {
  // What kill -9 leaves: half an index entry and bytes of an unindexed record.
  std::string idx = read_bytes(index());
  write_bytes(index(), idx + idx.substr(0, 60));
  std::string rec = read_bytes(records());
  write_bytes(records(), rec + rec.substr(0, 500));
  VerifyReport r = verify_store(dir);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.notes.size(), 2u);
  EXPECT_EQ(Reader(dir).entries().size(), 6u);
  {
    Writer writer(dir, test_manifest(), "part");
    EXPECT_EQ(writer.dropped_bytes(), 500u);
    writer.put(encode_embedding(key_of(6), values_of(6), DType::fp16));
  }
  EXPECT_EQ(read_bytes(records()).substr(0, rec.size()), rec);
  VerifyReport after = verify_store(dir);
  EXPECT_TRUE(after.ok());
  EXPECT_TRUE(after.notes.empty());
  EXPECT_EQ(after.records_ok, 7u);
}

TEST(Shards, SplitAndRejoin) {
  const int n = 10, shards = 3;
  std::string whole = write_store(n);
  std::string root = sd::testing::make_temp_dir("shards");
  // Each shard in its own folder (another machine), and all shards in one shared folder.
  std::string shared = root + "/shared";
  for (int s = 0; s < shards; ++s) {
    Writer own(root + "/s" + std::to_string(s), test_manifest(), shard_part_name(s, shards));
    Writer together(shared, test_manifest(), shard_part_name(s, shards));
    for (int i = s; i < n; i += shards) {
      own.put(encode_embedding(key_of(i), values_of(i), DType::fp16));
      together.put(encode_embedding(key_of(i), values_of(i), DType::fp16));
    }
  }
  std::string merged = root + "/merged";
  size_t copied = 0;
  for (int s = 0; s < shards; ++s) copied += merge_store(merged, root + "/s" + std::to_string(s));
  EXPECT_EQ(copied, size_t(n));
  EXPECT_EQ(merge_store(merged, root + "/s0"), 0u);  // rejoining again copies nothing

  Reader expected(whole);
  for (const std::string& dir : {shared, merged}) {
    Reader joined(dir);
    ASSERT_EQ(joined.stats()["embeddings"], n) << dir;
    EXPECT_EQ(joined.stats()["duplicates"], 0);
    EXPECT_TRUE(verify_store(dir).ok());
    for (int i = 0; i < n; ++i)
      EXPECT_TRUE(at::equal(joined.embedding(key_of(i)), expected.embedding(key_of(i))));
  }
  EXPECT_THROW(merge_store(write_store(1, DType::int8), merged), Error);  // dtype differs
}

}  // namespace
}  // namespace sd::store
