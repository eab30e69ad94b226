// Checkpoints made by someone who wants to run code, corrupt memory or exhaust it: each is
// refused with an error naming the file and the fault, in a child process whose address
// space may grow by little more than the file, and the folder holding it is left as it was.
#include <ATen/ATen.h>
#include <sys/resource.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "io/pickle.h"
#include "io/zip_builder.h"
#include "util/error.h"

namespace sd::io {
namespace {

using sd::testing::contains;
using sd::testing::little_endian;
using sd::testing::local_entry;
using sd::testing::ZipBuilder;

// --- pickles ---------------------------------------------------------------------------

std::string op(Op o) { return std::string(1, static_cast<char>(o)); }
std::string str(const std::string& s) {
  return op(Op::BINUNICODE) + little_endian(s.size(), 4) + s;
}
std::string integer(int64_t v) { return op(Op::LONG1) + '\x08' + little_endian(v, 8); }
std::string global(const std::string& module, const std::string& name) {
  return op(Op::GLOBAL) + module + "\n" + name + "\n";
}
std::string tuple(const std::vector<int64_t>& values) {
  std::string out = op(Op::MARK);
  for (int64_t v : values) out += integer(v);
  return out + op(Op::TUPLE);
}
std::string pickle_of(const std::string& body) { return op(Op::PROTO) + '\x02' + body + "."; }
std::string repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// _rebuild_tensor_v2 over storage '0' (2 floats in the file) as the pickle declares it.
std::string tensor(int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                   const std::vector<int64_t>& stride) {
  return global("torch._utils", "_rebuild_tensor_v2") + op(Op::MARK) + op(Op::MARK) +
         str("storage") + global("torch", "FloatStorage") + str("0") + str("cpu") + integer(numel) +
         op(Op::TUPLE) + op(Op::BINPERSID) + integer(offset) + tuple(size) + tuple(stride) +
         op(Op::NEWFALSE) + global("collections", "OrderedDict") + op(Op::EMPTY_TUPLE) +
         op(Op::REDUCE) + op(Op::TUPLE) + op(Op::REDUCE);
}
std::string state_dict_with(const std::string& value) {
  return pickle_of(op(Op::EMPTY_DICT) + str("w") + value + op(Op::SETITEM));
}

const std::string kStorage = std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);  // 1.f, 2.f
const std::string kValidPickle = state_dict_with(tensor(2, 0, {2}, {1}));

// torch.save's layout around `pkl`.
ZipBuilder checkpoint_with(const std::string& pkl) {
  ZipBuilder zip;
  zip.add("archive/data.pkl", pkl);
  zip.add("archive/data/0", kStorage);
  zip.add("archive/version", "3\n");
  return zip;
}

// --- reading in a child ----------------------------------------------------------------

uint64_t mapped_bytes() {
  unsigned long pages = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f && std::fscanf(f, "%lu", &pages) != 1) pages = 0;
  if (f) std::fclose(f);
  return pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// What reading `file` did in a child whose address space may grow by `budget` bytes:
// "refused: <message>", "read", or how it failed (a crash fails the test, not the program).
std::string read_in_child(const std::string& file, uint64_t budget) {
  return sd::testing::in_child([&]() -> std::string {
#if !defined(__SANITIZE_ADDRESS__)  // ASan maps its shadow and quarantine beyond any budget
    rlimit limit{mapped_bytes() + budget, RLIM_INFINITY};
    setrlimit(RLIMIT_AS, &limit);
#endif
    try {
      read_torch_file(file);
      return "read";
    } catch (const Error& e) {
      return std::string("refused: ") + e.what();
    }
  });
}

std::map<std::string, uintmax_t> listing(const std::string& dir) {
  std::map<std::string, uintmax_t> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    out[e.path().string()] = e.is_regular_file() ? e.file_size() : 0;
  return out;
}

class HostileCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = sd::testing::make_temp_dir("sd-hostile"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `bytes` written as <name>.pth must be refused naming the file and `fault`, within a
  // memory budget of 64 MiB plus 256 bytes per byte of the file (the stack and memo of a
  // pickle made of one-byte containers), and must leave the folder as it was.
  void expect_refused(const std::string& name, const std::string& bytes, const std::string& fault) {
    SCOPED_TRACE(name);
    const std::string file = dir_ + "/" + name + ".pth";
    std::ofstream(file, std::ios::binary) << bytes;
    const auto before = listing(dir_);
    const std::string outcome = read_in_child(file, (64u << 20) + 256 * bytes.size());
    EXPECT_PRED2(contains, outcome, "refused: " + file + ": ");
    EXPECT_PRED2(contains, outcome, fault);
    EXPECT_EQ(listing(dir_), before) << "reading wrote to the folder";
    std::filesystem::remove(file);
  }
  void expect_pickle_refused(const std::string& name, const std::string& pkl,
                             const std::string& fault) {
    expect_refused(name, checkpoint_with(pkl).file(), fault);
  }

  std::string dir_;
};

TEST_F(HostileCheckpoint, TheTemplateItselfReads) {
  const std::string file = dir_ + "/valid.pth";
  std::ofstream(file, std::ios::binary) << checkpoint_with(kValidPickle).file();
  EXPECT_EQ(read_in_child(file, 64u << 20), "read");
  StateDict sd = read_state_dict(file);
  ASSERT_EQ(sd.size(), 1u);
  EXPECT_TRUE(at::equal(sd[0].second, at::tensor({1.f, 2.f})));
}

TEST_F(HostileCheckpoint, CodeRunningPicklesRunNothing) {
  const std::string command = str("touch " + dir_ + "/ran") + op(Op::TUPLE1);
  for (const auto& [module, name] : std::vector<std::pair<std::string, std::string>>{
           {"os", "system"}, {"builtins", "eval"}, {"subprocess", "call"}, {"posix", "system"}})
    expect_pickle_refused("reduce_" + name,
                          pickle_of(global(module, name) + command + op(Op::REDUCE)),
                          "unsupported global '" + module + "." + name + "'");
  expect_pickle_refused(
      "newobj", pickle_of(global("collections", "OrderedDict") + op(Op::EMPTY_TUPLE) + "\x81"),
      "unsupported pickle opcode 0x81");
  expect_pickle_refused("inst", pickle_of(op(Op::MARK) + command + "ios\nsystem\n"),
                        "unsupported pickle opcode 0x69");
  expect_pickle_refused("obj", pickle_of(op(Op::MARK) + global("os", "system") + command + "o"),
                        "unsupported global 'os.system'");
  expect_pickle_refused("stack_global",
                        pickle_of(str("os") + str("system") + "\x93" + command + op(Op::REDUCE)),
                        "unsupported pickle opcode 0x93");
  expect_pickle_refused("call_a_storage_type",
                        pickle_of(global("torch", "FloatStorage") + command + op(Op::REDUCE)),
                        "cannot call 'torch.FloatStorage'");
  expect_pickle_refused("build_on_a_list",
                        pickle_of(op(Op::EMPTY_LIST) + op(Op::EMPTY_DICT) + op(Op::BUILD)),
                        "BUILD on something that is not a dict");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ran"));
}

TEST_F(HostileCheckpoint, BrokenPickleMachinery) {
  expect_pickle_refused("setitem_on_a_list",
                        pickle_of(op(Op::EMPTY_LIST) + str("k") + str("v") + op(Op::SETITEM)),
                        "SETITEM on something that is not a dict");
  expect_pickle_refused("missing_memo", pickle_of(op(Op::BINGET) + '\x05'),
                        "memo entry 5 is missing");
  expect_pickle_refused("huge_string", pickle_of(op(Op::BINUNICODE) + "\xff\xff\xff\xff"),
                        "truncated pickle");
  expect_pickle_refused("empty", pickle_of(""), "STOP with 0 values");
  expect_pickle_refused("not_a_storage", state_dict_with(str("x") + op(Op::BINPERSID)),
                        "persistent id is not a tuple");
  expect_pickle_refused("module_as_persistent_id",
                        state_dict_with(op(Op::MARK) + str("module") + global("os", "system") +
                                        op(Op::TUPLE) + op(Op::BINPERSID)),
                        "unsupported global 'os.system'");
  expect_pickle_refused(
      "five_tuple_not_storage",
      state_dict_with(op(Op::MARK) + str("storage") + str("x") + str("0") + str("cpu") +
                      integer(2) + op(Op::TUPLE) + op(Op::BINPERSID)),
      "persistent id names no storage type");
}

// A list or dict that the memo hands out again and that is changed after it was put into
// another value: a value containing itself (which nothing could print, copy or free) or a
// value deeper than it looked.
TEST_F(HostileCheckpoint, AliasingMemoEntries) {
  const std::string put0 = op(Op::BINPUT) + '\x00', get0 = op(Op::BINGET) + '\x00';
  expect_pickle_refused("list_in_itself",
                        pickle_of(op(Op::EMPTY_LIST) + put0 + get0 + op(Op::APPEND)),
                        "aliased memo entry");
  expect_pickle_refused("dict_in_itself",
                        pickle_of(op(Op::EMPTY_DICT) + put0 + str("k") + get0 + op(Op::SETITEM)),
                        "aliased memo entry");
  expect_pickle_refused("changed_after_insertion",
                        pickle_of(op(Op::EMPTY_LIST) + put0 + op(Op::EMPTY_LIST) + get0 +
                                  op(Op::APPEND) + get0 + op(Op::NONE) + op(Op::APPEND)),
                        "aliased memo entry");
  expect_pickle_refused(
      "cycle_through_a_tuple",
      pickle_of(op(Op::EMPTY_LIST) + put0 + get0 + op(Op::TUPLE1) + op(Op::APPEND)),
      "aliased memo entry");
}

TEST_F(HostileCheckpoint, DeepNesting) {
  const size_t n = 100000;
  expect_pickle_refused("deep_lists",
                        pickle_of(repeat(op(Op::EMPTY_LIST), n) + repeat(op(Op::APPEND), n - 1)),
                        "nested deeper than 100");
  expect_pickle_refused("deep_tuples", pickle_of(op(Op::EMPTY_TUPLE) + repeat(op(Op::TUPLE1), n)),
                        "nested deeper than 100");
  expect_pickle_refused("deep_dicts",
                        pickle_of(op(Op::EMPTY_DICT) + repeat(str("k") + op(Op::EMPTY_DICT), n) +
                                  repeat(op(Op::SETITEM), n)),
                        "nested deeper than 100");
}

TEST_F(HostileCheckpoint, TensorsOutsideTheirStorage) {
  const int64_t huge = int64_t(1) << 60;
  expect_pickle_refused("storage_shorter_than_tensor",
                        state_dict_with(tensor(1000, 0, {1000}, {1})),
                        "holds 8 bytes, its tensors need 1000 x 4");
  expect_pickle_refused("huge_storage", state_dict_with(tensor(huge, 0, {huge}, {1})),
                        "holds 8 bytes, its tensors need");
  expect_pickle_refused("negative_storage", state_dict_with(tensor(-1, 0, {2}, {1})),
                        "negative storage size");
  expect_pickle_refused("size_times_stride_overflows",
                        state_dict_with(tensor(2, 0, {huge, 2}, {huge, 1})),
                        "tensor size/stride overflow");
  expect_pickle_refused("reaches_past_storage", state_dict_with(tensor(2, 0, {3}, {1})),
                        "reaches past its storage of 2 elements");
  expect_pickle_refused("stride_reaches_past", state_dict_with(tensor(2, 0, {2}, {2})),
                        "reaches past its storage of 2 elements");
  expect_pickle_refused("negative_size", state_dict_with(tensor(2, 0, {-1}, {1})),
                        "negative tensor size or stride");
  expect_pickle_refused("huge_size", state_dict_with(tensor(2, 0, {huge, huge}, {0, 0})),
                        "tensor size/stride overflow");
  expect_pickle_refused("offset_past_storage", state_dict_with(tensor(2, 3, {1}, {1})),
                        "storage offset out of range");
  expect_pickle_refused("two_sizes_one_storage",
                        state_dict_with(op(Op::MARK) + tensor(2, 0, {2}, {1}) +
                                        tensor(1, 0, {1}, {1}) + op(Op::TUPLE)),
                        "storage '0' is used with two different types or sizes");
}

TEST_F(HostileCheckpoint, LyingZips) {
  ZipBuilder dup = checkpoint_with(kValidPickle);
  dup.add("archive/data.pkl", pickle_of(global("os", "system")));
  expect_refused("duplicate_names", dup.file(), "names 'archive/data.pkl' twice");

  // data/1's local header and bytes lie inside data/0's bytes.
  ZipBuilder overlap;
  overlap.add("archive/data.pkl", kValidPickle);
  const std::string outer_name = "archive/data/0", inner_name = "archive/data/1";
  const uint64_t outer = overlap.add(outer_name, "pad!" + local_entry(inner_name, kStorage)).offset;
  overlap.add("archive/version", "3\n");
  overlap.entries.push_back({inner_name, crc32(kStorage.data(), kStorage.size()), 0,
                             kStorage.size(), outer + 30 + outer_name.size() + 4});
  expect_refused("overlapping_entries", overlap.file(), "overlapping entries");

  ZipBuilder longer = checkpoint_with(kValidPickle);
  longer.entries[1].size = 1000;
  expect_refused("lying_size", longer.file(), "'archive/data/0' declares 1000 bytes");
  ZipBuilder elsewhere = checkpoint_with(kValidPickle);
  elsewhere.entries[1].offset += 3;
  expect_refused("lying_offset", elsewhere.file(), "'archive/data/0' has no local header");
  ZipBuilder renamed = checkpoint_with(kValidPickle);
  renamed.entries[1].name = "archive/data/1";
  expect_refused("lying_name", renamed.file(), "another name in its local header");

  ZipBuilder zip64 = checkpoint_with(kValidPickle);
  zip64.entries[1].size = uint64_t(1) << 40;
  zip64.entries[1].zip64 = true;
  expect_refused("zip64_size", zip64.file(), "declares 1099511627776 bytes");
  ZipBuilder zip64_pickle = checkpoint_with(kValidPickle);
  zip64_pickle.entries[0].size = uint64_t(1) << 62;
  zip64_pickle.entries[0].zip64 = true;
  expect_refused("zip64_pickle_size", zip64_pickle.file(), "declares 4611686018427387904 bytes");

  ZipBuilder deflated = checkpoint_with(kValidPickle);
  deflated.entries[0].method = 8;
  expect_refused("compressed_entry", deflated.file(), "'archive/data.pkl' is compressed");

  std::string no_directory = checkpoint_with(kValidPickle).body;
  expect_refused("no_directory", no_directory, "not a readable torch.save zip file");
  std::string directory_past_end = checkpoint_with(kValidPickle).file();
  directory_past_end[directory_past_end.size() - 3] = '\x7f';  // the directory's offset
  expect_refused("directory_past_end", directory_past_end, "points past the end of the file");
}

// The same refusals hold wherever the file is cut.
TEST_F(HostileCheckpoint, CutAnywhere) {
  const std::string valid = checkpoint_with(kValidPickle).file();
  for (size_t i = 0; i < 40; ++i) {
    const size_t n = valid.size() * i / 40;
    expect_refused("cut_" + std::to_string(n), valid.substr(0, n), "");
  }
}

}  // namespace
}  // namespace sd::io
