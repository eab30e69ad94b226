#include "store/verify.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "store/manifest.h"
#include "store/part.h"
#include "util/error.h"

namespace sd::store {
namespace {

void verify_part(const std::string& dir, const std::string& part, std::set<std::string>& seen,
                 VerifyReport& report) {
  std::string ipath = index_path(dir, part), rpath = records_path(dir, part);
  LoadedIndex index = load_index(ipath, true);
  report.damage.insert(report.damage.end(), index.damage.begin(), index.damage.end());
  if (index.torn_bytes > 0)
    report.notes.push_back(
        "'" + ipath + "' ends with " + std::to_string(index.torn_bytes) +
        " bytes of an entry never committed (an interrupted run); writers drop them");
  int fd = -1;
  try {
    fd = open_for_reading(rpath);
  } catch (const Error& e) {
    report.damage.push_back(e.what());
    return;
  }
  for (const IndexEntry& entry : index.entries) {
    try {
      RecordInfo info;
      read_record(fd, dir, rpath, entry, info);
      ++report.records_ok;
      if (!seen.insert(kind_name(info.kind) + " " + info.key).second)
        report.notes.push_back("duplicate " + kind_name(info.kind) + " '" + info.key + "' in '" +
                               rpath + "' (readers use the first)");
    } catch (const Error& e) {
      report.damage.push_back(e.what());
    }
  }
  uint64_t size = file_size(fd, rpath);
  if (index.damage.empty() && size > index.records_end())
    report.notes.push_back(
        "'" + rpath + "' has " + std::to_string(size - index.records_end()) +
        " bytes after its last committed record (an interrupted run); writers drop them");
  ::close(fd);
}

}  // namespace

nlohmann::json VerifyReport::to_json() const {
  return {{"ok", ok()}, {"records_ok", records_ok}, {"damage", damage}, {"notes", notes}};
}

VerifyReport verify_store(const std::string& dir) {
  VerifyReport report;
  StoreFiles files;
  try {
    files = list_store_files(dir);
    std::string unchecked;
    read_manifest(dir, &unchecked);
    if (!unchecked.empty()) report.notes.push_back(unchecked);
  } catch (const Error& e) {
    report.damage.push_back(e.what());
  }
  for (const auto& orphan : files.orphans)
    report.damage.push_back("store '" + dir + "': " + orphan);
  std::set<std::string> seen;
  for (const auto& part : files.parts) {
    try {
      verify_part(dir, part, seen, report);
    } catch (const Error& e) {  // an unreadable index file
      report.damage.push_back(e.what());
    }
  }
  return report;
}

}  // namespace sd::store
