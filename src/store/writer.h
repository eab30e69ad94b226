#pragma once
#include <string>
#include <vector>

#include "store/format.h"
#include "store/manifest.h"
#include "util/error.h"

namespace sd::store {

// Appends records to one part of a store. Each process writes its own part (embed --shard i/N
// writes `shard-i-of-N`), so several writers fill one store folder together; a lock refuses
// a second writer of the same part.
//
// Crash safety: put() appends to `<part>.records`; commit() fsyncs it, then appends the index
// entries and fsyncs the index. Only indexed records exist for readers, so a kill at any moment
// loses at most the records not yet committed; on open, a torn index entry and any unindexed
// bytes after the last committed record are dropped.
class Writer {
 public:
  // Creates the folder and its manifest.json from `manifest` (dtype set) if absent; otherwise
  // the store's manifest must be compatible (check_compatible, dtype included).
  Writer(const std::string& dir, const Manifest& manifest, const std::string& part);
  ~Writer();  // commits what is pending; errors are logged
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void put(const Encoded& record);
  void commit();

  size_t committed() const { return committed_; }      // records of this part on disk
  uint64_t dropped_bytes() const { return dropped_; }  // uncommitted bytes removed on open

 private:
  std::string dir_, part_, records_path_, index_path_;
  DType dtype_;
  int records_fd_ = -1, index_fd_ = -1;
  uint64_t records_end_ = 0, index_end_ = 0, dropped_ = 0;
  size_t committed_ = 0;
  std::string pending_;  // encoded index entries of records written but not committed

  // A failed write (a full disk, most often) loses only what was not committed: says so.
  [[noreturn]] void throw_keeping(const Error& e) const;
};

// The part written by `embed --shard index/count`: "shard-<index>-of-<count>".
std::string shard_part_name(int index, int count);

// Copies every record of `src` that `dst` lacks into dst's part `merged` (creating dst with
// src's manifest if absent); each record's checksums are checked on the way. Returns how many
// records were copied.
size_t merge_store(const std::string& dst, const std::string& src);

}  // namespace sd::store
