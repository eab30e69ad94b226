#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "data/records.h"
#include "data/tar.h"

namespace sd::data {

// A record that could not be used: the file at fault (the image, or its JSON when that is what
// is bad) and why. Every command that reads records skips a bad one the same way: named once
// (describe), counted and listed in its summary and JSON report (skips_json), and with
// --strict an error carrying the same words.
struct Skip {
  std::string file;
  std::string reason;  // does not repeat the file when the message started with it
};

// The Skip for an error `message` about `file`: a leading "<file>: " is dropped from the reason.
Skip skip_of(const std::string& file, const std::string& message);
// Its one line, naming the file once: "<file>: <reason>" (the reason alone when it names the
// file itself, e.g. "cannot read '<file>': ..."). Names are bytes: both functions write them
// with escape_name (util/names.h), so that the line stays one line and the JSON parses.
std::string describe(const Skip& skip);
// [{"file": ..., "reason": ...}, ...]
nlohmann::json skips_json(const std::vector<Skip>& skips);

// One image of a dataset, from one of the sources --data takes (Dataset::open):
//   SA-1B folder or tar  `sa_<id>.jpg` with its `sa_<id>.json`, read on demand; id `sa_<id>`
//   plain image folder   any image file, no annotations; id = its path in the folder less the
//                        extension (`street/cam1/0001`)
//   COCO instance file   the record parsed up front; id = its file_name less the extension
// An entry of a tar reads its members in place (pread at their offsets).
struct Entry {
  std::string id;
  std::string group;       // the folder or tar holding it (e.g. "sa_000020"), for --subset
  std::string image_path;  // the image file; "<tar>:<member>" inside a tar (for messages)
  std::string json_path;   // SA-1B only: its JSON, likewise; empty for COCO and plain images
  std::shared_ptr<const Record> record;  // COCO only
  // Initialised here, so that an entry listing the fields above only stays complete.
  std::shared_ptr<const TarFile> tar = nullptr;   // set when the files are members of a tar
  TarMember image_member = {}, json_member = {};  // in `tar`
};

// Whether the entry has annotation masks (SA-1B and COCO do; plain images do not).
bool has_masks(const Entry& entry);

// The image file's bytes, from disk or from the tar; sd::Error naming the file.
std::string read_image_bytes(const Entry& entry);

// Reads (SA-1B) or returns (COCO) the entry's record; sd::Error naming the file on bad input.
// A plain image's record has no annotations, and width = height = 0 until its image is read
// (ImageReader fills them in).
Record load_record(const Entry& entry);

// Which entries to keep. A list file holds one image id (`sa_100001`, `sa_100001.jpg`) or
// folder name (`sa_000020`) per line. A fraction keeps each id with probability `fraction`,
// decided by hashing (seed, id) (rng::subset_draw): the same ids on every run, machine and
// thread count, and a superset when the fraction grows. `val_fraction` sets aside a disjoint
// validation split (rng::validation_draw); `validation` selects it instead of the training part.
struct SubsetSpec {
  std::string list_file;
  double fraction = 1.0;
  uint64_t seed = 0;
  double val_fraction = 0.0;
  bool validation = false;
};

class Dataset {
 public:
  // Every image of `sources`, each an SA-1B folder or .tar, a plain image folder (a folder
  // without `sa_*.json`) or a COCO .json (its images under `coco_images`, default the JSON's
  // folder), in any mix, sorted by id. What is unusable but leaves the rest usable (an orphan
  // image or JSON, a symlink not followed, a tar damaged part way, a COCO image missing on disk
  // or a bad COCO annotation) goes to `skipped`. sd::Error naming the source when it is none of
  // those, and naming both files when two images have one id.
  static Dataset open(const std::vector<std::string>& sources, const std::string& coco_images,
                      std::vector<Skip>* skipped);

  // Every `sa_<id>.jpg` / `sa_<id>.json` pair under the folders (searched recursively), sorted
  // by id. An image without its JSON or the reverse is left out and reported in `orphans`, and
  // so is a symlink that leaves its folder, loops, or leads to a folder: never followed.
  static Dataset index_sa1b(const std::vector<std::string>& folders, std::vector<Skip>* orphans);
  // A COCO instance file; images under `image_dir`. With `skipped`, a bad annotation or an
  // image missing on disk goes there (the image then left out); without, it is an sd::Error.
  static Dataset from_coco(const std::string& json_path, const std::string& image_dir,
                           std::vector<Skip>* skipped = nullptr);

  // Entries made elsewhere (e.g. the keys of an embedding store whose images are cached).
  static Dataset from_entries(std::vector<Entry> entries);

  Dataset subset(const SubsetSpec& spec) const;
  Dataset filter(const std::function<bool(const Entry&)>& keep) const;
  Dataset head(size_t n) const;  // the first n entries (all when fewer)
  // The entries at positions index, index + count, index + 2 count, ...: one of `count`
  // disjoint slices (embed's --shard; a rank's share under a launcher).
  Dataset interleaved(size_t index, size_t count) const;

  size_t size() const { return entries_.size(); }
  bool all_have_masks() const;  // every entry has annotation masks (has_masks)
  const Entry& operator[](size_t i) const { return entries_[i]; }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

}  // namespace sd::data
