#include "io/checkpoint.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "io/checkpoint_summary.h"
#include "io/pickle.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace sd::io {
namespace {

using sd::testing::contains;
using sd::testing::error_of;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = sd::testing::make_temp_dir("sd-io"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& leaf) const { return dir_ + "/" + leaf; }

  static std::string read_error(const std::string& file) {
    return error_of([&] { read_torch_file(file); });
  }

  std::string dir_;
};

// A zip in torch.save's layout holding exactly `records` (name -> bytes).
void write_zip(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& records) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size());
  writer.writeEndOfFile();
}

// A plain write (no fsync): the damaged-file tests write hundreds of files.
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string bytes_of(const at::Tensor& t) {
  return std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
}

StateDict every_dtype() {
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  return {
      {"f32", at::randn({2, 3})},
      {"f64", at::randn({3}, at::kDouble)},
      {"f16", at::randn({5}).to(at::kHalf)},
      {"bf16", at::randn({2, 2}).to(at::kBFloat16)},
      {"i64", at::arange(-3, 3, at::kLong)},
      {"i32", at::tensor({-7, 8}, at::kInt)},
      {"i16", at::tensor({-300, 300}, at::kShort)},
      {"i8", at::tensor({-5, 5}, at::kChar)},
      {"u8", at::tensor({0, 255}, at::kByte)},
      {"bool", at::tensor({1, 0, 1}, at::kByte).to(at::kBool)},
      {"scalar", at::scalar_tensor(3.5)},
      {"empty", at::zeros({0, 3})},
      {"transposed", base.t()},
      {"slice", base.narrow(0, 1, 2)},
      {"column", base.select(1, 4)},
      {"expanded", at::ones({1, 3}).expand({4, 3})},
  };
}

TEST_F(CheckpointTest, StateDictRoundTripKeepsOrderDtypesAndValues) {
  StateDict original = every_dtype();
  write_state_dict(path("sd.pth"), original);
  StateDict again = read_state_dict(path("sd.pth"));
  ASSERT_EQ(again.size(), original.size());
  for (size_t i = 0; i < again.size(); ++i) {
    const auto& [key, t] = again[i];
    EXPECT_EQ(key, original[i].first);
    EXPECT_EQ(t.scalar_type(), original[i].second.scalar_type()) << key;
    EXPECT_EQ(t.sizes(), original[i].second.sizes()) << key;
    EXPECT_TRUE(t.is_contiguous()) << key;
    EXPECT_TRUE(at::equal(t, original[i].second)) << key;
  }
}

TEST_F(CheckpointTest, WritesCudaTensorsFromTheCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::Tensor on_gpu = at::arange(6, at::kFloat).reshape({2, 3}).to(at::kCUDA).t();
  write_state_dict(path("gpu.pth"), {{"w", on_gpu}});
  StateDict again = read_state_dict(path("gpu.pth"));
  EXPECT_TRUE(again[0].second.device().is_cpu());
  EXPECT_TRUE(at::equal(again[0].second, on_gpu.cpu()));
}

TEST_F(CheckpointTest, NestedValuesRoundTrip) {
  c10::impl::GenericDict meta(c10::StringType::get(), c10::AnyType::get());
  meta.insert("epoch", int64_t(3));
  meta.insert("big", int64_t(1) << 40);
  meta.insert("negative", int64_t(-5));
  meta.insert("lr", 1e-3);
  meta.insert("name", std::string("run"));
  meta.insert("done", true);
  meta.insert("nothing", c10::IValue());
  c10::impl::GenericList history(c10::AnyType::get());
  history.push_back(1.5);
  history.push_back(at::ones({2}));
  meta.insert("history", history);
  meta.insert("pair", c10::ivalue::Tuple::create({int64_t(1), std::string("b")}));
  c10::impl::GenericDict by_step(c10::IntType::get(), c10::AnyType::get());
  by_step.insert(int64_t(7), at::zeros({1}));
  meta.insert("by_step", by_step);

  write_torch_file(path("nested.pth"), meta);
  auto again = read_torch_file(path("nested.pth")).toGenericDict();
  ASSERT_EQ(again.size(), meta.size());
  EXPECT_EQ(again.begin()->key().toStringRef(), "epoch");
  EXPECT_EQ(again.at("epoch").toInt(), 3);
  EXPECT_EQ(again.at("big").toInt(), int64_t(1) << 40);
  EXPECT_EQ(again.at("negative").toInt(), -5);
  EXPECT_EQ(again.at("lr").toDouble(), 1e-3);
  EXPECT_EQ(again.at("name").toStringRef(), "run");
  EXPECT_TRUE(again.at("done").toBool());
  EXPECT_TRUE(again.at("nothing").isNone());
  auto list = again.at("history").toList();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list.get(0).toDouble(), 1.5);
  EXPECT_TRUE(at::equal(list.get(1).toTensor(), at::ones({2})));
  const auto pair = again.at("pair").toTupleRef().elements();
  EXPECT_EQ(pair[1].toStringRef(), "b");
  EXPECT_TRUE(
      at::equal(again.at("by_step").toGenericDict().at(int64_t(7)).toTensor(), at::zeros({1})));
}

// Written by Python (torch 1.13), with views sharing one storage and an OrderedDict with
// `_metadata` inside a trainer-style wrapper:
//   base = torch.arange(12, dtype=torch.float32); sd = collections.OrderedDict()
//   sd['base'] = base; sd['slice'] = base[2:8].view(2, 3); sd['transposed'] = base.view(3, 4).t()
//   sd['half'] = torch.tensor([1.5, -2.0], dtype=torch.float16)
//   sd['bf16'] = torch.tensor([0.5, 3.0], dtype=torch.bfloat16)
//   sd['flags'] = torch.tensor([True, False, True]); sd['scalar'] = torch.tensor(7)
//   sd['empty'] = torch.zeros(0, 3); sd._metadata = OrderedDict([('', {'version': 1})])
//   torch.save({'model': sd, 'epoch': 3, 'lr': 1e-3, 'name': 'run', 'none': None, 'big': 2**40,
//               'neg': -5, 'list': [1, 2.5, 'a', True], 'tuple': (1, 2)}, 'python_views.pth')
TEST_F(CheckpointTest, ReadsPythonFileWithSharedStorages) {
  std::string file = sd::testing::source_dir() + "/tests/io/data/python_views.pth";
  StateDict sd = read_state_dict(file);  // unwraps "model"
  std::vector<std::string> keys;
  for (const auto& e : sd) keys.push_back(e.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"base", "slice", "transposed", "half", "bf16", "flags",
                                            "scalar", "empty"}));
  std::map<std::string, at::Tensor> t(sd.begin(), sd.end());
  at::Tensor base = at::arange(12, at::kFloat);
  EXPECT_TRUE(at::equal(t["base"], base));
  EXPECT_TRUE(at::equal(t["slice"], base.slice(0, 2, 8).view({2, 3})));
  EXPECT_TRUE(at::equal(t["transposed"], base.view({3, 4}).t()));
  EXPECT_TRUE(t["slice"].storage().is_alias_of(t["base"].storage()));
  EXPECT_TRUE(t["transposed"].storage().is_alias_of(t["base"].storage()));
  EXPECT_EQ(t["slice"].storage_offset(), 2);
  EXPECT_EQ(t["transposed"].strides(), at::IntArrayRef({1, 4}));
  EXPECT_TRUE(at::equal(t["half"], at::tensor({1.5, -2.0}).to(at::kHalf)));
  EXPECT_TRUE(at::equal(t["bf16"], at::tensor({0.5, 3.0}).to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(t["flags"], at::tensor({1, 0, 1}).to(at::kBool)));
  EXPECT_EQ(t["scalar"].dim(), 0);
  EXPECT_EQ(t["scalar"].item<int64_t>(), 7);
  EXPECT_EQ(t["empty"].sizes(), at::IntArrayRef({0, 3}));

  auto all = read_torch_file(file).toGenericDict();
  EXPECT_EQ(all.at("big").toInt(), int64_t(1) << 40);
  EXPECT_EQ(all.at("neg").toInt(), -5);
  EXPECT_EQ(all.at("lr").toDouble(), 1e-3);
  EXPECT_TRUE(all.at("none").isNone());
  auto list = all.at("list").toList();
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list.get(2).toStringRef(), "a");
  EXPECT_TRUE(list.get(3).toBool());
  EXPECT_EQ(all.at("tuple").toTupleRef().elements()[1].toInt(), 2);
}

TEST_F(CheckpointTest, NonTensorValueNamesItsKey) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("weight", at::ones({1}));
  d.insert("epoch", int64_t(2));
  write_torch_file(path("mixed.pth"), d);
  EXPECT_PRED2(contains, error_of([&] { read_state_dict(path("mixed.pth")); }), "'epoch'");
}

TEST_F(CheckpointTest, FilesThatAreNoCheckpoints) {
  EXPECT_PRED2(contains, read_error(path("absent.pth")), "absent.pth: no such file");
  write_file_atomic(path("notes.txt"), "just some text\n");
  EXPECT_PRED2(contains, read_error(path("notes.txt")),
               "notes.txt: not a readable torch.save zip file");
  write_file_atomic(path("photo.jpg"),
                    std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00", 11) + std::string(500, 'x'));
  EXPECT_PRED2(contains, read_error(path("photo.jpg")),
               "photo.jpg: not a readable torch.save zip file");
  write_zip(path("nopickle.pth"), {{"other.txt", "hello"}});
  EXPECT_PRED2(contains, read_error(path("nopickle.pth")),
               "nopickle.pth: zip file without data.pkl");
}

TEST_F(CheckpointTest, MissingOrShortStorageRecord) {
  std::vector<at::Tensor> storages;
  std::string pkl = pickle(c10::IValue(at::arange(4, at::kFloat)), storages);
  write_zip(path("missing.pth"), {{"data.pkl", pkl}});
  EXPECT_PRED2(contains, read_error(path("missing.pth")), "storage record 'data/0' is missing");
  write_zip(path("short.pth"),
            {{"data.pkl", pkl}, {"data/0", bytes_of(storages[0]).substr(0, 12)}});
  EXPECT_PRED2(contains, read_error(path("short.pth")), "holds 12 bytes, its tensors need 4 x 4");
}

// A tensor whose size/stride reaches past its storage is refused (never read out of bounds).
TEST_F(CheckpointTest, TensorBeyondItsStorage) {
  // Our own pickle of a 2x3 tensor, with the storage's numel lowered from 6 to 5.
  std::vector<at::Tensor> storages;
  std::string pkl = pickle(c10::IValue(at::zeros({2, 3})), storages);
  std::string numel6 = std::string(1, char(Op::BININT)) + std::string("\x06\x00\x00\x00", 4) +
                       std::string(1, char(Op::TUPLE)) + std::string(1, char(Op::BINPERSID));
  size_t at_numel = pkl.find(numel6);
  ASSERT_NE(at_numel, std::string::npos);
  pkl[at_numel + 1] = 5;
  write_zip(path("beyond.pth"), {{"data.pkl", pkl}, {"data/0", bytes_of(storages[0])}});
  EXPECT_PRED2(contains, read_error(path("beyond.pth")), "reaches past its storage of 5 elements");
}

TEST_F(CheckpointTest, UnknownGlobalIsRefused) {
  std::string pkl =
      "\x80\x02"
      "cos\nsystem\n"
      ".";
  write_zip(path("evil.pth"), {{"data.pkl", pkl}});
  EXPECT_PRED2(contains, read_error(path("evil.pth")), "unsupported global 'os.system'");
}

// Every byte of the file flipped in turn (one bit each): the file is refused with an
// sd::Error naming it, or it reads to the original state dict bit for bit (a flip in a
// field nothing reads: padding, timestamps, the central directory's copy of a CRC).
TEST_F(CheckpointTest, EveryBitFlipIsRefusedOrHarmless) {
  StateDict sd = {{"a", at::randn({3, 4})}, {"b", at::arange(5, at::kLong)}};
  write_state_dict(path("good.pth"), sd);
  const std::string good = read_file(path("good.pth"));
  size_t refused = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
    write_bytes(path("flip.pth"), bad);
    StateDict again;
    try {
      again = read_state_dict(path("flip.pth"));
    } catch (const Error& e) {
      EXPECT_PRED2(contains, e.what(), path("flip.pth")) << "byte " << i;
      ++refused;
      continue;
    }
    ASSERT_EQ(again.size(), sd.size()) << "byte " << i << " changed the state dict silently";
    for (size_t k = 0; k < sd.size(); ++k) {
      EXPECT_EQ(again[k].first, sd[k].first) << "byte " << i;
      EXPECT_EQ(again[k].second.scalar_type(), sd[k].second.scalar_type()) << "byte " << i;
      EXPECT_EQ(again[k].second.sizes(), sd[k].second.sizes()) << "byte " << i;
      EXPECT_EQ(bytes_of(again[k].second.contiguous()), bytes_of(sd[k].second))
          << "byte " << i << " changed " << sd[k].first << " silently";
    }
  }
  EXPECT_GT(refused, 0u);
}

// A flipped bit in a tensor's bytes: LibTorch's zip reader checks no CRC, ours does.
TEST_F(CheckpointTest, DamagedTensorBytesAreRefusedNamingTheRecord) {
  write_state_dict(path("good.pth"), {{"w", at::arange(64, at::kFloat)}});
  std::string bytes = read_file(path("good.pth"));
  const size_t at = bytes.find(bytes_of(at::arange(64, at::kFloat)));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 100] = static_cast<char>(bytes[at + 100] ^ 4);
  write_bytes(path("bad.pth"), bytes);
  EXPECT_PRED2(contains, read_error(path("bad.pth")),
               path("bad.pth") + ": damaged file: record 'data/0'");
}

// torch.serialization.set_crc32_options(False) writes 0 for every CRC: such files read.
TEST_F(CheckpointTest, FilesWrittenWithoutCrcsRead) {
  write_state_dict(path("good.pth"), {{"w", at::arange(64, at::kFloat)}});
  std::string bytes = read_file(path("good.pth"));
  const std::string entry("PK\x01\x02", 4);  // a central directory header; its CRC at +16
  size_t entries = 0;
  for (size_t at = bytes.find(entry); at != std::string::npos;
       at = bytes.find(entry, at + 1), ++entries)
    bytes.replace(at + 16, 4, std::string(4, '\0'));
  EXPECT_GE(entries, 2u);
  write_bytes(path("nocrc.pth"), bytes);
  EXPECT_TRUE(
      at::equal(read_state_dict(path("nocrc.pth")).at(0).second, at::arange(64, at::kFloat)));
}

// Every truncation is refused with an sd::Error naming the file.
TEST_F(CheckpointTest, EveryTruncationIsRefused) {
  write_state_dict(path("good.pth"), {{"a", at::randn({3, 4})}, {"b", at::arange(5, at::kLong)}});
  const std::string good = read_file(path("good.pth"));
  for (size_t n = 0; n < good.size(); n += 7) {
    write_bytes(path("cut.pth"), good.substr(0, n));
    EXPECT_PRED2(contains, read_error(path("cut.pth")), path("cut.pth")) << n << " bytes";
  }
}

// The same inside data.pkl, with a valid zip (and CRC) around it: nothing can tell such a
// flip from a file written that way, so it may read; when refused, the error names the file.
TEST_F(CheckpointTest, DamagedPickleNeverCrashes) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("w", at::randn({2, 3}).t());
  d.insert("meta", c10::ivalue::Tuple::create({int64_t(1) << 40, 2.5, std::string("x")}));
  std::vector<at::Tensor> storages;
  std::string pkl = pickle(d, storages);
  std::string data = bytes_of(storages[0]);
  for (size_t n = 0; n < pkl.size(); ++n) {
    write_zip(path("cut.pth"), {{"data.pkl", pkl.substr(0, n)}, {"data/0", data}});
    EXPECT_PRED2(contains, read_error(path("cut.pth")), path("cut.pth")) << n << " bytes";
  }
  for (size_t i = 0; i < pkl.size() * 8; i += 3) {
    std::string bad = pkl;
    bad[i / 8] = static_cast<char>(bad[i / 8] ^ (1 << (i % 8)));
    write_zip(path("flip.pth"), {{"data.pkl", bad}, {"data/0", data}});
    try {
      read_torch_file(path("flip.pth"));
    } catch (const Error& e) {
      EXPECT_PRED2(contains, e.what(), path("flip.pth")) << "bit " << i;
    }
  }
}

TEST_F(CheckpointTest, DuplicateKeyAndUnsupportedDtypeAreErrors) {
  EXPECT_THROW(write_state_dict(path("dup.pth"), {{"a", at::ones(1)}, {"a", at::ones(1)}}), Error);
  EXPECT_PRED2(contains, error_of([&] {
                 write_state_dict(path("c.pth"), {{"z", at::ones(1, at::kComplexFloat)}});
               }),
               "c.pth: cannot save tensors of dtype ComplexFloat");
  EXPECT_FALSE(std::filesystem::exists(path("c.pth")));
}

TEST(CheckpointSummary, CountsDtypesPrefixesAndDescribesTheEncoder) {
  StateDict sd = {{"patch_embed.proj.weight", at::zeros({96, 3, 16, 16})},
                  {"blocks.0.norm1.weight", at::zeros({96})},
                  {"blocks.1.norm1.weight", at::zeros({96}, at::kHalf)},
                  {"blocks.1.count", at::zeros({}, at::kLong)}};
  nlohmann::json s = summarize_state_dict(sd, true, [](const StateDict& model) {
    return nlohmann::json{{"keys", model.size()}};
  });
  EXPECT_EQ(s["keys"], 4);
  EXPECT_EQ(s["parameters"], 96 * 3 * 16 * 16 + 96 + 96);
  EXPECT_EQ(s["bytes"], (96 * 3 * 16 * 16 + 96) * 4 + 96 * 2 + 8);
  EXPECT_EQ(s["dtypes"], nlohmann::json({{"float32", 2}, {"float16", 1}, {"int64", 1}}));
  EXPECT_EQ(s["prefixes"][1],
            nlohmann::json({{"prefix", "blocks"}, {"keys", 3}, {"parameters", 192}}));
  EXPECT_EQ(s["encoder"], nlohmann::json({{"keys", 4}}));
  EXPECT_EQ(s["entries"][2], nlohmann::json({"blocks.1.norm1.weight", {96}, "float16"}));
  EXPECT_FALSE(summarize_state_dict({{"x", at::zeros({1})}}, false).contains("encoder"));
}

}  // namespace
}  // namespace sd::io
