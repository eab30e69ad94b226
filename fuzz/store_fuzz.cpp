// A whole store folder (manifest.json, part.index, part.records) as `store verify`, `store
// stats` and the readers meet it: a valid three-record store, written once, with the input
// XORed over its files laid end to end (manifest, index, records). Input byte 0: bit 0 makes
// the index entries' checksums right again after the change (so that their fields, an absurd
// payload size among them, are believed), bits 1-7 with byte 1 cut the records file short.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "store/format.h"
#include "store/part.h"
#include "store/reader.h"
#include "store/verify.h"
#include "store/writer.h"
#include "util/atomic_file.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/names.h"

namespace fs = std::filesystem;

namespace {

std::string dir() {
  static const std::string d = "/tmp/sd-fuzz-store-" + std::to_string(getpid());
  return d;
}

const char* const kFiles[] = {"manifest.json", "part.index", "part.records"};

// The valid store's three files.
const std::vector<std::string>& valid_store() {
  static const std::vector<std::string> files = [] {
    const std::string d = dir() + "-valid";
    fs::remove_all(d);
    sd::store::Manifest m;
    m.teacher = {{"embed_dim", 8}};
    m.checkpoint_sha256 = "ab";
    m.checkpoint_name = "w.pth";
    m.preprocess = {{"img_size", 1024}};
    m.dtype = sd::store::DType::int8;
    {
      sd::store::Writer writer(d, m, "part");
      for (int i = 0; i < 3; ++i)
        writer.put(sd::store::encode_embedding("sa_" + std::to_string(i),
                                               at::arange(32, at::kFloat).view({2, 4, 4}) * i,
                                               sd::store::DType::int8));
    }
    std::vector<std::string> out;
    for (const char* f : kFiles) out.push_back(sd::read_file(d + "/" + f));
    fs::remove_all(d);
    return out;
  }();
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::vector<std::string> files = valid_store();
  size_t p = 2;
  for (std::string& f : files)
    for (size_t i = 0; i < f.size() && p < size; ++i) f[i] ^= char(data[p++]);
  if (data[0] & 1)
    for (size_t e = 0; e + sd::store::kIndexEntryBytes <= files[1].size();
         e += sd::store::kIndexEntryBytes) {
      const uint32_t crc = sd::crc32c(files[1].data() + e, 124);
      std::memcpy(&files[1][e + 124], &crc, 4);
    }
  const size_t cut = (data[0] >> 1) | size_t(data[1]) << 7;
  if (cut > 0 && cut < files[2].size()) files[2].resize(cut);
  fs::remove_all(dir());
  fs::create_directories(dir());
  for (int i = 0; i < 3; ++i) std::ofstream(dir() + "/" + kFiles[i], std::ios::binary) << files[i];

  const auto report =
      nlohmann::json::parse(sd::json_text(sd::store::verify_store(dir()).to_json()));
  (void)report;  // parses, or the uncaught exception is the finding
  try {
    sd::store::Reader reader(dir());
    const auto stats = nlohmann::json::parse(sd::json_text(reader.stats()));
    (void)stats;
    for (const sd::store::Entry& entry : reader.entries()) {
      try {
        reader.read(entry);
      } catch (const sd::Error&) {
      }
    }
  } catch (const sd::Error&) {
  }
  return 0;
}
