#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "store/format.h"

// Internal to the store: the two files of one part (`<part>.records`, `<part>.index`) and
// the checked reads shared by Reader, Writer and verify.
namespace sd::store {

std::string records_path(const std::string& dir, const std::string& part);
std::string index_path(const std::string& dir, const std::string& part);

struct StoreFiles {
  std::vector<std::string> parts;    // names with both files, sorted
  std::vector<std::string> orphans;  // damage: a .records without its .index or the reverse
};
StoreFiles list_store_files(const std::string& dir);

struct LoadedIndex {
  std::vector<IndexEntry> entries;  // committed records, in file order
  uint64_t torn_bytes = 0;          // an incomplete last entry: a write in flight when killed
  std::vector<std::string> damage;  // only when loaded with collect_damage
  uint64_t records_end() const;     // where the next record goes in the .records file
};
// Without collect_damage, the first damaged entry throws sd::Error naming the file, the entry
// and its byte offset; with it, damaged entries are described in `damage` and skipped.
LoadedIndex load_index(const std::string& path, bool collect_damage);

// Reads one record at `entry` from the open .records file `fd`, checks its header, key and
// payload against the index entry and their checksums. Returns the payload (uint8) and fills
// `info` from the header. sd::Error naming `store`, `path`, the key and the offset otherwise.
at::Tensor read_record(int fd, const std::string& store, const std::string& path,
                       const IndexEntry& entry, RecordInfo& info);

// Opens a .records file for reading; sd::Error naming it unless it is a regular file (a FIFO in
// its place would block).
int open_for_reading(const std::string& path);

// pread/pwrite until done; the read returns fewer bytes only at end of file.
size_t read_at(int fd, uint64_t offset, char* data, size_t size, const std::string& path);
void write_at(int fd, uint64_t offset, const char* data, size_t size, const std::string& path);
uint64_t file_size(int fd, const std::string& path);

}  // namespace sd::store
