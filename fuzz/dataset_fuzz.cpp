// The whole data reader over a folder built from the input: Dataset::open (folder scan,
// symlinks, SA-1B pairing, COCO paths, tars), then every entry's record and image bytes read as
// the loader reads them, the pixel limit and the JPEG check applied, and the skips written as
// a JSON report. The input is a list of files:
//   [kind][name][length: 2 bytes][data]...
// kind % 5: 0 a file, 1 a symlink (to one of a few targets), 2 a FIFO, 3 the file as
// `source.tar` given to --data instead of the folder, 4 a COCO `source.json` given to --data.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/image.h"
#include "util/error.h"
#include "util/names.h"

namespace fs = std::filesystem;

namespace {

const char* const kNames[] = {"sa_1.jpg",   "sa_1.json",   "sa_2.jpg",    "sa_2.json",
                              "a/sa_3.jpg", "b/sa_3.json", "x.png",       "y.webp",
                              "z.tif",      "w.bmp",       "sub/v.jpg",   "caf\xe9.png",
                              "n\nl.png",   "a/sa_1.jpg",  "a/sa_1.json", "deep/er/u.jpg"};
const char* const kTargets[] = {"/dev/zero", "..", "sa_1.jpg", "loop", "/etc/hostname", "sub"};

std::string dir() {
  static const std::string d = "/tmp/sd-fuzz-dataset-" + std::to_string(getpid());
  return d;
}

void build(const uint8_t* data, size_t size, std::vector<std::string>& sources) {
  const std::string root = dir() + "/data";
  fs::create_directories(root);
  for (size_t p = 0; p + 4 <= size;) {
    const int kind = data[p] % 5;
    const std::string name = kNames[data[p + 1] % 16];
    const size_t length = std::min<size_t>(size - p - 4, data[p + 2] | data[p + 3] << 8);
    const std::string bytes(reinterpret_cast<const char*>(data) + p + 4, length);
    p += 4 + length;
    const std::string path =
        kind >= 3 ? dir() + (kind == 3 ? "/source.tar" : "/source.json") : root + "/" + name;
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    if (fs::exists(fs::symlink_status(path, ec))) continue;
    if (kind == 1) {
      fs::create_symlink(kTargets[length % 6], path, ec);
    } else if (kind == 2) {
      ::mkfifo(path.c_str(), 0644);
    } else {
      std::ofstream(path, std::ios::binary) << bytes;
      if (kind >= 3) sources.push_back(path);
    }
  }
  sources.push_back(root);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fs::remove_all(dir());
  std::vector<std::string> sources;
  build(data, size, sources);
  for (const std::string& source : sources) {
    std::vector<sd::data::Skip> skipped;
    try {
      const sd::data::Dataset dataset =
          sd::data::Dataset::open({source}, dir() + "/data", &skipped);
      for (const sd::data::Entry& entry : dataset.entries()) {
        try {
          sd::data::load_record(entry);
          const std::string bytes = sd::data::read_image_bytes(entry);
          sd::data::check_pixel_limit(bytes, entry.image_path, 1'000'000);
          sd::data::check_jpeg_complete(bytes, entry.image_path);
        } catch (const sd::Error& e) {
          skipped.push_back(sd::data::skip_of(entry.image_path, e.what()));
        }
      }
    } catch (const sd::Error&) {
    }
    for (const sd::data::Skip& s : skipped) sd::data::describe(s);
    const auto report = nlohmann::json::parse(sd::json_text(sd::data::skips_json(skipped)));
    (void)report;  // parses, or the uncaught exception is the finding
  }
  return 0;
}
