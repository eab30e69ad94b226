#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "data/image.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/names.h"
#include "util/progress.h"
#include "util/random.h"
#include "util/regular_file.h"
#include "util/text.h"

namespace fs = std::filesystem;

namespace sd::data {
namespace {

std::set<std::string> read_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot read subset list");
  std::set<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty() || line[0] == '#') continue;
    names.insert(fs::path(line).stem().string());  // sa_1.jpg, sa_1.json, sa_000020.tar -> stem
    names.insert(fs::path(line).replace_extension().generic_string());  // a plain folder's ids
  }
  return names;
}

}  // namespace

Skip skip_of(const std::string& file, const std::string& message) {
  const std::string prefix = file + ": ";
  return {file, starts_with(message, prefix) && message.size() > prefix.size()
                    ? message.substr(prefix.size())
                    : message};
}

std::string describe(const Skip& skip) {
  return escape_name(skip.reason.find(skip.file) != std::string::npos
                         ? skip.reason
                         : skip.file + ": " + skip.reason);
}

nlohmann::json skips_json(const std::vector<Skip>& skips) {
  nlohmann::json out = nlohmann::json::array();
  for (const Skip& s : skips)
    out.push_back({{"file", escape_name(s.file)}, {"reason", escape_name(s.reason)}});
  return out;
}

bool has_masks(const Entry& entry) { return entry.record || !entry.json_path.empty(); }

std::string read_image_bytes(const Entry& entry) {
  // The head first: a file declaring too many pixels, or bigger than its image can be, is
  // refused before the rest is read (a 3 GB sparse file costs one small read).
  constexpr uint64_t kHead = 1 << 20;
  std::optional<RegularFile> file;
  if (!entry.tar) file.emplace(entry.image_path);
  const uint64_t size = entry.tar ? entry.image_member.size : file->size();
  auto read = [&](uint64_t from, uint64_t count) {
    return entry.tar ? entry.tar->read(entry.image_member, from, count) : file->read(from, count);
  };
  if (size == 0) throw Error(entry.image_path + ": empty file (0 bytes), not an image");
  std::string bytes = read(0, kHead);
  check_image_head(bytes, size, entry.image_path, max_image_pixels());
  if (size > bytes.size()) bytes += read(bytes.size(), size - bytes.size());
  return bytes;
}

Record load_record(const Entry& entry) {
  if (entry.record) return *entry.record;
  if (entry.json_path.empty()) {  // a plain image: no annotations
    Record record;
    record.image.file_name = entry.id;
    record.image_path = entry.image_path;
    return record;
  }
  if (entry.tar)
    return read_sa1b_text(entry.tar->read(entry.json_member), entry.json_path, entry.image_path);
  return read_sa1b_record(entry.json_path, entry.image_path);
}

bool Dataset::all_have_masks() const {
  return std::all_of(entries_.begin(), entries_.end(), has_masks);
}

Dataset Dataset::subset(const SubsetSpec& spec) const {
  if (spec.fraction < 0 || spec.fraction > 1 || spec.val_fraction < 0 || spec.val_fraction >= 1)
    throw Error("subset: --fraction must be in [0, 1] and --val-fraction in [0, 1), got " +
                std::to_string(spec.fraction) + " and " + std::to_string(spec.val_fraction));
  const std::set<std::string> listed =
      spec.list_file.empty() ? std::set<std::string>{} : read_list(spec.list_file);
  Dataset kept = filter([&](const Entry& e) {
    if (!spec.list_file.empty() && !listed.count(e.id) && !listed.count(e.group)) return false;
    const bool in_validation = rng::validation_draw(spec.seed, e.id) < spec.val_fraction;
    return spec.validation ? in_validation
                           : !in_validation && rng::subset_draw(spec.seed, e.id) < spec.fraction;
  });
  if (kept.size() == 0 && size() > 0)
    throw Error(
        "the selection (--fraction " + format_number(spec.fraction) +
        (spec.list_file.empty() ? "" : ", --subset " + spec.list_file) +
        (spec.val_fraction > 0 ? ", --val-fraction " + format_number(spec.val_fraction) : "") +
        ") keeps none of the " + std::to_string(size()) + " images");
  return kept;
}

Dataset Dataset::filter(const std::function<bool(const Entry&)>& keep) const {
  Dataset d;
  for (const Entry& e : entries_)
    if (keep(e)) d.entries_.push_back(e);
  return d;
}

Dataset Dataset::head(size_t n) const {
  Dataset d;
  d.entries_.assign(entries_.begin(), entries_.begin() + std::min(n, entries_.size()));
  return d;
}

Dataset Dataset::interleaved(size_t index, size_t count) const {
  Dataset d;
  for (size_t i = index; i < entries_.size(); i += count) d.entries_.push_back(entries_[i]);
  return d;
}

Dataset Dataset::from_entries(std::vector<Entry> entries) {
  Dataset d;
  d.entries_ = std::move(entries);
  return d;
}

}  // namespace sd::data
