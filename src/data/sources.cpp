// Dataset::open and the indexing of each kind of source --data takes.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "data/dataset.h"
#include "util/error.h"
#include "util/names.h"
#include "util/text.h"

namespace fs = std::filesystem;

namespace sd::data {
namespace {

// A file met under a folder or in a tar.
struct Found {
  std::string name;  // relative to the folder or tar, '/'-separated
  std::string path;  // the file on disk, or "<tar>:<name>"
  TarMember member;  // inside a tar
};

// Every image file of a plain folder has one of these extensions, in any letter case.
bool is_image_name(const std::string& name) {
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp" ||
         ext == ".tif" || ext == ".tiff";
}

bool is_sa1b_name(const std::string& stem) { return starts_with(stem, "sa_"); }

bool is_sa1b_json(const std::string& name) {
  const fs::path p(name);
  return is_sa1b_name(p.stem().string()) && p.extension() == ".json";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
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

// Every regular file under `folder`, recursively, in name order; refused symlinks, and what the
// file system cannot list, go to `skipped` (named) without ending the scan.
std::vector<Found> scan_folder(const std::string& folder, std::vector<Skip>* skipped) {
  const fs::path root = fs::canonical(folder);
  std::vector<Found> files;
  auto skip = [&](const fs::path& p, const std::string& why) {
    if (skipped) skipped->push_back({p.string(), why});
  };
  std::error_code ec;
  auto it = fs::recursive_directory_iterator(folder, fs::directory_options::none, ec);
  if (ec) throw Error(folder + ": cannot list the folder: " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {  // a folder that cannot be listed: the scan goes on without it
      skip(it->path(), "cannot list: " + ec.message());
      break;
    }
    const fs::path& p = it->path();
    if (it->is_symlink(ec)) {
      const std::string refused = refused_symlink(p, root);
      if (!refused.empty()) {
        skip(p, refused);
        continue;
      }
    }
    if (it->is_regular_file(ec))
      files.push_back({p.lexically_relative(folder).generic_string(), p.string(), {}});
  }
  std::sort(files.begin(), files.end(),
            [](const Found& a, const Found& b) { return a.name < b.name; });
  return files;
}

// Every regular member of a tar; its damage (members lost) and members named out of it
// (`../x.jpg`, `/abs/x.jpg`) go to `skipped`.
std::vector<Found> scan_tar(const std::shared_ptr<const TarFile>& tar, std::vector<Skip>* skipped) {
  if (skipped)
    for (const std::string& damage : tar->damage()) skipped->push_back({tar->path(), damage});
  std::vector<Found> files;
  for (const TarMember& m : tar->members()) {
    std::string name = fs::path(m.name).lexically_normal().generic_string();
    if (name.empty() || name[0] == '/' || name == ".." || starts_with(name, "../")) {
      if (skipped)
        skipped->push_back({tar->path() + ":" + m.name,
                            "member named outside the tar (absolute or through ..): not read"});
      continue;
    }
    files.push_back({name, tar->path() + ":" + m.name, m});
  }
  return files;
}

void in_tar(Entry& e, const std::shared_ptr<const TarFile>& tar, const Found& image,
            const Found* json) {
  if (!tar) return;
  e.tar = tar;
  e.image_member = image.member;
  if (json) e.json_member = json->member;
}

// SA-1B: each `sa_<id>.jpg` with its `sa_<id>.json`; orphans go to `skipped`. The group is
// the tar's name (`group`), or in a folder each image's own folder (an extracted tar).
std::vector<Entry> sa1b_entries(const std::vector<Found>& files, const std::string& group,
                                const std::shared_ptr<const TarFile>& tar,
                                std::vector<Skip>* skipped) {
  // Paired within one folder only: `a/sa_1.jpg` is not `b/sa_1.json`'s image.
  std::map<std::string, std::pair<const Found*, const Found*>> pairs;  // name less ext -> files
  for (const Found& f : files) {
    fs::path p(f.name);
    if (!is_sa1b_name(p.stem().string())) continue;
    if (p.extension() == ".jpg") pairs[p.replace_extension().generic_string()].first = &f;
    if (p.extension() == ".json") pairs[p.replace_extension().generic_string()].second = &f;
  }
  std::vector<Entry> entries;
  for (const auto& [name, found] : pairs) {
    const auto [image, json] = found;
    const std::string stem = escape_name(fs::path(name).filename().string());
    if (!image || !json) {
      if (skipped)
        skipped->push_back({(image ? image : json)->path,
                            image ? "image without its JSON" : "JSON without its image"});
      continue;
    }
    Entry e{stem,
            escape_name(tar ? group : fs::path(image->path).parent_path().filename().string()),
            image->path,
            json->path,
            nullptr,
            nullptr,
            {},
            {}};
    in_tar(e, tar, *image, json);
    entries.push_back(std::move(e));
  }
  return entries;
}

// A plain image folder or tar: every image file, id = its name less the extension.
std::vector<Entry> plain_entries(const std::vector<Found>& files, const std::string& group,
                                 const std::shared_ptr<const TarFile>& tar) {
  std::vector<Entry> entries;
  for (const Found& f : files) {
    if (!is_image_name(f.name)) continue;
    Entry e{escape_name(fs::path(f.name).replace_extension().generic_string()),
            escape_name(group),
            f.path,
            "",
            nullptr,
            nullptr,
            {},
            {}};
    in_tar(e, tar, f, nullptr);
    entries.push_back(std::move(e));
  }
  return entries;
}

// SA-1B when any `sa_<id>.json` is there, else plain images.
std::vector<Entry> entries_of(const std::vector<Found>& files, const std::string& group,
                              const std::shared_ptr<const TarFile>& tar,
                              std::vector<Skip>* skipped) {
  const bool sa1b =
      std::any_of(files.begin(), files.end(), [](const Found& f) { return is_sa1b_json(f.name); });
  return sa1b ? sa1b_entries(files, group, tar, skipped) : plain_entries(files, group, tar);
}

std::vector<Entry> entries_of_source(const std::string& source, const std::string& coco_images,
                                     std::vector<Skip>* skipped) {
  std::error_code ec;
  const fs::file_status status = fs::status(source, ec);
  if (fs::is_directory(status))
    return entries_of(scan_folder(source, skipped), fs::canonical(source).filename().string(),
                      nullptr, skipped);
  const std::string ext = lower(fs::path(source).extension().string());
  if (fs::is_regular_file(status) && ext == ".tar") {
    const std::shared_ptr<const TarFile> tar = TarFile::open(source);
    return entries_of(scan_tar(tar, skipped), fs::path(source).stem().string(), tar, skipped);
  }
  if (fs::is_regular_file(status) && ext == ".json") {
    const std::string images =
        coco_images.empty() ? fs::path(source).parent_path().string() : coco_images;
    return Dataset::from_coco(source, images, skipped).entries();
  }
  throw Error(
      source + ": " +
      (fs::exists(status) ? "not a folder, .tar or .json" : std::string("no such file or folder")) +
      " (--data takes SA-1B folders and .tar files, image folders and COCO .json files)");
}

// sd::Error naming both files when two entries (sorted by id) have one id.
void check_unique(const std::vector<Entry>& sorted) {
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].id == sorted[i - 1].id)
      throw Error("image id '" + sorted[i].id + "' is given twice: by '" +
                  sorted[i - 1].image_path + "' and by '" + sorted[i].image_path +
                  "' (ids must be unique across --data; give one of them only)");
}

}  // namespace

Dataset Dataset::open(const std::vector<std::string>& sources, const std::string& coco_images,
                      std::vector<Skip>* skipped) {
  std::vector<Entry> all;
  for (const std::string& source : sources) {
    std::vector<Entry> entries = entries_of_source(source, coco_images, skipped);
    all.insert(all.end(), std::make_move_iterator(entries.begin()),
               std::make_move_iterator(entries.end()));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Entry& a, const Entry& b) { return a.id < b.id; });
  check_unique(all);
  return from_entries(std::move(all));
}

Dataset Dataset::index_sa1b(const std::vector<std::string>& folders, std::vector<Skip>* orphans) {
  std::vector<Entry> all;
  for (const std::string& folder : folders) {
    if (!fs::is_directory(folder))
      throw Error(folder + ": not a folder (--data expects SA-1B folders)");
    std::vector<Entry> entries = sa1b_entries(scan_folder(folder, orphans), "", nullptr, orphans);

    all.insert(all.end(), std::make_move_iterator(entries.begin()),
               std::make_move_iterator(entries.end()));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Entry& a, const Entry& b) { return a.id < b.id; });
  check_unique(all);
  return from_entries(std::move(all));
}

namespace {

// Why the COCO image at `path` (its folder / file_name) is not read, or "" for a regular file
// inside the folder (`root`, canonical). A FIFO would hang the run, a link to a device or out
// of the folder (`etc -> /etc`, file_name `etc/passwd`) read what was never given; a name too
// long or a symlink loop skips that image, not the run.
std::string coco_image_problem(const std::string& path, const fs::path& root,
                               const std::string& json_path) {
  std::error_code ec;
  const fs::path target = fs::canonical(path, ec);
  if (ec == std::errc::no_such_file_or_directory || root.empty())
    return "listed in " + json_path + " but not on disk";
  if (ec) return "cannot be read (" + ec.message() + ")";
  if (!inside(target, root))
    return "leads to " + target.string() + " through a symlink, outside the image folder " +
           root.string() + ": not read";
  if (!fs::is_regular_file(target, ec))
    return "not a regular file (a folder, FIFO or device): not read";
  return "";
}

}  // namespace

Dataset Dataset::from_coco(const std::string& json_path, const std::string& image_dir,
                           std::vector<Skip>* skipped) {
  BadAnnotation bad;
  if (skipped)
    bad = [&](const std::string& message) { skipped->push_back(skip_of(json_path, message)); };
  std::error_code ec;
  const fs::path root = fs::canonical(image_dir.empty() ? "." : image_dir, ec);
  std::vector<Entry> entries;
  std::vector<Record> records = read_coco_instances(json_path, image_dir, bad);
  const bool none_there = std::none_of(records.begin(), records.end(), [](const Record& r) {
    std::error_code missing;
    return fs::exists(fs::symlink_status(r.image_path, missing));
  });
  if (skipped && !records.empty() && none_there)
    throw Error("none of the " + std::to_string(records.size()) + " images listed in " + json_path +
                " is in the folder '" + (image_dir.empty() ? "." : image_dir) + "' (e.g. " +
                records.front().image_path + "): give --images with the folder that holds them");
  for (Record& r : records) {
    const std::string problem = coco_image_problem(r.image_path, root, json_path);
    if (!problem.empty() && skipped) {
      skipped->push_back({r.image_path, problem});
      continue;
    }
    if (!problem.empty() && fs::exists(fs::symlink_status(r.image_path, ec)))
      throw Error(r.image_path + ": " + problem);  // a missing one is named when it is read
    std::string id = escape_name(fs::path(r.image.file_name).replace_extension().generic_string());
    std::string path = r.image_path;
    entries.push_back({id,
                       fs::path(json_path).stem().string(),
                       path,
                       "",
                       std::make_shared<const Record>(std::move(r)),
                       nullptr,
                       {},
                       {}});
  }
  return from_entries(std::move(entries));
}

}  // namespace sd::data
