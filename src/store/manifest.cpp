#include "store/manifest.h"

#include "models/config.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/regular_file.h"
#include "util/sha256.h"

namespace sd::store {
namespace {

constexpr const char* kFormat = "samdistill-embedding-store/1";

// Path of the first difference between two JSON values, or "" when equal.
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b,
                             const std::string& path) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items()) {
      std::string sub = path + "." + key;
      if (!b.contains(key)) return sub;
      std::string diff = first_difference(value, b[key], sub);
      if (!diff.empty()) return diff;
    }
    for (const auto& [key, value] : b.items())
      if (!a.contains(key)) return path + "." + key;
    return "";
  }
  return a == b ? "" : path;
}

nlohmann::json at_path(const nlohmann::json& j, const std::string& path) {
  const nlohmann::json* node = &j;
  size_t start = path.find('.') + 1;
  while (start > 0 && start <= path.size()) {
    size_t end = path.find('.', start);
    std::string key =
        path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!node->contains(key)) return "(absent)";
    node = &(*node)[key];
    start = end == std::string::npos ? 0 : end + 1;
  }
  return *node;
}

// The manifest's own checksum: SHA-256 of its JSON without the "sha256" field, compact, keys
// in nlohmann's sorted order (the same text whatever the file's indentation or key order).
std::string content_sha256(nlohmann::json j) {
  if (j.is_object()) j.erase("sha256");
  const std::string text = j.dump();
  return sha256_hex(text.data(), text.size());
}

// "weights 'weights.pth' (sha256 509c2d1b5a3e...)"
std::string weights_in_words(const Manifest& m) {
  return "weights '" + m.checkpoint_name + "' (sha256 " + m.checkpoint_sha256.substr(0, 12) +
         "...)";
}

}  // namespace

nlohmann::json Manifest::to_json() const {
  nlohmann::json j = {{"format", kFormat},
                      {"teacher", teacher},
                      {"checkpoint_sha256", checkpoint_sha256},
                      {"checkpoint_name", checkpoint_name},
                      {"preprocess", preprocess},
                      {"dtype", dtype ? word(*dtype) : "any"}};
  j["sha256"] = content_sha256(j);
  return j;
}

Manifest Manifest::from_json(const nlohmann::json& j, const std::string& source,
                             bool* checksummed) {
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(key)) throw Error(source + ": missing field '" + key + "'");
    return j[key];
  };
  const bool has_checksum = j.is_object() && j.contains("sha256");
  if (checksummed) *checksummed = has_checksum;
  if (has_checksum) {
    const nlohmann::json& sha = j["sha256"];
    const std::string recorded = sha.is_string() ? sha.get<std::string>() : sha.dump();
    const std::string computed = content_sha256(j);
    if (recorded != computed)
      throw Error(source + ": does not match its checksum (sha256 " + recorded + " recorded, " +
                  computed + " computed): it was edited or damaged after the store was made");
  }
  if (field("format") != kFormat)
    throw Error(source + ": format '" + field("format").dump() + "' is not " + kFormat);
  try {
    Manifest m;
    m.teacher = field("teacher");
    m.checkpoint_sha256 = field("checkpoint_sha256").get<std::string>();
    m.checkpoint_name = field("checkpoint_name").get<std::string>();
    m.preprocess = field("preprocess");
    std::string dtype = field("dtype").get<std::string>();
    if (dtype != "any") m.dtype = parse_embedding_dtype(dtype);
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": " + e.what());
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
}

void check_compatible(const Manifest& expected, const Manifest& actual, const std::string& store) {
  auto mismatch = [&](const std::string& field, const std::string& want, const std::string& got) {
    throw Error("store '" + store + "' was made differently: " + field + " is " + got +
                " in the store, expected " + want);
  };
  // Another teacher: which one made the store, which one was given, and what to do.
  auto other_teacher = [&](const std::string& detail) {
    throw Error("store '" + store + "' was made by another teacher: " +
                models::encoder_in_words(actual.teacher) + " with " + weights_in_words(actual) +
                ", not the one given, " + models::encoder_in_words(expected.teacher) +
                (expected.checkpoint_sha256 == actual.checkpoint_sha256
                     ? ""
                     : " with " + weights_in_words(expected)) +
                " (" + detail +
                "). Give the teacher that made the store, or make a store of this teacher's "
                "embeddings with `samdistill embed` (another --store)");
  };
  std::string diff = first_difference(expected.teacher, actual.teacher, "teacher");
  if (!diff.empty())
    other_teacher(diff + " is " + at_path(actual.teacher, diff).dump() +
                  " in the store, expected " + at_path(expected.teacher, diff).dump());
  if (expected.checkpoint_sha256 != actual.checkpoint_sha256)
    other_teacher("the same architecture, other weights");
  diff = first_difference(expected.preprocess, actual.preprocess, "preprocess");
  if (!diff.empty())
    mismatch(diff, at_path(expected.preprocess, diff).dump(),
             at_path(actual.preprocess, diff).dump());
  if (expected.dtype && expected.dtype != actual.dtype)
    mismatch("dtype", word(*expected.dtype), actual.dtype ? word(*actual.dtype) : "any");
}

std::string manifest_path(const std::string& dir) { return dir + "/manifest.json"; }

std::string manifest_digest(const std::string& dir) { return sha256_file(manifest_path(dir)); }

Manifest read_manifest(const std::string& dir, std::string* unchecked) {
  std::string path = manifest_path(dir);
  nlohmann::json j = nlohmann::json::parse(read_regular_file(path), nullptr, false);
  if (j.is_discarded()) throw Error("store manifest '" + path + "' is not valid JSON");
  bool checksummed = false;
  Manifest m = Manifest::from_json(j, path, &checksummed);
  if (!checksummed) {
    const std::string note = path +
                             ": has no checksum (written before manifests had one): its fields "
                             "are trusted as they are";
    if (unchecked)
      *unchecked = note;
    else
      log::warn(note);
  }
  return m;
}

}  // namespace sd::store
