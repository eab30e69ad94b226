#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "data/records.h"

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
// file itself, e.g. "cannot read '<file>': ...").
std::string describe(const Skip& skip);
// [{"file": ..., "reason": ...}, ...]
nlohmann::json skips_json(const std::vector<Skip>& skips);

// One image of a dataset. SA-1B: `sa_<id>.jpg` with its `sa_<id>.json` read on demand;
// COCO: the record parsed up front.
struct Entry {
  std::string id;     // file stem, e.g. "sa_100001"
  std::string group;  // the folder holding it (an extracted tar, e.g. "sa_000020")
  std::string image_path;
  std::string json_path;                 // empty for COCO entries
  std::shared_ptr<const Record> record;  // null for SA-1B entries
};

// Reads (SA-1B) or returns (COCO) the entry's record; sd::Error naming the file on bad input.
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
  // Every `sa_<id>.jpg` / `sa_<id>.json` pair under the folders (searched recursively), sorted
  // by id. An image without its JSON or the reverse is left out and reported in `orphans`, and
  // so is a symlink that leaves its folder, loops, or leads to a folder: never followed.
  static Dataset index_sa1b(const std::vector<std::string>& folders, std::vector<Skip>* orphans);
  // A COCO instance file; images under `image_dir`.
  static Dataset from_coco(const std::string& json_path, const std::string& image_dir);

  // Entries made elsewhere (e.g. the keys of an embedding store whose images are cached).
  static Dataset from_entries(std::vector<Entry> entries);

  Dataset subset(const SubsetSpec& spec) const;
  Dataset filter(const std::function<bool(const Entry&)>& keep) const;
  Dataset head(size_t n) const;  // the first n entries (all when fewer)

  size_t size() const { return entries_.size(); }
  const Entry& operator[](size_t i) const { return entries_[i]; }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

}  // namespace sd::data
