#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/random.h"

namespace fs = std::filesystem;

namespace sd::data {
namespace {

bool is_sa1b_name(const std::string& stem) { return stem.rfind("sa_", 0) == 0; }

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
  }
  return names;
}

bool inside(const fs::path& path, const fs::path& root) {
  auto [r, p] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return r == root.end();
}

// Why a symlink met under `root` (canonical) is not followed; empty for a link to a file
// inside `root`. A link out of the folder, to a folder, or in a loop could make the dataset
// read files its giver never put in it, or never end.
std::string refused_symlink(const fs::path& link, const fs::path& root) {
  std::error_code ec;
  const fs::path target = fs::canonical(link, ec);
  if (ec) return "symlink that loops or leads nowhere: not followed";
  if (!inside(target, root))
    return "symlink to " + target.string() + ", outside " + root.string() + ": not followed";
  if (fs::is_directory(target))
    return "symlink to a folder: not followed (give " + target.string() + " to --data)";
  return "";
}

}  // namespace

Skip skip_of(const std::string& file, const std::string& message) {
  const std::string prefix = file + ": ";
  return {file, message.compare(0, prefix.size(), prefix) == 0 && message.size() > prefix.size()
                    ? message.substr(prefix.size())
                    : message};
}

std::string describe(const Skip& skip) {
  return skip.reason.find(skip.file) != std::string::npos ? skip.reason
                                                          : skip.file + ": " + skip.reason;
}

nlohmann::json skips_json(const std::vector<Skip>& skips) {
  nlohmann::json out = nlohmann::json::array();
  for (const Skip& s : skips) out.push_back({{"file", s.file}, {"reason", s.reason}});
  return out;
}

Record load_record(const Entry& entry) {
  if (entry.record) return *entry.record;
  return read_sa1b_record(entry.json_path, entry.image_path);
}

Dataset Dataset::index_sa1b(const std::vector<std::string>& folders, std::vector<Skip>* orphans) {
  // stem -> (image, json)
  std::map<std::string, std::pair<fs::path, fs::path>> pairs;
  for (const std::string& folder : folders) {
    if (!fs::is_directory(folder))
      throw Error(folder + ": not a folder (--data expects SA-1B folders)");
    const fs::path root = fs::canonical(folder);
    for (auto it = fs::recursive_directory_iterator(folder);
         it != fs::recursive_directory_iterator(); ++it) {
      const fs::path& p = it->path();
      if (it->is_symlink()) {
        const std::string refused = refused_symlink(p, root);
        if (!refused.empty()) {
          if (orphans) orphans->push_back({p.string(), refused});
          continue;
        }
      }
      if (!it->is_regular_file()) continue;
      const std::string stem = p.stem().string();
      if (!is_sa1b_name(stem)) continue;
      const std::string ext = p.extension().string();
      if (ext == ".jpg") pairs[stem].first = p;
      if (ext == ".json") pairs[stem].second = p;
    }
  }
  Dataset d;
  for (auto& [stem, files] : pairs) {
    if (files.first.empty() || files.second.empty()) {
      if (orphans)
        orphans->push_back(
            {(files.first.empty() ? files.second : files.first).string(),
             files.first.empty() ? "JSON without its image" : "image without its JSON"});
      continue;
    }
    d.entries_.push_back({stem, files.first.parent_path().filename().string(), files.first.string(),
                          files.second.string(), nullptr});
  }
  return d;
}

Dataset Dataset::from_coco(const std::string& json_path, const std::string& image_dir) {
  Dataset d;
  for (Record& r : read_coco_instances(json_path, image_dir)) {
    std::string id = fs::path(r.image.file_name).stem().string();
    std::string path = r.image_path;
    d.entries_.push_back({id, fs::path(json_path).stem().string(), path, "",
                          std::make_shared<const Record>(std::move(r))});
  }
  return d;
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
    log::warn(
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

Dataset Dataset::from_entries(std::vector<Entry> entries) {
  Dataset d;
  d.entries_ = std::move(entries);
  return d;
}

}  // namespace sd::data
