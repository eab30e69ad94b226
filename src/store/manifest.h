#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "store/format.h"

namespace sd::store {

// What produced a store (manifest.json in its folder). Training and evaluation build the
// manifest they expect and call check_compatible against the store's.
struct Manifest {
  nlohmann::json teacher;         // sd::models::to_json of the teacher's encoder config
  std::string checkpoint_sha256;  // of the teacher checkpoint file (sd::sha256_file)
  std::string checkpoint_name;    // file name, for people; never compared
  nlohmann::json preprocess;      // img_size, pixel_mean, pixel_std, resize filter
  std::optional<DType> dtype;     // always set in a store; unset in `expected` = any dtype

  // The fields, "format", and "sha256": the SHA-256 of the rest (compact JSON, sorted keys),
  // so that an edited or damaged manifest.json is noticed like any other file of the store.
  nlohmann::json to_json() const;
  // sd::Error naming `source` and the field when a field is missing or mistyped, or when the
  // content does not match its "sha256". A manifest without "sha256" (written before it had
  // one) is read; `checksummed` tells which.
  static Manifest from_json(const nlohmann::json& j, const std::string& source,
                            bool* checksummed = nullptr);
};

// Throws sd::Error naming the first field that differs (for JSON fields, the full path such as
// `teacher.depth`) with both values. `expected.dtype` unset accepts any dtype.
void check_compatible(const Manifest& expected, const Manifest& actual, const std::string& store);

// Refuses (sd::Error naming the field) a store not made by `teacher` (preset or JSON
// config) with the weights in `teacher_checkpoint` (a file or run folder); an empty
// argument accepts any. Other weights are refused with both checksums, each with its file:
// "checkpoint_sha256 is S (NAME) in the store, expected E (PATH)", NAME the manifest's
// checkpoint_name and PATH the weights file given.
void check_made_by(const Manifest& actual, const std::string& teacher,
                   const std::string& teacher_checkpoint, const std::string& store);

// manifest.json of the store folder `dir` (sd::Error naming the file if absent, broken or not
// matching its checksum). One without a checksum (an older store) is read; `unchecked`, when
// given, receives a note saying so, else the note is logged as a warning.
Manifest read_manifest(const std::string& dir, std::string* unchecked = nullptr);
std::string manifest_path(const std::string& dir);
// The identity of the store in `dir`: its manifest file's SHA-256 (what produced it).
std::string manifest_digest(const std::string& dir);

}  // namespace sd::store
